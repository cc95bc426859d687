"""Plumbing shared by the benchmarks: throw-away servers, token pools, warm indexes, JSON lines.

Every figure must be measured on a server that no other figure has loaded
(pouchdb-server keeps everything in one Node process, so a database left
behind by an earlier figure slows the next one), on pools shaped exactly as
``picas push`` shapes them (``token_<16 hex>`` ids, every classic field), and
with the view indexes built *before* the clock starts: otherwise the first
query of a timed run pays for indexing the whole pool and the figure measures
the server's indexer instead of the client.  This module is the one place
that does those three things, so that every figure does them the same way.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.errors import LocalServerError
from picas.pool.push import new_token_id
from picas.server.local import LocalServer, find_binary, free_port
from picas.core.views import deploy

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
#: The reference instruments (server ceilings, picas 1.1.2); CI and developers keep shared/ beside the clone.
#: PICAS_BENCH_SHARED points elsewhere (or at nothing, to check that their absence is handled).
SHARED_BENCH = Path(os.environ.get("PICAS_BENCH_SHARED") or REPO.parent / "shared" / "bench")
RESULTS = BENCH_DIR / "results"

#: Index builds of 10^6 documents take minutes on pouchdb-server: the client must wait, not time out.
LONG_TIMEOUT = 3600.0


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout carries nothing but the JSON lines."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ServerURL(str):
    """A server's URL that also knows the server's pid, so that a figure can tell how busy the server was."""

    pid: int | None = None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server process has used so far; None if it cannot be read."""
        try:
            with open(f"/proc/{self.pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def fresh_server(in_memory: bool = True, attempts: int = 3) -> Iterator[ServerURL]:
    """Start a private pouchdb-server (no admin, its own temp dir, a free port); yield its URL.

    A fresh server per figure keeps figures independent: an in-memory
    pouchdb-server grows with every database it has held, and a previous
    figure's leftovers would tax the next one.  A port found free can be
    taken before the server binds it, so a clash is retried on another port.
    """
    tmp = Path(tempfile.mkdtemp(prefix="picas-bench-server-"))
    binary = find_binary()
    server = None
    try:
        for attempt in range(attempts):
            server = LocalServer(tmp / f"server{attempt}", port=free_port(), in_memory=in_memory, binary=binary)
            try:
                server.start(wait=30)
                break
            except LocalServerError as exc:
                server = None
                if "already in use" not in str(exc) or attempt + 1 == attempts:
                    raise
        url = ServerURL(server.url)
        url.pid = server.pid
        yield url
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary directory for one measurement's logs and reports, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def client_for(url: str, db: str, timeout: float = LONG_TIMEOUT) -> CouchClient:
    """A client whose timeout outlasts an index build (the default 30 s would retry a long build)."""
    return CouchClient(url, db, timeout=timeout)


def create_tokens(client: CouchClient, count: int, *, payload: object = "true", batch: int = 1000,
                  shape: Callable[[dict, int], dict] | None = None) -> float:
    """Create ``count`` tokens in ``_bulk_docs`` batches; return the seconds it took.

    Ids and bodies are the ones ``picas push`` makes (:func:`picas.pool.push.new_token_id`,
    :func:`picas.core.token.new_token`), because the claim protocol spreads pilots
    by the shape of the ids: a pool with ``token_0..token_N`` ids would be
    measured on a key space no user pool has.  ``shape(doc, i)`` may turn a
    fresh token into another state (locked, done...) before it is sent.
    Bodies are dropped after each batch so that 10^6 tokens fit in memory.
    """
    started = time.perf_counter()
    made = 0
    while made < count:
        size = min(batch, count - made)
        docs = []
        for i in range(made, made + size):
            doc = tok.new_token(payload, new_token_id())
            docs.append(shape(doc, i) if shape else doc)
        failed = [r for r in client.bulk_save(docs) if not r.ok]
        if failed:
            raise RuntimeError(f"_bulk_docs refused {len(failed)} of {size} tokens, e.g. {failed[0]}")
        made += size
    return time.perf_counter() - started


def make_pool(url: str, db: str, count: int, **kwargs) -> tuple[CouchClient, float]:
    """A new database with the picas views deployed and ``count`` tokens; returns (client, seconds)."""
    client = client_for(url, db)
    client.create_db()
    deploy(client)
    return client, create_tokens(client, count, **kwargs)


def warm_views(client: CouchClient, views: Iterable[str], design: str = "Monitor") -> dict[str, float]:
    """Bring each view's index up to date; return the seconds each build took.

    pouchdb-server keeps one index per view and builds it on that view's
    first query, so every view a timed run will read is queried once here.
    """
    took = {}
    for view in views:
        started = time.perf_counter()
        if view == "overview_total":
            client.view(design, view, group=True)
        else:
            client.view(design, view, limit=1)
        took[view] = round(time.perf_counter() - started, 3)
    return took


def counts(client: CouchClient, design: str = "Monitor") -> dict[str, int]:
    """Tokens per state from the overview reduce (for checking that a run did what it claims)."""
    return {row.key: row.value for row in client.view(design, "overview_total", group=True).rows}


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, mean and 90th percentile in milliseconds: the median is the figure, the rest show the tail."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
            "p90_ms": round(p90 * 1000, 3), "samples": len(ordered)}


def emit(record: dict) -> None:
    """Print one figure as one JSON line on stdout (the machine-readable result)."""
    print(json.dumps(record, sort_keys=False), flush=True)


def compile_checkout(root: Path = REPO) -> None:
    """Write the bytecode of the picas under ``root``, as ``pip install`` does for a user.

    A checkout used in place (an editable install, ``PYTHONPATH``) under
    ``PYTHONDONTWRITEBYTECODE`` would compile every module it changed at every
    start: 16 pilots starting at once would be measured compiling picas.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "picas")], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def child_env(upstream: bool = False) -> dict:
    """The environment for benchmark child processes: no PICAS_* settings, proxies off (servers are local).

    For the picas 1.1.2 reference, PYTHONPATH is dropped: if it pointed at
    this checkout, the "upstream" pilots would quietly import this project.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICAS_") or k == "PICAS_POUCHDB_SERVER"}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # A developer's own ~/.config/picas/conf.yml (a profile, credentials) must not steer a benchmark.
    env["PICAS_CONFIG"] = str(Path(tempfile.gettempdir()) / "picas-bench-no-config.yml")
    if upstream:
        env.pop("PYTHONPATH", None)
    return env


def run_json(command: list[str], timeout: float, upstream: bool = False, cwd: str | None = None) -> dict:
    """Run a measuring script that prints one JSON line; return that line parsed (or raise with its stderr)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=child_env(upstream),
                          cwd=cwd or tempfile.gettempdir())
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{Path(command[1]).name} exited {done.returncode}: " + " | ".join(tail))
    return json.loads(lines[-1])
