"""STAND-IN for DIRAC's job commands, for tests only: a DIRAC server cannot run here.

``dirac-wms-job-submit``, ``dirac-wms-job-status`` and ``dirac-wms-job-kill``
next to this module call :func:`submit`, :func:`status` and :func:`kill`.
They behave like the real commands where picas depends on it:

* submit reads the JDL with DIRAC's own code (DIRACCommon: ``ClassAd`` and
  ``generateParametricJobs``), makes one job per parameter, copies exactly
  the files its ``InputSandbox`` names (relative to the current directory,
  refusing a sandbox over DIRAC's default 10 MiB) into a fresh directory per
  job, and prints ``JobID = 11`` or ``JobID = [11, 12, 13]``;
* each job runs like on a worker node: its ``Executable`` with its
  ``Arguments`` in that directory, with an environment of only ``PATH``
  (``$DIRAC_STANDIN_JOB_PATH``), an empty ``HOME`` and ``DIRACJOBID``,
  stdout and stderr into ``StdOutput``/``StdError``;
* status prints ``JobID=11 Status=Running; MinorStatus=Application; Site=...;``;
* kill sends TERM to a running job's process group, marks it Killed and
  prints ``Killed jobs 11,12``.

State lives in ``$DIRAC_STANDIN_HOME``.  While the file ``hold`` exists
there, new jobs stay Waiting (a busy grid) until :func:`release`.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

SITE = "LOCAL.standin.org"
LIMIT = 10 * 1024 * 1024
ACTIVE = ("Received", "Checking", "Waiting", "Matched", "Running", "Completing")


def home() -> Path:
    path = os.environ.get("DIRAC_STANDIN_HOME")
    if not path:
        sys.stderr.write("stand-in DIRAC: DIRAC_STANDIN_HOME is not set\n")
        sys.exit(2)
    return Path(path)


@contextmanager
def locked(state: Path):
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def job_dir(state: Path, job_id: str) -> Path:
    return state / "jobs" / str(job_id)


def load(state: Path, job_id: str) -> dict | None:
    try:
        return json.loads((job_dir(state, job_id) / "job.json").read_text())
    except (OSError, ValueError):
        return None


def save(state: Path, job: dict) -> None:
    path = job_dir(state, job["id"]) / "job.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job))
    os.replace(tmp, path)


def _next_id(state: Path) -> int:
    counter = state / "next_id"
    value = int(counter.read_text()) if counter.exists() else 1001
    counter.write_text(str(value + 1))
    return value


def submit(argv: list[str]) -> int:
    from DIRACCommon.Core.Utilities.ClassAd.ClassAdLight import ClassAd
    from DIRACCommon.WorkloadManagementSystem.Utilities.ParametricJob import generateParametricJobs

    state = home()
    paths = [a for a in argv if not a.startswith("-")]
    status = 0
    for path in paths:
        text = Path(path).read_text()
        expanded = generateParametricJobs(ClassAd(text))
        if not expanded["OK"]:
            print(f"ERROR {path}: {expanded['Message']}")
            status = 2
            continue
        first = ClassAd(expanded["Value"][0])
        names = first.getListFromExpression("InputSandbox")
        missing = [n for n in names if not Path(n).is_file()]
        if missing:
            print(f"ERROR {path}: input sandbox file {missing[0]} does not exist")
            status = 2
            continue
        if sum(Path(n).stat().st_size for n in names) > LIMIT:
            print(f"ERROR {path}: Input sandbox is larger than the limit of 10 MiB")
            status = 2
            continue
        ids = []
        with locked(state):
            held = (state / "hold").exists()
            for job_jdl in expanded["Value"]:
                job_id = str(_next_id(state))
                directory = job_dir(state, job_id)
                (directory / "sandbox").mkdir(parents=True)
                (directory / "home").mkdir()
                for name in names:
                    shutil.copyfile(name, directory / "sandbox" / name)
                (directory / "job.jdl").write_text(job_jdl)
                save(state, {"id": job_id, "status": "Waiting", "minor": "Pilot Agent Submission", "pid": None})
                ids.append(job_id)
        if not held:
            for job_id in ids:
                start(state, job_id)
        print(f"JobID = [{', '.join(ids)}]" if len(expanded["Value"]) > 1 or "Parameters" in text
              else f"JobID = {ids[0]}")
    return status


def start(state: Path, job_id: str) -> None:
    """Run one Waiting job in the background, detached like a job on a worker node."""
    subprocess.Popen([sys.executable, __file__, "run", str(state), job_id], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(state: Path, job_id: str) -> int:
    from DIRACCommon.Core.Utilities.ClassAd.ClassAdLight import ClassAd

    directory = job_dir(state, job_id)
    ad = ClassAd((directory / "job.jdl").read_text())
    argv = [ad.getAttributeString("Executable"), *shlex.split(ad.getAttributeString("Arguments") or "")]
    env = {"PATH": os.environ.get("DIRAC_STANDIN_JOB_PATH", "/usr/bin:/bin"), "HOME": str(directory / "home"),
           "DIRACJOBID": job_id}
    sandbox = directory / "sandbox"
    with open(sandbox / ad.getAttributeString("StdOutput"), "wb") as out, \
            open(sandbox / ad.getAttributeString("StdError"), "wb") as err:
        with locked(state):
            job = load(state, job_id)
            if job["status"] != "Waiting":
                return 0  # killed before it started
            proc = subprocess.Popen(argv, cwd=sandbox, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            job.update(status="Running", minor="Application", pid=proc.pid)
            save(state, job)
        code = proc.wait()
    with locked(state):
        job = load(state, job_id)
        if job["status"] != "Killed":
            job.update(status="Done" if code == 0 else "Failed",
                       minor="Execution Complete" if code == 0 else f"Application exited with status {code}")
        job["exit_code"] = code
        save(state, job)
    return 0


def status(argv: list[str]) -> int:
    state = home()
    for job_id in argv:
        if job_id.startswith("-"):
            continue
        job = load(state, job_id)
        if job is not None:
            print(f"JobID={job_id} Status={job['status']}; MinorStatus={job['minor']}; Site={SITE};")
    return 0


def kill(argv: list[str]) -> int:
    state = home()
    killed = []
    with locked(state):
        for job_id in argv:
            job = load(state, job_id)
            if job is None:
                continue
            if job["status"] in ACTIVE:
                if job.get("pid"):
                    try:
                        os.killpg(job["pid"], signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                job.update(status="Killed", minor="Marked for termination")
                save(state, job)
            killed.append(job_id)
    print(f"Killed jobs {','.join(killed)}")
    return 0


def release(state: Path) -> list[str]:
    """Start every Waiting job (the grid found slots); returns their ids."""
    (state / "hold").unlink(missing_ok=True)
    ids = sorted((p.name for p in (state / "jobs").iterdir() if (load(state, p.name) or {}).get("status") ==
                  "Waiting"), key=int) if (state / "jobs").exists() else []
    for job_id in ids:
        start(state, job_id)
    return ids


def wait_finished(state: Path, ids: list[str], timeout: float = 180.0) -> dict[str, dict]:
    """Wait until none of ``ids`` is active any more; returns their records."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {job_id: load(state, job_id) for job_id in ids}
        if all(job and job["status"] not in ACTIVE for job in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"stand-in jobs still active after {timeout} s: {jobs}")
        time.sleep(0.2)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "run":
    sys.exit(run(Path(sys.argv[2]), sys.argv[3]))
