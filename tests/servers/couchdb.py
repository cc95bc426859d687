"""Real Apache CouchDB 3.4 for the tests: one node, or a cluster of three, from the shared relocatable build.

The build (Erlang runtime included) is a tarball in ``../shared/couchdb`` next
to the clone; ``$PICAS_COUCHDB_TARBALL`` points elsewhere.  It is read-only
there, so it is unpacked once per test session into a temporary directory, and
every server gets a data directory of its own.  Its scripts do the rest:
``start-node.sh`` / ``start-cluster.sh`` start and join nodes on 127.0.0.1,
``stop-node.sh DATADIR kill`` SIGKILLs one (what the fault tests do).

Test settings, dropped into each node's ``etc/local.d`` before its first start:

* ``[chttpd_auth] iterations = 1000``: the default 600,000 pbkdf2 rounds cost
  about 0.15 s of CPU at each user's first login, on 2 shared cores;
* ``[log] level = warning``: the info level logs every request to disk.

The benchmarks use the same classes (``benchmarks/server_kinds.py``).
"""
from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests

REPO = Path(__file__).resolve().parents[2]
TARBALL_NAME = "couchdb-3.4.3-debian12-otp25-quickjs.tar.gz"
#: Debian packages the build needs at run time (scripts/test.sh installs them in CI).
RUNTIME_PACKAGES = ("libicu72", "libssl3", "curl")
ADMIN_USER = "admin"

_TEST_INI = """; written by the picas test fixtures
[chttpd_auth]
iterations = 1000

[log]
level = warning
"""


class Unavailable(Exception):
    """CouchDB cannot run here; the message says why (a missing tarball or runtime library)."""


def tarball() -> Path:
    explicit = os.environ.get("PICAS_COUCHDB_TARBALL")
    return Path(explicit) if explicit else REPO.parent / "shared" / "couchdb" / TARBALL_NAME


def _has_library(name: str) -> bool:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: let the start say it
    return name in out


def check_runtime() -> None:
    """Raise :class:`Unavailable` with the reason when the build cannot run on this machine."""
    path = tarball()
    if not path.is_file():
        raise Unavailable(f"the CouchDB build {path} is missing (set PICAS_COUCHDB_TARBALL)")
    missing = [lib for lib in ("libicuuc.so.72", "libcrypto.so.3") if not _has_library(lib)]
    if shutil.which("curl") is None:
        missing.append("curl")
    if missing:
        raise Unavailable(f"CouchDB needs {', '.join(missing)}: apt-get install -y {' '.join(RUNTIME_PACKAGES)}")


def unpack(into: Path) -> Path:
    """Unpack the build under ``into`` and return the directory holding start-node.sh."""
    check_runtime()
    with tarfile.open(tarball()) as archive:
        archive.extractall(into)
    found = sorted(into.glob("*/start-node.sh"))
    if not found:
        raise Unavailable(f"{tarball()} holds no start-node.sh")
    return found[0].parent


def free_ports(count: int, attempts: int = 200) -> int:
    """A base port such that ``count`` consecutive ports are free (a cluster's nodes listen on base..base+n-1)."""
    for _ in range(attempts):
        base = random.randint(20000, 55000)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise Unavailable(f"no {count} consecutive free ports found")


def _wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/_up", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise Unavailable(f"CouchDB at {url} did not come up within {timeout:g} s")


