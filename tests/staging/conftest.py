"""Real storage for the staging tests: WebDAV servers on loopback (anonymous and with basic auth), gfal2.

The WebDAV server is wsgidav on cheroot (``pip install wsgidav cheroot``, in
the test extra), each in a process of its own (:mod:`tests.staging.davserver`)
so that a test can kill it mid-transfer.  gfal2 is Debian's python3-gfal2
with its file and http plugins (scripts/test.sh installs them).  Without
either, a test skips locally and fails with ``CI=true``.
"""
from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from picas.server.local import free_port
from picas.staging.registry import Registry
from tests.staging.davserver import DavServer

IN_CI = os.environ.get("CI", "").lower() == "true"
#: Every backend that speaks WebDAV here: the built-in urllib3 one, and gfal2.
DAV_BACKENDS = ("http", "gfal2")


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"CI needs it: {message}")
    pytest.skip(message)


def require_wsgidav() -> None:
    if importlib.util.find_spec("wsgidav") is None or importlib.util.find_spec("cheroot") is None:
        unavailable("wsgidav/cheroot are not installed (pip install wsgidav cheroot)")


def require_gfal2() -> None:
    from picas.staging.backends.gfal import gfal2_problem, load_gfal2

    module = load_gfal2()
    if module is None:
        unavailable(f"gfal2 is not available ({gfal2_problem()}); apt-get install python3-gfal2 "
                    f"gfal2-plugin-file gfal2-plugin-http")
    plugins = {name.split("-")[0] for name in module.creat_context().get_plugin_names()}
    if not {"file", "http"} <= plugins:
        unavailable(f"gfal2 lacks its file/http plugins (has {sorted(plugins)}): "
                    f"apt-get install gfal2-plugin-file gfal2-plugin-http")


def start_dav(root: Path, **kwargs) -> DavServer:
    require_wsgidav()
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            return DavServer(root=root, port=free_port(), **kwargs).start(rate=kwargs.get("rate"))
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def dav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """One anonymous WebDAV server for the session; tests work in folders of their own."""
    server = start_dav(tmp_path_factory.mktemp("dav"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dav(dav_server: DavServer) -> Iterator[DavServer]:
    """The session's anonymous WebDAV server, restarted if an earlier test broke it."""
    if dav_server.proc is None or dav_server.proc.poll() is not None:
        dav_server.start()
    yield dav_server


@pytest.fixture
def area(dav: DavServer) -> tuple[str, Path]:
    """A fresh folder name on the WebDAV server: (its path below the root, its folder on disk)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    return name, dav.root / name


@pytest.fixture(scope="session")
def dav_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DavServer, dict]]:
    """A WebDAV server that wants basic auth, and an environment whose netrc holds the login."""
    user, password = "alice", f"pw-{uuid.uuid4().hex[:8]}"
    server = start_dav(tmp_path_factory.mktemp("dav_auth"), user=user, password=password)
    netrc = tmp_path_factory.mktemp("netrc") / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {user} password {password}\n")
    netrc.chmod(0o600)
    try:
        yield server, {"NETRC": str(netrc), "PATH": os.environ.get("PATH", "")}
    finally:
        server.stop()


@pytest.fixture(params=DAV_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend that speaks WebDAV; gfal2 skips locally (fails in CI) when it is missing."""
    if request.param == "gfal2":
        require_gfal2()
    return request.param


@pytest.fixture
def registry(backend_name: str) -> Iterator[Registry]:
    """A registry that uses only this backend for WebDAV (and for file://, gfal2 or the built-in one)."""
    names = ["gfal2"] if backend_name == "gfal2" else ["http", "file"]
    reg = Registry(names, environ={})
    try:
        yield reg
    finally:
        reg.close()
