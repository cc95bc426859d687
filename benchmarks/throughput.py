#!/usr/bin/env python3
"""Claim-and-complete throughput of no-op tokens, side by side with the server's ceiling and picas 1.1.2.

usage: throughput.py [--tokens N] [--pilots 1,4,16] [--prefetch 1,10] [--upstream-python PY]

Each measurement gets a fresh in-memory pouchdb-server and a fresh pool, so
no measurement pays for another's leftovers.  Our side: a pool made the way
``picas push`` makes one (views deployed, ``token_<hex>`` ids), its ``todo``
index built *before* the clock starts, then P ``noop_pilot.py`` processes.
The clock runs from the first process start to the last exit: the method of
the reference ``run_upstream.py``, so that Python start-up is paid the same
way on both sides and tokens/s can be divided one by the other.

Duplicates are counted from the pilots' execution logs (side effects), not
from their reports; 0 is the only acceptable number.  Requests per token add
up every HTTP request the pilots' clients sent (claims, view queries, saves,
heartbeats, conflicts) and divide by the tokens done.
"""
from __future__ import annotations

import argparse
import collections
import json
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (BENCH_DIR, SHARED_BENCH, ServerURL, child_env, counts, emit, fresh_server, log,  # noqa: E402
                    make_pool, run_json, scratch, warm_views)

NOOP_PILOT = BENCH_DIR / "noop_pilot.py"
#: Far above any run seen here (1,000 tokens drain in well under a minute); a hung run must not hang the suite.
RUN_TIMEOUT = 1800.0


def run_ours(url: str, tokens: int, pilots: int, prefetch: int = 1, python: str = sys.executable) -> dict:
    """P no-op pilots of this project over a fresh pool of ``tokens``; tokens/s, duplicates, requests."""
    with scratch("picas-bench-tp-") as tmp:
        return _drain(url, tmp, tokens, pilots, prefetch, python)


def _drain(url: str, tmp: Path, tokens: int, pilots: int, prefetch: int, python: str) -> dict:
    """The measurement itself; set-up (pool, index) happens before the clock, bookkeeping after it."""
    db = f"bench_ours_{pilots}_{prefetch}_{uuid.uuid4().hex[:6]}"
    client, create_s = make_pool(url, db, tokens)
    index_s = warm_views(client, ["todo"])["todo"]
    logs = [tmp / f"pilot{i}.log" for i in range(pilots)]
    reports = [tmp / f"pilot{i}.json" for i in range(pilots)]
    env = child_env()
    server_cpu = url.cpu_seconds() if isinstance(url, ServerURL) else None
    children_cpu = _children_cpu()
    started = time.time()
    procs = [subprocess.Popen([python, str(NOOP_PILOT), url, db, str(lg), str(rp), "--prefetch", str(prefetch)],
                              env=env, cwd=tmp)
             for lg, rp in zip(logs, reports)]
    deadline = time.monotonic() + RUN_TIMEOUT
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wall = time.time() - started
    pilots_cpu = _children_cpu() - children_cpu
    if server_cpu is not None:
        server_cpu = url.cpu_seconds() - server_cpu

    executed = collections.Counter()
    for lg in logs:
        if lg.exists():
            executed.update(line.strip() for line in lg.read_text().splitlines() if line.strip())
    parsed = [json.loads(rp.read_text()) for rp in reports if rp.exists()]
    final = counts(client)
    done = len(executed)
    requests = sum(r["requests"] for r in parsed)
    views = sum(r["view_queries"] for r in parsed)
    # Like server_limit.py's clock (first worker start to last worker end, after set-up): the pilots' own
    # span, without interpreter start-up; the gap to tokens_per_s is what 16 Python start-ups cost here.
    span = (max(r["loop_finished"] for r in parsed) - min(r["loop_started"] for r in parsed)) if parsed else 0.0
    return {
        "impl": "picas-2 (this project)", "tokens": tokens, "pilots": pilots, "prefetch": prefetch,
        "wall_s": round(wall, 2), "tokens_per_s": round(done / wall, 1) if wall else None,
        "executed": sum(executed.values()), "unique": done,
        "duplicates": sum(c - 1 for c in executed.values() if c > 1),
        "missing": tokens - done,
        "crashed_pilots": sum(1 for p in procs if p.returncode != 0) + (pilots - len(parsed)),
        "conflicts": sum(r["conflicts"] for r in parsed),
        "claim_conflicts": sum(r["claim_conflicts"] for r in parsed),
        "view_queries": views,
        "scan_queries": sum(r.get("scan_queries", 0) for r in parsed),
        "scanned_rows": sum(r.get("scanned_rows", 0) for r in parsed),
        "requests": requests, "requests_per_token": round(requests / done, 3) if done else None,
        # Claim writes, result saves, heartbeats: ~1.1 at k=10 means results are still saved one by one.
        "non_view_requests_per_token": round((requests - views) / done, 3) if done else None,
        "lost": sum(r["lost"] for r in parsed),
        "pilot_cpu_ms_per_token": round(pilots_cpu / done * 1000, 2) if done else None,
        **_server_load(server_cpu, wall),
        "tokens_per_s_after_startup": round(done / span, 1) if span > 0 else None,
        "overview": final, "pool_create_s": round(create_s, 2), "todo_index_build_s": index_s,
    }


