#!/usr/bin/env python3
"""Throughput of several checkouts of picas in one run, row by row in turn, on the same machine.

usage: compare_checkouts.py LABEL=PATH [LABEL=PATH ...] [--tokens N] [--pilots 1,16] [--prefetch 1] [--repeat R]

Each PATH is a checkout (``git worktree add /tmp/old f42f7f0``, say).  For
every repeat and pilot count, each checkout's own ``benchmarks/throughput.py``
runs with ``PYTHONPATH`` set to that checkout, so its pilots import that
checkout's picas; the checkouts take turns, so a change in the machine's load
touches them all alike.  Every row is a fresh in-memory pouchdb-server and a
fresh pool (see ``throughput.py``).  The reference rows (server ceiling,
picas 1.1.2) are left out: this compares checkouts with each other.

Prints each row as a JSON line, then a table of the medians per checkout and
pilot count.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = ("tokens_per_s", "tokens_per_s_after_startup", "pilot_cpu_ms_per_token", "server_busy",
           "requests_per_token", "duplicates")


def run_row(path: Path, tokens: int, pilots: int, prefetch: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICAS_") or k == "PICAS_POUCHDB_SERVER"}
    env["PYTHONPATH"] = str(path)
    env["PICAS_BENCH_SHARED"] = str(path / "no-reference-scripts")  # leaves out the reference rows
    done = subprocess.run([sys.executable, str(path / "benchmarks" / "throughput.py"), "--tokens", str(tokens),
                           "--pilots", str(pilots), "--prefetch", str(prefetch)],
                          env=env, capture_output=True, text=True, cwd=path, timeout=3600)
    figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"figure": "throughput"')]
    if done.returncode != 0 or not figures:
        raise RuntimeError(f"{path}: throughput.py exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return figures[0]["rows"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--pilots", default="1,16")
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    checkouts = [(label, Path(path).resolve()) for label, _, path in (c.partition("=") for c in args.checkouts)]
    results: dict[tuple[str, int], list[dict]] = {}
    for repeat in range(args.repeat):
        for pilots in (int(p) for p in args.pilots.split(",")):
            for label, path in checkouts:
                print(f"[{time.strftime('%H:%M:%S')}] repeat {repeat + 1}: {label}, {pilots} pilots",
                      file=sys.stderr, flush=True)
                row = run_row(path, args.tokens, pilots, args.prefetch)
                row = {"checkout": label, "path": str(path), "repeat": repeat + 1,
                       "load_at_start": os.getloadavg()[0], **row}
                row.pop("overview", None)
                print(json.dumps(row), flush=True)
                results.setdefault((label, pilots), []).append(row)
    print(f"\nmedians of {args.repeat} run(s), {args.tokens} tokens, prefetch {args.prefetch}")
    print(f"{'checkout':28} {'pilots':>6} " + " ".join(f"{c:>26}" for c in COLUMNS))
    for (label, pilots), rows in results.items():
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in rows if r.get(column) is not None]
            cells.append(f"{statistics.median(values):26.3f}" if values else f"{'-':>26}")
        print(f"{label:28} {pilots:6d} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
