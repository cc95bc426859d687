"""``picas status``: counts per state, throughput, ETA, and why tokens fail or hang.

A thin layer over :mod:`picas.pool.status`.  ``--watch`` refreshes until Ctrl-C
and measures the rate between its own refreshes, over a sliding window.
"""
from __future__ import annotations

import json
import time
from collections import deque

import click

from picas.pool import status as st
from picas.cli.options import connection_options, design_option, make_client
from picas.pool.registry import pilot_summary
from picas.config import Settings

#: Seconds a watch must span before its own two-count rate replaces the first estimate.
_SETTLE = 30.0


@click.command("status")
@design_option()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one JSON line per refresh).")
@click.option("--watch", "-w", is_flag=True, help="Refresh every --interval seconds until Ctrl-C.")
@click.option("--interval", "-n", default=5.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between refreshes with --watch.")
@click.option("--iterations", type=click.IntRange(1), metavar="N", help="With --watch: stop after N refreshes.")
@click.option("--sample", default=st.DEFAULT_SAMPLE, show_default=True, type=click.IntRange(0),
              help="How many error/locked/done tokens to read for the breakdowns and the rate.")
@click.option("--window", default=st.DEFAULT_WINDOW, show_default=True, type=click.FloatRange(1),
              help="Seconds over which the rate is measured.")
@connection_options
def status_cmd(settings: Settings, design: str, as_json: bool, watch: bool, interval: float,
               iterations: int | None, sample: int, window: float) -> None:
    """Show how the pool is doing: tokens per state, tokens/s, ETA, errors and locks.

    The counts come from the overview_total reduce view, so this is fast on
    millions of tokens; the error and locked breakdowns read a sample of
    --sample tokens (a uniform one, as generated ids are random).

    \b
    Examples:
      picas status
      picas status --json | jq .counts.todo
      picas status --watch --interval 10
    """
    client = make_client(settings)
    if not watch:
        _show(st.snapshot(client, design, sample=sample, window=window), as_json, clear=False,
              pilots=pilot_summary(client))
        return
    history: deque[tuple[float, dict[str, int]]] = deque()
    first: st.Estimate | None = None
    count = 0
    try:
        while True:
            now = time.time()
            snap = st.snapshot(client, design, sample=sample, window=window, now=now, with_rate=first is None)
            first = first or snap.estimate
            history.append((now, snap.counts))
            while len(history) > 2 and now - history[1][0] >= window:
                history.popleft()  # keep the oldest sample that still spans the window
            then, counts = history[0]
            # Counts a few seconds apart are too coarse; until the watch spans enough time,
            # the estimate from finish times (taken at the start) is the better one.
            if len(history) > 1 and (first.rate is None or now - then >= min(window, _SETTLE)):
                snap.estimate = st.estimate(counts, snap.counts, now - then)
            elif len(history) > 1:
                snap.estimate = st.Estimate(first.rate, st.time_left(first.rate, snap.counts), first.basis)
            _show(snap, as_json, clear=not as_json, pilots=pilot_summary(client))
            count += 1
            if iterations is not None and count >= iterations:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("", err=True)


def _pilot_lines(pilots: list[dict]) -> str:
    """The batch pilots recorded for this database, as their schedulers see them now."""
    if not pilots:
        return ""
    lines = ["", "Pilot jobs:"]
    for row in pilots:
        state = row.get("state", "unknown")
        detail = f"{row.get('running', 0)} running, {row.get('pending', 0)} queued"
        lines.append(f"  {row.get('job_id')}  {row.get('class', ''):<14} {state:<9} {detail}")
    errors = {(row.get("scheduler", "?"), row["error"]) for row in pilots if row.get("error")}
    lines.extend(f"  ({name}: {error})" for name, error in sorted(errors))
    return "\n".join(lines)


def _show(snap: st.PoolStatus, as_json: bool, clear: bool, pilots: list[dict] | None = None) -> None:
    if as_json:
        click.echo(json.dumps({**snap.to_dict(), "pilots": pilots or []}))
        return
    text = st.render(snap) + _pilot_lines(pilots or [])
    if clear and click.get_text_stream("stdout").isatty():
        click.clear()
        text += f"\n\nUpdated {time.strftime('%H:%M:%S', time.localtime(snap.time))}; Ctrl-C to stop."
    elif clear:
        text += "\n"
    click.echo(text)
