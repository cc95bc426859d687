"""What the DIRAC tests share: DIRAC's own JDL tools, and the stand-in DIRAC client commands.

DIRACCommon (``pip install DIRACCommon``; GPL-3.0, Python 3.11 or later) is
DIRAC's own code for reading JDL and expanding parametric jobs.  It is a
test-only tool: picas never imports it.  Locally the tests that need it skip
when it is missing; with CI=true they fail, because then scripts/test.sh did
not install the test extra.

A DIRAC server cannot run here, so ``picas submit dirac``, ``picas pilots``
and ``picas autopilot`` talk to *stand-ins* of ``dirac-wms-job-submit``,
``dirac-wms-job-status`` and ``dirac-wms-job-kill`` (tests/schedulers/dirac_standin/):
they expand the JDL with DIRACCommon, run each job's sandbox locally in a
temporary directory, and answer in DIRAC's formats.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parent / "dirac_standin"


def require_diraccommon():
    """DIRACCommon's JDL module, or a skip (a failure when CI=true)."""
    try:
        from DIRACCommon.Core.Utilities import JDL
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"DIRACCommon is missing in CI ({exc}): scripts/test.sh must install the test extra")
        pytest.skip(f"DIRACCommon is not installed ({exc}); pip install DIRACCommon (Python 3.11+)")
    return JDL


def parse_jdl(text: str):
    """The JDL as DIRAC's ``loadJDLAsCFG`` reads it (a CFG); fails the test when DIRAC refuses it."""
    jdl = require_diraccommon()
    result = jdl.loadJDLAsCFG(text)
    assert result["OK"], f"DIRAC refuses the JDL: {result.get('Message')}\n{text}"
    return result["Value"][0]


def expand_jdl(text: str) -> list[str]:
    """The JDLs of the single jobs DIRAC makes of a parametric JDL (``generateParametricJobs``)."""
    require_diraccommon()
    from DIRACCommon.Core.Utilities.ClassAd.ClassAdLight import ClassAd
    from DIRACCommon.WorkloadManagementSystem.Utilities.ParametricJob import generateParametricJobs

    result = generateParametricJobs(ClassAd(text))
    assert result["OK"], f"DIRAC cannot expand the JDL: {result.get('Message')}"
    return result["Value"]


#: The oldest Python a worker node may have (EL9); pyenv on these machines has it.
PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python3")


def require_python39() -> Path:
    """A Python 3.9 interpreter, or a skip (a failure when CI=true)."""
    if not PYTHON39.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PYTHON39} is missing in CI: the sandbox must be tested on Python 3.9")
        pytest.skip(f"no Python 3.9 at {PYTHON39}")
    return PYTHON39


def worker_path(base: Path) -> str:
    """A PATH like a worker node's: ``python3`` is 3.9, and no other python3.x is on it.

    The system's tools come from a directory of links to everything in
    /usr/bin except Python, so the start script cannot find a newer Python
    than the 3.9 it is meant to run on.
    """
    python = require_python39()
    pydir = base / "python39"
    tools = base / "tools"
    if not pydir.exists():
        pydir.mkdir(parents=True)
        (pydir / "python3").symlink_to(python)
        tools.mkdir(parents=True)
        for name in os.listdir("/usr/bin"):
            if not name.startswith("python"):
                (tools / name).symlink_to(Path("/usr/bin") / name)
    return f"{pydir}:{tools}"


def credential_file(server, db_name: str, path: Path) -> Path:
    """A scoped pilot credential for ``db_name``, written by ``picas credentials create``."""
    from click.testing import CliRunner

    from picas.cli import main

    result = CliRunner().invoke(main, ["credentials", "create", "--output", str(path)], env=admin_env(server, db_name),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


def admin_env(server, db_name: str, **extra: str) -> dict:
    """The operator's environment for picas commands run in-process."""
    user, password = server.admin
    env = {"PICAS_HOST_URL": server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
           "PICAS_PASSWORD": password, "PICAS_CONFIG": "/nonexistent/picas-test-conf.yml"}
    env.update(extra)
    return env


@pytest.fixture
def grid(tmp_path, monkeypatch):
    """The stand-in DIRAC commands on PATH, with their state in a fresh directory; yields that directory.

    Its jobs run with ``worker_path``: Python 3.9 as the only Python.  Every
    job still running at the end of the test is killed.
    """
    from tests.schedulers.dirac_standin import standin

    require_diraccommon()
    state = tmp_path / "dirac-state"
    state.mkdir()
    monkeypatch.setenv("DIRAC_STANDIN_HOME", str(state))
    monkeypatch.setenv("DIRAC_STANDIN_JOB_PATH", worker_path(tmp_path / "node"))
    monkeypatch.setenv("PATH", f"{STANDIN_DIR}{os.pathsep}{os.environ['PATH']}")
    yield state
    jobs = state / "jobs"
    if jobs.exists():
        standin.kill([p.name for p in jobs.iterdir()])
