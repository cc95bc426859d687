"""``picas autopilot``: keep just enough pilots queued for the work in the pool.

The command's options depend on the scheduler: ``--scheduler NAME`` (default
:data:`picas.defaults.SCHEDULER`) is read before the rest of the command
line, and that scheduler's own options are added then (see
:class:`AutopilotCommand`), so a new backend's options appear here without a
change to this module.  The rounds themselves are
:func:`picas.schedulers.autopilot.run_round`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from picas import defaults
from picas.cli.options import DURATION, connection_options, make_client
from picas.cli.submit_cmd import credential_of, pilot_config_option, scheduler_options, split_values
from picas.config import Settings
from picas.errors import InvalidInput, PicasError, SchedulerError


def _scheduler_name(args: list[str]) -> str:
    """The value of ``--scheduler`` on a command line not parsed yet (the last one wins, as click does)."""
    name = defaults.SCHEDULER
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--scheduler" and index + 1 < len(args):
            name = args[index + 1]
        elif arg.startswith("--scheduler="):
            name = arg.split("=", 1)[1]
    return name


class AutopilotCommand(click.Command):
    """A command whose options are its own plus those of the scheduler ``--scheduler`` names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from picas.schedulers import get

        if not hasattr(self, "_own_params"):
            self._own_params = list(self.params)
        name = _scheduler_name(args)
        try:
            cls = get(name)
        except InvalidInput as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param_hint="'--scheduler'") from None
        holder = scheduler_options(cls)(lambda: None)
        for param in self._own_params:
            if param.name == "pilot_config":  # its pilots get no private profile: the option means nothing
                param.hidden = cls.needs_credential
        self.params = [*self._own_params, *reversed(getattr(holder, "__click_params__", []))]
        return super().parse_args(ctx, args)


def _pilot_options(func: Any) -> Any:
    from picas.pilot.options import PILOT_OPTIONS, click_options

    return click_options(PILOT_OPTIONS, pass_through=True, exclude=("design_doc", "view"))(func)


@click.command("autopilot", cls=AutopilotCommand)
@connection_options
@click.option("--scheduler", default=defaults.SCHEDULER, show_default=True, metavar="NAME",
              help="The batch system to keep pilots queued on; its options follow "
                   "('picas autopilot --scheduler NAME --help').")
@click.option("--class", "class_specs", multiple=True, metavar="SPEC",
              help="Pilot class DESIGN[/VIEW][:key=value,...], e.g. MultiCore:cpus-per-task=4 "
                   f"(repeatable) [default: {defaults.DESIGN}].")
@click.option("--classes", "classes_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file listing the pilot classes (see 'picas autopilot --help').")
@click.option("--max-pilots", type=click.IntRange(min=0), default=defaults.MAX_PILOTS, show_default=True,
              help="Most pilots queued or running at once, all classes together.")
@click.option("--tokens-per-pilot", type=click.IntRange(min=1), default=defaults.TOKENS_PER_PILOT,
              show_default=True, help="A class gets at most one pilot per this many todo tokens.")
@_pilot_options
@pilot_config_option()
@click.option("--loop", is_flag=True, help="Run a round every --interval until SIGTERM/SIGINT.")
@click.option("--interval", type=DURATION, default=f"{defaults.AUTOPILOT_INTERVAL:g}", show_default=True,
              help="Time between rounds.")
@click.option("--dry-run", is_flag=True, help="Decide and print, but submit and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print each round's decision record as one JSON line.")
@click.option("--max-rounds", type=click.IntRange(min=1), hidden=True)
def autopilot(settings: Settings, scheduler: str, class_specs: tuple[str, ...], classes_file: Path | None,
              max_pilots: int, tokens_per_pilot: int, pilot_config: Path | None, loop: bool, interval: float,
              dry_run: bool, as_json: bool, max_rounds: int | None, **values: Any) -> None:
    """Submit just enough pilots for the work in the pool (for cron, or --loop).

    For every pilot class with todo tokens it submits pilots in proportion to
    the work, at most one per --tokens-per-pilot tokens, counting the pilots
    already queued or running, never more than --max-pilots in all.  Running
    it twice does not double-submit.  Each round prints one line: what it
    decided and why.  A class may set the scheduler's resources (those a
    class may set are named with dashes, as the options below: cpus-per-task,
    mem...).  Every option of 'picas run' is passed on to the pilots.

    \b
    Examples:
      picas autopilot --max-pilots 20 --time 4:00:00          # crontab: */10 * * * *
      picas autopilot --class Monitor --class MultiCore:cpus-per-task=4,mem=8G
      picas autopilot --classes classes.yml --loop --interval 5m --grace 30

    \b
    classes.yml:
      - design: Monitor
      - design: MultiCore
        cpus-per-task: 4
        mem: 8G
        setup: ["module load GROMACS"]
    """
    from picas.pilot.credentials import pilot_environment, pilots_config_name
    from picas.pilot.options import pilot_args
    from picas.schedulers import autopilot as ap
    from picas.schedulers import get
    from picas.schedulers.classes import PilotClass, load_classes, parse_class

    cls = get(scheduler)
    own = split_values(cls.options, values)
    cls.check_options(own)  # a refusal comes before any password is written for the pilots
    if class_specs and classes_file:
        raise click.UsageError("give --class options or --classes FILE, not both")
    classes = (load_classes(classes_file, cls.options) if classes_file
               else [parse_class(spec, cls.options) for spec in class_specs]) or [PilotClass()]
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise click.UsageError(f"a pilot class is given twice: {', '.join(sorted(names))}")
    access = pilot_environment(settings, pilot_config, write=not dry_run, config_name=pilots_config_name(cls.name),
                               credential=credential_of(own))
    if access.note:
        click.echo(access.note, err=True)
    client = make_client(settings)
    backend = cls()
    args = pilot_args(values)

    def one_round() -> ap.Round:
        result = ap.run_round(client, classes, backend, own, max_pilots=max_pilots, tokens_per_pilot=tokens_per_pilot,
                              pilot_args=args, env=access.env, config_file=access.config_file, dry_run=dry_run)
        if as_json:
            click.echo(json.dumps(result.to_dict()))
        else:
            click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S')} picas autopilot: {result.line}")
        return result

    if not loop:
        result = one_round()
        if result.errors:
            raise SchedulerError("; ".join(result.errors))
        return

    def report(exc: PicasError) -> None:
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S')} picas autopilot: round failed: {exc}", err=True)

    ap.run_loop(one_round, interval or 0.0, on_error=report, max_rounds=max_rounds)
