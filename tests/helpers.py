"""Small helpers shared by the core tests: a client on the test database, token pools, pilot processes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from picas.core import token as tok
from picas.core import views
from picas.core.client import CouchClient
from picas.defaults import DESIGN
from picas.core.retry import Backoff
from picas.support import procgroup


def client_for(server, db_name: str, deploy: bool = True, **kwargs) -> CouchClient:
    user, password = server.admin
    client = CouchClient(server.url, db_name, username=user, password=password, **kwargs)
    if deploy:
        views.deploy(client)
    return client


def push(client: CouchClient, inputs: list, prefix: str = "token_") -> list[str]:
    """Push one token per input with random, uniformly spread ids, as 'picas push' makes them."""
    docs = [tok.new_token(value, f"{prefix}{uuid.uuid4().hex[:16]}") for value in inputs]
    for start in range(0, len(docs), 1000):
        results = client.bulk_save(docs[start:start + 1000])
        assert all(r.ok for r in results)
    return [d["_id"] for d in docs]


def overview(client: CouchClient) -> dict:
    return {row.key: row.value for row in client.view(DESIGN, "overview_total", group=True)}


def pilot_env(server, db_name: str, **extra: str) -> dict:
    user, password = server.admin
    env = {**os.environ, "PICAS_HOST_URL": server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
           "PICAS_PASSWORD": password, "PICAS_CONFIG": "/nonexistent/picas-test-conf.yml"}
    env.update(extra)
    return env


def cli_env(server, db_name: str, config: Path) -> dict:
    """The operator's connection in PICAS_* variables for a command run in-process (click's CliRunner).

    Every other PICAS_* setting is None, which CliRunner unsets, so the
    shell running the tests cannot leak a profile, a CA bundle or debug
    output into them; ``config`` is the config file the commands read and write.
    """
    user, password = server.admin
    return {"PICAS_HOST_URL": server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
            "PICAS_PASSWORD": password, "PICAS_CONFIG": str(config), "PICAS_PROFILE": None,
            "PICAS_VERIFY": None, "PICAS_DEBUG": None}


def start_pilot(server, db_name: str, *args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """A real pilot process: 'python -m picas run ...' with the test server's settings."""
    return subprocess.Popen([sys.executable, "-m", "picas", "run", *args], env=env or pilot_env(server, db_name),
                            stdout=popen.pop("stdout", subprocess.PIPE), stderr=popen.pop("stderr", subprocess.PIPE),
                            text=True, **popen)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def process_gone(pid: int) -> bool:
    """True when the process has exited (a zombie that nobody reaps counts as gone)."""
    return not procgroup.process_alive(pid)


def fast_retry() -> Backoff:
    return Backoff(base=0.05, cap=0.2, attempts=2)


def side_effect_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().split():
            counts[line] = counts.get(line, 0) + 1
    return counts


class StandInServer:
    """A TCP listener on 127.0.0.1 that hands each connection to :meth:`handle` in a thread of its own.

    The base of the network stand-ins (an answer-dropping proxy, a TLS
    terminator, an idle-closing server): they differ only in what they do
    with a connection.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()
