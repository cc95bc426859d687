"""Pure tests of the Slurm script builder and of squeue's answers (no Slurm needed).

The generated script is also run here with plain bash (the ``#SBATCH`` lines
are comments to bash) against a fake pilot, to check that arguments survive
quoting, that the pilot's exit status comes back, and that USR1/TERM reach
the pilot at once.
"""
from __future__ import annotations

import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from picas.errors import InvalidInput, SchedulerError
from picas.schedulers.base import JobState, JobStatus, PilotRequest
from picas.schedulers.sbatch import SbatchOptions, build_sbatch_script
from picas.pilot.options import side_by_side
from picas.schedulers.slurm import (
    SlurmScheduler,
    array_task_count,
    count_active_tasks,
    map_state,
    parse_squeue,
    sbatch_options,
    statuses,
    submit,
)


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def bash_syntax_ok(script: str, tmp_path: Path) -> None:
    path = tmp_path / "job.sh"
    path.write_text(script)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- build_sbatch_script ---------------------------------------------------------------


def test_every_option_has_its_sbatch_line(tmp_path: Path) -> None:
    opts = SbatchOptions(
        array=4, time="01:00:00", partition="debug", account="proj1", qos="short", cpus_per_task=2,
        mem="4G", job_name="mypilots", output="logs/p-%A_%a.out", signal_grace=300,
        extra_sbatch=["--constraint=avx2", "#SBATCH --exclusive"],
    )
    script = build_sbatch_script(opts)
    assert script.startswith("#!/bin/bash\n")
    assert sbatch_lines(script) == [
        "#SBATCH --job-name=mypilots",
        "#SBATCH --array=0-3",
        "#SBATCH --output=logs/p-%A_%a.out",
        "#SBATCH --time=01:00:00",
        "#SBATCH --partition=debug",
        "#SBATCH --account=proj1",
        "#SBATCH --qos=short",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=4G",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --constraint=avx2",
        "#SBATCH --exclusive",
    ]
    bash_syntax_ok(script, tmp_path)


def test_defaults_leave_cluster_defaults_alone(tmp_path: Path) -> None:
    script = build_sbatch_script(SbatchOptions())
    assert sbatch_lines(script) == [
        "#SBATCH --job-name=picas-pilot",
        "#SBATCH --array=0-0",
        "#SBATCH --output=picas-pilot-%A_%a.out",
        "#SBATCH --signal=B:USR1@120",
    ]
    assert "picas run &" in script
    bash_syntax_ok(script, tmp_path)


def test_sbatch_lines_come_before_any_command() -> None:
    # sbatch stops reading #SBATCH lines at the first command.
    script = build_sbatch_script(SbatchOptions(array=2, setup=["module load python"], env={"A": "1"}))
    lines = script.splitlines()
    last_sbatch = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    first_command = min(i for i, line in enumerate(lines[1:], 1) if line and not line.startswith("#"))
    assert last_sbatch < first_command


def test_values_with_spaces_are_quoted() -> None:
    lines = sbatch_lines(build_sbatch_script(SbatchOptions(job_name="my pilots", output="/data/my logs/%A_%a.out")))
    assert '#SBATCH --job-name="my pilots"' in lines
    assert '#SBATCH --output="/data/my logs/%A_%a.out"' in lines
    with pytest.raises(InvalidInput):
        build_sbatch_script(SbatchOptions(job_name='say "hi" there'))


def test_no_signal_line_without_grace() -> None:
    for grace in (0, None):
        assert not any("--signal" in line for line in sbatch_lines(build_sbatch_script(SbatchOptions(
            signal_grace=grace))))


def test_setup_env_and_pilot_args(tmp_path: Path) -> None:
    opts = SbatchOptions(
        array=10, setup=["module load Python/3.11", "source venv/bin/activate"],
        pilot_args=["--design-doc", "MultiCore", "--max-tasks", "10"],
        env={"PICAS_HOST_URL": "https://couch.example.org:6984", "PICAS_DATABASE": "my db",
             "PICAS_CONFIG": "/home/u/.picas.yml"},
        picas_command="/opt/venv/bin/picas",
    )
    script = build_sbatch_script(opts)
    assert "module load Python/3.11\nsource venv/bin/activate\n" in script
    assert "export PICAS_HOST_URL=https://couch.example.org:6984\n" in script
    assert "export PICAS_DATABASE='my db'\n" in script
    assert "export PICAS_CONFIG=/home/u/.picas.yml\n" in script
    assert "/opt/venv/bin/picas run --design-doc MultiCore --max-tasks 10 &\n" in script
    assert script.index("source venv") < script.index("export PICAS_HOST_URL") < script.index("picas run")
    bash_syntax_ok(script, tmp_path)


