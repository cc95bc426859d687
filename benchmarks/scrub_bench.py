#!/usr/bin/env python3
"""Scrub time: how long ``scrub_expired`` takes to give back 10,000 tokens whose leases ran out.

usage: scrub_bench.py [--tokens 10000]

The pool holds only locked tokens, each locked by a pilot an hour ago with a
one-minute lease (bodies made by :func:`picas.core.token.claim`, as a real pilot
leaves them when it dies).  The ``expired`` view is built before the clock
starts, and its build time is reported apart: it is paid once per pool by
whichever reader comes first, not by every scrub.  Counted: seconds, HTTP
requests (the point of a bulk scrub is tens of them, not tens of thousands),
and afterwards that every token is todo again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import counts, emit, fresh_server, log, make_pool, warm_views  # noqa: E402

from picas.core import token as tok  # noqa: E402
from picas.pool.scrub import scrub_expired  # noqa: E402


def measure(tokens: int = 10_000) -> dict:
    """One scrub of ``tokens`` expired leases on a fresh server."""
    dead = tok.PilotIdentity(pilot_id="dead-pilot-0", hostname="worker-node-17")
    locked_at = time.time() - 3600

    def lock(doc: dict, _i: int) -> dict:
        return tok.claim(doc, dead, locked_at, lease_seconds=60)

    log(f"scrub: {tokens} tokens with leases that ran out an hour ago")
    with fresh_server() as url:
        client, create_s = make_pool(url, f"bench_scrub_{uuid.uuid4().hex[:6]}", tokens, shape=lock)
        index_s = warm_views(client, ["expired"])["expired"]
        before = counts(client)
        started = time.perf_counter()
        report = scrub_expired(client)
        seconds = time.perf_counter() - started
        after = counts(client)
    row = {"figure": "scrub", "tokens": tokens, "seconds": round(seconds, 3),
           "tokens_per_s": round(report.total / seconds, 1) if seconds else None,
           "requests": report.requests, "reset": len(report.reset), "errored": len(report.errored),
           "skipped": report.skipped, "all_back_to_todo": after.get("todo", 0) == tokens,
           "before": before, "after": after, "pool_create_s": round(create_s, 2), "expired_index_build_s": index_s}
    log(f"  -> {json.dumps(row)}")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    args = parser.parse_args()
    emit(measure(args.tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
