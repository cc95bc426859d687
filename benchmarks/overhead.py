#!/usr/bin/env python3
"""Pilot overhead per token: what ``picas run`` adds around a payload, in milliseconds per token.

usage: overhead.py [--tokens 200] [--sleep 0.05]

One real pilot (``python3 -m picas run``, logs attached, leases, everything
a user gets) drains a pool whose tokens all run ``sleep 0.05``; overhead =
(wall - N * 0.05) / N, the wall clock running from process start to exit.
That is what a user pays per token on top of the work itself: claiming,
starting bash, reading its output, saving the result with its logs.

Nominal 0.05 s hides how long ``sleep`` really took (bash start-up, the
scheduler on a loaded machine), so the figure is also given against the
payload durations the pilot itself recorded in each token, and once more
with the no-op payload ``true``, where all of the wall time is overhead.
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
from common import child_env, counts, emit, fresh_server, log, make_pool, scratch, warm_views  # noqa: E402


def run_pilot(url: str, tokens: int, payload: str, nominal: float) -> dict:
    """One ``picas run`` over a fresh pool of ``tokens`` tokens of ``payload``."""
    with scratch("picas-bench-overhead-") as tmp:
        return _run_in(url, tmp, tokens, payload, nominal)


def _run_in(url: str, tmp: Path, tokens: int, payload: str, nominal: float) -> dict:
    db = f"bench_overhead_{uuid.uuid4().hex[:6]}"
    client, _ = make_pool(url, db, tokens, payload=payload)
    warm_views(client, ["todo"])
    summary = tmp / "summary.json"
    command = [sys.executable, "-m", "picas", "run", "--url", url, "--db", db, "-q",
               "--workdir", str(tmp / "work"), "--summary-file", str(summary)]
    started = time.perf_counter()
    done = subprocess.run(command, env=child_env(), cwd=tmp, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"picas run exited {done.returncode}: {done.stderr.strip()[-300:]}")
    report = json.loads(summary.read_text())
    docs = [row.doc for row in client.all_docs(include_docs=True).rows if row.doc and row.doc.get("type") == "token"]
    measured = sum(float(doc.get("duration") or 0) for doc in docs)
    final = counts(client)
    return {
        "payload": payload, "tokens": tokens, "wall_s": round(wall, 3),
        "pilot_loop_s": round(report["duration"], 3),
        "overhead_ms_per_token": round((wall - tokens * nominal) / tokens * 1000, 2),
        "overhead_ms_per_token_inside_pilot": round((report["duration"] - tokens * nominal) / tokens * 1000, 2),
        "overhead_ms_per_token_vs_recorded_payload": round((wall - measured) / tokens * 1000, 2),
        "recorded_payload_ms_per_token": round(measured / tokens * 1000, 2),
        "requests": report.get("requests"), "requests_per_token": round(report.get("requests", 0) / tokens, 3),
        "done": final.get("done", 0), "overview": final,
    }


def measure(tokens: int = 200, sleep: float = 0.05) -> dict:
    """The figure: one pilot over ``sleep`` tokens, then over no-op ``true`` tokens, each on a fresh server."""
    rows = []
    for payload, nominal in ((f"sleep {sleep:g}", sleep), ("true", 0.0)):
        log(f"overhead: picas run over {tokens} tokens of '{payload}'")
        with fresh_server() as url:
            rows.append(run_pilot(url, tokens, payload, nominal))
        log(f"  -> {json.dumps(rows[-1])}")
    return {"figure": "overhead", "tokens": tokens, "sleep_s": sleep,
            "overhead_ms_per_token": rows[0]["overhead_ms_per_token"], "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.05)
    args = parser.parse_args()
    emit(measure(args.tokens, args.sleep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
