#!/usr/bin/env python3
"""Time of ``picas status`` on pools of 10^4, 10^5 and 10^6 tokens.

usage: status_scale.py [--sizes 10000,100000,1000000] [--repeat 3] [--in-memory]

Each pool is generated in bulk (``_bulk_docs`` batches of 10,000) on its own
fresh server, in a mid-run mix of states (70 % todo, 10 % locked, 15 % done,
5 % error; the states are drawn per token, so every part of the id space
holds every state), because a status on a pool that is all todo reads one
view where a real mid-run status reads four.

The time that counts is what a user waits for: ``picas status --json`` as a
new process, run only *after* the views it reads (one per state) are built;
an in-process :func:`picas.pool.status.snapshot` follows the builds, untimed, so
that a view a later version of status reads is built before the clock too.
Index builds are reported apart: they are paid once per pool, by whoever
reads first, and on pouchdb-server they run at about a thousand documents a
second per view, which dwarfs everything else at 10^6.  For that reason, and because an in-memory pouchdb-server
holding 10^6 documents and four indexes outgrows the machine's memory, the
server keeps its data on disk (LevelDB) unless ``--in-memory`` is given.

Besides the command, each row gives the in-process :func:`picas.pool.status.snapshot`
time: the same answer without Python start-up and imports.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import child_env, client_for, create_tokens, emit, fresh_server, log, warm_views  # noqa: E402

from picas.pool import status as st  # noqa: E402
from picas.core import token as tok  # noqa: E402
from picas.core.views import deploy  # noqa: E402

#: Share of each state in a generated pool, as a pool looks mid-run.
MIX = (("todo", 0.70), ("locked", 0.10), ("done", 0.15), ("error", 0.05))
#: The views ``picas status`` reads (one per state); built, and timed, before the command is.
STATUS_VIEWS = tuple(st.STATES)
BATCH = 10_000

#: Used when the CLI does not register ``status`` (yet): the same click command, run the same way.
_UNREGISTERED = ("import sys; from picas.cli import main; from picas.cli.status_cmd import status_cmd; "
                 "main.add_command(status_cmd); sys.argv[0] = 'picas'; main()")


def status_command() -> tuple[list[str], bool]:
    """The ``picas status`` command line and whether the CLI registers it; checked in a child process."""
    probe = subprocess.run([sys.executable, "-c", "from picas.cli import main; print('status' in main.commands)"],
                           capture_output=True, text=True, env=child_env())
    if probe.stdout.strip() == "True":
        return [sys.executable, "-m", "picas", "status"], True
    return [sys.executable, "-c", _UNREGISTERED, "status"], False


def shaper(seed: int = 1):
    """A ``shape(doc, i)`` that turns fresh tokens into the mix of states, with realistic bodies."""
    rng = random.Random(seed)
    now = time.time()
    who = tok.PilotIdentity(pilot_id="bench-pilot-1", hostname="worker-node-3",
                            job_ids=(("slurm_job_id", "4242"),))
    cumulative, total = [], 0.0
    for name, share in MIX:
        total += share
        cumulative.append((total, name))

    def shape(doc: dict, _i: int) -> dict:
        draw = rng.random()
        state = next(name for bound, name in cumulative if draw < bound)
        if state == "todo":
            return doc
        locked_at = now - rng.uniform(60, 3600)
        body = tok.claim(doc, who, locked_at, lease_seconds=300)
        if state == "locked":
            return body
        finished_at = locked_at + rng.uniform(1, 50)
        if state == "done":
            return tok.finish(body, who, finished_at, 0, duration=round(finished_at - locked_at, 3))
        return tok.fail(body, who, finished_at, "payload exited with status 3", exit_code=3)

    return shape


def time_cli(command: list[str], url: str, db: str, repeat: int) -> tuple[list[float], dict]:
    """Wall seconds of each ``picas status --json`` run, and the last answer."""
    times, answer = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run([*command, "--json", "--url", url, "--db", db], capture_output=True, text=True,
                              env=child_env(), cwd=tempfile.gettempdir(), timeout=3600)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"picas status exited {done.returncode}: {done.stderr.strip()[-300:]}")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    return times, answer


def one_size(size: int, repeat: int, in_memory: bool) -> dict:
    command, registered = status_command()
    log(f"status: pool of {size} tokens ({'in memory' if in_memory else 'on disk'})")
    started = time.monotonic()
    with fresh_server(in_memory=in_memory) as url:
        db = f"bench_status_{uuid.uuid4().hex[:6]}"
        client = client_for(url, db)
        client.create_db()
        deploy(client)
        create_s = create_tokens(client, size, batch=BATCH, shape=shaper())
        log(f"  created in {create_s:.1f} s; building the indexes of {', '.join(STATUS_VIEWS)}")
        index_s = warm_views(client, STATUS_VIEWS)
        t0 = time.perf_counter()
        st.snapshot(client)
        index_s["other (first snapshot)"] = round(time.perf_counter() - t0, 3)
        log(f"  indexes built: {index_s}")
        cli_times, answer = time_cli(command, url, db, repeat)
        t0 = time.perf_counter()
        snap = st.snapshot(client)
        snapshot_s = time.perf_counter() - t0
    row = {"tokens": size, "status_s": round(statistics.median(cli_times), 3),
           "status_runs_s": [round(t, 3) for t in cli_times], "snapshot_in_process_s": round(snapshot_s, 3),
           "counts": answer.get("counts"),
           "counts_match": sum((answer.get("counts") or {}).values()) == size and snap.total == size,
           "pool_create_s": round(create_s, 1), "index_build_s": index_s,
           "index_build_total_s": round(sum(index_s.values()), 1),
           "server": "pouchdb-server " + ("in memory" if in_memory else "on disk (LevelDB)"),
           "cli_registers_status": registered, "row_seconds": round(time.monotonic() - started, 1)}
    log(f"  -> {json.dumps(row)}")
    return row


def measure(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), repeat: int = 3, in_memory: bool = False) -> dict:
    """One row per pool size, each on its own server."""
    rows = [one_size(size, repeat, in_memory) for size in sizes]
    return {"figure": "status", "sizes": list(sizes), "mix": dict(MIX), "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3, help="runs of picas status per pool (the median counts)")
    parser.add_argument("--in-memory", action="store_true", help="in-memory server (not for 10^6: memory)")
    args = parser.parse_args()
    emit(measure(tuple(int(s) for s in args.sizes.split(",")), args.repeat, args.in_memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
