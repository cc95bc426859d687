"""The managed local server, against a real pouchdb-server: lifecycle, errors, and the CLI."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from picas.server import local
from picas.cli.server_cmd import server as server_group
from picas.errors import LocalServerError
from picas.server.local import LocalServer, data_home, find_binary, free_port

CouchServer = Any  # the handle conftest's couch_server/disk_server fixtures yield (.server, .url, .admin, .admin_url)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- helpers without a server


def test_data_home_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PICAS_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_home() == Path.home() / ".local" / "share" / "picas"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "xdg" / "picas"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert data_home() == Path.home() / ".local" / "share" / "picas"
    monkeypatch.setenv("PICAS_DATA_HOME", str(tmp_path / "own"))
    assert data_home() == tmp_path / "own"


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535


def test_install_without_npm_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PICAS_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(LocalServerError) as caught:
        local.install(quiet=True)
    assert "npm" in str(caught.value) and "node" in str(caught.value)


def test_install_reports_npm_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("node", "exit 0"), ("npm", "echo 'npm error code E404' >&2; "
                                                   "echo 'npm error 404 Not Found - pouchdb-server' >&2; exit 1")):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    monkeypatch.setenv("PICAS_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    with pytest.raises(LocalServerError, match="404 Not Found - pouchdb-server"):
        local.install(quiet=True)
    assert not local.is_installed()


def test_find_binary_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PICAS_POUCHDB_SERVER", str(tmp_path / "missing"))
    with pytest.raises(LocalServerError, match="PICAS_POUCHDB_SERVER"):
        find_binary()
    fake = tmp_path / "my-pouchdb-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PICAS_POUCHDB_SERVER", str(fake))
    assert find_binary() == fake


def test_process_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "broken-server"
    fake.write_text("#!/bin/sh\necho 'Error: cannot open the flux capacitor' >&2\nexit 7\n")
    fake.chmod(0o755)
    srv = LocalServer(tmp_path / "data", port=free_port(), binary=fake)
    with pytest.raises(LocalServerError) as caught:
        srv.start(wait=5)
    message = str(caught.value)
    assert "status 7" in message and "flux capacitor" in message
    assert srv.status()["running"] is False
    assert srv.stop() is False


# --------------------------------------------------------------------------- a real server


def test_session_fixture_serves_a_protected_database(couch_server: CouchServer, db_name: str) -> None:
    info = requests.get(f"{couch_server.admin_url}/{db_name}", timeout=10)
    assert info.status_code == 200 and info.json()["db_name"] == db_name
    anonymous = requests.get(f"{couch_server.url}/{db_name}", timeout=10)
    assert anonymous.status_code == 401
    assert "admin" not in couch_server.url and couch_server.admin[1] in couch_server.admin_url


def test_on_disk_server_keeps_data_across_restart(disk_server: CouchServer) -> None:
    srv, auth, url = disk_server.server, disk_server.admin, disk_server.url
    first = srv.status()
    assert first["running"] is True and first["url"] == url and first["data_dir"] == str(srv.data_dir)
    assert requests.put(f"{url}/keep", auth=auth, timeout=10).status_code == 201
    created = requests.put(f"{url}/keep/doc1", json={"value": 42}, auth=auth, timeout=10)
    assert created.status_code == 201

    started = time.monotonic()
    srv.restart()
    assert time.monotonic() - started < 10
    second = srv.status()
    assert second["running"] is True and second["pid"] != first["pid"]
    doc = requests.get(f"{url}/keep/doc1", auth=auth, timeout=10)
    assert doc.status_code == 200 and doc.json()["value"] == 42
    # The admin password survives the rewrite of config.json on restart, and is stored hashed.
    assert srv.admin is not None and srv.admin[1] not in (srv.data_dir / "config.json").read_text()
    assert _mode(srv.data_dir / "config.json") == 0o600

    # Another LocalServer for the same directory (as another 'picas' process would be) sees and stops it.
    other = LocalServer(srv.data_dir, port=srv.port)
    assert other.status()["pid"] == second["pid"]
    assert other.stop() is True
    assert srv.status() == {**second, "running": False, "pid": None}
    assert srv.stop() is False  # stopping twice is fine
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_start_twice_for_one_directory_is_refused(disk_server: CouchServer) -> None:
    again = LocalServer(disk_server.server.data_dir, port=free_port())
    with pytest.raises(LocalServerError, match="already runs"):
        again.start()


def test_taken_port_gives_a_clear_error(disk_server: CouchServer, tmp_path: Path) -> None:
    port = disk_server.server.port
    second = LocalServer(tmp_path / "second", port=port, admin=("admin", "x"), in_memory=True)
    with pytest.raises(LocalServerError) as caught:
        second.start(wait=10)
    message = str(caught.value)
    assert f"port {port}" in message and "already in use" in message and "--port" in message
    assert second.status()["running"] is False
    # The first server was not disturbed.
    assert requests.get(disk_server.url, timeout=5).status_code == 200


def test_port_taken_between_check_and_bind_is_recognised(disk_server: CouchServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """pouchdb-server's own report of a taken port is a TypeError; it must still read as a port clash."""
    second = LocalServer(tmp_path / "race", port=disk_server.server.port, in_memory=True)
    monkeypatch.setattr(LocalServer, "_check_port_free", lambda self: None)
    with pytest.raises(LocalServerError, match="already in use"):
        second.start(wait=10)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the data home and the config file into tmp, reusing the already installed binary."""
    binary = str(find_binary())
    env = {
        "PICAS_DATA_HOME": str(tmp_path / "data-home"),
        "PICAS_CONFIG": str(tmp_path / "config" / "conf.yml"),
        "PICAS_POUCHDB_SERVER": binary,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("PICAS_HOST_URL", "PICAS_USERNAME", "PICAS_PASSWORD", "PICAS_DATABASE", "PICAS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    return env


def _stop_quietly(runner: CliRunner) -> None:
    runner.invoke(server_group, ["stop"])


def test_cli_start_status_stop(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    port = free_port()
    try:
        result = runner.invoke(server_group, ["start", "--port", str(port)])
        assert result.exit_code == 0, result.output
        url = f"http://127.0.0.1:{port}"
        assert url in result.output

        state_file = Path(cli_env["PICAS_DATA_HOME"]) / "server.json"
        assert _mode(state_file) == 0o600
        state = json.loads(state_file.read_text())
        assert state["port"] == port and state["username"] == "admin"
        password = state["password"]

        session = requests.get(f"{url}/_session", auth=("admin", password), timeout=10).json()
        assert session["userCtx"]["name"] == "admin"
        assert requests.get(f"{url}/_session", auth=("admin", "wrong"), timeout=10).status_code == 401
        assert requests.put(f"{url}/made_by_admin", auth=("admin", password), timeout=10).status_code == 201

        again = runner.invoke(server_group, ["start"])
        assert again.exit_code == 0 and "already running" in again.output

        status = runner.invoke(server_group, ["status"])
        assert status.exit_code == 0 and "running" in status.output and url in status.output
        pid = json.loads((Path(state["data_dir"]) / "server.pid").read_text())["pid"]
        assert str(pid) in status.output

        stopped = runner.invoke(server_group, ["stop"])
        assert stopped.exit_code == 0 and "stopped" in stopped.output
        status = runner.invoke(server_group, ["status"])
        assert status.exit_code == 3 and "not running" in status.output
        assert runner.invoke(server_group, ["stop"]).output.strip() == "pouchdb-server is not running"

        # A restart reuses port, data directory and password: the database is still there, the login works.
        restarted = runner.invoke(server_group, ["start"])
        assert restarted.exit_code == 0, restarted.output
        assert json.loads(state_file.read_text())["password"] == password
        assert requests.get(f"{url}/made_by_admin", auth=("admin", password), timeout=10).status_code == 200
    finally:
        _stop_quietly(runner)


def test_cli_start_writes_the_picas_config(cli_env: dict[str, str]) -> None:
    picas_config = pytest.importorskip("picas.config")
    runner = CliRunner()
    port = free_port()
    try:
        result = runner.invoke(server_group, ["start", "--port", str(port), "--in-memory"])
        assert result.exit_code == 0, result.output
        config_file = Path(cli_env["PICAS_CONFIG"])
        assert _mode(config_file) == 0o600
        profile = picas_config.load_file(config_file)["profiles"]["default"]
        assert profile["url"] == f"http://127.0.0.1:{port}"
        assert profile["username"] == "admin" and profile["database"] == "picas"
        session = requests.get(f"{profile['url']}/_session", auth=(profile["username"], profile["password"]),
                               timeout=10)
        assert session.json()["userCtx"]["name"] == "admin"
        assert requests.get(f"{profile['url']}/_session", timeout=10).json()["userCtx"]["name"] is None
    finally:
        _stop_quietly(runner)


def test_cli_start_keeps_a_configured_default_profile(cli_env: dict[str, str]) -> None:
    picas_config = pytest.importorskip("picas.config")
    config_file = Path(cli_env["PICAS_CONFIG"])
    picas_config.write_profile(config_file, "default", {"url": "https://couch.example.org:6984", "database": "run42"})
    runner = CliRunner()
    try:
        result = runner.invoke(server_group, ["start", "--port", str(free_port()), "--in-memory"])
        assert result.exit_code == 0, result.output
        assert "profile 'local'" in result.output
        profiles = picas_config.load_file(config_file)["profiles"]
        assert profiles["default"]["url"] == "https://couch.example.org:6984"
        assert profiles["local"]["username"] == "admin" and profiles["local"]["password"]
    finally:
        _stop_quietly(runner)


def test_cli_start_on_a_taken_port_fails_cleanly(cli_env: dict[str, str], disk_server: CouchServer) -> None:
    result = CliRunner().invoke(server_group, ["start", "--port", str(disk_server.server.port)])
    assert isinstance(result.exception, LocalServerError)
    assert "already in use" in str(result.exception)
    assert not (Path(cli_env["PICAS_DATA_HOME"]) / "server.json").exists()


def test_cli_help_has_examples() -> None:
    runner = CliRunner()
    for command in ("start", "stop", "status", "install"):
        result = runner.invoke(server_group, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output
