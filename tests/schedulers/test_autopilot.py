"""Pilot classes and autopilot rounds, against the real test server, without a cluster.

The rounds run on the ledger scheduler of second_scheduler.py: a second
scheduler defined by these tests and registered at run time, not a mock of a
real service.  It proves that the autopilot works with a backend it has never
heard of (one job id per pilot, its own state names and options); the real
Slurm is exercised in test_slurm_pilots.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from picas.core import token as tok
from picas.core.views import deploy
from picas.errors import ConfigError, InvalidInput
from picas.pool import registry
from picas.schedulers import autopilot as ap
from picas.schedulers.classes import PilotClass, class_options, load_classes, parse_class
from picas.schedulers.slurm import OPTIONS as SLURM_OPTIONS
from tests.helpers import client_for
from tests.schedulers.second_scheduler import LedgerScheduler, ledger  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


# --- classes ---------------------------------------------------------------------------------


def test_parse_class_with_a_schedulers_keys():
    cls = parse_class("MultiCore:cpus-per-task=4,mem=8G,time=04:00:00", SLURM_OPTIONS)
    assert (cls.design, cls.view) == ("MultiCore", "todo")
    assert cls.resources == {"cpus_per_task": 4, "mem": "8G", "time": "04:00:00"}
    assert parse_class("Monitor/urgent").name == "Monitor/urgent"
    assert parse_class("Monitor").name == "Monitor"
    assert parse_class("G:lanes=2,notes=gpu", LedgerScheduler.options).resources == {"lanes": 2, "notes": ["gpu"]}
    for bad in ("", ":mem=1G", "X:cpus-per-task=many", "X:cpus-per-task=0", "X:colour=red", "X:mem",
                "X:job-name=other"):
        with pytest.raises(InvalidInput):
            parse_class(bad, SLURM_OPTIONS)
    with pytest.raises(InvalidInput, match=r"unknown key 'mem' \(known: design, view, lanes, notes\)"):
        parse_class("X:mem=1G", LedgerScheduler.options)


def test_load_classes(tmp_path):
    path = tmp_path / "classes.yml"
    path.write_text(yaml.safe_dump([{"design": "Monitor"},
                                    {"design": "MultiCore", "cpus_per_task": 4, "sbatch-lines": ["--exclusive"],
                                     "setup": "module load x"}]))
    single, multi = load_classes(path, SLURM_OPTIONS)
    assert single == PilotClass()
    assert multi.resources == {"cpus_per_task": 4, "sbatch_lines": ["--exclusive"], "setup": ["module load x"]}
    path.write_text(yaml.safe_dump({"classes": [{"design": "A"}, {"design": "A"}]}))
    with pytest.raises(ConfigError, match="twice"):
        load_classes(path, SLURM_OPTIONS)
    path.write_text("- view: todo\n")
    with pytest.raises(ConfigError, match="design"):
        load_classes(path)
    path.write_text("- design: A\n  lanes: none\n")
    with pytest.raises(ConfigError, match="lanes must be a whole number"):
        load_classes(path, LedgerScheduler.options)
    path.write_text("- design: A\n  lanes: [1\n")
    with pytest.raises(ConfigError) as broken:
        load_classes(path)
    assert str(broken.value).startswith(f"{path}:3:1: malformed YAML: ") and "\n" not in str(broken.value)


def test_class_options_put_the_class_on_top_of_the_base():
    base = {"time": "1:00:00", "mem": "1G", "sbatch_lines": ["--hold"], "setup": ["module load a"]}
    cls = PilotClass("MultiCore", resources={"cpus_per_task": 4, "mem": "8G", "setup": ["module load b"]})
    opts = class_options(base, cls, SLURM_OPTIONS)
    assert opts == {"time": "1:00:00", "mem": "8G", "cpus_per_task": 4, "sbatch_lines": ["--hold"],
                    "setup": ["module load a", "module load b"]}
    assert base["setup"] == ["module load a"] and "cpus_per_task" not in base, "the base is not changed"


# --- rounds ---------------------------------------------------------------------------------------


@pytest.fixture
def client(couch_server, db_name):
    handle = client_for(couch_server, db_name)
    yield handle
    handle.close()


def test_todo_count_per_class(client):
    deploy(client, "MultiCore", "doc.cores == 4")
    client.bulk_save([tok.new_token("true", f"t{i}", cores=4 if i < 3 else 1) for i in range(7)])
    assert ap.todo_count(client, PilotClass("Monitor")) == 7
    assert ap.todo_count(client, PilotClass("MultiCore")) == 3
    assert ap.todo_count(client, PilotClass("MultiCore", "locked")) == 0


@pytest.mark.usefixtures("ledger")
def test_rounds_on_a_second_scheduler_do_not_double_submit(client):
    deploy(client, "MultiCore", "doc.cores == 4")
    deploy(client, "Empty", "doc.cores == 99")
    client.bulk_save([tok.new_token("true", f"s{i}", cores=1) for i in range(30)]
                     + [tok.new_token("true", f"m{i}", cores=4) for i in range(25)])
    deploy(client, "Single", "doc.cores == 1")
    classes = [PilotClass("Single"), PilotClass("MultiCore", resources={"lanes": 4}), PilotClass("Empty")]
    scheduler = LedgerScheduler()

    def round_(max_pilots: int, **kw) -> ap.Round:
        return ap.run_round(client, classes, scheduler, {"queue": "long", "notes": ["n1"]}, max_pilots=max_pilots,
                            pilot_args=["--grace=30"], env={"PICAS_DATABASE": "db"}, **kw)

    dry = round_(4, dry_run=True)
    assert dry.plan == {"Single": 2, "MultiCore": 2, "Empty": 0} and not LedgerScheduler.jobs
    assert dry.line.startswith("dry run, would submit 4 pilots")
    first = round_(4)
    assert first.plan == {"Single": 2, "MultiCore": 2, "Empty": 0}, "4 lanes split by the work, 30 to 25"
    assert [(e["class"], e["array"], e["scheduler"]) for e in first.submitted] == \
        [("Single", 1, "ledger")] * 2 + [("MultiCore", 1, "ledger")] * 2, "one registry entry per job id"
    multi = LedgerScheduler.jobs[first.submitted[2]["job_id"]]["description"]
    assert multi["options"] == {"queue": "long", "notes": ["n1"], "lanes": 4}
    assert multi["run"] == ["--design-doc", "MultiCore", "--view", "todo", "--grace=30"]
    assert multi["env"] == {"PICAS_DATABASE": "db"}
    assert first.submitted[2]["resources"] == {"lanes": 4}
    assert first.line.endswith("jobs: Single L9001 L9002, MultiCore L9003 L9004")
    assert len(registry.jobs(client, "ledger")) == 4
    second = round_(4)
    assert sum(second.plan.values()) == 0 and "already at the pilot limit" in second.line
    LedgerScheduler.set_state("Running")
    third = round_(10)
    assert third.plan == {"Single": 1, "MultiCore": 1, "Empty": 0}, "each class tops up to 3 (1 per 10 tokens)"
    LedgerScheduler.set_state("Done")  # every pilot finished; the pool still has work
    fourth = round_(10, prune_after=0)
    assert fourth.plan == {"Single": 3, "MultiCore": 3, "Empty": 0}
    assert len(fourth.pruned) == 6 and len(registry.jobs(client)) == 6, "finished jobs were forgotten"


@pytest.mark.usefixtures("ledger")
def test_a_failing_submission_records_nothing(client):
    client.bulk_save([tok.new_token("true", f"t{i}") for i in range(5)])
    LedgerScheduler.fail = "ledger: error: queue 'nope' does not exist"
    result = ap.run_round(client, [PilotClass()], LedgerScheduler(), {"queue": "nope"}, max_pilots=3)
    assert result.errors == ["Monitor: ledger: error: queue 'nope' does not exist"]
    assert "FAILED: Monitor: ledger: error: queue 'nope'" in result.line
    assert registry.jobs(client) == []


def test_autopilot_loop_stops_on_sigterm(couch_server, db_name, client, tmp_path):
    user, password = couch_server.admin
    env = {**os.environ, "PICAS_HOST_URL": couch_server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
           "PICAS_PASSWORD": password, "PICAS_CONFIG": str(tmp_path / "conf.yml")}
    for key in ("PICAS_PROFILE", "PICAS_VERIFY", "PICAS_DEBUG"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "picas", "autopilot", "--loop", "--interval", "0.2", "--json"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    deadline = time.monotonic() + 30
    while len(lines) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    reader.join(timeout=10)
    assert len(lines) >= 2
    rounds = [json.loads(line) for line in lines]
    assert all(r["line"] == "submit nothing, no todo tokens: 0 active of max 10; todo: none" for r in rounds), lines
    assert registry.jobs(client) == []
