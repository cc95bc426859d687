"""Shared fixtures: tests talk to a real pouchdb-server, started the same way users start one.

The server is :class:`picas.server.local.LocalServer`, the class behind ``picas
server start``, so every test run also exercises that code path.  The
pouchdb-server executable comes from :func:`picas.server.local.find_binary`: the
per-user install (made on first use, about 30 s) or ``$PICAS_POUCHDB_SERVER``.

pouchdb-server has no ``require_valid_user``, so anonymous clients can reach
any database whose ``_security`` lists no members; ``db_name`` therefore
always sets ``_security``, as a real deployment must.
"""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from picas.errors import LocalServerError
from picas.server.local import LocalServer, find_binary, free_port

ADMIN_USER = "admin"


@dataclass
class CouchServer:
    """What a test needs to reach a running server: its URL and the admin login."""

    server: LocalServer
    admin: tuple[str, str]

    @property
    def url(self) -> str:
        """The base URL without credentials."""
        return self.server.url

    @property
    def admin_url(self) -> str:
        """The base URL with the admin credentials embedded (http://admin:pw@host:port)."""
        return self.server.admin_url


def start_local_server(directory: Path, in_memory: bool, attempts: int = 3) -> CouchServer:
    """Start a LocalServer with a random admin password on a free port.

    A port found free can be taken by a parallel process before the server
    binds it, so a port clash is retried on another port.
    """
    admin = (ADMIN_USER, secrets.token_urlsafe(16))
    binary = find_binary()
    for attempt in range(attempts):
        server = LocalServer(directory, port=free_port(), admin=admin, in_memory=in_memory, binary=binary)
        try:
            server.start(wait=30)
        except LocalServerError as exc:
            if "already in use" in str(exc) and attempt + 1 < attempts:
                continue
            raise
        return CouchServer(server=server, admin=admin)
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture(scope="session")
def couch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CouchServer]:
    """One in-memory server with an admin for the whole session (ready in well under a second)."""
    handle = start_local_server(tmp_path_factory.mktemp("couch_server"), in_memory=True)
    try:
        yield handle
    finally:
        handle.server.stop()


@pytest.fixture
def db_name(couch_server: CouchServer) -> Iterator[str]:
    """A fresh database, readable only by the admin, deleted after the test.

    If an earlier test crashed the shared server (pouchdb-server dies on some
    requests, such as a non-admin PUT of a new database), it is started again
    here so that one crash does not fail every later test.
    """
    if not couch_server.server.status()["running"]:
        couch_server.server.start(wait=30)
    name = f"test_{uuid.uuid4().hex[:12]}"
    base = f"{couch_server.url}/{name}"
    auth = couch_server.admin
    response = requests.put(base, auth=auth, timeout=30)
    assert response.status_code in (201, 202), f"creating {name}: {response.status_code} {response.text}"
    security = {"admins": {"names": [ADMIN_USER], "roles": []}, "members": {"names": [ADMIN_USER], "roles": []}}
    response = requests.put(f"{base}/_security", json=security, auth=auth, timeout=30)
    assert response.ok, f"setting _security on {name}: {response.status_code} {response.text}"
    try:
        yield name
    finally:
        if couch_server.server.status()["running"]:
            requests.delete(base, auth=auth, timeout=30)


@pytest.fixture
def disk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CouchServer]:
    """A separate on-disk server (own directory, port and admin) for tests that restart or break it."""
    handle = start_local_server(tmp_path_factory.mktemp("disk_server"), in_memory=False)
    try:
        yield handle
    finally:
        handle.server.stop()