@dataclass
class CouchDB:
    """A running CouchDB: one node, or the nodes of one cluster (node *i* on ``base_port + i``).

    The handle looks like the pouchdb-server one the tests already use:
    ``url`` (the first node), ``admin`` and ``admin_url``; ``urls`` lists every
    node, and ``kind`` is "couchdb" or "cluster".
    """

    home: Path
    data_dir: Path
    base_port: int
    nodes: int
    admin: tuple[str, str]
    kind: str
    env: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ addresses
    def node_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.base_port + index}"

    @property
    def url(self) -> str:
        return self.node_url(0)

    @property
    def urls(self) -> list[str]:
        return [self.node_url(i) for i in range(self.nodes)]

    @property
    def admin_url(self) -> str:
        user, password = self.admin
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.base_port}"

    def node_dir(self, index: int) -> Path:
        return self.data_dir / f"node{index + 1}" if self.kind == "cluster" else self.data_dir

    def node_name(self, index: int) -> str:
        return f"couchdb-{self.base_port + index}@127.0.0.1"

    # ------------------------------------------------------------------ lifecycle
    def _run(self, *args: str, env: dict | None = None, timeout: float = 180.0) -> str:
        proc = subprocess.run([str(self.home / args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "COUCHDB_LOG_LEVEL": "warning", **(env or {})})
        if proc.returncode != 0:
            raise Unavailable(f"{' '.join(args)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def _prepare(self, index: int) -> None:
        local_d = self.node_dir(index) / "etc" / "local.d"
        local_d.mkdir(parents=True, exist_ok=True)
        (local_d / "picas-tests.ini").write_text(_TEST_INI)

    def start(self) -> "CouchDB":
        for index in range(self.nodes):
            self._prepare(index)
        password = self.admin[1]
        if self.kind == "cluster":
            self._run("start-cluster.sh", str(self.base_port), str(self.data_dir), password, str(self.nodes))
            self._load_cluster_env()
            self._wait_members()
        else:
            self._run("start-node.sh", str(self.base_port), str(self.data_dir), password)
        for index in range(self.nodes):
            _wait_up(self.node_url(index))
        return self

    def _load_cluster_env(self) -> None:
        env = {"COUCHDB_SINGLE_NODE": "false"}
        for line in (self.data_dir / "cluster.env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name.startswith("COUCHDB_"):
                env[name] = value
        # Every node shares node 1's admin hash (one salt), as start-cluster.sh arranged it.
        for line in (self.node_dir(0) / "etc" / "local.ini").read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == self.admin[0] and value.strip().startswith("-pbkdf2"):
                env["COUCHDB_ADMIN_HASH"] = value.strip()
        self.env = env

    def _wait_members(self, timeout: float = 60.0) -> None:
        """Until every live node sees every other one connected (a restarted node must rejoin first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen = [len(requests.get(f"{url}/_membership", auth=self.admin, timeout=5).json()["all_nodes"])
                        for index, url in enumerate(self.urls) if self.node_running(index)]
                if seen and min(seen) >= sum(self.node_running(i) for i in range(self.nodes)):
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise Unavailable("the cluster's nodes did not see each other within 60 s")

    def node_pid(self, index: int) -> int | None:
        try:
            return int((self.node_dir(index) / "couchdb.pid").read_text())
        except (OSError, ValueError):
            return None

    def node_running(self, index: int) -> bool:
        pid = self.node_pid(index)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def kill_node(self, index: int) -> None:
        """SIGKILL one node: no flush, no goodbye to the others (a crashed machine)."""
        self._run("stop-node.sh", str(self.node_dir(index)), "kill")

    def start_node(self, index: int) -> None:
        """Start a stopped node again with its old data; it rejoins and catches up by itself."""
        if self.node_running(index):
            return
        if self.kind == "cluster":
            self._run("start-node.sh", str(self.base_port + index), str(self.node_dir(index)), self.admin[1],
                      self.node_name(index), env=self.env)
            _wait_up(self.node_url(index))
            self._wait_members()
        else:
            self._run("start-node.sh", str(self.base_port), str(self.data_dir), self.admin[1])
            _wait_up(self.url)

    def ensure_up(self) -> None:
        """Bring back any node an earlier test stopped, so that one fault test does not spoil the next."""
        for index in range(self.nodes):
            if not self.node_running(index):
                self.start_node(index)

    def stop(self) -> None:
        """Stop every node at once (SIGKILL: the data directories are thrown away with the session)."""
        for index in range(self.nodes):
            pid = self.node_pid(index)
            if pid is not None and self.node_running(index):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            (self.node_dir(index) / "couchdb.pid").unlink(missing_ok=True)


def start(kind: str, root: Path | None = None) -> CouchDB:
    """Unpack the build (once per ``root``) and start a "couchdb" single node or a 3-node "cluster"."""
    root = Path(root or tempfile.mkdtemp(prefix="picas-couchdb-"))
    homes = sorted(root.glob("*/start-node.sh"))
    home = homes[0].parent if homes else unpack(root)
    nodes = 3 if kind == "cluster" else 1
    data_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
    admin = (ADMIN_USER, secrets.token_hex(12))
    last: Exception | None = None
    for _ in range(3):  # a port found free can be taken before the node binds it
        server = CouchDB(home=home, data_dir=data_dir, base_port=free_ports(nodes), nodes=nodes, admin=admin,
                         kind=kind)
        try:
            return server.start()
        except Unavailable as exc:
            last = exc
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
            data_dir.mkdir()
    raise Unavailable(f"CouchDB ({kind}) did not start: {last}")


def create_db(server, name: str, *, q: int | None = None, n: int | None = None) -> None:
    """A database that only the admin may read (``_security`` members), as picas creates them."""
    params = {key: value for key, value in (("q", q), ("n", n)) if value}
    response = requests.put(f"{server.url}/{name}", params=params, auth=server.admin, timeout=60)
    assert response.status_code in (201, 202), f"creating {name}: {response.status_code} {response.text}"
    security = {"admins": {"names": [server.admin[0]], "roles": []},
                "members": {"names": [server.admin[0]], "roles": []}}
    response = requests.put(f"{server.url}/{name}/_security", json=security, auth=server.admin, timeout=60)
    assert response.ok, f"setting _security on {name}: {response.status_code} {response.text}"
