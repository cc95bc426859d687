"""``picas submit``, ``picas pilots``, ``picas autopilot`` and ``picas status`` without a cluster.

Slurm's submissions are checked as ``--dry-run`` text here (the real cluster
runs them in tests/schedulers/test_slurm_pilots.py).  The rest goes through
the ledger scheduler of tests/schedulers/second_scheduler.py: a second
scheduler defined by the tests and registered at run time, not a mock of a
real service.  That the commands work with it, although they never name it,
is the point: a backend plugs in without touching them.  The database is the
real test server.
"""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from picas.cli import main
from picas.core import token as tok
from picas.pool import registry
from tests import helpers
from tests.helpers import client_for
from tests.schedulers.second_scheduler import LedgerScheduler, ledger  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(couch_server, db_name):
    handle = client_for(couch_server, db_name)
    yield handle
    handle.close()


@pytest.fixture
def cli_env(couch_server, db_name, tmp_path) -> dict:
    return helpers.cli_env(couch_server, db_name, tmp_path / "conf.yml")


def picas(env: dict, *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# --- picas submit slurm --dry-run ---------------------------------------------------------------


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
                 "picas run --design-doc D --view v --max-tasks=9 --max-time=10800 --token-timeout=1800 "
                 "--prefetch=2 --retries=1 --heartbeat=30 --scrub-expired=300 &"):
        assert line in script.splitlines(), line
    assert couch_server.admin[1] not in script
    assert "would write the password" in result.stderr


def test_every_option_of_run_reaches_the_pilots(cli_env, tmp_path):
    result = picas(cli_env, "submit", "slurm", "--grace", "30", "--outage-timeout", "1h", "--max-attempts", "3",
                   "--log-cap", "4096", "--wait", "-j", "2", "--workdir", str(tmp_path / "w"), "--keep-workdirs",
                   "--quiet", "--dry-run")
    assert result.exit_code == 0, result.output
    [run_line] = [line for line in result.stdout.splitlines() if line.startswith("picas run ")]
    assert run_line == (f"picas run --design-doc Monitor --view todo --wait --jobs=2 --grace=30 --max-attempts=3 "
                        f"--outage-timeout=3600 --workdir={tmp_path / 'w'} --keep-workdirs --log-cap=4096 --quiet &")
    no_wait = picas(cli_env, "submit", "slurm", "--no-wait", "--dry-run")
    assert "picas run --design-doc Monitor --view todo --no-wait &" in no_wait.stdout.splitlines()
    bad = picas(cli_env, "submit", "slurm", "--log-cap", "10", "--dry-run")
    assert bad.exit_code == 2 and "--log-cap" in bad.output


def test_run_accepts_what_submit_writes(cli_env, tmp_path):
    """The pilot line of a batch script parses as 'picas run' options (checked with --help, which runs nothing)."""
    result = picas(cli_env, "submit", "slurm", "--grace", "30", "--outage-timeout", "1h", "--max-attempts", "3",
                   "--log-cap", "4096", "--no-wait", "--scrub-expired", "--max-time", "2h", "--dry-run")
    [run_line] = [line for line in result.stdout.splitlines() if line.startswith("picas run ")]
    args = run_line.split()[2:-1]
    parsed = picas(cli_env, "run", *args, "--help")
    assert parsed.exit_code == 0, parsed.output


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


def test_submit_lists_the_known_schedulers(cli_env):
    result = picas(cli_env, "submit", "--help")
    assert result.exit_code == 0 and "slurm" in result.output
    unknown = picas(cli_env, "submit", "nope")
    assert unknown.exit_code == 2 and "No such command 'nope'" in unknown.output


def test_dirac_without_a_credential_is_refused_before_any_password_is_written(cli_env, tmp_path):
    """The operator's password comes from PICAS_PASSWORD here, so a pilot profile would be written next to
    the (absent) config file; DIRAC refuses first, so nothing is: not on submit, --dry-run or the autopilot."""
    for args in (["submit", "dirac", "-n", "2"], ["submit", "dirac", "--dry-run"],
                 ["autopilot", "--scheduler", "dirac"], ["autopilot", "--scheduler", "dirac", "--dry-run"],
                 ["submit", "dirac", "--pilot-config", str(tmp_path / "mine.yml")]):
        result = picas(cli_env, *args)
        assert result.exit_code == 10, (args, result.output)
        assert "DIRAC pilots need a pilot credential" in result.stderr and "--credential" in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [], args
    assert "--pilot-config" not in picas(cli_env, "submit", "dirac", "--help").output
    assert "--pilot-config" not in picas(cli_env, "autopilot", "--scheduler", "dirac", "--help").output
    assert "--pilot-config" in picas(cli_env, "submit", "slurm", "--help").output
    assert "--pilot-config" in picas(cli_env, "autopilot", "--help").output


# --- commands without jobs ---------------------------------------------------------------------


def test_pilots_list_and_cancel_without_jobs(cli_env, client):
    assert picas(cli_env, "pilots", "list").output.strip() == "No queued or running pilot jobs."
    assert picas(cli_env, "pilots", "cancel", "--all").output.strip() == "No queued or running pilot jobs."
    assert picas(cli_env, "pilots", "cancel").exit_code == 2


def test_unknown_design_is_reported(cli_env, client):
    result = picas(cli_env, "autopilot", "--class", f"Nope{uuid.uuid4().hex[:4]}", "--dry-run")
    assert result.exit_code == 15 and "picas: error:" in result.output


def test_unknown_scheduler_is_a_usage_error(cli_env):
    result = picas(cli_env, "autopilot", "--scheduler", "nope", "--dry-run")
    assert result.exit_code == 2 and "unknown scheduler 'nope'" in result.output


