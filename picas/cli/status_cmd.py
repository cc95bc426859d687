"""``picas status``: counts per state, throughput, ETA, and why tokens fail or hang.

A thin layer over :mod:`picas.status`.  ``--watch`` refreshes until Ctrl-C
and measures the rate between its own refreshes, over a sliding window.
"""
from __future__ import annotations

import json
import time
from collections import deque

import click

from picas import status as st
from picas.cli.options import connection_options, make_client
from picas.config import Settings
from picas.views import DEFAULT_DESIGN


@click.command("status")
@click.option("--design-doc", "design", default=DEFAULT_DESIGN, show_default=True, metavar="NAME",
              help="Design document whose views to read.")
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
        _show(st.snapshot(client, design, sample=sample, window=window), as_json, clear=False)
        return
    history: deque[tuple[float, dict[str, int]]] = deque()
    count = 0
    try:
        while True:
            now = time.time()
            snap = st.snapshot(client, design, sample=sample, window=window, now=now, with_rate=not history)
            history.append((now, snap.counts))
            while len(history) > 2 and now - history[1][0] >= window:
                history.popleft()  # keep the oldest sample that still spans the window
            if len(history) > 1:
                then, counts = history[0]
                snap.estimate = st.estimate(counts, snap.counts, now - then)
            _show(snap, as_json, clear=not as_json)
            count += 1
            if iterations is not None and count >= iterations:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("", err=True)


def _show(snap: st.PoolStatus, as_json: bool, clear: bool) -> None:
    if as_json:
        click.echo(json.dumps(snap.to_dict()))
        return
    text = st.render(snap)
    if clear and click.get_text_stream("stdout").isatty():
        click.clear()
        text += f"\n\nUpdated {time.strftime('%H:%M:%S', time.localtime(snap.time))}; Ctrl-C to stop."
    elif clear:
        text += "\n"
    click.echo(text)