def test_password_is_not_written_unless_asked() -> None:
    env = {"PICAS_CONFIG": "/home/u/.picas.yml", "PICAS_PASSWORD": "hunter2", "MY_SECRET": "x9y8"}
    script = build_sbatch_script(SbatchOptions(env=env))
    assert "hunter2" not in script and "x9y8" not in script
    assert "PICAS_CONFIG" in script
    script = build_sbatch_script(SbatchOptions(env=env, export_secrets=True))
    assert "export PICAS_PASSWORD=hunter2" in script


def test_custom_template_placeholders(tmp_path: Path) -> None:
    template = (
        "#!/bin/bash\n${sbatch_lines}\n#SBATCH --mail-type=END\n"
        "echo \"node $(hostname) pid $$ home ${HOME}\"\n${setup}\n${env}\n"
        "${pilot_command}\necho done $?\n"
    )
    opts = SbatchOptions(array=3, setup=["ulimit -n 4096"], env={"PICAS_DATABASE": "db1"},
                         pilot_args=["--max-tasks", "5"])
    script = build_sbatch_script(opts, template)
    assert "${sbatch_lines}" not in script and "${setup}" not in script and "${env}" not in script
    assert "#SBATCH --array=0-2\n" in script
    assert "ulimit -n 4096\n" in script
    assert "export PICAS_DATABASE=db1\n" in script
    assert "\npicas run --max-tasks 5\necho done $?\n" in script
    # bash's own $ syntax is left alone
    assert "pid $$ home ${HOME}" in script
    bash_syntax_ok(script, tmp_path)


def test_custom_template_with_run_pilot(tmp_path: Path) -> None:
    script = build_sbatch_script(SbatchOptions(), "#!/bin/bash\n${sbatch_lines}\ncd $TMPDIR\n${run_pilot}\n")
    assert "trap 'forward USR1' USR1" in script and "picas run &" in script
    bash_syntax_ok(script, tmp_path)


def test_template_without_pilot_is_refused() -> None:
    with pytest.raises(InvalidInput, match="pilot_command"):
        build_sbatch_script(SbatchOptions(), "#!/bin/bash\n${sbatch_lines}\necho nothing\n")


@pytest.mark.parametrize("opts", [
    SbatchOptions(array=0),
    SbatchOptions(array=-3),
    SbatchOptions(cpus_per_task=0),
    SbatchOptions(signal_grace=-1),
    SbatchOptions(time="01:00:00\nrm -rf /"),
    SbatchOptions(extra_sbatch=["--x=1\necho"]),
    SbatchOptions(setup=["a\nb"]),
    SbatchOptions(env={"NOT-A-NAME": "1"}),
])
def test_bad_options_are_refused(opts: SbatchOptions) -> None:
    with pytest.raises(InvalidInput):
        build_sbatch_script(opts)


# --- the script run by bash against a fake pilot -----------------------------------------

FAKE_PILOT = """#!/bin/bash
# Fake pilot: record args and env, then behave as $FAKE_MODE says.
out="$FAKE_OUT"
printf '%s\\n' "$@" > "$out/args"
printf '%s' "$PICAS_DATABASE" > "$out/env"
case "$FAKE_MODE" in
    exit) exit 7 ;;
    signals)
        trap 'echo usr1 >> "$out/signals"' USR1
        trap 'echo term >> "$out/signals"; exit 5' TERM
        touch "$out/started"
        for _ in $(seq 300); do sleep 0.05; done
        exit 99 ;;
esac
"""


def make_fake_pilot(tmp_path: Path) -> Path:
    path = tmp_path / "fake-picas"
    path.write_text(FAKE_PILOT)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_script(tmp_path: Path, mode: str, args: list[str]) -> subprocess.Popen:
    opts = SbatchOptions(picas_command=str(make_fake_pilot(tmp_path)), pilot_args=args,
                         env={"PICAS_DATABASE": "data base 'x'", "FAKE_OUT": str(tmp_path), "FAKE_MODE": mode})
    script = tmp_path / "job.sh"
    script.write_text(build_sbatch_script(opts))
    return subprocess.Popen(["bash", str(script)], cwd=tmp_path)


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_script_passes_args_env_and_exit_code(tmp_path: Path) -> None:
    args = ["--design-doc", "Multi Core", "it's", "$HOME", "a\\b", "*"]
    proc = run_script(tmp_path, "exit", args)
    assert proc.wait(timeout=20) == 7
    assert (tmp_path / "args").read_text().splitlines() == ["run", *args]
    assert (tmp_path / "env").read_text() == "data base 'x'"


