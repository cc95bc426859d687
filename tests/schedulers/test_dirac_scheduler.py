"""``picas submit dirac``, ``picas pilots`` and ``picas autopilot`` against STAND-IN DIRAC commands.

A DIRAC server cannot run here, so ``dirac-wms-job-submit``, ``-status`` and
``-kill`` on PATH are stand-ins (tests/schedulers/dirac_standin/): they
expand the JDL with DIRAC's own code, run every pilot's sandbox locally in a
directory of its own (Python 3.9 as the only Python, empty HOME, DIRACJOBID
set) and answer in DIRAC's formats.  The pool is a real pouchdb-server.
"""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from picas.cli import main
from picas.pool import registry
from tests.helpers import client_for, overview, push, wait_for
from tests.schedulers.dirac_standin import standin
from tests.schedulers import dirac_support
from tests.schedulers.dirac_support import admin_env, credential_file

#: The stand-in DIRAC commands on PATH (a pytest fixture).
grid = dirac_support.grid


def _run(args: list[str], server, db_name: str) -> str:
    result = CliRunner().invoke(main, args, env=admin_env(server, db_name), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _pilots(server, db_name: str) -> list[dict]:
    out = _run(["pilots", "list", "--all", "--json"], server, db_name)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _tokens(client) -> list[dict]:
    return [row.doc for row in client.all_docs(include_docs=True).rows if row.doc.get("type") == "token"]


def test_submit_runs_the_pilots_and_records_their_job_ids(grid, couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, [f"echo token {i}" for i in range(12)])
    cred = credential_file(couch_server, db_name, tmp_path / "pilots.yml")
    out = _run(["submit", "dirac", "--credential", str(cred), "-n", "3", "--cpu-time", "2h", "--site", "LCG.A.nl"],
               couch_server, db_name)
    recorded = registry.jobs(client)
    ids = [entry["job_id"] for entry in recorded]
    assert len(ids) == 3 and all(entry["scheduler"] == "dirac" for entry in recorded)
    assert f"Submitted pilot jobs {' '.join(ids)}" in out
    assert recorded[0]["resources"]["cpu_time"] and recorded[0]["resources"]["site"] == ["LCG.A.nl"]

    jobs = standin.wait_finished(grid, ids)
    assert {job["status"] for job in jobs.values()} == {"Done"}, jobs
    assert overview(client) == {"done": 12}
    ran = {token["dirac_job_id"] for token in _tokens(client)}
    assert ran and ran <= set(ids)  # every token names the DIRAC job that ran it
    assert {row["job_id"]: row["state"] for row in _pilots(couch_server, db_name)} == {i: "finished" for i in ids}
    jdl = (grid / "jobs" / ids[0] / "job.jdl").read_text()
    assert "CPUTime = 7200" in jdl and "LCG.A.nl" in jdl
    # What came back for DIRAC's OutputSandbox: the job's stdout, stderr and the pilot's own log.
    sandbox = grid / "jobs" / ids[0] / "sandbox"
    assert "pilot exited with status 0" in (sandbox / "picas-pilot.out").read_text()
    assert "stopped: no more work" in (sandbox / "picas-pilot.log").read_text()


def test_cancel_kills_running_pilots_and_their_tokens_go_back(grid, couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["sleep 120"] * 2)
    cred = credential_file(couch_server, db_name, tmp_path / "pilots.yml")
    _run(["submit", "dirac", "--credential", str(cred), "-n", "1"], couch_server, db_name)
    [job_id] = [entry["job_id"] for entry in registry.jobs(client)]
    wait_for(lambda: overview(client).get("locked") == 1, timeout=120, what="the pilot to take a token")
    assert [row["state"] for row in _pilots(couch_server, db_name)] == ["running"]
    status = _run(["status"], couch_server, db_name)  # status asks DIRAC too, through the scheduler registry
    pilots_part = status.split("Pilot jobs:", 1)[1]
    assert job_id in pilots_part and "running" in pilots_part, status

    out = _run(["pilots", "cancel", "--all"], couch_server, db_name)
    assert job_id in out
    jobs = standin.wait_finished(grid, [job_id])
    assert jobs[job_id]["status"] == "Killed"
    wait_for(lambda: overview(client) == {"todo": 2}, timeout=60, what="the token to be given back")
    assert [row["state"] for row in _pilots(couch_server, db_name)] == ["finished"]


def test_autopilot_keeps_dirac_pilots_queued_per_class(grid, couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, [f"echo token {i}" for i in range(30)])
    cred = credential_file(couch_server, db_name, tmp_path / "pilots.yml")
    (grid / "hold").touch()  # a busy grid: the pilots wait for slots
    args = ["autopilot", "--scheduler", "dirac", "--credential", str(cred), "--class",
            "Monitor:cpu-time=1h,site=LCG.B.nl", "--max-pilots", "5", "--tokens-per-pilot", "10"]

    first = _run(args, couch_server, db_name)
    ids = [entry["job_id"] for entry in registry.jobs(client)]
    assert len(ids) == 3, first  # 30 todo tokens, 10 per pilot
    assert "submit 3 pilots" in first
    second = _run(args, couch_server, db_name)
    assert "submit nothing" in second and len(registry.jobs(client)) == 3  # the queued pilots count
    jdl = (grid / "jobs" / ids[0] / "job.jdl").read_text()
    assert "CPUTime = 3600" in jdl and "LCG.B.nl" in jdl  # the class's own resources

    assert standin.release(grid) == ids
    standin.wait_finished(grid, ids)
    assert overview(client) == {"done": 30}
    third = _run(args, couch_server, db_name)
    assert "submit nothing" in third and len(registry.jobs(client)) == 3


def test_status_of_jobs_dirac_forgot(grid, couch_server, db_name, tmp_path):
    """Jobs DIRAC no longer knows are left out of its answer, which is not an error."""
    from picas.schedulers import create

    assert create("dirac").query(["999999"]) == []
    assert Path(grid).is_dir()
