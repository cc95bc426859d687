"""examples/grid end to end: the fractal token set, its C program built by cc in the sandbox, the JDL.

The example's README commands run here against the real pouchdb-server,
with the STAND-IN DIRAC commands (a DIRAC server cannot run here; see
tests/schedulers/dirac_standin/): each pilot runs in a directory holding only
its sandbox, with Python 3.9 as the only Python, builds ``fractal`` from
``fractal.c`` with ``cc`` and renders frames.  The committed
``examples/grid/fractal.jdl`` must be exactly what ``picas submit dirac``
writes for the README's options, so it cannot go stale.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from picas.cli import main
from picas.pool import registry
from tests.helpers import client_for, overview
from tests.schedulers.dirac_standin import standin
from tests.schedulers import dirac_support
from tests.schedulers.dirac_support import admin_env, credential_file, parse_jdl

#: The stand-in DIRAC commands on PATH (a pytest fixture).
grid = dirac_support.grid

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "grid"
#: The options of the README's submit command, the ones the committed JDL was written with.
README_OPTIONS = ["--pilots", "10", "--job-name", "fractals", "--job-group", "fractals", "--cpu-time", "4h",
                  "--input-file", "fractal.c", "--setup", "cc -O2 -o fractal fractal.c -lm", "--max-time", "3h"]


def _picas(args: list[str], server, db_name: str, cwd: Path) -> str:
    """A picas command run in ``cwd``, as the README runs it in examples/grid."""
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, env=admin_env(server, db_name), catch_exceptions=False)
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_committed_jdl_is_what_submit_dirac_writes(couch_server, db_name, tmp_path):
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work)
    cred = credential_file(couch_server, db_name, work / "fractal-pilots.yml")
    _picas(["submit", "dirac", "--credential", cred.name, *README_OPTIONS, "--dry-run", "--output", "grid-job"],
           couch_server, db_name, work)
    written = (work / "grid-job" / "pilot.jdl").read_text()
    assert written == (EXAMPLE / "fractal.jdl").read_text()
    cfg = parse_jdl(written)
    assert cfg.getOption("Parameters", 0) == 10 and "fractal.c" in cfg.getOption("InputSandbox", [])


def test_the_fractal_example_runs_end_to_end(grid, couch_server, db_name, tmp_path):
    if shutil.which("cc") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no C compiler (cc) in CI: scripts/test.sh installs gcc")
        pytest.skip("no C compiler (cc): apt-get install gcc")
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work)
    client = client_for(couch_server, db_name)  # the views ('picas views create' in the README)
    tokens = subprocess.run(["sh", "make-tokens.sh", "8", "160", "120", "3000"], cwd=work, capture_output=True,
                            text=True, check=True).stdout
    (work / "fractal-tokens.txt").write_text(tokens)
    _picas(["push", "--no-progress", "fractal-tokens.txt"], couch_server, db_name, work)
    cred = credential_file(couch_server, db_name, work / "fractal-pilots.yml")
    options = [opt if opt != "10" else "2" for opt in README_OPTIONS]  # two pilots are enough here
    _picas(["submit", "dirac", "--credential", cred.name, *options], couch_server, db_name, work)

    ids = [entry["job_id"] for entry in registry.jobs(client)]
    assert len(ids) == 2
    jobs = standin.wait_finished(grid, ids, timeout=300)
    assert {job["status"] for job in jobs.values()} == {"Done"}, jobs
    assert overview(client) == {"done": 8}
    frames = 0
    for row in client.all_docs(include_docs=True).rows:
        doc = row.doc or {}
        if doc.get("type") != "token":
            continue
        assert doc["dirac_job_id"] in ids
        logs = [name for name in doc.get("_attachments", {}) if name.endswith(".out")]
        text = client.get_attachment(doc["_id"], logs[0]).decode()
        assert "fractal 160x120 max_iter=3000" in text and "inside" in text
        frames += 1
    assert frames == 8
    # The program was built on the "worker node", from the sandbox's own source.
    assert all((grid / "jobs" / job_id / "sandbox" / "fractal").is_file() for job_id in ids)
