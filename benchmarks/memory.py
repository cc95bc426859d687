#!/usr/bin/env python3
"""Pilot memory: resident set size of one no-op pilot after 100 tokens, against after 10,000.

usage: memory.py [--tokens 10000] [--early 100]

A pilot runs for days; anything it keeps per token (histories, reports,
event lists, a growing journal) turns into a slow leak that only shows
after thousands of tokens.  One ``noop_pilot.py`` process drains a pool of
``--tokens`` tokens and reads its own VmRSS from /proc/self/status right
after its 100th and its last token; the ratio of the two is the figure.
The no-op payload keeps the run short and keeps bash out of the picture;
what remains is exactly the pilot's own bookkeeping.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, child_env, emit, fresh_server, log, make_pool, scratch, warm_views  # noqa: E402


def measure(tokens: int = 10_000, early: int = 100) -> dict:
    """RSS of one no-op pilot at ``early`` tokens and at ``tokens`` tokens (and a few points between)."""
    points = sorted({early, *(p for p in (1000, 5000) if early < p < tokens), tokens})
    log(f"memory: one no-op pilot over {tokens} tokens, VmRSS at {points}")
    with fresh_server() as url, scratch("picas-bench-memory-") as tmp:
        db = f"bench_memory_{uuid.uuid4().hex[:6]}"
        client, _ = make_pool(url, db, tokens)
        warm_views(client, ["todo"])
        started = time.perf_counter()
        subprocess.run([sys.executable, str(BENCH_DIR / "noop_pilot.py"), url, db, str(tmp / "pilot.log"),
                        str(tmp / "report.json"), "--max-tasks", str(tokens),
                        "--rss-at", ",".join(map(str, points))],
                       env=child_env(), cwd=tmp, check=True, timeout=7200)
        seconds = time.perf_counter() - started
        report = json.loads((tmp / "report.json").read_text())
    rss = report["rss_kib"]
    first, last = rss.get(str(early)), rss.get(str(tokens))
    row = {"figure": "memory", "tokens": tokens, "early": early,
           "rss_kib_early": first, "rss_kib_final": last,
           "ratio": round(last / first, 3) if first and last else None,
           "rss_kib_at": rss, "processed": report["processed"], "run_s": round(seconds, 1)}
    log(f"  -> {json.dumps(row)}")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--early", type=int, default=100)
    args = parser.parse_args()
    emit(measure(args.tokens, args.early))
    return 0


if __name__ == "__main__":
    sys.exit(main())
