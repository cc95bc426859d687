"""Pilot arrays and the autopilot on the real single-node Slurm, against the real test server.

The commands are driven through click's runner in this process, but the
pilots are real: sbatch starts them on
the cluster as ``python -m picas run`` with this interpreter, and they talk to
the session's pouchdb-server.  Payloads append ``$PICAS_TOKEN_ID`` to a file
in the test's tmp dir (the cluster is this machine, so the job sees it), which
is how "executed exactly once" is counted.  Every job a test submits is
cancelled in teardown.
"""
from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from picas.pool import registry as pilot_jobs
from picas.core import token as tok
from picas.cli import main
from picas.core.client import CouchClient
from picas.schedulers.slurm import cancel, count_active, queued_jobs
from picas.core.views import deploy
from tests.helpers import cli_env, client_for, overview, side_effect_counts, wait_for
from tests.slurm_fixture import slurm_cluster  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

PICAS = f"{sys.executable} -m picas"


@pytest.fixture
def env(couch_server, db_name, tmp_path) -> dict:
    """The connection in the environment, as a user's shell on the login node would have it."""
    return cli_env(couch_server, db_name, tmp_path / "conf.yml")


@pytest.fixture
def client(couch_server, db_name) -> Iterator[CouchClient]:
    handle = client_for(couch_server, db_name)
    yield handle
    handle.close()


@pytest.fixture
def submitted(client) -> Iterator[list[str]]:
    """Job ids to cancel after the test, plus whatever the registry recorded."""
    ids: list[str] = []
    yield ids
    try:
        ids.extend(str(e["job_id"]) for e in pilot_jobs.jobs(client))
    except Exception:  # noqa: BLE001 - teardown must cancel what it can
        pass
    ids = sorted(set(ids))
    if ids:
        cancel(ids)
        deadline = time.monotonic() + 30
        while count_active(ids) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch) -> None:
    """sbatch runs where the command runs: the job's working directory is the test's own."""
    monkeypatch.chdir(tmp_path)


def picas(env: dict, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def push_tokens(client: CouchClient, inputs: list[str], **fields) -> list[str]:
    docs = [tok.new_token(text, f"token_{uuid.uuid4().hex[:16]}", **fields) for text in inputs]
    assert all(r.ok for r in client.bulk_save(docs))
    return [d["_id"] for d in docs]


def submit_pilots(env: dict, tmp_path: Path, *args: str) -> str:
    result = picas(env, "submit", "slurm", "--picas-command", PICAS, "--output", str(tmp_path / "pilot-%A_%a.out"),
                   "--parsable", *args)
    assert result.exit_code == 0, result.output
    job_id = result.output.strip().splitlines()[-1]
    assert job_id.isdigit(), result.output
    return job_id


def pilot_log(tmp_path: Path, job_id: str, task: int) -> str:
    path = tmp_path / f"pilot-{job_id}_{task}.out"
    return path.read_text() if path.exists() else ""


def states_of(client: CouchClient, ids: list[str]) -> dict[str, dict]:
    return client.bulk_get(ids)


def test_array_drains_the_pool_once_each(client, env, tmp_path, submitted):
    effects = tmp_path / "effects"
    ids = push_tokens(client, [f"echo $PICAS_TOKEN_ID >> {effects}; sleep 0.2"] * 60)
    # The password only as an option: the job cannot inherit it, it must read the private profile.
    env = {**env, "PICAS_PASSWORD": None}
    password = ("--password", client.password)
    pilot_conf = tmp_path / "pilots.yml"
    dry = picas(env, "submit", "slurm", "--array", "4", *password, "--pilot-config", str(pilot_conf), "--dry-run")
    assert dry.exit_code == 0 and client.password not in dry.output and not pilot_conf.exists()

    started = time.monotonic()
    job_id = submit_pilots(env, tmp_path, "--array", "4", "--time", "5", *password, "--pilot-config",
                           str(pilot_conf), "--prefetch", "1")
    submitted.append(job_id)
    assert stat.S_IMODE(pilot_conf.stat().st_mode) == 0o600
    assert [e["job_id"] for e in pilot_jobs.jobs(client)] == [job_id]

    wait_for(lambda: overview(client).get("done") == 60, timeout=120, interval=0.5, what="60 tokens done")
    wait_for(lambda: count_active([job_id]) == 0, timeout=30, what="the pilots to exit")
    print(f"60 tokens drained by 4 pilots in {time.monotonic() - started:.1f}s")

    counts = side_effect_counts(effects)
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}, "every token executed exactly once"
    tasks = set()
    docs = states_of(client, ids)
    for doc in docs.values():
        assert doc["slurm_job_id"] == f"{job_id}_{doc['slurm_array_task_id']}"
        assert doc["slurm_array_job_id"] == job_id
        tasks.add(doc["slurm_array_task_id"])
    assert tasks <= {"0", "1", "2", "3"}
    print(f"tokens per pilot task: { {t: sum(d['slurm_array_task_id'] == t for d in docs.values()) for t in tasks} }")
    assert "stopped: no more work" in pilot_log(tmp_path, job_id, 0)


