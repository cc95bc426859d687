"""The Slurm backend: submit pilot arrays with sbatch, watch them with squeue, stop them with scancel.

:class:`SlurmScheduler` is the :class:`~picas.schedulers.base.Scheduler` that
generic code gets from ``picas.schedulers.get("slurm")``.  The batch script
itself comes from the pure builder in :mod:`picas.schedulers.sbatch`.

The module keeps a pure part (:func:`parse_squeue`, :func:`array_task_count`,
:func:`count_active_tasks`, :func:`statuses`, the state table) apart from a
thin subprocess layer (:func:`submit`, :func:`queued_jobs`, :func:`count_active`,
:func:`cancel`, :func:`slurm_available`), which turns the programs' failures
into :class:`~picas.errors.SchedulerError` carrying Slurm's own message,
because that message (``invalid partition specified``...) is what the user
must see.  One submission is one array job: its id is the one id
:meth:`SlurmScheduler.submit` returns, and squeue lists its tasks as
``123_4`` (running) or folded as ``123_[5-9]`` (pending).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, Mapping, Sequence

from picas import defaults
from picas.errors import InvalidInput, SchedulerError
from picas.pilot.options import Option, side_by_side
from picas.pool import credentials
from picas.schedulers.base import JobState, JobStatus, PilotRequest, Scheduler, Submission, one_line, run_program
from picas.schedulers.sbatch import DEFAULT_OUTPUT, SbatchOptions, build_sbatch_script

__all__ = [
    "OPTIONS",
    "STATES",
    "SlurmScheduler",
    "array_task_count",
    "cancel",
    "count_active",
    "count_active_tasks",
    "map_state",
    "parse_squeue",
    "queued_jobs",
    "sbatch_options",
    "slurm_available",
    "statuses",
    "submit",
]

_P, _R, _D, _F, _C = JobState.PENDING, JobState.RUNNING, JobState.DONE, JobState.FAILED, JobState.CANCELLED

#: squeue's state names in picas' terms.  Only RUNNING is running: a signal reaches only such a
#: pilot (``scancel --batch --signal`` on any other waits instead of failing).  Every other state
#: in which a pilot holds, or will hold, a slot is pending.  COMPLETING is done: the pilot has
#: finished and only Slurm's cleanup remains.
STATES: dict[str, JobState] = {
    "PENDING": _P, "CONFIGURING": _P, "SUSPENDED": _P, "STOPPED": _P, "RESIZING": _P, "REQUEUED": _P,
    "REQUEUE_HOLD": _P, "REQUEUE_FED": _P, "RESV_DEL_HOLD": _P, "SIGNALING": _P, "STAGE_OUT": _P,
    "RUNNING": _R,
    "COMPLETING": _D, "COMPLETED": _D,
    "FAILED": _F, "TIMEOUT": _F, "NODE_FAIL": _F, "OUT_OF_MEMORY": _F, "BOOT_FAIL": _F, "DEADLINE": _F,
    "PREEMPTED": _F, "SPECIAL_EXIT": _F,
    "CANCELLED": _C, "REVOKED": _C,
}

_JOB_ID = re.compile(r"^\d+(?:_\d+|_\[[0-9,\-:%]+\])?$")
_TITLE = "Slurm"
_INSTALL_HINT = "run picas where the Slurm client commands are on PATH"
_TIMEOUT_HINT = "check that slurmctld runs ('sinfo')"

#: The options of ``picas submit slurm`` and ``picas autopilot``; those marked per_class a pilot class may set.
OPTIONS: tuple[Option, ...] = (
    Option("time", "Walltime per pilot, sbatch syntax (e.g. 1:00:00, 2-00:00:00).", metavar="TIME", per_class=True),
    Option("partition", "Slurm partition.", metavar="NAME", per_class=True),
    Option("account", "Account charged for the pilots.", metavar="NAME", per_class=True),
    Option("qos", "Quality of service.", metavar="NAME", per_class=True),
    Option("cpus_per_task", "Cores per pilot job [default: one per payload it runs at once, its --jobs times "
           "its --slots].", "int", minimum=1, per_class=True),
    Option("mem", "Memory per pilot (e.g. 4G).", metavar="SIZE", per_class=True),
    Option("job_name", "Slurm job name.", default=defaults.PILOT_JOB_NAME),
    Option("output", "Log file pattern (%A array job, %a task), relative to the current directory.",
           default=DEFAULT_OUTPUT),
    Option("signal_grace", "Seconds before the walltime at which Slurm sends USR1, so the pilot gives its token "
           "back cleanly; 0 asks for no warning.", "int", default=defaults.SIGNAL_GRACE, minimum=0),
    Option("sbatch_lines", "Extra #SBATCH line, e.g. '--constraint=gpu' (repeatable).", flags=("--sbatch-line",),
           multiple=True, metavar="TEXT", per_class=True),
    Option("setup", "Shell line run before the pilot, e.g. 'module load python' (repeatable).", multiple=True,
           metavar="TEXT", per_class=True),
    Option("template", "Your own batch script template (see examples/slurm-pilot.sh).", "file-text"),
    Option("picas_command", "How the job starts picas, e.g. 'python3 -m picas' or a venv's bin/picas.",
           default="picas"),
    credentials.OPTION,
)


def map_state(native: str) -> JobState:
    """The :class:`~picas.schedulers.base.JobState` of a squeue state name (pure)."""
    return STATES.get(native.strip().upper(), JobState.UNKNOWN)


def _run(argv: list[str], *, stdin: str | None = None, cwd: str | None = None,
         timeout: float = defaults.SCHEDULER_TIMEOUT,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_program(argv, stdin=stdin, cwd=cwd, env=env, timeout=timeout, title=_TITLE, hint=_INSTALL_HINT,
                       timeout_hint=_TIMEOUT_HINT)


def _check_ids(job_ids: Sequence[str]) -> list[str]:
    ids = [str(j).strip() for j in job_ids]
    bad = [j for j in ids if not _JOB_ID.match(j)]
    if bad:
        raise InvalidInput(f"not a Slurm job id: {', '.join(bad)}")
    return ids


def submit(script: str, sbatch: str = "sbatch", *, cwd: str | None = None,
           timeout: float = defaults.SCHEDULER_TIMEOUT) -> str:
    """Submit ``script`` with ``sbatch --parsable`` on stdin; return the job id.

    The job's working directory (where relative ``--output`` paths land) is
    ``cwd``, or the current directory.  On failure raises
    :class:`~picas.errors.SchedulerError` with sbatch's own stderr as one line,
    e.g. ``sbatch: error: invalid partition specified: nope``.
    """
    proc = _run([sbatch, "--parsable"], stdin=script, cwd=cwd, timeout=timeout)
    if proc.returncode != 0:
        raise SchedulerError(one_line(proc.stderr, proc.stdout))
    # --parsable prints "jobid" or "jobid;cluster"; warnings may precede it.
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    job_id = lines[-1].split(";", 1)[0] if lines else ""
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch gave no job id (output: {proc.stdout.strip()!r})")
    return job_id


def parse_squeue(output: str) -> dict[str, str]:
    """Map job ids to states from ``squeue -h -o "%i %T"`` output (pure).

    Running array tasks look like ``123_4``; pending ones are folded into one
    row such as ``123_[5-9]``, kept as is (see :func:`array_task_count`).
    """
    states: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1].upper()
    return states


def array_task_count(job_id: str) -> int:
    """How many tasks one squeue job id stands for (pure).

    ``123`` and ``123_4`` are one task; ``123_[0-9]`` is ten;
    ``123_[1,3,5-7%2]`` is five (``%2`` only throttles); ``123_[0-10:5]`` is
    three (a step).
    """
    match = re.search(r"_\[([^\]]*)\]$", job_id)
    if not match:
        return 1
    spec = match.group(1).split("%", 1)[0]
    total = 0
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        step = 1
        if ":" in part:
            part, step_text = part.split(":", 1)
            step = max(int(step_text), 1)
        if "-" in part:
            low, high = (int(x) for x in part.split("-", 1))
            total += len(range(low, high + 1, step)) if high >= low else 0
        else:
            int(part)
            total += 1
    return total


def count_active_tasks(states: Mapping[str, str]) -> int:
    """Pending plus running pilot tasks in a :func:`queued_jobs` answer (pure)."""
    return sum(array_task_count(job_id) for job_id, state in states.items() if map_state(state).active)


def queued_jobs(job_ids: Sequence[str], squeue: str = "squeue", *,
                timeout: float = defaults.SCHEDULER_TIMEOUT) -> dict[str, str]:
    """Ask squeue for the states of ``job_ids`` and their array tasks.

    Returns e.g. ``{"123_0": "RUNNING", "123_[1-9]": "PENDING"}``.  Jobs that
    Slurm already forgot are simply absent: squeue answers "Invalid job id
    specified" (exit 1) when every id given is unknown, and that is read as
    "nothing queued", not as an error.
    """
    ids = _check_ids(job_ids)
    if not ids:
        return {}
    proc = _run([squeue, "-h", "-o", "%i %T", "-j", ",".join(ids)], timeout=timeout,
                env={**os.environ, "SLURM_BITSTR_LEN": "0"})
    if proc.returncode != 0:
        if "invalid job id" in (proc.stderr + proc.stdout).lower():
            return {}
        raise SchedulerError(one_line(proc.stderr, proc.stdout))
    return parse_squeue(proc.stdout)


def count_active(job_ids: Sequence[str], squeue: str = "squeue", *, timeout: float = defaults.SCHEDULER_TIMEOUT) -> int:
    """Number of pilot tasks of ``job_ids`` still pending or running."""
    return count_active_tasks(queued_jobs(job_ids, squeue, timeout=timeout))


def cancel(job_ids: Sequence[str], scancel: str = "scancel", *, signal: str | None = None,
           timeout: float = defaults.SCHEDULER_TIMEOUT) -> None:
    """Cancel ``job_ids`` (whole arrays, or tasks like ``123_4``) with scancel.

    Slurm sends TERM to the batch shell, which forwards it to the pilot.  With
    ``signal`` (e.g. ``"USR1"``) the jobs are not cancelled: only their batch
    shells get that signal (``scancel --batch --signal``), which the script
    forwards once to the pilot: a way to ask pilots to finish their current
    token and stop.  Jobs that already ended are not an error.
    """
    ids = _check_ids(job_ids)
    if not ids:
        return
    argv = [scancel]
    if signal is not None:
        if not re.match(r"^(SIG)?[A-Z0-9]+$", signal):
            raise InvalidInput(f"not a signal name: {signal!r}")
        argv += ["--batch", f"--signal={signal}"]
    proc = _run([*argv, *ids], timeout=timeout)
    if proc.returncode != 0:
        text = (proc.stderr + proc.stdout).lower()
        if "already completing or completed" in text or "invalid job id specified" in text:
            return
        raise SchedulerError(one_line(proc.stderr, proc.stdout))


def slurm_available(sbatch: str = "sbatch", sinfo: str = "sinfo", *, timeout: float = 5.0) -> bool:
    """True when sbatch is on PATH and ``sinfo`` gets an answer from slurmctld.

    The timeout matters: without a configuration file sinfo retries for a
    minute before it gives up.
    """
    if shutil.which(sbatch) is None or shutil.which(sinfo) is None:
        return False
    try:
        proc = subprocess.run([sinfo, "-h", "-o", "%T"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def statuses(states: Mapping[str, str]) -> list[JobStatus]:
    """A :func:`queued_jobs` answer as :class:`~picas.schedulers.base.JobStatus` rows (pure)."""
    return [JobStatus(job_id=task_id.split("_", 1)[0], task_id=task_id, state=map_state(state),
                      count=array_task_count(task_id), native=state) for task_id, state in states.items()]


def sbatch_options(request: PilotRequest) -> SbatchOptions:
    """The :class:`~picas.schedulers.sbatch.SbatchOptions` of a generic request (pure)."""
    values = request.options

    def given(name: str, default: Any) -> Any:
        value = values.get(name)
        return default if value is None else value

    env, credential_setup = dict(request.env), []
    if values.get("credential"):
        # The pilots log in as the credential's user; sbatch copies the submitting shell's environment into the
        # job, and a PICAS_PASSWORD from there would win over the credential file.
        env.update(credentials.pilot_env(values["credential"]))
        credential_setup = ["unset PICAS_PASSWORD"]
    return SbatchOptions(
        array=request.count, time=values.get("time"), partition=values.get("partition"),
        account=values.get("account"), qos=values.get("qos"),
        # A job that runs several payloads at once asks for a core for each, unless told otherwise.
        cpus_per_task=values.get("cpus_per_task") or (side_by_side(request.pilot_args)
                                                      if side_by_side(request.pilot_args) > 1 else None),
        mem=values.get("mem"), job_name=given("job_name", defaults.PILOT_JOB_NAME),
        output=given("output", DEFAULT_OUTPUT), signal_grace=given("signal_grace", defaults.SIGNAL_GRACE),
        extra_sbatch=list(values.get("sbatch_lines") or ()), setup=[*credential_setup, *(values.get("setup") or ())],
        pilot_args=list(request.pilot_args), env=env,
        picas_command=given("picas_command", "picas"))


class SlurmScheduler(Scheduler):
    """Pilots as Slurm array jobs: one ``sbatch --array`` per submission.

    Slurm warns a pilot ``signal_grace`` seconds before its walltime (USR1),
    scancel sends TERM; the batch script forwards both to the pilot, which
    gives its tokens back.  ``picas pilots cancel --signal USR1`` uses
    :meth:`signal` to drain running pilots without killing them.
    """

    name = "slurm"
    title = _TITLE
    programs = {"submit": "sbatch", "status": "squeue", "cancel": "scancel", "info": "sinfo"}
    install_hint = _INSTALL_HINT
    timeout_hint = _TIMEOUT_HINT
    options = OPTIONS
    count_flags = ("--array", "--pilots")
    states = STATES
    help = """Submit an array of pilots with sbatch; each drains the pool until it is empty.

    Every option becomes an #SBATCH line.  Slurm sends the pilots USR1
    --signal-grace seconds before the walltime; a pilot then gives its token
    back to todo and exits.  The job id is printed and kept in the database,
    for 'picas pilots list', 'picas status' and 'picas pilots cancel'.  No
    password is written into the script (see --pilot-config).  Every option
    of 'picas run' is passed on to the pilots.

    \b
    Examples:
      picas submit slurm --array 10 --time 4:00:00 --partition normal
      picas submit slurm --array 4 --design-doc MultiCore --cpus-per-task 4 --mem 8G \\
          --setup 'module load Python' --setup 'source ~/venv/bin/activate'
      picas submit slurm --array 2 --grace 30 --outage-timeout 1h --log-cap 1048576
      picas submit slurm --array 2 --dry-run > my-pilot.sh    # then edit and use --template
    """

    def build(self, request: PilotRequest) -> Submission:
        script = build_sbatch_script(sbatch_options(request), request.options.get("template"))
        return Submission(count=request.count, files={"pilot.sh": script}, main="pilot.sh",
                          resources=self.describe(request.options))

    def job_id_of(self, task_id: str) -> str:
        return str(task_id).split("_", 1)[0]

    def submit(self, submission: Submission, *, cwd: str | None = None) -> list[str]:
        return [submit(submission.text, self.program("submit"), cwd=cwd, timeout=self.timeout)]

    def query(self, job_ids: Sequence[str]) -> list[JobStatus]:
        return statuses(queued_jobs(job_ids, self.program("status"), timeout=self.timeout))

    def cancel(self, job_ids: Sequence[str]) -> None:
        cancel(job_ids, self.program("cancel"), timeout=self.timeout)

    def signal(self, task_ids: Sequence[str], signal_name: str) -> None:
        cancel(task_ids, self.program("cancel"), signal=signal_name, timeout=self.timeout)

    def available(self) -> bool:
        """sbatch is on PATH and slurmctld answers sinfo."""
        return slurm_available(self.program("submit"), self.program("info"))