def _children_cpu() -> float:
    """User + system CPU seconds of all waited-for children (the pilots) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _server_load(cpu: float | None, wall: float) -> dict:
    """How busy the server was: pouchdb-server works on one Node thread, so about 1.0 is its limit."""
    if cpu is None or not wall:
        return {}
    return {"server_cpu_s": round(cpu, 2), "server_busy": round(cpu / wall, 2)}


def _with_server_load(url: str, script_row) -> dict:
    """Run a reference script and add the server's CPU over the whole script (its own pool set-up included)."""
    before = url.cpu_seconds() if isinstance(url, ServerURL) else None
    started = time.monotonic()
    row = script_row()
    elapsed = time.monotonic() - started
    if before is not None:
        cpu = url.cpu_seconds() - before
        row.update({"server_cpu_s_whole_script": round(cpu, 2), "server_busy_whole_script": round(cpu / elapsed, 2)})
    return row


def run_upstream(url: str, tokens: int, pilots: int, python: str) -> dict:
    """The picas 1.1.2 reference (shared/bench/run_upstream.py) on the same server and pool size."""
    row = _with_server_load(url, lambda: run_json(
        [sys.executable, str(SHARED_BENCH / "run_upstream.py"), url, str(tokens), str(pilots), python],
        timeout=RUN_TIMEOUT, upstream=True))
    row.setdefault("prefetch", 1)
    return row


def run_ceiling(url: str, tokens: int, workers: int) -> dict:
    """The server's single-request ceiling (GET + PUT + PUT per token, no conflicts) with ``workers`` clients."""
    return _with_server_load(url, lambda: run_json(
        [sys.executable, str(SHARED_BENCH / "server_limit.py"), url, str(tokens), str(workers)],
        timeout=RUN_TIMEOUT))


def run_bulk_ceiling(url: str, tokens: int, batch: int) -> dict:
    """The server's ``_bulk_docs`` ceiling: two bulk updates per token, ``batch`` documents per request."""
    return _with_server_load(url, lambda: run_json(
        [sys.executable, str(SHARED_BENCH / "server_bulk_limit.py"), url, str(tokens), str(batch)],
        timeout=RUN_TIMEOUT))


def measure(tokens: int = 1000, pilots: tuple[int, ...] = (1, 4, 16), prefetches: tuple[int, ...] = (1, 10),
            upstream_python: str | None = None) -> dict:
    """Every row of the throughput figure, each on its own fresh server.

    Within one pilot count the rows run back to back (ceiling, picas 1.1.2,
    ours per prefetch), so the ratios the targets use are taken minutes
    apart on the same machine, not hours.
    """
    rows = []
    have_shared = (SHARED_BENCH / "run_upstream.py").exists()
    if not have_shared:
        log(f"reference scripts not found in {SHARED_BENCH}: ceiling and picas 1.1.2 rows are skipped")

    def one(label: str, func, *args) -> None:
        log(f"throughput: {label}")
        started = time.monotonic()
        try:
            with fresh_server() as url:
                row = func(url, *args)
        except Exception as exc:  # one broken row must not lose the others
            row = {"impl": label, "error": f"{type(exc).__name__}: {exc}"}
        row["row_seconds"] = round(time.monotonic() - started, 1)
        rows.append(row)
        log(f"  -> {json.dumps({k: v for k, v in row.items() if k != 'overview'})}")

    for count in pilots:
        if have_shared:
            one(f"server ceiling, {count} workers", run_ceiling, tokens, count)
            if upstream_python:
                one(f"picas 1.1.2, {count} pilots", run_upstream, tokens, count, upstream_python)
        for k in prefetches:
            one(f"picas 2, {count} pilots, prefetch {k}", run_ours, tokens, count, k)
    if have_shared:
        for k in sorted({k for k in prefetches if k > 1}):
            one(f"server _bulk_docs ceiling, batch {k}", run_bulk_ceiling, tokens, k)
    return {"figure": "throughput", "tokens": tokens, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--pilots", default="1,4,16")
    parser.add_argument("--prefetch", default="1,10")
    parser.add_argument("--upstream-python", help="python of a venv with picas==1.1.2 (row skipped without it)")
    args = parser.parse_args()
    emit(measure(args.tokens, tuple(int(p) for p in args.pilots.split(",")),
                 tuple(int(k) for k in args.prefetch.split(",")), args.upstream_python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