def _held_by(client: CouchClient, token_id: str, job_id: str) -> bool:
    doc = client.get(token_id)
    return tok.state(doc) == "locked" and doc.get("slurm_job_id", "").startswith(f"{job_id}_")


def _released(client: CouchClient, token_id: str) -> bool:
    doc = client.get(token_id)
    return tok.state(doc) == "todo" and doc["history"][-1]["event"] == "released"


def test_time_limit_gives_the_token_back(client, env, tmp_path, submitted):
    effects, starts, fast = tmp_path / "effects", tmp_path / "starts", tmp_path / "fast"
    [token_id] = push_tokens(client, [f"echo $PICAS_TOKEN_ID >> {starts}; "
                                      f"while [ ! -e {fast} ]; do sleep 0.2; done; "
                                      f"echo $PICAS_TOKEN_ID >> {effects}"])
    # One minute of walltime, USR1 40 s before it: the pilot must hand the token back, not die with it.
    job_id = submit_pilots(env, tmp_path, "--array", "1", "--time", "1", "--signal-grace", "40")
    submitted.append(job_id)
    wait_for(lambda: _held_by(client, token_id, job_id), timeout=30, what="the pilot to take the token")
    started = time.monotonic()
    wait_for(lambda: _released(client, token_id), timeout=100, interval=0.5, what="the token to come back")
    print(f"token given back {time.monotonic() - started:.0f}s after it was taken")
    wait_for(lambda: count_active([job_id]) == 0, timeout=30, what="the pilot job to end")
    assert "stopped by SIGUSR1" in pilot_log(tmp_path, job_id, 0), "the early warning, not the kill, stopped it"
    doc = client.get(token_id)
    assert "slurm_job_id" not in doc and doc["scrub_count"] == 0

    fast.touch()
    second = submit_pilots(env, tmp_path, "--array", "1", "--time", "5")
    submitted.append(second)
    wait_for(lambda: tok.state(client.get(token_id)) == "done", timeout=60, what="another pilot to finish it")
    doc = client.get(token_id)
    assert doc["slurm_job_id"] == f"{second}_0" and doc["slurm_array_task_id"] == "0"
    assert side_effect_counts(starts) == {token_id: 2}
    assert side_effect_counts(effects) == {token_id: 1}


def test_scancel_gives_the_token_back_to_another_pilot(client, env, tmp_path, submitted):
    effects, fast = tmp_path / "effects", tmp_path / "fast"
    ids = push_tokens(client, [f"while [ ! -e {fast} ]; do sleep 0.2; done; echo $PICAS_TOKEN_ID >> {effects}"] * 2)
    job_id = submit_pilots(env, tmp_path, "--array", "2", "--time", "5")
    submitted.append(job_id)
    wait_for(lambda: all(_held_by(client, i, job_id) for i in ids), timeout=30, what="both pilots to hold a token")
    docs = states_of(client, ids)
    victim = next(i for i in ids if docs[i]["slurm_array_task_id"] == "0")
    survivor = next(i for i in ids if i != victim)

    # scancel sends TERM to every process of the job at once: the pilot and its payload alike.
    subprocess.run(["scancel", f"{job_id}_0"], check=True, timeout=30)
    wait_for(lambda: tok.state(client.get(victim)) != "locked", timeout=30, what="the cancelled pilot to let go")
    doc = client.get(victim)
    assert _released(client, victim), (f"the cancelled pilot's token went to {tok.state(doc)}, not back to todo "
                                       f"(exit code {doc.get('exit_code')!r}, history {doc.get('history')})")
    assert _held_by(client, survivor, job_id)
    fast.touch()
    wait_for(lambda: overview(client).get("done") == 2, timeout=60, what="task 1 to finish both tokens")
    wait_for(lambda: count_active([job_id]) == 0, timeout=30, what="the array to end")
    for doc in states_of(client, ids).values():
        assert doc["slurm_job_id"] == f"{job_id}_1", "the surviving pilot did the given-back token"
    assert side_effect_counts(effects) == {i: 1 for i in ids}
    events = [e["event"] for e in client.get(victim)["history"]]
    assert events == ["locked", "released", "locked", "done"]


