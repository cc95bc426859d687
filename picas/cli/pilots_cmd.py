"""``picas pilots``: list, cancel and prune the recorded pilot jobs."""
from __future__ import annotations

import json
import time
from typing import Any

import click

from picas.cli.options import connection_options, make_client
from picas.cli.submit_cmd import DURATION_TEXT
from picas.config import Settings
from picas.errors import SchedulerError
from picas.pool import registry as pilot_jobs
from picas.pool.tokens import parse_duration
from picas.schedulers import slurm


# --- picas pilots -------------------------------------------------------------------------


@click.group("pilots")
def pilots() -> None:
    """The pilot jobs submitted for this database: list, cancel, prune."""


def _when(stamp: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(stamp)))
    except (TypeError, ValueError):
        return "?"


def _resources(row: dict) -> str:
    names = (("cpus_per_task", "cpus"), ("mem", "mem"), ("time", "time"), ("partition", "partition"))
    return " ".join(f"{label}={row[key]}" for key, label in names if row.get(key) is not None) or "-"


@pilots.command("list")
@connection_options
@click.option("--all", "show_all", is_flag=True, help="Also show finished jobs still in the registry.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
def pilots_list(settings: Settings, show_all: bool, as_json: bool) -> None:
    """List recorded pilot jobs with their squeue state (queued, running, finished).

    \b
    Examples:
      picas pilots list
      picas pilots list --all --json | jq .job_id
    """
    rows = pilot_jobs.pilot_summary(make_client(settings), include_finished=show_all)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("No queued or running pilot jobs." if not show_all else "No pilot jobs recorded.")
        return
    click.echo(f"{'JOB':<12} {'CLASS':<20} {'TASKS':>5} {'PENDING':>7} {'RUNNING':>7}  {'STATE':<9} "
               f"{'SUBMITTED':<16}  RESOURCES")
    for row in rows:
        pending = "?" if row["pending"] is None else row["pending"]
        running = "?" if row["running"] is None else row["running"]
        click.echo(f"{row['job_id']:<12} {row.get('class', '?'):<20} {row.get('array', '?'):>5} {pending:>7} "
                   f"{running:>7}  {row['state']:<9} {_when(row.get('submitted')):<16}  {_resources(row)}")
    errors = {row["error"] for row in rows if row.get("error")}
    for error in errors:
        click.echo(f"picas: warning: squeue failed, states unknown: {error}", err=True)


@pilots.command("cancel")
@connection_options
@click.argument("job_ids", nargs=-1)
@click.option("--all", "cancel_all", is_flag=True, help="Every recorded pilot job still queued or running.")
@click.option("--signal", "signal_name", metavar="NAME",
              help="Drain instead: send this signal (e.g. USR1) to the running pilots, which give their token "
                   "back and exit; pending ones are cancelled.")
def pilots_cancel(settings: Settings, job_ids: tuple[str, ...], cancel_all: bool, signal_name: str | None) -> None:
    """Cancel pilot jobs (scancel); each running pilot gives its token back to todo first.

    \b
    Examples:
      picas pilots cancel 1234            # a whole array
      picas pilots cancel 1234_3          # one task of it
      picas pilots cancel --all
      picas pilots cancel --all --signal USR1   # running pilots hand their token back and exit
    """
    if bool(job_ids) == cancel_all:
        raise click.UsageError("give job ids or --all (not both)")
    ids = list(job_ids)
    if cancel_all:
        rows = pilot_jobs.pilot_summary(make_client(settings))
        failed = [row["error"] for row in rows if row.get("error")]
        if failed:
            raise SchedulerError(failed[0])
        ids = [str(row["job_id"]) for row in rows]
        if not ids:
            click.echo("No queued or running pilot jobs.")
            return
    if not signal_name:
        slurm.cancel(ids)
        click.echo(f"Cancelled {len(ids)} pilot job{'s' if len(ids) != 1 else ''}: {', '.join(ids)}")
        return
    name = signal_name.upper()
    running, waiting = pilot_jobs.split_running(slurm.queued_jobs(ids))
    if running:
        slurm.cancel(running, signal=name)
    if waiting:
        slurm.cancel(waiting)  # a pending pilot holds no token; left alone it would start and take one
    click.echo(f"Sent {name} to {len(running)} running pilot{'s' if len(running) != 1 else ''}"
               f"{': ' + ', '.join(running) if running else ''}; cancelled {len(waiting)} pending"
               f"{': ' + ', '.join(waiting) if waiting else ''}")


@pilots.command("prune")
@connection_options
@click.option("--older-than", type=DURATION_TEXT, default="1d", show_default=True,
              help="Forget finished jobs submitted longer ago than this.")
def pilots_prune(settings: Settings, older_than: str) -> None:
    """Forget finished pilot jobs (squeue no longer lists them) from the registry.

    The autopilot does this every round; jobs of another cluster sharing the
    database are kept until they are older than --older-than.

    \b
    Example:
      picas pilots prune --older-than 2h
    """
    dropped = pilot_jobs.prune(make_client(settings), parse_duration(older_than) or 0.0)
    click.echo(f"Forgot {len(dropped)} finished pilot job{'s' if len(dropped) != 1 else ''}"
               + (f": {', '.join(dropped)}" if dropped else "."))
