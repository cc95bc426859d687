"""The pilot job registry, the autopilot's decisions and the submit command, without a cluster.

Slurm itself is replaced here by small fakes of ``submit`` and ``queued`` (the
real cluster is exercised in test_slurm_pilots.py); the database is the real
test server, because the registry's 409 handling only means something
against a real one.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from picas.schedulers import autopilot as ap
from picas.pool import registry as pilot_jobs
from picas.core import token as tok
from picas.cli import main
from picas.cli.autopilot_cmd import autopilot
from picas.cli.pilots_cmd import pilots
from picas.cli.submit_cmd import pilot_args, pilot_environment, submit
from picas.config import resolve
from picas.errors import ConfigError, InvalidInput, SchedulerError
from picas.schedulers.slurm import SbatchOptions
from picas.core.views import deploy
from tests.helpers import client_for, overview

for _command in (submit, pilots, autopilot):
    main.add_command(_command)

ROOT = Path(__file__).resolve().parents[2]


def entry(job_id: str, cls: str = "Monitor", submitted: float = 1000.0, array: int = 1) -> dict:
    design, _, view = cls.partition("/")
    return {"job_id": job_id, "scheduler": "slurm", "design": design, "view": view or "todo", "class": cls,
            "array": array, "submitted": submitted}


# --- pure registry helpers ----------------------------------------------------------------


def test_merge_keeps_everyone_and_the_newest_entry_wins():
    merged = pilot_jobs.merge_entries([entry("1"), entry("2", array=2)], [entry("2", array=5), entry("3")])
    assert [(e["job_id"], e["array"]) for e in merged] == [("1", 1), ("2", 5), ("3", 1)]
    assert pilot_jobs.without(merged, ["2", "9"]) == [entry("1"), entry("3")]


def test_active_counts_fold_array_tasks_per_job_and_class():
    states = {"10_0": "RUNNING", "10_1": "COMPLETING", "10_[2-4]": "PENDING", "11": "PENDING", "99_0": "RUNNING"}
    assert pilot_jobs.active_per_job(states) == {"10": 4, "11": 1, "99": 1}
    entries = [entry("10", "Monitor"), entry("11", "MultiCore"), entry("12", "MultiCore")]
    assert pilot_jobs.active_per_class(entries, states) == {"Monitor": 4, "MultiCore": 1}


def test_stale_ids_need_both_absence_and_age():
    entries = [entry("1", submitted=0), entry("2", submitted=0), entry("3", submitted=990)]
    assert pilot_jobs.stale_ids(entries, {"2_[0-3]": "PENDING"}, now=1000, older_than=100) == ["1"]


def test_summarize_states():
    states = {"1_0": "RUNNING", "1_[1-2]": "PENDING", "2_[0-1]": "PENDING"}
    rows = {r["job_id"]: r for r in pilot_jobs.summarize([entry("1"), entry("2"), entry("3")], states)}
    assert (rows["1"]["running"], rows["1"]["pending"], rows["1"]["state"]) == (1, 2, "running")
    assert (rows["2"]["active"], rows["2"]["state"]) == (2, "queued")
    assert rows["3"]["state"] == "finished"
    assert pilot_jobs.summarize([entry("1")], None)[0]["state"] == "unknown"


# --- the registry document -------------------------------------------------------------------


@pytest.fixture
def client(couch_server, db_name):
    handle = client_for(couch_server, db_name)
    yield handle
    handle.close()


def test_record_from_many_writers_at_once_loses_nothing(client):
    def writer(n: int) -> None:
        own = client.copy()
        for i in range(5):
            pilot_jobs.record(own, [entry(f"{n}{i:02d}", submitted=n * 100 + i)])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [e["job_id"] for e in pilot_jobs.jobs(client)]
    assert sorted(ids) == sorted(f"{n}{i:02d}" for n in range(1, 9) for i in range(5))
    pilot_jobs.forget(client, ["100", "801"])
    assert len(pilot_jobs.jobs(client)) == 38
    doc = client.get(pilot_jobs.DOC_ID)
    assert doc["type"] == "pilot_jobs"


def test_registry_is_not_a_token(client):
    pilot_jobs.record(client, [entry("5")])
    client.bulk_save([tok.new_token("true", "token_x")])
    assert overview(client) == {"todo": 1}
    assert [row.id for row in client.view("Monitor", "todo")] == ["token_x"]


def test_forget_on_an_empty_registry_writes_nothing(client):
    assert pilot_jobs.forget(client, ["1"]) == []
    assert client.get_or_none(pilot_jobs.DOC_ID) is None


def test_prune_and_summary(client):
    now = time.time()
    pilot_jobs.record(client, [entry("1", submitted=now - 7200), entry("2", submitted=now - 10),
                               entry("3", submitted=now - 7200)])
    queued = {"3_0": "RUNNING"}
    dropped = pilot_jobs.prune(client, 3600, queued=lambda ids: queued)
    assert dropped == ["1"]
    assert sorted(e["job_id"] for e in pilot_jobs.jobs(client)) == ["2", "3"]
    rows = pilot_jobs.pilot_summary(client, queued=lambda ids: queued)
    assert [(r["job_id"], r["state"]) for r in rows] == [("3", "running")]
    assert len(pilot_jobs.pilot_summary(client, include_finished=True, queued=lambda ids: queued)) == 2

    def broken(ids):
        raise SchedulerError("squeue not found")

    rows = pilot_jobs.pilot_summary(client, queued=broken)
    assert {r["state"] for r in rows} == {"unknown"} and rows[0]["error"] == "squeue not found"
    assert pilot_jobs.pilot_summary(client.copy(database=client.database), queued=broken)


# --- classes and plans ---------------------------------------------------------------------------


def test_parse_class():
    cls = ap.parse_class("MultiCore:cpus-per-task=4,mem=8G,time=04:00:00")
    assert (cls.design, cls.view, cls.cpus_per_task, cls.mem, cls.time) == ("MultiCore", "todo", 4, "8G", "04:00:00")
    assert ap.parse_class("Monitor/urgent").name == "Monitor/urgent"
    assert ap.parse_class("Monitor").name == "Monitor"
    for bad in ("", ":mem=1G", "X:cpus-per-task=many", "X:cpus-per-task=0", "X:colour=red", "X:mem"):
        with pytest.raises(InvalidInput):
            ap.parse_class(bad)


def test_load_classes(tmp_path):
    path = tmp_path / "classes.yml"
    path.write_text(yaml.safe_dump([{"design": "Monitor"},
                                    {"design": "MultiCore", "cpus_per_task": 4, "sbatch-lines": ["--exclusive"],
                                     "setup": "module load x"}]))
    single, multi = ap.load_classes(path)
    assert single == ap.PilotClass()
    assert (multi.cpus_per_task, multi.sbatch_lines, multi.setup) == (4, ["--exclusive"], ["module load x"])
    path.write_text(yaml.safe_dump({"classes": [{"design": "A"}, {"design": "A"}]}))
    with pytest.raises(ConfigError, match="twice"):
        ap.load_classes(path)
    path.write_text("- view: todo\n")
    with pytest.raises(ConfigError, match="design"):
        ap.load_classes(path)


def test_class_options_put_the_class_on_top_of_the_base():
    base = SbatchOptions(time="1:00:00", mem="1G", extra_sbatch=["--hold"], setup=["module load a"],
                         env={"PICAS_DATABASE": "db"})
    cls = ap.PilotClass(design="MultiCore", cpus_per_task=4, mem="8G", setup=["module load b"])
    opts = ap.class_options(base, cls, 3, ["--max-tasks=5"])
    assert (opts.array, opts.time, opts.mem, opts.cpus_per_task) == (3, "1:00:00", "8G", 4)
    assert opts.setup == ["module load a", "module load b"] and opts.extra_sbatch == ["--hold"]
    assert opts.pilot_args == ["--design-doc", "MultiCore", "--view", "todo", "--max-tasks=5"]
    assert base.setup == ["module load a"] and base.array == 1, "the base is not changed"


def test_todo_count_per_class(client):
    deploy(client, "MultiCore", "doc.cores == 4")
    client.bulk_save([tok.new_token("true", f"t{i}", cores=4 if i < 3 else 1) for i in range(7)])
    assert ap.todo_count(client, ap.PilotClass("Monitor")) == 7
    assert ap.todo_count(client, ap.PilotClass("MultiCore")) == 3
    assert ap.todo_count(client, ap.PilotClass("MultiCore", "locked")) == 0


class FakeSlurm:
    """sbatch and squeue stand-ins: every submitted array stays pending until told otherwise."""

    def __init__(self, fail: str | None = None) -> None:
        self.next_id = 500
        self.scripts: dict[str, str] = {}
        self.pending: dict[str, int] = {}
        self.fail = fail

    def submit(self, script: str, cwd: str | None = None) -> str:
        if self.fail:
            raise SchedulerError(self.fail)
        self.next_id += 1
        job_id = str(self.next_id)
        self.scripts[job_id] = script
        self.pending[job_id] = int(re.search(r"--array=0-(\d+)", script).group(1)) + 1
        return job_id

    def queued(self, ids: list[str]) -> dict[str, str]:
        return {f"{j}_[0-{n - 1}]": "PENDING" for j, n in self.pending.items() if j in ids and n}


def test_rounds_do_not_double_submit(client):
    deploy(client, "MultiCore", "doc.cores == 4")
    deploy(client, "Empty", "doc.cores == 99")
    client.bulk_save([tok.new_token("true", f"s{i}", cores=1) for i in range(30)]
                     + [tok.new_token("true", f"m{i}", cores=4) for i in range(25)])
    deploy(client, "Single", "doc.cores == 1")
    classes = [ap.PilotClass("Single"), ap.PilotClass("MultiCore", cpus_per_task=4), ap.PilotClass("Empty")]
    fake = FakeSlurm()

    def round_(max_pilots: int, **kw) -> ap.Round:
        return ap.run_round(client, classes, SbatchOptions(), max_pilots=max_pilots, submit=fake.submit,
                            queued=fake.queued, **kw)

    dry = round_(4, dry_run=True)
    assert dry.plan == {"Single": 2, "MultiCore": 2, "Empty": 0} and not fake.scripts
    assert dry.line.startswith("dry run, would submit 4 pilots")
    first = round_(4)
    assert first.plan == {"Single": 2, "MultiCore": 2, "Empty": 0}, "4 slots split by the work, 30 to 25"
    assert [(e["class"], e["array"]) for e in first.submitted] == [("Single", 2), ("MultiCore", 2)]
    assert "#SBATCH --cpus-per-task=4" in fake.scripts[first.submitted[1]["job_id"]]
    assert "--design-doc MultiCore --view todo" in fake.scripts[first.submitted[1]["job_id"]]
    assert first.line.endswith("jobs: Single 501, MultiCore 502")
    second = round_(4)
    assert sum(second.plan.values()) == 0 and "already at the pilot limit" in second.line
    third = round_(10)
    assert third.plan == {"Single": 1, "MultiCore": 1, "Empty": 0}, "each class tops up to 3 (1 per 10 tokens)"
    assert sum(fake.pending.values()) == 6
    fake.pending = {j: 0 for j in fake.pending}  # every pilot finished; the pool still has work
    assert round_(10).plan == {"Single": 3, "MultiCore": 3, "Empty": 0}


def test_a_failing_sbatch_records_nothing(client):
    client.bulk_save([tok.new_token("true", f"t{i}") for i in range(5)])
    fake = FakeSlurm(fail="sbatch: error: invalid partition specified: nope")
    result = ap.run_round(client, [ap.PilotClass()], SbatchOptions(), max_pilots=3, submit=fake.submit,
                          queued=fake.queued)
    assert result.errors == ["Monitor: sbatch: error: invalid partition specified: nope"]
    assert "FAILED: Monitor: sbatch: error: invalid partition" in result.line
    assert pilot_jobs.jobs(client) == []


# --- connection settings for the pilots ----------------------------------------------------------


def test_password_from_the_users_file_stays_there(tmp_path):
    conf = tmp_path / "conf.yml"
    lab = {"url": "http://h:5984", "database": "db", "username": "u", "password": "pw"}
    conf.write_text(yaml.safe_dump({"profiles": {"lab": lab}}))
    settings = resolve({}, profile="lab", env={}, path=conf)
    env, note = pilot_environment(settings)
    assert env == {"PICAS_HOST_URL": "http://h:5984", "PICAS_DATABASE": "db", "PICAS_USERNAME": "u",
                   "PICAS_CONFIG": str(conf), "PICAS_PROFILE": "lab"}
    assert note is None and sorted(p.name for p in tmp_path.iterdir()) == ["conf.yml"]


def test_password_from_the_environment_goes_to_a_private_profile(tmp_path):
    conf = tmp_path / "conf.yml"
    shell = {"PICAS_HOST_URL": "http://x:secret@h:5984/", "PICAS_DATABASE": "db", "PICAS_PASSWORD": "pw",
             "PICAS_USERNAME": "u", "PICAS_CONFIG": str(conf)}
    settings = resolve({}, env=shell)
    env, note = pilot_environment(settings, write=False)
    assert note.startswith("would write") and not (tmp_path / "slurm-pilots.yml").exists()
    env, note = pilot_environment(settings)
    target = tmp_path / "slurm-pilots.yml"
    assert note.startswith("wrote") and env["PICAS_CONFIG"] == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert env["PICAS_HOST_URL"] == "http://h:5984/" and "secret" not in str(env) and "pw" not in env.values()
    # What the job sees: the exported variables only, no password: it comes from the profile.
    job = resolve({}, env=env)
    assert (job.url, job.database, job.username, job.password) == ("http://h:5984/", "db", "u", "pw")
    assert pilot_environment(settings)[1] is None, "an unchanged profile is not written again"


# --- the commands, without a cluster -------------------------------------------------------------


@pytest.fixture
def cli_env(couch_server, db_name, tmp_path) -> dict:
    user, password = couch_server.admin
    return {"PICAS_HOST_URL": couch_server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
            "PICAS_PASSWORD": password, "PICAS_CONFIG": str(tmp_path / "conf.yml"), "PICAS_PROFILE": None,
            "PICAS_VERIFY": None, "PICAS_DEBUG": None}


def picas(env: dict, *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_dry_run_maps_every_option_and_holds_no_password(cli_env, couch_server):
    result = picas(cli_env, "submit", "slurm", "--array", "3", "--time", "2:00:00", "--partition", "p",
                   "--account", "a", "--qos", "q", "--cpus-per-task", "2", "--mem", "4G", "--signal-grace", "90",
                   "--sbatch-line", "--constraint=avx2", "--setup", "module load Python", "--design-doc", "D",
                   "--view", "v", "--max-tasks", "9", "--max-time", "3h", "--token-timeout", "30m",
                   "--heartbeat", "30", "--scrub-expired", "--prefetch", "2", "--retries", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    script = result.stdout
    for line in ("#SBATCH --array=0-2", "#SBATCH --time=2:00:00", "#SBATCH --partition=p", "#SBATCH --account=a",
                 "#SBATCH --qos=q", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G",
                 "#SBATCH --signal=B:USR1@90", "#SBATCH --constraint=avx2", "module load Python",
                 f"export PICAS_DATABASE={cli_env['PICAS_DATABASE']}",
                 "picas run --design-doc D --view v --max-tasks=9 --max-time=3h --token-timeout=30m "
                 "--heartbeat=30 --scrub-expired=300 --prefetch=2 --retries=1 &"):
        assert line in script.splitlines(), line
    assert couch_server.admin[1] not in script
    assert "would write the password" in result.stderr


def test_user_template(cli_env, tmp_path):
    template = tmp_path / "mine.sh"
    template.write_text("#!/bin/bash\n${sbatch_lines}\n#SBATCH --exclusive\necho $HOME $$\n${env}\n"
                        "srun ${pilot_command}\n")
    result = picas(cli_env, "submit", "slurm", "--template", str(template), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "echo $HOME $$\n" in result.stdout and "srun picas run --design-doc Monitor --view todo\n" in result.stdout
    template.write_text("#!/bin/bash\necho no pilot here\n")
    result = picas(cli_env, "submit", "slurm", "--template", str(template), "--dry-run")
    assert result.exit_code == 10 and "must contain ${pilot_command} or ${run_pilot}" in result.output


def test_the_example_script_is_what_dry_run_prints(cli_env, tmp_path):
    conf = tmp_path / "conf.yml"
    default = {"url": "https://couch.example.org:6984", "database": "run42", "username": "alice", "password": "pw"}
    conf.write_text(yaml.safe_dump({"profiles": {"default": default}}))
    env = {key: None for key in cli_env} | {"PICAS_CONFIG": str(conf)}
    result = picas(env, "submit", "slurm", "--array", "8", "--time", "4:00:00", "--partition", "normal",
                   "--mem", "2G", "--setup", "module load Python/3.11",
                   "--setup", "source $HOME/venvs/picas/bin/activate", "--max-time", "3h", "--scrub-expired",
                   "--dry-run")
    assert result.exit_code == 0, result.output

    def code(text: str) -> list[str]:
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("# ")]
        return [line for line in lines if not line.startswith("export PICAS_CONFIG=") and line != "#"]

    example = (ROOT / "examples" / "slurm-pilot.sh").read_text()
    assert code(example) == code(result.stdout)
    assert subprocess.run(["bash", "-n", str(ROOT / "examples" / "slurm-pilot.sh")]).returncode == 0


def test_pilot_args_pass_only_what_was_given():
    assert pilot_args({"max_tasks": 3, "retries": 0, "max_time": None}) == ["--max-tasks=3", "--retries=0"]


def test_pilots_list_and_cancel_without_jobs(cli_env, client):
    assert picas(cli_env, "pilots", "list").output.strip() == "No queued or running pilot jobs."
    assert picas(cli_env, "pilots", "cancel", "--all").output.strip() == "No queued or running pilot jobs."
    assert picas(cli_env, "pilots", "cancel").exit_code == 2


def test_autopilot_loop_stops_on_sigterm(couch_server, db_name, cli_env, client):
    code = ("from picas.cli import main\nfrom picas.cli.autopilot_cmd import autopilot\n"
            "main.add_command(autopilot)\nmain(prog_name='picas')\n")
    env = {**os.environ, **{k: v for k, v in cli_env.items() if v is not None}}
    for key in ("PICAS_PROFILE", "PICAS_VERIFY", "PICAS_DEBUG"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-c", code, "autopilot", "--loop", "--interval", "0.2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    deadline = time.monotonic() + 30
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    reader.join(timeout=10)
    assert len(lines) >= 2
    assert all("picas autopilot: submit nothing, no todo tokens" in line for line in lines), lines
    assert pilot_jobs.jobs(client) == []


def test_unknown_design_is_reported(cli_env, client):
    result = picas(cli_env, "autopilot", "--class", f"Nope{uuid.uuid4().hex[:4]}", "--dry-run")
    assert result.exit_code == 15 and "picas: error:" in result.output