def test_pilots_cancel_with_a_signal_drains_running_pilots(client, env, tmp_path, submitted):
    fast = tmp_path / "fast"
    [token_id] = push_tokens(client, [f"while [ ! -e {fast} ]; do sleep 0.2; done"])
    running = submit_pilots(env, tmp_path, "--array", "1", "--time", "5")
    held = submit_pilots(env, tmp_path, "--array", "2", "--time", "5", "--sbatch-line=--hold")
    submitted.extend([running, held])
    wait_for(lambda: _held_by(client, token_id, running), timeout=30, what="the pilot to take the token")

    started = time.monotonic()
    result = picas(env, "pilots", "cancel", "--all", "--signal", "USR1")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 10, "a pending job is cancelled, not waited on"
    assert f"Sent USR1 to 1 running pilot: {running}_0; cancelled 1 pending: {held}_[0-1]" in result.output
    wait_for(lambda: _released(client, token_id), timeout=30, what="the token to come back")
    wait_for(lambda: count_active([running, held]) == 0, timeout=30, what="both jobs to end")
    assert "stopped by SIGUSR1" in pilot_log(tmp_path, running, 0)


def _scontrol(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout


def test_autopilot_submits_per_class_and_respects_max_pilots(client, env, submitted):
    for design, condition in (("Single", "doc.cores == 1"), ("MultiCore", "doc.cores == 4"),
                              ("Empty", "doc.cores == 99")):
        deploy(client, design, condition)
    push_tokens(client, ["true"] * 30, cores=1)
    push_tokens(client, ["true"] * 20, cores=4)
    # --hold keeps every pilot pending, as on a busy cluster: the second round must see them queued.
    args = ["autopilot", "--class", "Single", "--class", "MultiCore:cpus-per-task=4", "--class", "Empty",
            "--picas-command", PICAS, "--time", "5", "--sbatch-line=--hold", "--tokens-per-pilot", "10"]

    first = picas(env, *args, "--max-pilots", "4")
    assert first.exit_code == 0, first.output
    assert len(first.stdout.strip().splitlines()) == 1, "one line per round (notes go to stderr)"
    assert "submit 4 pilots (MultiCore 1, Single 3)" in first.output
    entries = {e["class"]: e for e in pilot_jobs.jobs(client)}
    assert set(entries) == {"Single", "MultiCore"}, "nothing for the empty view"
    assert entries["Single"]["array"] == 3 and entries["MultiCore"]["array"] == 1
    ids = [e["job_id"] for e in entries.values()]
    submitted.extend(ids)
    assert count_active(ids) == 4
    assert "CPUs/Task=4" in _scontrol(entries["MultiCore"]["job_id"])
    assert "CPUs/Task=1" in _scontrol(entries["Single"]["job_id"])
    assert "--design-doc MultiCore --view todo" in subprocess.run(
        ["scontrol", "write", "batch_script", entries["MultiCore"]["job_id"], "-"],
        capture_output=True, text=True, timeout=30).stdout

    second = picas(env, *args, "--max-pilots", "4")
    assert second.exit_code == 0, second.output
    assert "submit nothing, already at the pilot limit: 4 active of max 4" in second.output
    assert len(pilot_jobs.jobs(client)) == 2 and count_active(ids) == 4

    # A higher limit tops up only what the work still needs: MultiCore's 20 tokens want 2 pilots.
    third = picas(env, *args, "--max-pilots", "10")
    assert "submit 1 pilot (MultiCore 1)" in third.output, third.output
    ids = [e["job_id"] for e in pilot_jobs.jobs(client)]
    submitted.extend(ids)
    assert count_active(ids) == 5

    listing = picas(env, "pilots", "list")
    assert listing.exit_code == 0 and listing.output.count("queued") == 3, listing.output
    rows = pilot_jobs.pilot_summary(client)
    assert sorted(r["pending"] for r in rows) == [1, 1, 3]

    cancelled = picas(env, "pilots", "cancel", "--all")
    assert cancelled.exit_code == 0 and "Cancelled 3 pilot jobs" in cancelled.output
    wait_for(lambda: count_active(ids) == 0, timeout=30, what="the pilots to be cancelled")


def test_autopilot_with_no_work_submits_nothing(client, env):
    result = picas(env, "autopilot", "--picas-command", PICAS, "--max-pilots", "5")
    assert result.exit_code == 0
    assert "submit nothing, no todo tokens: 0 active of max 5; todo: none" in result.output
    assert pilot_jobs.jobs(client) == []


def test_bad_partition_is_a_clear_error_and_nothing_is_recorded(client, env):
    push_tokens(client, ["true"] * 5)
    for args in (["submit", "slurm", "--array", "2"], ["autopilot", "--max-pilots", "2"]):
        result = picas(env, *args, "--partition", "no-such-partition", "--picas-command", PICAS)
        assert result.exit_code == 11, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("picas: error:")]
        assert len(errors) == 1
        assert re.search(r"invalid partition.*no-such-partition", errors[0], re.IGNORECASE), errors[0]
        assert pilot_jobs.jobs(client) == []
    assert queued_jobs(["999999"]) == {}