# --- every command through a scheduler they never name -----------------------------------------


@pytest.mark.usefixtures("ledger")
def test_submit_a_second_scheduler(cli_env, client):
    help_text = picas(cli_env, "submit", "--help").output
    assert "ledger" in help_text and "slurm" in help_text
    options = picas(cli_env, "submit", "ledger", "--help").output
    assert "--queue" in options and "--lanes" in options and "--grace" in options and "--partition" not in options
    dry = picas(cli_env, "submit", "ledger", "--pilots", "3", "--lanes", "2", "--notes", "a", "--notes", "b",
                "--grace", "30", "--dry-run")
    assert dry.exit_code == 0, dry.output
    description = json.loads(dry.stdout)
    assert description["pilots"] == 3
    assert description["options"] == {"queue": "main", "lanes": 2, "notes": ["a", "b"]}
    assert description["run"] == ["--design-doc", "Monitor", "--view", "todo", "--grace=30"]
    assert "PICAS_PASSWORD" not in description["env"] and cli_env["PICAS_PASSWORD"] not in dry.stdout
    assert not LedgerScheduler.jobs and registry.jobs(client) == []

    done = picas(cli_env, "submit", "ledger", "-n", "3", "--lanes", "2", "--design-doc", "Monitor")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "Submitted pilot jobs L9001 L9002 L9003: 3 pilots for Monitor"
    entries = registry.jobs(client)
    assert [(e["job_id"], e["scheduler"], e["array"], e["resources"]) for e in entries] == \
        [(f"L900{i}", "ledger", 1, {"lanes": 2}) for i in (1, 2, 3)]
    parsable = picas(cli_env, "submit", "ledger", "--pilots", "2", "--parsable")
    assert parsable.stdout.split() == ["L9004", "L9005"]


@pytest.mark.usefixtures("ledger")
def test_pilots_and_status_ask_the_second_scheduler(cli_env, client):
    assert picas(cli_env, "submit", "ledger", "--pilots", "3", "--lanes", "4").exit_code == 0
    LedgerScheduler.set_state("Running", ["L9001"])
    LedgerScheduler.set_state("Crashed", ["L9003"])
    listing = picas(cli_env, "pilots", "list")
    assert listing.exit_code == 0, listing.output
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[6]) for r in rows] == [("L9001", "ledger", "running"), ("L9002", "ledger", "queued")]
    assert all(r[-1] == "lanes=4" for r in rows)
    everything = [json.loads(line) for line in picas(cli_env, "pilots", "list", "--all", "--json").stdout.splitlines()]
    assert [r["state"] for r in everything] == ["running", "queued", "finished"]

    status = picas(cli_env, "status")
    assert status.exit_code == 0, status.output
    assert "Pilot jobs:" in status.stdout and "L9001" in status.stdout and "L9003" not in status.stdout
    as_json = json.loads(picas(cli_env, "status", "--json").stdout)
    assert [p["job_id"] for p in as_json["pilots"]] == ["L9001", "L9002"]

    drain = picas(cli_env, "pilots", "cancel", "--all", "--signal", "USR1")
    assert drain.exit_code == 11 and "Ledger cannot send a signal to running pilots" in drain.output
    cancelled = picas(cli_env, "pilots", "cancel", "L9002")
    assert cancelled.exit_code == 0 and cancelled.stdout.strip() == "Cancelled 1 pilot job: L9002"
    assert LedgerScheduler.jobs["L9002"]["state"] == "Killed" and LedgerScheduler.jobs["L9001"]["state"] == "Running"
    assert picas(cli_env, "pilots", "cancel", "--all").stdout.strip() == "Cancelled 1 pilot job: L9001"
    pruned = picas(cli_env, "pilots", "prune", "--older-than", "0")
    assert pruned.stdout.strip() == "Forgot 3 finished pilot jobs: L9001, L9002, L9003"
    assert registry.jobs(client) == []


@pytest.mark.usefixtures("ledger")
def test_autopilot_on_the_second_scheduler(cli_env, client, tmp_path):
    client.bulk_save([tok.new_token("true", f"t{i}") for i in range(25)])
    classes = tmp_path / "classes.yml"
    classes.write_text(yaml.safe_dump([{"design": "Monitor", "lanes": 2, "notes": ["big"]}]))
    args = ["autopilot", "--scheduler", "ledger", "--classes", str(classes), "--queue", "short", "--notes", "all",
            "--max-pilots", "5", "--outage-timeout", "20m"]
    first = picas(cli_env, *args)
    assert first.exit_code == 0, first.output
    assert "submit 3 pilots (Monitor 3): 0 active of max 5; todo: Monitor 25; jobs: Monitor L9001 L9002 L9003" \
        in first.stdout
    description = LedgerScheduler.jobs["L9001"]["description"]
    assert description["options"] == {"queue": "short", "notes": ["all", "big"], "lanes": 2}
    assert description["run"] == ["--design-doc", "Monitor", "--view", "todo", "--outage-timeout=1200"]
    assert [e["via"] for e in registry.jobs(client)] == ["autopilot"] * 3
    second = picas(cli_env, *args)
    assert "submit nothing, the active pilots cover the todo tokens" in second.stdout
    bad = picas(cli_env, "autopilot", "--scheduler", "ledger", "--class", "Monitor:cpus-per-task=4")
    assert bad.exit_code == 10 and "unknown key 'cpus-per-task' (known: design, view, lanes, notes)" in bad.output
    help_text = picas(cli_env, "autopilot", "--scheduler", "ledger", "--help").output
    assert "--queue" in help_text and "--partition" not in help_text
    assert "--partition" in picas(cli_env, "autopilot", "--help").output
