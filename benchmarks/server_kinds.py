"""Tokens per second of ``picas run`` on each kind of server, and exactly-once on the cluster (not a test).

Also a small library: :class:`Server`, :func:`pouchdb` and :func:`shared`
give other benchmarks (``real_pilots.py``) a server of each kind.

For each server kind (pouchdb-server, a CouchDB 3.4 single node, a 3-node
CouchDB cluster with n=3, q=2) a fresh database gets ``--tokens`` bash tokens,
each of which appends its own id to a file, and ``--pilots`` real ``picas
run`` processes drain it; on the cluster each pilot is given every node,
starting from another one, so the pilots spread over the nodes.  Printed per
run: wall time (pilot processes start to last exit), tokens/s, tokens run
twice and never run (from the payloads' own side effects), documents left
with conflicting leaves, and requests per token as the pilots counted them.

    python benchmarks/server_kinds.py                       # every kind, 16 pilots, 2,000 tokens, once
    python benchmarks/server_kinds.py --kinds cluster --repeat 3
    python benchmarks/server_kinds.py --kinds pouchdb couchdb --tokens 1000

pouchdb-server runs on disk (LevelDB), like CouchDB, unless ``--pouchdb-memory``.
The CouchDB build comes from ``../shared/couchdb`` (see tests/servers/couchdb.py).
Each JSON line is one run; a table follows on stderr.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

BENCH_DIR = Path(__file__).resolve().parent
for _path in (str(BENCH_DIR.parent), str(BENCH_DIR)):  # importable as benchmarks.server_kinds and as server_kinds
    if _path not in sys.path:
        sys.path.insert(0, _path)

from common import child_env, emit, log, warm_views  # noqa: E402
from picas.core import token as tok  # noqa: E402
from picas.core.client import CouchClient  # noqa: E402
from picas.core.views import deploy  # noqa: E402
from picas.pool.push import new_token_id  # noqa: E402
from tests.servers import couchdb  # noqa: E402

Unavailable = couchdb.Unavailable

KINDS = ("pouchdb", "couchdb", "cluster")
RUN_TIMEOUT = 3600.0


# ---------------------------------------------------------------------- servers of each kind (a library too)

@dataclass
class Server:
    """A running server of one kind, as the benchmarks need it (``benchmarks/real_pilots.py`` uses it too).

    ``url`` is the first node without credentials, ``urls`` every node,
    ``admin_url`` the first node with the admin's credentials (the plain URL
    when the server has no admin), ``pids`` the server processes.
    """

    kind: str
    urls: list[str]
    admin: tuple[str, str] | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def admin_url(self) -> str:
        if self.admin is None:
            return self.url
        user, password = self.admin
        return self.url.replace("://", f"://{quote(user, safe='')}:{quote(password, safe='')}@", 1)

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server processes have used so far; None if it cannot be read."""
        total = 0.0
        try:
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None
        return total if self.pids else None

    def pilot_env(self) -> dict:
        """What a pilot process needs besides ``--url``/``--db``: the credentials, if any."""
        if self.admin is None:
            return {}
        return {"PICAS_USERNAME": self.admin[0], "PICAS_PASSWORD": self.admin[1]}

    def client(self, db: str) -> CouchClient:
        user, password = self.admin or (None, None)
        return CouchClient(self.url, db, username=user, password=password, timeout=600)


def pouchdb(url) -> Server:
    """A pouchdb-server started by :func:`common.fresh_server` (no admin); ``url`` carries its pid."""
    pid = getattr(url, "pid", None)
    return Server(kind="pouchdb", urls=[str(url)], pids=[pid] if pid else [])


def _couch_server(handle: couchdb.CouchDB) -> Server:
    return Server(kind=handle.kind, urls=handle.urls, admin=handle.admin,
                  pids=[pid for pid in (handle.node_pid(i) for i in range(handle.nodes)) if pid])


def shared(kind: str, root: Path | None = None):
    """One CouchDB of ``kind`` ("couchdb" or "cluster"), started now, for several figures.

    Returns a callable: each call is a context manager yielding the same
    :class:`Server` (every node up again, in case a figure stopped one);
    ``.close()`` stops it.  Raises :class:`Unavailable` when CouchDB cannot run
    here (the tarball or a runtime library is missing).
    """
    handle = couchdb.start(kind, root)

    @contextlib.contextmanager
    def servers() -> Iterator[Server]:
        handle.ensure_up()
        yield _couch_server(handle)

    servers.close = handle.stop  # type: ignore[attr-defined]
    return servers


@contextlib.contextmanager
def server_of(kind: str, root: Path, pouchdb_memory: bool) -> Iterator[Server]:
    """A running server of ``kind`` with an admin, for this script's runs."""
    if kind == "pouchdb":
        from tests.conftest import start_local_server
        handle = start_local_server(root / "pouchdb", in_memory=pouchdb_memory)
        try:
            yield Server(kind="pouchdb", urls=[handle.url], admin=handle.admin, pids=[handle.server.pid])
        finally:
            handle.server.stop()
        return
    servers = shared(kind, root)
    try:
        with servers() as server:
            yield server
    finally:
        servers.close()


