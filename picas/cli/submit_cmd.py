"""``picas submit NAME``: pilots on a batch system, one subcommand per scheduler.

A thin layer, and a generic one: the subcommands are built from the
scheduler registry (:mod:`picas.schedulers`), so a new backend appears here
without a change to this module.  Each subcommand has the connection
options, the number of pilots, the scheduler's own options (declared as data
by the backend), ``--design-doc``/``--view``, every option of ``picas run``
(:mod:`picas.pilot.options`) and ``--dry-run``.  The submission is built by
the backend (pure), the pilots get their credentials from
:mod:`picas.pilot.credentials`, and the job ids land in the registry of
:mod:`picas.pool.registry`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from picas.cli.options import connection_options, make_client
from picas.config import Settings
from picas.errors import InvalidInput, PicasError

if TYPE_CHECKING:
    from picas.pilot.options import Option
    from picas.schedulers.base import Scheduler

__all__ = ["credential_of", "pilot_config_option", "scheduler_options", "split_values", "submit", "submit_command"]


def pilot_config_option(scheduler: str = "SCHEDULER", *, hidden: bool = False) -> Callable[[Callable], Callable]:
    """``--pilot-config``: where the pilots' private password profile goes.

    ``hidden`` for a scheduler whose pilots only ever get a scoped credential
    (:attr:`~picas.schedulers.base.Scheduler.needs_credential`): no profile
    is written for them, so the option means nothing there.
    """
    return click.option("--pilot-config", type=click.Path(dir_okay=False, path_type=Path), hidden=hidden,
                        help="Private (0600) config file for the pilots' password when it does not come from "
                             f"your config file [default: {scheduler}-pilots.yml next to it].")


def scheduler_options(cls: type[Scheduler]) -> Callable[[Callable], Callable]:
    """The click options of a scheduler's own option declarations."""
    from picas.pilot.options import PILOT_OPTIONS, click_options

    clash = {opt.name for opt in cls.options} & {opt.name for opt in PILOT_OPTIONS}
    if clash:
        raise TypeError(f"scheduler {cls.name!r} declares options that 'picas run' has: {', '.join(sorted(clash))}")
    return click_options(cls.options)


def split_values(options: Sequence[Option], values: dict[str, Any]) -> dict[str, Any]:
    """Take the values of ``options`` out of ``values`` (what is left are the pilot options)."""
    return {opt.name: values.pop(opt.name) for opt in options if opt.name in values}


#: The pilot options that say which tokens the pilots take: options of ``submit`` with their defaults.
_TARGET = ("design_doc", "view")


def credential_of(values: dict[str, Any]) -> Path | None:
    """The scoped pilot credential a scheduler's options name (``--credential FILE``), if any.

    With one, the pilots log in with it and the operator's password is
    written nowhere (see :func:`picas.pilot.credentials.pilot_environment`).
    """
    from picas.pool.credentials import OPTION

    value = values.get(OPTION.name)
    return Path(value) if value else None


def _ids(job_ids: list[str]) -> str:
    return " ".join(job_ids)


def submit_command(cls: type[Scheduler]) -> click.Command:
    """The ``picas submit NAME`` command of one scheduler class."""
    from picas.pilot.options import PILOT_OPTIONS, click_options

    def submit_pilots(settings: Settings, count: int, dry_run: bool, parsable: bool, pilot_config: Path | None,
                      **values: Any) -> None:
        from picas.pilot.credentials import pilot_environment, pilots_config_name
        from picas.pilot.options import pilot_args
        from picas.pool import registry
        from picas.schedulers.base import PilotRequest

        scheduler = cls()
        own = split_values(cls.options, values)
        cls.check_options(own)  # a refusal comes before any password is written for the pilots
        design, view = values.pop("design_doc"), values.pop("view")
        access = pilot_environment(settings, pilot_config, write=not dry_run,
                                   config_name=pilots_config_name(cls.name), credential=credential_of(own))
        request = PilotRequest(count=count, pilot_args=["--design-doc", design, "--view", view, *pilot_args(values)],
                               env=access.env, options=own, config_file=access.config_file)
        submission = scheduler.build(request)
        if dry_run:
            text = scheduler.dry_run(submission, own)
            click.echo(text, nl=not text.endswith("\n"))
            if access.note:
                click.echo(f"# dry run: {access.note}", err=True)
            return
        client = make_client(settings)
        registry.jobs(client)  # a wrong URL, database or password fails here, before any pilot is queued
        job_ids = scheduler.submit(submission)  # SchedulerError carries the scheduler's message; nothing recorded
        if access.note and not parsable:
            click.echo(access.note, err=True)
        entries = registry.entries_for(job_ids, cls.name, design, view, count=count, resources=submission.resources)
        try:
            registry.record(client, entries)
        except PicasError as exc:
            click.echo("\n".join(job_ids) if parsable else f"Submitted pilot job {_ids(job_ids)}")
            raise type(exc)(f"job {_ids(job_ids)} was submitted but could not be recorded in the database: "
                            f"{exc}") from None
        if parsable:
            click.echo("\n".join(job_ids))
        else:
            noun = "job" if len(job_ids) == 1 else "jobs"
            click.echo(f"Submitted pilot {noun} {_ids(job_ids)}: {count} pilot{'s' if count != 1 else ''} for "
                       f"{registry.class_name(design, view)}")

    decorators = [
        connection_options,
        click.option(*cls.count_flags, "count", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Number of pilots."),
        scheduler_options(cls),
        click_options([opt for opt in PILOT_OPTIONS if opt.name in _TARGET]),  # with their defaults
        click_options(PILOT_OPTIONS, pass_through=True, exclude=_TARGET),
        pilot_config_option(cls.name, hidden=cls.needs_credential),
        click.option("--dry-run", is_flag=True, help="Print what would be submitted; submit and record nothing."),
        click.option("--parsable", is_flag=True, help="Print only the job ids, one per line."),
    ]
    func = submit_pilots
    for decorator in reversed(decorators):
        func = decorator(func)
    help_text = cls.help or f"Submit pilots to {cls.title or cls.name}; each drains the pool until it is empty."
    return click.command(cls.name, help=help_text)(func)


class SubmitGroup(click.Group):
    """``picas submit``: one subcommand per known scheduler, built when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from picas.schedulers import names

        return names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from picas.schedulers import get

        try:
            return submit_command(get(cmd_name))
        except InvalidInput:
            return None


@click.group("submit", cls=SubmitGroup)
def submit() -> None:
    """Submit pilots to a batch system (see 'picas submit NAME --help')."""
