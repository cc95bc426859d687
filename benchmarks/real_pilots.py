#!/usr/bin/env python3
"""Real pilots: ``picas run`` with bash payloads and attached logs, against picas 1.1.2 doing the same.

usage: real_pilots.py [--servers pouchdb,couchdb,cluster] [--tokens 1000] [--pilots 1,4,16]
                      [--batch-tokens 10000] [--memory-tokens 10000] [--upstream-python PY]

What users run: every token's input is a bash command that appends the
token's id to one shared file (``echo <id> >> executed.log``); the pilot
starts bash for it, reads its stdout and stderr and attaches both to the
token.  Duplicate executions are counted from that file (a side effect of
the payload), never from what the pilots report.

Per server kind (pouchdb-server in memory, a CouchDB 3.4 single node, a
3-node CouchDB cluster; all pilots talk to one node, as the ceiling's
workers do), in one run:

* the server's own ceiling at 1, 4 and 16 workers (``shared/bench/server_limit.py``:
  GET + PUT + PUT per token, no conflicts possible);
* picas 1.1.2's classic ``RunActor`` (``shared/bench/upstream_pilot_bash.py``) at
  1, 4 and 16 pilot processes;
* ``picas run`` (default mode, ``--prefetch 1``) at 1, 4 and 16 pilot processes;
* ``picas run --slots 4`` and ``--slots 16``: as many pilots, as threads of one process;
* batch mode: ``picas run --prefetch 10`` with 16 pilots on ``--batch-tokens``
  tokens, next to the ``_bulk_docs`` ceiling at batch 10
  (``shared/bench/server_bulk_limit.py``; it sends no credentials, so it runs on
  pouchdb-server only), with the rate after start-up as well as the total;
* once, on pouchdb-server: the resident set size of one ``picas run`` after
  100 tokens and after ``--memory-tokens`` tokens.

Both sides drain the same kind of pool (made as ``picas push`` makes it, the
``todo`` index built before the clock starts), and both are clocked from the
first process start to the last exit.  ``tokens_per_s_after_startup`` runs
from the first payload to the last one (the times in the side-effect file),
so interpreter start-up and the last pilot's shutdown are out of it.

The CPU columns are the pilot processes' own CPU (user + system of every
thread), read from ``/proc/<pid>/stat`` once a pilot has exited and before
it is reaped, so the payloads' CPU (bash, echo: the children) is not in it.
That figure does not depend on how busy the machine is, unlike tokens/s.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SHARED_BENCH, child_env, compile_checkout, counts, emit, fresh_server, log,  # noqa: E402
                    make_pool, run_json, scratch, warm_views)
import server_kinds  # noqa: E402
import throughput  # noqa: E402

RUN_TIMEOUT = 3600.0
_TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- processes and their CPU

def _own_cpu(pid: int) -> tuple[float, float]:
    """(own CPU, waited-for children's CPU) of a process, in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the ")": state is field 3, so utime (14) is index 11, stime 12, cutime 13, cstime 14.
    return (int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK


def run_processes(commands: list[list[str]], cwd: Path, env: dict) -> dict:
    """Start every command at once; wait for all; per process: exit code, own CPU, children's CPU.

    Each process is waited for with ``WNOWAIT`` first: an exited, unreaped
    process still has its final CPU times in /proc, which reaping would fold
    into ours together with its children's.
    """
    started = time.time()
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for cmd in commands]
    deadline = time.monotonic() + RUN_TIMEOUT
    own, children, codes, errors = [], [], [], []
    for proc in procs:
        err = proc.stderr.read()  # the pilots print little; reading keeps a chatty one from blocking
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            cpu, kids = _own_cpu(proc.pid)
        except (ChildProcessError, OSError):
            cpu, kids = 0.0, 0.0
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        own.append(cpu)
        children.append(kids)
        codes.append(proc.returncode)
        if proc.returncode:
            errors.append(err.decode(errors="replace").strip()[-300:])
    return {"wall": time.time() - started, "started": started, "own_cpu": own, "children_cpu": children,
            "codes": codes, "errors": errors}


def side_effects(path: Path, tokens: int) -> dict:
    """Executions counted from the payloads' own appends: unique, duplicates, missing, first/last time."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    executed = collections.Counter(parts[0] for parts in lines)
    times = [float(parts[1]) for parts in lines if len(parts) > 1]
    return {"executed": sum(executed.values()), "unique": len(executed),
            "duplicates": sum(c - 1 for c in executed.values() if c > 1), "missing": tokens - len(executed),
            "first": min(times, default=0.0), "last": max(times, default=0.0)}


def bash_pool(url: str, db: str, tokens: int, effects: Path) -> None:
    """A pool whose every token appends '<its id> <time>' to ``effects`` (the side effect duplicates are counted by)."""
    def shape(doc: dict, _: int) -> dict:
        doc["input"] = f"echo {doc['_id']} $EPOCHREALTIME >> {effects}"
        return doc

    client, _ = make_pool(url, db, tokens, shape=shape)
    warm_views(client, ["todo"])


def _row(impl: str, kind: str, tokens: int, pilots: int, prefetch: int, ran: dict, seen: dict,
         server_cpu: float | None) -> dict:
    done = seen["unique"]
    wall = ran["wall"]
    span = seen["last"] - seen["first"]
    own = sum(ran["own_cpu"])
    row = {
        "impl": impl, "server": kind, "tokens": tokens, "pilots": pilots, "prefetch": prefetch,
        "wall_s": round(wall, 2), "tokens_per_s": round(done / wall, 1) if wall else None,
        "tokens_per_s_after_startup": round((done - 1) / span, 1) if span > 0 else None,
        # Where the rest of the wall time went: from the start to the first payload (interpreters, imports,
        # the first claims), and from the last payload to the last pilot's exit (finding no work is left).
        "start_s": round(seen["first"] - ran["started"], 2) if seen["first"] else None,
        "end_s": round(ran["started"] + wall - seen["last"], 2) if seen["last"] else None,
        "executed": seen["executed"], "unique": done, "duplicates": seen["duplicates"], "missing": seen["missing"],
        "failed_pilots": sum(1 for code in ran["codes"] if code),
        "pilot_cpu_s": round(own, 2), "pilot_cpu_ms_per_token": round(own / done * 1000, 3) if done else None,
        "payload_cpu_ms_per_token": round(sum(ran["children_cpu"]) / done * 1000, 3) if done else None,
    }
    if server_cpu is not None and wall:
        row.update({"server_cpu_s": round(server_cpu, 2), "server_busy": round(server_cpu / wall, 2)})
    if ran["errors"]:
        row["errors"] = ran["errors"][:3]
    return row


def _server_cpu(server: server_kinds.Server) -> float | None:
    return server.cpu_seconds()


# ---------------------------------------------------------------------- the two sides

def run_picas(server: server_kinds.Server, tokens: int, pilots: int, prefetch: int = 1,
              spread: bool = False, slots: bool = False) -> dict:
    """``pilots`` processes of ``picas run`` (logs attached, as users run it) over a fresh pool.

    All pilots talk to the first node, as the ceiling's workers do; with
    ``spread`` each is given every node of a cluster, starting from another.
    With ``slots`` the pilots are the slots of one process (``picas run --slots``).
    """
    db = f"bench_real_{pilots}_{prefetch}_{uuid.uuid4().hex[:6]}"
    with scratch("picas-bench-real-") as tmp:
        effects = tmp / "executed.log"
        bash_pool(server.admin_url, db, tokens, effects)
        commands = []
        for index in range(1 if slots else pilots):
            turn = index % len(server.urls) if spread else 0
            url = ",".join(server.urls[turn:] + server.urls[:turn]) if spread else server.url
            commands.append([sys.executable, "-m", "picas", "run", "--url", url, "--db", db, "-q",
                             "--workdir", str(tmp / "work"), "--prefetch", str(prefetch),
                             *(("--slots", str(pilots)) if slots else ())])
        env = {**child_env(), **server.pilot_env()}
        before = _server_cpu(server)
        ran = run_processes(commands, tmp, env)
        after = _server_cpu(server)
        seen = side_effects(effects, tokens)
        label = "picas run" + (" --slots (one process)" if slots else "") + (
            ", pilots spread over the nodes" if spread else "")
        row = _row(label, server.kind, tokens, pilots, prefetch, ran, seen,
                   after - before if before is not None and after is not None else None)
        row["overview"] = counts(server.client(db))
        return row


def run_noop(server: server_kinds.Server, tokens: int, pilots: int, prefetch: int) -> dict:
    """The suite's no-op pilots (``noop_pilot.py``: the real Pilot, no bash) on the same kind of pool."""
    row = throughput.run_ours(server.admin_url, tokens, pilots, prefetch)
    row.update({"impl": "no-op pilot (noop_pilot.py)", "server": server.kind})
    return row


def run_upstream(server: server_kinds.Server, tokens: int, pilots: int, python: str) -> dict:
    """``pilots`` processes of picas 1.1.2's classic bash pilot (shared/bench/upstream_pilot_bash.py)."""
    db = f"bench_up_{pilots}_{uuid.uuid4().hex[:6]}"
    with scratch("picas-bench-real-up-") as tmp:
        effects = tmp / "executed.log"
        bash_pool(server.admin_url, db, tokens, effects)
        command = [python, str(SHARED_BENCH / "upstream_pilot_bash.py"), server.admin_url, db]
        before = _server_cpu(server)
        ran = run_processes([command] * pilots, tmp, child_env(upstream=True))
        after = _server_cpu(server)
        seen = side_effects(effects, tokens)
        row = _row("picas 1.1.2", server.kind, tokens, pilots, 1, ran, seen,
                   after - before if before is not None and after is not None else None)
        row["overview"] = counts(server.client(db))
        return row


def run_memory(server: server_kinds.Server, tokens: int, early: int = 100) -> dict:
    """VmRSS of one ``picas run`` after ``early`` tokens and just before it ends after ``tokens``.

    The pilot is sampled from outside (its /proc status) as the side-effect
    file grows, so the pilot runs exactly as users run it.
    """
    db = f"bench_real_mem_{uuid.uuid4().hex[:6]}"
    with scratch("picas-bench-real-mem-") as tmp:
        effects = tmp / "executed.log"
        bash_pool(server.admin_url, db, tokens, effects)
        command = [sys.executable, "-m", "picas", "run", "--url", server.url, "--db", db, "-q",
                   "--workdir", str(tmp / "work")]
        proc = subprocess.Popen(command, cwd=tmp, env={**child_env(), **server.pilot_env()},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: dict[int, int] = {}
        late: tuple[int, int] | None = None
        last = 0
        while proc.poll() is None:
            done = _lines(effects)
            rss = _rss_kib(proc.pid)
            if rss:
                if done >= early and not samples:
                    samples[done] = rss
                if done >= tokens - early and late is None:
                    late = (done, rss)
                last = rss
            time.sleep(0.05)
        early_at = min(samples, default=None)
        base = samples.get(early_at) if early_at is not None else None
        return {"figure": "real_memory", "server": server.kind, "tokens": tokens,
                "rss_kib_early": base, "early_at": early_at,
                # ``early`` tokens before the end, while the pool is still rich: what running tokens costs.
                "rss_kib_late": late[1] if late else None, "late_at": late[0] if late else None,
                "ratio_late": round(late[1] / base, 3) if late and base else None,
                # The last sample, in the pool's tail: the claimer then reads the pool in windows of up to
                # 1,000 bodies (picas.core.scanner) to find the last tokens, so this includes that peak.
                "rss_kib_final": last, "ratio": round(last / base, 3) if base else None,
                "done": _lines(effects)}


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def ceiling(server: server_kinds.Server, tokens: int, workers: int) -> dict:
    """The server's single-request ceiling (GET + PUT + PUT per token) with ``workers`` clients."""
    before = _server_cpu(server)
    row = run_json([sys.executable, str(SHARED_BENCH / "server_limit.py"), server.admin_url, str(tokens),
                    str(workers)], timeout=RUN_TIMEOUT)
    after = _server_cpu(server)
    row.update({"impl": "server ceiling (GET+PUT+PUT)", "server": server.kind, "pilots": workers})
    if before is not None and after is not None and row.get("wall_s"):
        row["server_busy_whole_script"] = round((after - before) / row["wall_s"], 2)
    return row


def bulk_ceiling(server: server_kinds.Server, tokens: int, batch: int) -> dict:
    row = run_json([sys.executable, str(SHARED_BENCH / "server_bulk_limit.py"), server.admin_url, str(tokens),
                    str(batch)], timeout=RUN_TIMEOUT)
    row.update({"impl": f"server _bulk_docs ceiling, batch {batch}", "server": server.kind, "pilots": 1,
                "prefetch": batch})
    return row


# ---------------------------------------------------------------------- the figure

@contextlib.contextmanager
def _pouchdb() -> Iterator[server_kinds.Server]:
    with fresh_server() as url:
        yield server_kinds.pouchdb(url)


def measure(kinds: tuple[str, ...] = ("pouchdb", "couchdb", "cluster"), tokens: int = 1000,
            pilots: tuple[int, ...] = (1, 4, 16), batch_tokens: int = 10_000, memory_tokens: int = 10_000,
            upstream_python: str | None = None, upstream: bool = True) -> dict:
    """Every row, server kind by server kind; within a kind, the rows follow each other minutes apart."""
    rows: list[dict] = []
    compile_checkout()

    def one(label: str, func, *args) -> None:
        log(f"real pilots: {label}")
        started = time.monotonic()
        try:
            row = func(*args)
        except Exception as exc:  # one broken row must not lose the others
            row = {"impl": label, "error": f"{type(exc).__name__}: {exc}"}
        row["row_seconds"] = round(time.monotonic() - started, 1)
        rows.append(row)
        log(f"  -> {json.dumps({k: v for k, v in row.items() if k != 'overview'})}")

    have_shared = (SHARED_BENCH / "server_limit.py").exists()
    for kind in kinds:
        # pouchdb-server keeps everything in one Node process: a fresh server per row, as throughput.py does.
        # CouchDB starts in seconds (a cluster in ~10 s) and keeps databases apart on disk: one per kind.
        try:
            servers = (lambda: _pouchdb()) if kind == "pouchdb" else server_kinds.shared(kind)
        except server_kinds.Unavailable as exc:
            rows.append({"impl": "server", "server": kind, "error": f"unavailable: {exc}"})
            continue
        for count in pilots:
            if have_shared:
                with servers() as server:
                    one(f"{kind}: server ceiling, {count} workers", ceiling, server, tokens, count)
                if upstream and upstream_python:
                    with servers() as server:
                        one(f"{kind}: picas 1.1.2, {count} pilots", run_upstream, server, tokens, count,
                            upstream_python)
            with servers() as server:
                one(f"{kind}: picas run, {count} pilots", run_picas, server, tokens, count)
            if count > 1:
                with servers() as server:
                    one(f"{kind}: picas run --slots {count}, one process", run_picas, server, tokens, count, 1,
                        False, True)
        if batch_tokens:
            if have_shared and kind == "pouchdb":
                with servers() as server:
                    one(f"{kind}: server _bulk_docs ceiling, batch 10", bulk_ceiling, server, batch_tokens, 10)
            with servers() as server:
                one(f"{kind}: picas run --prefetch 10, 16 pilots, {batch_tokens} tokens", run_picas, server,
                    batch_tokens, 16, 10)
            with servers() as server:
                one(f"{kind}: picas run --prefetch 10 --slots 16, one process, {batch_tokens} tokens",
                    run_picas, server, batch_tokens, 16, 10, False, True)
            if kind == "pouchdb":
                with servers() as server:
                    one(f"{kind}: no-op pilots --prefetch 10, 16 pilots, {batch_tokens} tokens", run_noop, server,
                        batch_tokens, 16, 10)
        if kind == "cluster" and 16 in pilots:
            with servers() as server:
                one(f"{kind}: picas run, 16 pilots spread over the nodes", run_picas, server, tokens, 16, 1, True)
        if memory_tokens and kind == "pouchdb":
            with servers() as server:
                one(f"{kind}: memory of one picas run over {memory_tokens} tokens", run_memory, server,
                    memory_tokens)
        servers_close = getattr(servers, "close", None)
        if servers_close:
            servers_close()
    return {"figure": "real_pilots", "tokens": tokens, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="pouchdb,couchdb,cluster")
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--pilots", default="1,4,16")
    parser.add_argument("--batch-tokens", type=int, default=10_000, help="0 leaves the batch-mode row out")
    parser.add_argument("--memory-tokens", type=int, default=10_000, help="0 leaves the memory row out")
    parser.add_argument("--upstream-python", help="python of a venv with picas==1.1.2 (rows skipped without it)")
    parser.add_argument("--no-upstream", action="store_true", help="leave the picas 1.1.2 rows out")
    args = parser.parse_args()
    emit(measure(tuple(args.servers.split(",")), args.tokens, tuple(int(p) for p in args.pilots.split(",")),
                 args.batch_tokens, args.memory_tokens, args.upstream_python, not args.no_upstream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
