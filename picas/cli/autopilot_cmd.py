"""``picas autopilot``: keep just enough pilots queued for the work in the pool."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from picas.cli.options import connection_options, make_client
from picas.cli.submit_cmd import (DURATION_TEXT, _template, base_options, pilot_args, pilot_environment,
                                  pilot_options, sbatch_options)
from picas.config import Settings
from picas.errors import PicasError, SchedulerError
from picas.pool.tokens import parse_duration
from picas.schedulers import autopilot as ap


# --- picas autopilot -----------------------------------------------------------------------


@click.command("autopilot")
@connection_options
@click.option("--class", "class_specs", multiple=True, metavar="SPEC",
              help="Pilot class DESIGN[/VIEW][:key=value,...], e.g. MultiCore:cpus-per-task=4 "
                   "(repeatable) [default: Monitor].")
@click.option("--classes", "classes_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file listing the pilot classes (see 'picas autopilot --help').")
@click.option("--max-pilots", type=click.IntRange(min=0), default=10, show_default=True,
              help="Most pilots queued or running at once, all classes together.")
@click.option("--tokens-per-pilot", type=click.IntRange(min=1), default=10, show_default=True,
              help="A class gets at most one pilot per this many todo tokens.")
@sbatch_options
@pilot_options
@click.option("--loop", is_flag=True, help="Run a round every --interval until SIGTERM/SIGINT.")
@click.option("--interval", type=DURATION_TEXT, default="300", show_default=True, help="Seconds between rounds.")
@click.option("--dry-run", is_flag=True, help="Decide and print, but submit and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print each round's decision record as one JSON line.")
@click.option("--max-rounds", type=click.IntRange(min=1), hidden=True)
def autopilot(settings: Settings, class_specs: tuple[str, ...], classes_file: Path | None, max_pilots: int,
              tokens_per_pilot: int, loop: bool, interval: str, dry_run: bool, as_json: bool,
              max_rounds: int | None, **values: Any) -> None:
    """Submit just enough pilots for the work in the pool (for cron, or --loop).

    For every pilot class with todo tokens it submits pilots in proportion to
    the work, at most one per --tokens-per-pilot tokens, counting the pilots
    already queued or running, never more than --max-pilots in all.  Running
    it twice does not double-submit.  Each round prints one line: what it
    decided and why.  A class may set its own resources.

    \b
    Examples:
      picas autopilot --max-pilots 20 --time 4:00:00          # crontab: */10 * * * *
      picas autopilot --class Monitor --class MultiCore:cpus-per-task=4,mem=8G
      picas autopilot --classes classes.yml --loop --interval 5m

    \b
    classes.yml:
      - design: Monitor
      - design: MultiCore
        cpus-per-task: 4
        mem: 8G
        setup: ["module load GROMACS"]
    """
    if class_specs and classes_file:
        raise click.UsageError("give --class options or --classes FILE, not both")
    classes = ap.load_classes(classes_file) if classes_file else [ap.parse_class(s) for s in class_specs]
    classes = classes or [ap.PilotClass()]
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise click.UsageError(f"a pilot class is given twice: {', '.join(sorted(names))}")
    env, note = pilot_environment(settings, values.pop("pilot_config"), write=not dry_run)
    if note:
        click.echo(note, err=True)
    base = base_options(values, env)
    template = _template(values["template"])
    client = make_client(settings)

    def one_round() -> ap.Round:
        result = ap.run_round(client, classes, base, max_pilots=max_pilots, tokens_per_pilot=tokens_per_pilot,
                              pilot_args=pilot_args(values), template=template, dry_run=dry_run)
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

    ap.run_loop(one_round, parse_duration(interval) or 0.0, on_error=report, max_rounds=max_rounds)
