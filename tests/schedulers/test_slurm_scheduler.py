"""submit / queued_jobs / count_active / cancel against a real Slurm cluster.

Bring one up with ``scripts/slurm-up.sh``.  The jobs are tiny shell scripts
(not picas itself); their working directory is the test's tmp dir, which the
job sees because the cluster is this one machine.
"""
from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from picas.errors import InvalidInput, SchedulerError
from picas.schedulers.sbatch import SbatchOptions, build_sbatch_script
from picas.schedulers.slurm import (
    cancel,
    count_active,
    queued_jobs,
    slurm_available,
    submit,
)

try:
    from tests.slurm_fixture import slurm_cluster  # noqa: F401
except ImportError:  # tests/ is not a package and the repo root is not on sys.path
    from slurm_fixture import slurm_cluster  # noqa: F401

# Every test here needs the real cluster: skipped without one, failed in CI.
pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def jobcomp_log() -> Path | None:
    """Where jobcomp/filetxt writes final job states (scripts/slurm-up.sh sets it)."""
    proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=10)
    for line in proc.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "JobCompLoc" and value.strip().startswith("/"):
            return Path(value.strip())
    return None


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def test_slurm_available() -> None:
    assert slurm_available()


def test_submit_array_runs_every_task(tmp_path: Path) -> None:
    script = (
        "#!/bin/bash\n"
        "#SBATCH --array=0-2\n"
        "#SBATCH --job-name=picas-test\n"
        "#SBATCH --output=task-%A_%a.out\n"
        "sleep 2\n"
        "echo hi $SLURM_ARRAY_TASK_ID > done-$SLURM_ARRAY_TASK_ID\n"
    )
    job_id = submit(script, cwd=str(tmp_path))
    assert job_id.isdigit()

    states = queued_jobs([job_id])
    assert states, "a job just submitted must be queued or running"
    assert all(key == job_id or key.startswith(job_id + "_") for key in states)
    assert set(states.values()) <= {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"}
    assert 1 <= count_active([job_id]) <= 3

    wait_until(lambda: count_active([job_id]) == 0, 60, "the array to finish")
    wait_until(lambda: all((tmp_path / f"done-{i}").exists() for i in range(3)), 10, "the output files")
    for i in range(3):
        assert (tmp_path / f"done-{i}").read_text() == f"hi {i}\n"
        assert (tmp_path / f"task-{job_id}_{i}.out").exists()


def test_pending_array_counts_each_task(tmp_path: Path) -> None:
    # --hold keeps the whole array pending, so squeue folds it into one "N_[0-4]" row.
    job_id = submit("#!/bin/bash\n#SBATCH --array=0-4\n#SBATCH --hold\ntrue\n", cwd=str(tmp_path))
    try:
        states = queued_jobs([job_id])
        assert states == {f"{job_id}_[0-4]": "PENDING"}
        assert count_active([job_id]) == 5
    finally:
        cancel([job_id])
    wait_until(lambda: count_active([job_id]) == 0, 30, "the held array to be cancelled")


def test_bad_partition_raises_with_sbatch_message(tmp_path: Path) -> None:
    script = build_sbatch_script(SbatchOptions(partition="no-such-partition"))
    with pytest.raises(SchedulerError) as info:
        submit(script, cwd=str(tmp_path))
    message = str(info.value)
    assert "invalid partition" in message.lower()
    assert "no-such-partition" in message
    assert "\n" not in message


def test_unknown_and_bad_ids() -> None:
    # squeue exits 1 with "Invalid job id specified" when it knows none of the ids.
    assert queued_jobs(["999999"]) == {}
    assert count_active(["999999", "999998"]) == 0
    assert queued_jobs([]) == {}
    cancel(["999999"])
    with pytest.raises(InvalidInput):
        queued_jobs(["12; rm -rf /"])


FAKE_PILOT = """#!/bin/bash
trap 'echo usr1 >> signals; exit 3' USR1
trap 'echo term >> signals; exit 0' TERM
echo "$@" > started-$SLURM_ARRAY_TASK_ID
for _ in $(seq 1200); do sleep 0.1; done
"""


def _pilot_job(tmp_path: Path, array: int) -> str:
    pilot = tmp_path / "fake-picas"
    pilot.write_text(FAKE_PILOT)
    pilot.chmod(pilot.stat().st_mode | stat.S_IXUSR)
    opts = SbatchOptions(array=array, time="00:05:00", picas_command=str(pilot), pilot_args=["--max-tasks", "1"],
                         job_name="picas-test-pilot")
    job_id = submit(build_sbatch_script(opts), cwd=str(tmp_path))
    wait_until(lambda: all((tmp_path / f"started-{i}").exists() for i in range(array)), 30,
               "the fake pilots to start")
    return job_id


def _jobcomp_exit_codes(log: Path, job_id: str) -> list[str]:
    if not log.exists():
        return []
    return [field.split("=", 1)[1] for line in log.read_text().splitlines()
            if f"ArrayJobId={job_id} " in line or f"JobId={job_id} " in line
            for field in line.split() if field.startswith("ExitCode=")]


def test_cancel_reaches_the_pilot(tmp_path: Path) -> None:
    job_id = _pilot_job(tmp_path, 2)
    assert count_active([job_id]) == 2
    assert (tmp_path / "started-0").read_text() == "run --max-tasks 1\n"
    started = time.monotonic()
    cancel([job_id])
    wait_until(lambda: count_active([job_id]) == 0, 30, "the cancelled pilots to end")
    assert time.monotonic() - started < 15
    wait_until(lambda: (tmp_path / "signals").exists(), 10, "the pilots to see TERM")
    assert "term" in (tmp_path / "signals").read_text().split()


def test_usr1_is_forwarded_and_exit_code_kept(tmp_path: Path) -> None:
    job_id = _pilot_job(tmp_path, 1)
    cancel([job_id], signal="USR1")
    wait_until(lambda: count_active([job_id]) == 0, 30, "the pilot to stop on USR1")
    assert (tmp_path / "signals").read_text().split() == ["usr1"]
    # The batch shell exits with the pilot's status, and Slurm records it.
    log = jobcomp_log()
    if log is None:
        pytest.skip("this cluster has no jobcomp/filetxt log to read the exit code from")
    wait_until(lambda: bool(_jobcomp_exit_codes(log, job_id)), 10, "the job to reach the jobcomp log")
    assert _jobcomp_exit_codes(log, job_id) == ["3:0"]
