"""``picas pilots``: list, cancel and prune the recorded pilot jobs.

Every registry entry names the scheduler that runs it; each job is asked
about, cancelled or signalled through that scheduler, found by name in
:mod:`picas.schedulers`.  Nothing here knows a batch system.
"""
from __future__ import annotations

import json
import time
from typing import Any

import click

from picas import defaults
from picas.cli.options import DURATION, connection_options, make_client
from picas.config import Settings
from picas.errors import SchedulerError


@click.group("pilots")
def pilots() -> None:
    """The pilot jobs submitted for this database: list, cancel, prune."""


def _when(stamp: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(stamp)))
    except (TypeError, ValueError):
        return "?"


def _resources(row: dict) -> str:
    resources = row.get("resources") or {}
    return " ".join(f"{key.replace('_', '-')}={value}" for key, value in resources.items()) or "-"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@pilots.command("list")
@connection_options
@click.option("--all", "show_all", is_flag=True, help="Also show finished jobs still in the registry.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
def pilots_list(settings: Settings, show_all: bool, as_json: bool) -> None:
    """List recorded pilot jobs with their state as their scheduler sees it (queued, running, finished).

    \b
    Examples:
      picas pilots list
      picas pilots list --all --json | jq .job_id
    """
    from picas.pool import registry

    rows = registry.pilot_summary(make_client(settings), include_finished=show_all)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("No queued or running pilot jobs." if not show_all else "No pilot jobs recorded.")
        return
    click.echo(f"{'JOB':<12} {'SCHEDULER':<9} {'CLASS':<20} {'TASKS':>5} {'PENDING':>7} {'RUNNING':>7}  "
               f"{'STATE':<9} {'SUBMITTED':<16}  RESOURCES")
    for row in rows:
        pending = "?" if row["pending"] is None else row["pending"]
        running = "?" if row["running"] is None else row["running"]
        click.echo(f"{row['job_id']:<12} {row.get('scheduler', '?'):<9} {row.get('class', '?'):<20} "
                   f"{row.get('array', '?'):>5} {pending:>7} {running:>7}  {row['state']:<9} "
                   f"{_when(row.get('submitted')):<16}  {_resources(row)}")
    errors = {(row.get("scheduler"), row["error"]) for row in rows if row.get("error")}
    for name, error in sorted(errors):
        click.echo(f"picas: warning: could not ask {name}, states unknown: {error}", err=True)


def _by_scheduler(settings: Settings, job_ids: list[str], scheduler: str | None) -> dict[str, list[str]]:
    """Which scheduler each job id belongs to: the one given, or the one the registry recorded it with.

    Ids the registry does not know (a task of a recorded job is known by its
    job) go to the default scheduler.
    """
    if scheduler is not None:
        return {scheduler: list(job_ids)}
    from picas.pool import registry
    from picas.schedulers import create

    groups: dict[str, list[str]] = {}
    recorded = registry.by_scheduler(registry.jobs(make_client(settings)))
    backends = {name: create(name) for name in recorded}
    for job_id in job_ids:
        owner = next((name for name, entries in recorded.items()
                      if any(str(e["job_id"]) == backends[name].job_id_of(job_id) for e in entries)),
                     defaults.SCHEDULER)
        groups.setdefault(owner, []).append(job_id)
    return groups


@pilots.command("cancel")
@connection_options
@click.argument("job_ids", nargs=-1)
@click.option("--all", "cancel_all", is_flag=True, help="Every recorded pilot job still queued or running.")
@click.option("--signal", "signal_name", metavar="NAME",
              help="Drain instead: send this signal (e.g. USR1) to the running pilots, which give their token "
                   "back and exit; pending ones are cancelled.")
@click.option("--scheduler", metavar="NAME",
              help="The scheduler of the JOB_IDS [default: the one each was recorded with, else "
                   f"{defaults.SCHEDULER}].")
def pilots_cancel(settings: Settings, job_ids: tuple[str, ...], cancel_all: bool, signal_name: str | None,
                  scheduler: str | None) -> None:
    """Cancel pilot jobs; each running pilot gives its token back to todo first.

    \b
    Examples:
      picas pilots cancel 1234            # a whole job (all tasks of an array)
      picas pilots cancel 1234_3          # one task of an array
      picas pilots cancel --all
      picas pilots cancel --all --signal USR1   # running pilots hand their token back and exit
    """
    from picas.pool import registry
    from picas.schedulers import create

    if bool(job_ids) == cancel_all:
        raise click.UsageError("give job ids or --all (not both)")
    if cancel_all:
        rows = registry.pilot_summary(make_client(settings))
        failed = [row["error"] for row in rows if row.get("error")]
        if failed:
            raise SchedulerError(failed[0])
        groups: dict[str, list[str]] = {}
        for row in rows:
            if scheduler is None or row["scheduler"] == scheduler:
                groups.setdefault(row["scheduler"], []).append(str(row["job_id"]))
        if not groups:
            click.echo("No queued or running pilot jobs.")
            return
    else:
        groups = _by_scheduler(settings, list(job_ids), scheduler)
    if not signal_name:
        ids = []
        for name, group in groups.items():
            create(name).cancel(group)
            ids.extend(group)
        click.echo(f"Cancelled {_plural(len(ids), 'pilot job')}: {', '.join(ids)}")
        return
    name_of_signal = signal_name.upper()
    running: list[str] = []
    waiting: list[str] = []
    for name, group in groups.items():
        backend = create(name)
        signalled, pending = registry.split_running(backend.query(group))
        if signalled:
            backend.signal(signalled, name_of_signal)
        if pending:
            backend.cancel(pending)  # a pending pilot holds no token; left alone it would start and take one
        running.extend(signalled)
        waiting.extend(pending)
    click.echo(f"Sent {name_of_signal} to {_plural(len(running), 'running pilot')}"
               f"{': ' + ', '.join(running) if running else ''}; cancelled {len(waiting)} pending"
               f"{': ' + ', '.join(waiting) if waiting else ''}")


@pilots.command("prune")
@connection_options
@click.option("--older-than", type=DURATION, default="1d", show_default=True,
              help="Forget finished jobs submitted longer ago than this.")
def pilots_prune(settings: Settings, older_than: float) -> None:
    """Forget finished pilot jobs (their scheduler lists them as active no more) from the registry.

    The autopilot does this every round; jobs of another cluster sharing the
    database are kept until they are older than --older-than.

    \b
    Example:
      picas pilots prune --older-than 2h
    """
    from picas.pool import registry

    dropped = registry.prune(make_client(settings), older_than or 0.0)
    click.echo(f"Forgot {_plural(len(dropped), 'finished pilot job')}"
               + (f": {', '.join(dropped)}" if dropped else "."))
