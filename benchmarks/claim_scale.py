#!/usr/bin/env python3
"""Claim cost against pool size: median latency of one claim at 10^3 and at 10^5 todo tokens.

usage: claim_scale.py [--sizes 1000,100000] [--claims 300]

A claim must cost the same in a small pool and a large one; anything that
scans or skips through the todo view grows with the pool and shows up here.
For each size: a fresh server, a pool of that many todo tokens, the ``todo``
index built before timing (its build time is reported apart), then one
:class:`picas.core.claim.Claimer` claims ``--claims`` tokens one at a time, each
call timed.  The first window's worth of claims is not timed, so that the
claimer has learned the shape of the keys, as a pilot has after its first
seconds.

The median is the figure (it is what a typical claim costs: mostly one PUT);
the mean includes the view query each window of claims needs, so it is
reported as well, and so is the median of claims made each by a *new*
claimer, which always start with a view query.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, fresh_server, log, make_pool, summarize, warm_views  # noqa: E402

from picas.core import token as tok  # noqa: E402
from picas.core.claim import Claimer  # noqa: E402


def timed_claims(claimer: Claimer, count: int) -> list[float]:
    """Seconds per ``claimer.claim()``, for ``count`` calls; fails loudly if the pool runs dry."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        doc = claimer.claim()
        samples.append(time.perf_counter() - started)
        if doc is None:
            raise RuntimeError("the pool ran out of todo tokens during the measurement")
    return samples


def one_size(size: int, claims: int, fresh: int) -> dict:
    log(f"claim scale: pool of {size} todo tokens")
    who = tok.PilotIdentity(pilot_id=f"bench-claimer-{uuid.uuid4().hex[:6]}")
    with fresh_server() as url:
        client, create_s = make_pool(url, f"bench_claim_{uuid.uuid4().hex[:6]}", size, batch=10_000)
        index_s = warm_views(client, ["todo"])["todo"]
        claimer = Claimer(client, who)
        timed_claims(claimer, claimer.window)  # learn the key space, as a running pilot has
        before = client.stats["requests"]
        steady = timed_claims(claimer, claims)
        requests = client.stats["requests"] - before
        cold = []
        for _ in range(fresh):
            cold += timed_claims(Claimer(client, who), 1)
    row = {"todo_tokens": size, **summarize(steady), "requests_per_claim": round(requests / claims, 3),
           "fresh_claimer": summarize(cold), "pool_create_s": round(create_s, 2), "todo_index_build_s": index_s}
    log(f"  -> {json.dumps(row)}")
    return row


def measure(sizes: tuple[int, ...] = (1000, 100_000), claims: int = 300, fresh: int = 50) -> dict:
    """Rows per pool size and the ratios of the largest to the smallest."""
    rows = [one_size(size, claims, fresh) for size in sizes]
    small, large = rows[0], rows[-1]
    return {"figure": "claim_scale", "sizes": list(sizes), "claims": claims, "rows": rows,
            "ratio_median": round(large["median_ms"] / small["median_ms"], 3),
            "ratio_mean": round(large["mean_ms"] / small["mean_ms"], 3),
            "ratio_fresh_median": round(large["fresh_claimer"]["median_ms"] / small["fresh_claimer"]["median_ms"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--fresh", type=int, default=50, help="claims made each by a new Claimer")
    args = parser.parse_args()
    emit(measure(tuple(int(s) for s in args.sizes.split(",")), args.claims, args.fresh))
    return 0


if __name__ == "__main__":
    sys.exit(main())
