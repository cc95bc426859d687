"""The start script picks an interpreter like a worker node would need, and the sandbox runs on each.

Every Python from 3.9 to 3.13 that pyenv has here runs one pilot of the same
sandbox (given with ``--python``, as a CVMFS interpreter would be), and the
script refuses clearly when only an older Python is on PATH.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from picas.cli import main
from tests.helpers import client_for, overview, push
from tests.schedulers.dirac_support import admin_env, credential_file, worker_path

PYENV = Path("/root/.pyenv/versions")


def _interpreter(version: str) -> Path:
    matches = sorted(PYENV.glob(f"{version}.*/bin/python3"))
    if not matches:
        pytest.skip(f"no Python {version} under {PYENV}")
    return matches[-1]


@pytest.fixture
def sandbox(couch_server, db_name, tmp_path) -> Path:
    cred = credential_file(couch_server, db_name, tmp_path / "pilots.yml")
    out = tmp_path / "sandbox"
    result = CliRunner().invoke(main, ["submit", "dirac", "--credential", str(cred), "--dry-run", "--output", str(out)],
                                env=admin_env(couch_server, db_name), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (out / "pilot.jdl").unlink()
    return out


def _run(sandbox: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["env", "-i", f"PATH={path}", "HOME=/nonexistent", "DIRACJOBID=77", "/bin/sh",
                           "picas-pilot.sh", *args], cwd=sandbox, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_the_sandbox_runs_on_the_python_given(version, sandbox, couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, [f"echo {i}" for i in range(3)])
    python = _interpreter(version)
    proc = _run(sandbox, worker_path(tmp_path / "node"), "--python", str(python), "--index", "5", "--")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"({version}." in proc.stdout and "picas-pilot[5]" in proc.stdout
    assert overview(client) == {"done": 3}


def test_no_suitable_python_is_a_clear_error(sandbox, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "python3").symlink_to(_interpreter("3.8"))
    for tool in ("dirname", "date", "uname"):
        (old / tool).symlink_to(shutil.which(tool))
    proc = _run(sandbox, str(old))
    assert proc.returncode == 3
    assert "no Python 3.9 or newer on PATH" in proc.stderr and "--python" in proc.stderr
    proc = _run(sandbox, str(old), "--python", "/nonexistent/python3")
    assert proc.returncode == 3 and "--python /nonexistent/python3 is not a working Python 3.9" in proc.stderr


def test_a_missing_sandbox_file_is_named(sandbox, tmp_path):
    (sandbox / "picas-pilot.yml").unlink()
    proc = _run(sandbox, worker_path(tmp_path / "node"))
    assert proc.returncode == 4 and "picas-pilot.yml is missing from the sandbox" in proc.stderr


def test_the_node_s_site_packages_are_opt_in(sandbox, couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["echo one"])
    path = worker_path(tmp_path / "node")
    isolated = _run(sandbox, path, "--max-tasks", "1")
    assert isolated.returncode == 0 and "site-packages are visible" not in isolated.stdout
    push(client, ["echo two"])
    opened = _run(sandbox, path, "--site-packages", "--")
    assert opened.returncode == 0 and "site-packages are visible to picas" in opened.stdout
    assert overview(client) == {"done": 2}
