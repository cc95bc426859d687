#!/usr/bin/env python3
"""Benchmark: how long ``picas report`` takes, and how large the page gets, for 10^4 and 10^5 tokens.

Target (issue 16): under 30 s and under 10 MB at 10^5 tokens.

Each size gets a fresh pouchdb-server (in memory) and a pool shaped like one
that ran: tokens pushed over an hour, claimed by 200 pilots (Slurm array
tasks on 25 hosts, each with a pilot record), with 5 % failing for good
(with a stderr log attached), 3 % failing once and retried, 1 % scrubbed
after a lost pilot, 2 % still running and 4 % still todo.  The pool is
written with ``_bulk_docs`` (the pure token functions make each state, as the
pilots would), then the real command runs in a subprocess::

    picas report -o report.html -q

and its wall time, the CPU seconds it and the server used (the wall time on
a busy machine says more about the other processes than about the report:
the CPU figures do not), its peak memory and the page's size are printed,
followed by an in-process breakdown (read, log tails, build, render) from a
second run.

Usage::

    python3 benchmarks/report_scale.py [--tokens 10000 100000]

Prints one JSON line per size on stdout (progress on stderr).  Not a test.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import resource
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ServerURL, emit, fresh_server, log, make_pool, scratch  # noqa: E402
from picas.core import token as tok  # noqa: E402
from picas.pilot import record  # noqa: E402
from picas.report.build import build  # noqa: E402
from picas.report.collect import fetch_log_tails, read_pool  # noqa: E402
from picas.report.failures import failed_ids  # noqa: E402
from picas.report.page import data_json, plotly_js, render  # noqa: E402

PILOTS = 200
#: With --url: the server's process id (e.g. CouchDB's beam.smp), to read the CPU time it spends on the report.
SERVER_PID: int | None = None
HOSTS = 25
SPAN = 3600.0


def pilots(now: float) -> list[tok.PilotIdentity]:
    return [tok.PilotIdentity(f"wn{p % HOSTS:02d}-{4000 + p}-{p:08x}", hostname=f"wn{p % HOSTS:02d}",
                              job_ids=(("slurm_job_id", f"9100_{p}"),)) for p in range(PILOTS)]


def shaper(count: int, now: float, who: list[tok.PilotIdentity]):
    """Turn the i-th fresh token into the state a real run would have left it in (see the module docstring)."""
    rnd = random.Random(16)
    start = now - SPAN
    log_data = base64.b64encode(b"".join(b"step %d\n" % i for i in range(40)) + b"error: input.dat missing\n")

    def shape(doc: dict, i: int) -> dict:
        doc["created_at"] = int(start + SPAN * 0.2 * i / count)
        roll = rnd.random()
        if roll < 0.04:
            return doc  # still todo
        pilot = who[i % PILOTS]
        claimed = doc["created_at"] + rnd.uniform(1, SPAN * 0.7)
        run = rnd.uniform(5, 60)
        if roll < 0.06:
            return tok.claim(doc, pilot, min(claimed, now - 30), 600)
        body = tok.claim(doc, pilot, claimed, 600)
        if roll < 0.07:  # the pilot was lost; a scrub gave the token back, another pilot ran it
            body = tok.reset(body, None, claimed + 700, f"lease of pilot {pilot.pilot_id} expired")
            pilot = who[(i + 7) % PILOTS]
            claimed += 720
            body = tok.claim(body, pilot, claimed, 600)
        elif roll < 0.10:  # failed once, retried
            body = tok.finish(body, pilot, claimed + run, 1)
            body = tok.reset(body, pilot, claimed + run, "retry after exit code 1")
            pilot = who[(i + 3) % PILOTS]
            claimed += run + rnd.uniform(1, 30)
            body = tok.claim(body, pilot, claimed, 600)
        fields = {"started": int(claimed + 0.5), "finished": int(claimed + run), "duration": round(run, 3),
                  "hostname": pilot.hostname}
        if roll > 0.95:
            body = tok.finish(body, pilot, claimed + run, rnd.choice((1, 2, 137)), **fields)
            body["_attachments"] = {f"logs_{doc['_id']}.err": {"content_type": "text/plain", "data": log_data.decode()}}
            return body
        return tok.finish(body, pilot, claimed + run, 0, **fields)

    return shape


def pilot_records(client, who: list[tok.PilotIdentity], now: float) -> None:
    docs = []
    for index, pilot in enumerate(who):
        start = record.start_record(pilot, now - SPAN + index, design="Monitor", view="todo", lease_seconds=600)
        ends = ("no more work", "reached --max-time 3000 s", "stopped by SIGTERM")
        docs.append(record.end_record(start, now - 120 - index, ends[index % 3]) if index % 10 else start)
    assert all(r.ok for r in client.bulk_save(docs))


@contextlib.contextmanager
def server(url: str | None) -> Iterator[ServerURL]:
    """A fresh pouchdb-server, or the server at ``url`` (e.g. Apache CouchDB; a database is made and dropped)."""
    if url is None:
        with fresh_server() as fresh:
            yield fresh
        return
    given = ServerURL(url)
    given.pid = SERVER_PID
    yield given


def measure(count: int, url: str | None) -> dict:
    now = time.time()
    who = pilots(now)
    db = f"bench_report_{uuid.uuid4().hex[:8]}"
    with server(url) as url, scratch("picas-report-bench-") as tmp:
        log(f"{count:,} tokens: building the pool")
        client, push_seconds = make_pool(url, db, count, shape=shaper(count, now, who))
        try:
            return _measure(client, url, db, count, now, who, push_seconds, tmp)
        finally:
            client.delete_db()


def report_env(url: str, db: str) -> dict:
    """The environment of the ``picas report`` subprocess: the server without credentials in the URL."""
    parts = urllib.parse.urlsplit(url)
    env = {**os.environ, "PICAS_HOST_URL": parts._replace(netloc=f"{parts.hostname}:{parts.port}").geturl(),
           "PICAS_DATABASE": db, "PICAS_CONFIG": "/nonexistent/picas-bench.yml"}
    env.pop("PICAS_USERNAME", None)
    env.pop("PICAS_PASSWORD", None)
    if parts.username:
        env["PICAS_USERNAME"] = urllib.parse.unquote(parts.username)
        env["PICAS_PASSWORD"] = urllib.parse.unquote(parts.password or "")
    return env


def breakdown(client) -> tuple[dict, dict, str]:
    """The same work in this process, phase by phase: read, log tails, build, render."""
    phases = {}
    t = time.perf_counter()
    pool = read_pool(client)
    phases["read"] = time.perf_counter() - t
    t = time.perf_counter()
    tails = fetch_log_tails(client, pool.tokens, failed_ids(pool.tokens, 50))
    phases["log_tails"] = time.perf_counter() - t
    t = time.perf_counter()
    data = build(pool.tokens, pool.pilots, now=time.time(), log_tails=tails, tries_of=pool.tries_of)
    phases["build"] = time.perf_counter() - t
    t = time.perf_counter()
    page = render(data)
    phases["render"] = time.perf_counter() - t
    return {k: round(v, 2) for k, v in phases.items()}, data, page


def _measure(client, url: ServerURL, db: str, count: int, now: float, who, push_seconds: float, tmp: Path) -> dict:
    pilot_records(client, who, now)
    out = tmp / "report.html"
    log(f"{count:,} tokens: picas report")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = url.cpu_seconds() if url.pid else None
    load = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "picas", "report", "-o", str(out), "-q"], env=report_env(url, db),
                   check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = url.cpu_seconds() - server_before if server_before is not None else None
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    size = out.stat().st_size
    log(f"{count:,} tokens: in-process breakdown")
    phases, data, page = breakdown(client)
    parts = urllib.parse.urlsplit(url)
    return {"figure": "report_scale", "tokens": count, "pilots": PILOTS, "report_seconds": round(wall, 2),
            "page_mb": round(size / 1e6, 2), "data_kb": round(len(data_json(data).encode()) / 1e3, 1),
            "plotly_js_mb": round(len(plotly_js().encode()) / 1e6, 2),
            "page_in_process_mb": round(len(page.encode()) / 1e6, 2),
            "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "client_cpu_seconds": round(client_cpu, 2),
            "server_cpu_seconds": None if server_cpu is None else round(server_cpu, 2),
            "server": f"{parts.hostname}:{parts.port}" if parts.username else "pouchdb-server (fresh, in memory)",
            "load_average_before": round(load, 2), "phases_seconds": phases,
            "timeline_attempts_shown": data["timeline"]["shown_attempts"],
            "attempts": data["meta"]["attempts"], "push_seconds": round(push_seconds, 1),
            "command": "picas report -o report.html -q"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--url", help="measure on this server (http://admin:pass@host:port, e.g. Apache CouchDB) "
                                      "instead of a fresh pouchdb-server")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for its CPU seconds")
    args = parser.parse_args()
    global SERVER_PID
    SERVER_PID = args.server_pid
    for count in args.tokens:
        emit(measure(count, args.url))


if __name__ == "__main__":
    main()
