"""``picas report`` and ``picas dashboard``: see what happened in a pool, and what is happening.

Thin click layers over :mod:`picas.report`: read the pool (with a progress
bar on stderr), build the data, render the page; or serve it live.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from picas import defaults
from picas.cli.options import DURATION, connection_options, make_client
from picas.config import Settings

_since_option = click.option(
    "--since", metavar="WHEN",
    help="Only attempts that ended after this: a duration back from now (30m, 2h, 1d) or a date and time "
         "(2024-05-01 12:00, local time). The current counts always cover every token.")
_design_option = click.option(
    "--design-doc", "design", metavar="NAME",
    help="Only the tokens of this design document (pilot class): those its state views list. "
         "[default: every token in the database]")
_view_option = click.option("--view", metavar="VIEW", help="Only the tokens this view lists (with --design-doc, "
                                                           f"default {defaults.DESIGN}).")
_title_option = click.option("--title", default="", metavar="TEXT", help="Page title [default: picas report].")
_tails_option = click.option("--log-tails", "log_tails", type=click.IntRange(min=0), default=50, show_default=True,
                             metavar="N", help="Fetch the log tail of this many of the latest failed tokens.")


def _scope(design: str | None, view: str | None) -> str:
    if design is None and view is None:
        return "all tokens"
    return f"design document {design or defaults.DESIGN}" + (f", view {view}" if view else "")


class _Bar:
    """A progress bar on stderr for a read whose total is known only roughly (pilots add documents meanwhile)."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet = label, quiet
        self.bar = None
        self.shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=max(total or done, done, 1), label=self.label, file=sys.stderr,
                                         show_pos=True)
            self.bar.__enter__()
        if done > self.bar.length:
            self.bar.length = done
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command("report")
@connection_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default="report.html",
              show_default=True, help="The HTML file to write ('-' for stdout).")
@_since_option
@_design_option
@_view_option
@_title_option
@_tails_option
@click.option("--page-size", type=click.IntRange(min=10), default=5000, show_default=True,
              help="Documents per request while reading the pool.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def report(settings: Settings, output: Path, since: str | None, design: str | None, view: str | None, title: str,
           log_tails: int, page_size: int, quiet: bool) -> None:
    """Write a self-contained HTML report of the pool: one file, no network needed to open it.

    It shows progress, throughput, concurrency, a per-pilot timeline of every
    attempt, run and wait time distributions per pilot class, failures (by
    exit code, host and message, with log tails) and what each pilot did.
    Large pools are binned and the timeline sampled; the page says so.
    Needs plotly (pip install 'picas[report]'), whose plotly.js is inlined.

    \b
    Examples:
      picas report                                  # report.html for the whole pool
      picas report -o today.html --since 1d --title "Run 42"
      picas report --design-doc MultiCore           # one pilot class only
    """
    from picas.report.build import build, since_time
    from picas.report.collect import fetch_log_tails, read_pool
    from picas.report.failures import failed_ids
    from picas.report.page import plotly_path, render

    plotly_path()  # fail before reading a large pool, not after
    client = make_client(settings)
    started = time.time()
    bar = _Bar("reading the pool", quiet)
    try:
        pool = read_pool(client, design=design, view=view, page_size=page_size, progress=bar)
    finally:
        bar.close()
    tails = fetch_log_tails(client, pool.tokens, failed_ids(pool.tokens, log_tails)) if log_tails else {}
    now = time.time()
    data = build(pool.tokens, pool.pilots, now=now, since=since_time(since, now) if since else None, title=title,
                 source=f"{client.url}/{client.database}", scope=_scope(design, view), log_tails=tails,
                 tries_of=pool.tries_of)
    page = render(data)
    if str(output) == "-":
        click.echo(page, nl=False)
        return
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(output)  # a reader never sees half a page
    if not quiet:
        click.echo(f"wrote {output} ({len(page.encode()) / 1e6:.1f} MB: {len(pool.tokens):,} tokens, "
                   f"{len(pool.pilots):,} pilot records) in {time.time() - started:.1f} s", err=True)


@click.command("dashboard")
@connection_options
@click.option("--port", type=click.IntRange(0, 65535), default=8050, show_default=True,
              help="Port on 127.0.0.1 to serve on (0: any free port).")
@click.option("--refresh", type=DURATION, default="5", show_default=True,
              help="How often the page asks for fresh data, and the pool is checked for changes.")
@_since_option
@_design_option
@_view_option
@_title_option
@_tails_option
def dashboard(settings: Settings, port: int, refresh: float, since: str | None, design: str | None,
              view: str | None, title: str, log_tails: int) -> None:
    """Serve the report live on http://127.0.0.1:PORT/, redrawn as the pool changes; Ctrl-C stops it.

    Read-only: it answers GET only, listens on 127.0.0.1 only, and reads the
    pool with your credentials. A relative --since (e.g. 1h) slides with time.
    To watch a pool on a remote login node: ssh -L 8050:127.0.0.1:8050 HOST.

    \b
    Examples:
      picas dashboard
      picas dashboard --port 9000 --since 2h --refresh 10
    """
    from picas.report.build import since_time
    from picas.report.dashboard import Dashboard, serve
    from picas.report.page import plotly_path

    plotly_path()
    client = make_client(settings)
    if since:
        since_time(since, time.time())  # a bad value fails now, not on the first page load
    bar = _Bar("reading the pool", quiet=False)
    board = Dashboard(client, design=design, view=view, title=title, interval=max(refresh, 0.5),
                      since=(lambda now: since_time(since, now)) if since else (lambda now: None),
                      log_tails=log_tails, source=f"{client.url}/{client.database}", scope=_scope(design, view),
                      progress=bar)
    try:
        board.data()
    finally:
        bar.close()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve(board, port, stop=stop, ready=lambda url: click.echo(f"serving {url}  (Ctrl-C stops)", err=True),
              log=lambda line: click.echo(line, err=True))
    except OSError as exc:
        from picas.errors import PicasError
        raise PicasError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
                         hint="choose another --port, or --port 0 for any free one") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("dashboard stopped", err=True)
