"""Shared fixtures: tests talk to real servers: pouchdb-server, and Apache CouchDB 3.4 (one node, three).

The server is :class:`picas.server.local.LocalServer`, the class behind ``picas
server start``, so every test run also exercises that code path.  The
pouchdb-server executable comes from :func:`picas.server.local.find_binary`: the
per-user install (made on first use, about 30 s) or ``$PICAS_POUCHDB_SERVER``.

pouchdb-server has no ``require_valid_user``, so anonymous clients can reach
any database whose ``_security`` lists no members; ``db_name`` therefore
always sets ``_security``, as a real deployment must.

The tests that define picas' behaviour also run against CouchDB: ``any_server``
is parametrized over :data:`SERVER_KINDS` (pouchdb-server, a CouchDB single
node, a 3-node CouchDB cluster with n=3, q=2) and ``any_db`` is a fresh database
on it.  The CouchDB servers come from ``tests/servers/couchdb.py``, started once
per session when a test first needs them.  Without the shared CouchDB build a
test skips, saying why; with ``CI=true`` it fails instead.
"""
from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from picas.errors import LocalServerError
from picas.server.local import LocalServer, find_binary, free_port
from tests.servers import couchdb

#: The server kinds ``any_server`` runs a test against.
SERVER_KINDS = ("pouchdb", "couchdb", "cluster")

ADMIN_USER = "admin"


@dataclass
class CouchServer:
    """What a test needs to reach a running server: its URL and the admin login."""

    server: LocalServer
    admin: tuple[str, str]
    kind: str = "pouchdb"

    @property
    def urls(self) -> list[str]:
        return [self.url]

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


# --------------------------------------------------------------------------- CouchDB, and every kind at once

_COUCHDB_FAILURES: dict[str, str] = {}


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs every server kind: {message}")
    pytest.skip(message)


def _couchdb(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[couchdb.CouchDB]:
    if kind in _COUCHDB_FAILURES:
        _unavailable(_COUCHDB_FAILURES[kind])
    root = tmp_path_factory.getbasetemp() / "couchdb"
    root.mkdir(exist_ok=True)
    try:
        server = couchdb.start(kind, root)
    except couchdb.Unavailable as exc:
        _COUCHDB_FAILURES[kind] = str(exc)
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def couchdb_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[couchdb.CouchDB]:
    """A CouchDB 3.4 single node for the whole session."""
    yield from _couchdb("couchdb", tmp_path_factory)


@pytest.fixture(scope="session")
def couchdb_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[couchdb.CouchDB]:
    """A 3-node CouchDB 3.4 cluster for the whole session (new databases: n=3 copies, q=2 shards)."""
    yield from _couchdb("cluster", tmp_path_factory)


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def any_server(request: pytest.FixtureRequest, server_kind: str):
    """The server of this test's kind, with every node up (a fault test may have stopped some)."""
    if server_kind == "pouchdb":
        handle = request.getfixturevalue("couch_server")
        if not handle.server.status()["running"]:
            handle.server.start(wait=30)
        return handle
    handle = request.getfixturevalue("couchdb_cluster" if server_kind == "cluster" else "couchdb_node")
    handle.ensure_up()
    return handle


@pytest.fixture
def any_db(any_server) -> Iterator[str]:
    """A fresh database on ``any_server``, readable only by the admin, deleted after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    couchdb.create_db(any_server, name)
    try:
        yield name
    finally:
        try:
            requests.delete(f"{any_server.url}/{name}", auth=any_server.admin, timeout=30)
        except requests.RequestException:
            pass  # a test left the server down; the session fixture stops it anyway