def _client(server: Server, db: str) -> CouchClient:
    user, password = server.admin
    return CouchClient(",".join(server.urls), db, username=user, password=password, timeout=600)


def _push(client: CouchClient, tokens: int, sink: Path) -> list[str]:
    docs = [tok.new_token(f"echo $PICAS_TOKEN_ID >> {sink}", new_token_id()) for _ in range(tokens)]
    for start in range(0, tokens, 1000):
        failed = [r for r in client.bulk_save(docs[start:start + 1000]) if not r.ok]
        if failed:
            raise RuntimeError(f"_bulk_docs refused {len(failed)} tokens, e.g. {failed[0]}")
    return [doc["_id"] for doc in docs]


def conflicted(client: CouchClient) -> int:
    """Documents (tokens and claim locks) that still carry conflicting live leaves."""
    count, start = 0, None
    while True:
        params: dict = {"include_docs": True, "conflicts": True, "limit": 1001}
        if start is not None:
            params["startkey"] = start
        rows = client.all_docs(**params).rows
        count += sum(1 for row in rows[:1000] if row.doc and row.doc.get("_conflicts"))
        if len(rows) <= 1000:
            return count
        start = rows[1000].id


def run_once(server, kind: str, tokens: int, pilots: int, workdir: Path) -> dict:
    db = f"kinds_{kind}_{uuid.uuid4().hex[:8]}"
    couchdb.create_db(server, db)
    client = _client(server, db)
    deploy(client)
    sink = workdir / f"{db}.txt"
    ids = _push(client, tokens, sink)
    warm_views(client, ["todo"])
    user, password = server.admin
    env = child_env()
    env.update(PICAS_DATABASE=db, PICAS_USERNAME=user, PICAS_PASSWORD=password)
    procs = []
    server_cpu = server.cpu_seconds()
    load = os.getloadavg()[0]
    started = time.monotonic()
    for i in range(pilots):
        urls = server.urls[i % len(server.urls):] + server.urls[:i % len(server.urls)]
        procs.append(subprocess.Popen([sys.executable, "-m", "picas", "run", "-q", "--workdir", str(workdir / db)],
                                      env={**env, "PICAS_HOST_URL": ",".join(urls)}, cwd=workdir,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, RUN_TIMEOUT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}")
    wall = time.monotonic() - started
    if server_cpu is not None:
        server_cpu = server.cpu_seconds() - server_cpu
    executed = collections.Counter()
    if sink.exists():
        executed.update(line for line in sink.read_text().split() if line)
    done = len(executed)
    return {
        "kind": kind, "tokens": tokens, "pilots": pilots, "wall_s": round(wall, 2),
        "tokens_per_s": round(done / wall, 1) if wall else None,
        "duplicates": sum(c - 1 for c in executed.values() if c > 1),
        "missing": len(set(ids) - set(executed)),
        # CPU the server processes spent in the run, per token: unlike tokens/s, it does not depend on how busy
        # the machine is (2 shared cores here); the load average at the start says how busy it was.
        "server_cpu_ms_per_token": round(server_cpu / done * 1000, 2) if server_cpu is not None and done else None,
        "load_at_start": round(load, 1),
        "conflicted_docs": conflicted(client), "overview": {r.key: r.value for r in client.view(
            "Monitor", "overview_total", group=True).rows},
        "failed_pilots": len(errors), "errors": errors[:3],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--pilots", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="runs per kind, each on a fresh database")
    parser.add_argument("--pouchdb-memory", action="store_true", help="run pouchdb-server in memory")
    args = parser.parse_args()
    rows = []
    root = Path(tempfile.mkdtemp(prefix="picas-bench-kinds-"))
    for kind in args.kinds:
        log(f"starting {kind}")
        with server_of(kind, root, args.pouchdb_memory) as server:
            for run in range(args.repeat):
                log(f"{kind}: run {run + 1}/{args.repeat}, {args.pilots} pilots, {args.tokens} tokens")
                row = run_once(server, kind, args.tokens, args.pilots, root)
                emit(row)
                rows.append(row)
    print(f"{'kind':8} {'tokens':>6} {'pilots':>6} {'wall s':>7} {'tok/s':>6} {'twice':>5} {'never':>5} "
          f"{'conflicted':>10} {'server ms/tok':>13} {'load':>5}", file=sys.stderr)
    for row in rows:
        print(f"{row['kind']:8} {row['tokens']:6} {row['pilots']:6} {row['wall_s']:7.1f} {row['tokens_per_s']:6} "
              f"{row['duplicates']:5} {row['missing']:5} {row['conflicted_docs']:10} "
              f"{row['server_cpu_ms_per_token'] or '-':>13} {row['load_at_start']:5}", file=sys.stderr)
    return 0 if all(not row["failed_pilots"] for row in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