def test_script_forwards_usr1_then_term_at_once(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "signals", [])
    wait_for(tmp_path / "started")
    started = time.monotonic()
    proc.send_signal(signal.SIGUSR1)
    wait_for(tmp_path / "signals")
    # The batch shell must keep waiting after USR1: the pilot is still running.
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 5
    assert time.monotonic() - started < 5, "signals were not forwarded at once"
    assert (tmp_path / "signals").read_text().split() == ["usr1", "term"]


def test_missing_sbatch_is_a_scheduler_error(tmp_path: Path) -> None:
    with pytest.raises(SchedulerError, match="not found"):
        submit("#!/bin/bash\ntrue\n", sbatch=str(tmp_path / "no-sbatch"))


def test_availability_check_names_the_missing_program(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-sbatch")
    scheduler = SlurmScheduler(programs={"submit": missing})
    with pytest.raises(SchedulerError) as caught:
        scheduler.check_available("submit")
    assert caught.value.exit_code == 11
    assert str(caught.value) == (f"{missing} not found: Slurm is not installed on this machine "
                                 "(run picas where the Slurm client commands are on PATH)")
    assert not scheduler.available()
    request_script = SlurmScheduler().build(PilotRequest(count=2, pilot_args=["--max-tasks=1"]))
    with pytest.raises(SchedulerError, match="no-sbatch not found"):
        scheduler.submit(request_script)


# --- squeue parsing ------------------------------------------------------------------------


@pytest.mark.parametrize("job_id,count", [
    ("123", 1), ("123_4", 1), ("123_[0-9]", 10), ("123_[8-11]", 4), ("123_[1,3,5-7]", 5),
    ("123_[0-99%4]", 100), ("123_[0-10:5]", 3), ("7_[5]", 1),
])
def test_array_task_count(job_id: str, count: int) -> None:
    assert array_task_count(job_id) == count


def test_parse_and_count_active() -> None:
    out = "1_[8-11] PENDING\n1_0 RUNNING\n1_1 RUNNING\n2 COMPLETED\n3_2 COMPLETING\n4 PENDING\n\n"
    states = parse_squeue(out)
    assert states == {"1_[8-11]": "PENDING", "1_0": "RUNNING", "1_1": "RUNNING", "2": "COMPLETED",
                      "3_2": "COMPLETING", "4": "PENDING"}
    assert count_active_tasks(states) == 4 + 2 + 1


def test_squeue_states_in_picas_terms() -> None:
    assert [map_state(name) for name in ("PENDING", "running", "COMPLETING", "TIMEOUT", "CANCELLED", "NEW")] == [
        JobState.PENDING, JobState.RUNNING, JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN]
    assert SlurmScheduler.map_state("REQUEUE_HOLD") is JobState.PENDING
    rows = statuses({"1_[8-11]": "PENDING", "1_0": "RUNNING", "2": "COMPLETED"})
    assert rows == [JobStatus("1", "1_[8-11]", JobState.PENDING, 4, "PENDING"),
                    JobStatus("1", "1_0", JobState.RUNNING, 1, "RUNNING"),
                    JobStatus("2", "2", JobState.DONE, 1, "COMPLETED")]
    assert SlurmScheduler().job_id_of("1_[8-11]") == "1"


def test_a_pilot_job_asks_a_core_for_each_payload_it_runs_at_once() -> None:
    def cpus(pilot_args: list[str], **options) -> int | None:
        return sbatch_options(PilotRequest(count=2, pilot_args=pilot_args, options=options)).cpus_per_task

    assert cpus([]) is None, "one payload at a time: the cluster's default"
    assert cpus(["--slots=8"]) == 8
    assert cpus(["--jobs=2", "--slots=4", "--max-time=3600"]) == 8
    assert cpus(["--slots=8"], cpus_per_task=2) == 2, "the user's own --cpus-per-task wins"
    assert side_by_side(["--slots=x"]) == 1
