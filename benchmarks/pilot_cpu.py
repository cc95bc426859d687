#!/usr/bin/env python3
"""The CPU one ``picas run`` spends per token, not counting its payloads, for several checkouts in turn.

usage: pilot_cpu.py LABEL=PATH [LABEL=PATH ...] [--tokens 1000] [--repeat 3]

What a user's pilot costs the node besides the work: one real ``picas run``
(bash payloads that append their token id to a file, logs attached) drains
a fresh pool of ``--tokens`` tokens on a fresh in-memory pouchdb-server.  Its
own CPU (user + system of all its threads) is read from ``/proc/<pid>/stat``
after it exited and before it is reaped, so the payloads' CPU (its children)
is not in it.  Unlike tokens/s, CPU seconds hardly depend on what else runs
on the machine; and the checkouts take turns, so what does change touches
them all alike.

Each PATH is a directory holding a ``picas`` package (a checkout, a ``git
worktree``, or ``git archive REV picas views | tar -x -C PATH``); its pilots
run with ``PYTHONPATH=PATH``.  Also measured per checkout: the CPU of a pilot
on an empty pool (interpreter start, imports, the pilot's first and last
requests), and from both the CPU per token after start-up.  Prints a JSON
line per run, then the medians per checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import child_env, compile_checkout, fresh_server, log, scratch  # noqa: E402
from real_pilots import bash_pool, run_processes, side_effects  # noqa: E402


def one_pilot(path: Path, tokens: int) -> dict:
    """One ``picas run`` of the checkout at ``path`` over ``tokens`` fresh bash tokens; its CPU and the payloads'."""
    with fresh_server() as url, scratch("picas-bench-cpu-") as tmp:
        db = f"bench_cpu_{uuid.uuid4().hex[:6]}"
        effects = tmp / "executed.log"
        bash_pool(url, db, tokens, effects)
        command = [sys.executable, "-m", "picas", "run", "--url", url, "--db", db, "-q",
                   "--workdir", str(tmp / "work")]
        ran = run_processes([command], tmp, {**child_env(), "PYTHONPATH": str(path)})
        if ran["codes"] != [0]:
            raise RuntimeError(f"picas run of {path} exited {ran['codes'][0]}: {ran['errors']}")
        seen = side_effects(effects, tokens)
        if seen["unique"] != tokens or seen["duplicates"]:
            raise RuntimeError(f"{path}: {seen['unique']} of {tokens} tokens ran, {seen['duplicates']} twice")
        return {"wall_s": round(ran["wall"], 2), "pilot_cpu_s": ran["own_cpu"][0],
                "payload_cpu_s": ran["children_cpu"][0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    checkouts = [(label, Path(path).resolve()) for label, _, path in (c.partition("=") for c in args.checkouts)]
    rows: dict[str, list[dict]] = {label: [] for label, _ in checkouts}
    for _, path in checkouts:
        compile_checkout(path)
    for repeat in range(args.repeat):
        for label, path in checkouts:
            log(f"repeat {repeat + 1}/{args.repeat}: {label}")
            empty = one_pilot(path, 0)
            full = one_pilot(path, args.tokens)
            row = {"checkout": label, "repeat": repeat + 1, "tokens": args.tokens,
                   "load_at_start": round(os.getloadavg()[0], 1),
                   "pilot_cpu_ms_per_token": round(full["pilot_cpu_s"] / args.tokens * 1000, 3),
                   "startup_cpu_s": empty["pilot_cpu_s"],
                   "pilot_cpu_ms_per_token_after_startup":
                       round((full["pilot_cpu_s"] - empty["pilot_cpu_s"]) / args.tokens * 1000, 3),
                   "payload_cpu_ms_per_token": round(full["payload_cpu_s"] / args.tokens * 1000, 3),
                   "wall_s": full["wall_s"], "time": time.strftime("%Y-%m-%d %H:%M")}
            print(json.dumps(row), flush=True)
            rows[label].append(row)
    columns = ("pilot_cpu_ms_per_token", "pilot_cpu_ms_per_token_after_startup", "startup_cpu_s",
               "payload_cpu_ms_per_token")
    print(f"\nmedians of {args.repeat} run(s), one pilot, {args.tokens} tokens")
    print(f"{'checkout':16} " + " ".join(f"{c:>38}" for c in columns))
    for label, runs in rows.items():
        print(f"{label:16} " + " ".join(f"{statistics.median(r[c] for r in runs):38.3f}" for c in columns))
    first = checkouts[0][0]
    for label, runs in list(rows.items())[1:]:
        ratio = statistics.median(r["pilot_cpu_ms_per_token"] for r in runs) / statistics.median(
            r["pilot_cpu_ms_per_token"] for r in rows[first])
        print(f"{label} / {first}: {ratio:.2f} of the pilot CPU per token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
