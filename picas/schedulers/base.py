"""The scheduler interface: what picas needs from a batch system that runs pilots.

Generic code (the autopilot, the pilot-job registry, ``picas submit``,
``picas pilots``, ``picas status``) speaks only to :class:`Scheduler` and
finds a backend by its name through :func:`picas.schedulers.get`.  A backend
is one subclass in its own module; Slurm (:mod:`picas.schedulers.slurm`) is
the first.  Adding one (DIRAC, HTCondor...) touches none of the generic code.

A backend supplies:

* its **options**, as data (:class:`~picas.pilot.options.Option`): the
  command line of ``picas submit NAME`` and ``picas autopilot --scheduler
  NAME`` is built from them, and the ones marked ``per_class`` are what a
  pilot class of the autopilot may set;
* a **pure builder**, :meth:`Scheduler.build`: a :class:`PilotRequest` (how
  many pilots, the ``picas run`` arguments, the connection environment, the
  option values) becomes a :class:`Submission` (file names and contents,
  plus the resources the registry records), so every byte that would be
  submitted can be tested, and printed by ``--dry-run``, without the
  scheduler;
* **submitting** (:meth:`Scheduler.submit`, returning the job ids: one for a
  Slurm array, one per pilot for a DIRAC parametric job), **listing** what
  the scheduler still knows of some jobs (:meth:`Scheduler.query`, in
  picas' own :class:`JobState` terms), **cancelling**
  (:meth:`Scheduler.cancel`) and, where the batch system can, **signalling**
  running pilots so they hand their tokens back (:meth:`Scheduler.signal`);
* the **mapping** of its own state names to :class:`JobState`
  (:attr:`Scheduler.states`), and the **programs** it needs on ``PATH``
  (:attr:`Scheduler.programs`), checked by
  :meth:`Scheduler.check_available` with a message that says what to do.

Failures of the batch system's programs are :class:`~picas.errors.SchedulerError`
(exit code 11) carrying the program's own complaint as one line, because
that message (``invalid partition specified``...) is what the user must see.
"""
from __future__ import annotations

import abc
import enum
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from picas import defaults
from picas.errors import InvalidInput, SchedulerError

if TYPE_CHECKING:  # the option declarations are data; importing them here would load click's side of it
    from picas.pilot.options import Option

__all__ = ["JobState", "JobStatus", "PilotRequest", "Scheduler", "Submission", "one_line"]


class JobState(str, enum.Enum):
    """A pilot job's state in picas' terms, whatever the batch system calls it.

    Serialised as its value (``"pending"``...).  ``UNKNOWN`` is a state the
    backend has no mapping for: it counts neither as active (no slot is
    assumed held) nor as finished (the job is not forgotten).
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def active(self) -> bool:
        """Holds a slot now or will: pending or running."""
        return self in (JobState.PENDING, JobState.RUNNING)

    @property
    def finished(self) -> bool:
        """Will never run a pilot again: done, failed or cancelled."""
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobStatus:
    """One row of what a scheduler says about a submitted job.

    ``job_id`` is the id :meth:`Scheduler.submit` returned (what the registry
    keeps); ``task_id`` what the scheduler listed, which for an array may be
    one task (``123_4``) or a folded range of them (``123_[5-9]``, ``count``
    5).  ``native`` is the scheduler's own state name, for messages.
    """

    job_id: str
    task_id: str
    state: JobState
    count: int = 1
    native: str = ""


@dataclass
class PilotRequest:
    """What generic code asks a scheduler to build: ``count`` pilots, all alike.

    ``pilot_args`` are the arguments of ``picas run`` (``--design-doc``,
    ``--view`` and the pilot options that were given); ``env`` the variables
    that tell the pilot where the pool is (never a password, see
    :mod:`picas.pilot.credentials`); ``options`` the values of the
    scheduler's own :attr:`Scheduler.options`, by name, with a pilot class's
    resources already on top.  ``config_file`` is the private file that
    ``env`` points the pilot at for its password, if any: a backend whose
    jobs do not see the submitting machine's files must ship it with them.
    """

    count: int
    pilot_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    config_file: Path | None = None


@dataclass
class Submission:
    """What :meth:`Scheduler.build` makes and :meth:`Scheduler.submit` submits.

    ``files`` maps names (relative paths) to contents; ``main`` is the one
    given to the submit command (a batch script, a JDL).  ``resources`` is
    what the registry records with the job and ``picas pilots list`` shows.
    """

    count: int
    files: dict[str, str | bytes]
    main: str
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The main file as text."""
        content = self.files[self.main]
        return content.decode("utf-8") if isinstance(content, bytes) else content


def one_line(stderr: str, stdout: str = "") -> str:
    """A program's complaint as one line.

    Distinct non-empty lines are joined with "; ", and a repeated ``prog:
    error:`` prefix is kept only on the first, so that ``sbatch: error:
    invalid partition specified: nope; Batch job submission failed: Invalid
    partition name specified`` reads as one sentence.
    """
    lines: list[str] = []
    prefix = ""
    for line in (stderr or stdout).splitlines():
        line = line.strip()
        if not line:
            continue
        match = re.match(r"^\S+: (?:error|fatal): ", line)
        if not lines and match:
            prefix = match.group(0)
        elif prefix and line.startswith(prefix):
            line = line[len(prefix):]
        if line not in lines:
            lines.append(line)
    return "; ".join(lines) or "no message"


class Scheduler(abc.ABC):
    """A batch system that runs pilots.  Subclass it once per batch system.

    Class attributes a backend sets:

    * ``name``: how users and the registry call it (``"slurm"``);
    * ``title``: how messages call it (``"Slurm"``);
    * ``programs``: role → program, e.g. ``{"submit": "sbatch", "status":
      "squeue", "cancel": "scancel"}``; an instance may be given other paths;
    * ``install_hint``: what to do when a program is missing;
    * ``timeout_hint``: what to check when a program does not answer;
    * ``options``: its submission options (:class:`~picas.pilot.options.Option`);
    * ``count_flags``: the flags of the number of pilots on ``picas submit``;
    * ``help``: the ``--help`` text of ``picas submit NAME``;
    * ``states``: its state names → :class:`JobState` (case does not matter);
    * ``needs_credential``: its pilots must be given a scoped pilot credential
      (``--credential FILE``, :mod:`picas.pool.credentials`) because what it
      submits travels where the operator's password must not go (a grid
      sandbox).  :meth:`check_options` refuses a request without one, and the
      commands call it before anything is written.

    Instances are cheap and hold no connection: generic code makes one per
    use, ``get(name)(**kwargs)``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    programs: ClassVar[Mapping[str, str]] = {}
    install_hint: ClassVar[str] = ""
    timeout_hint: ClassVar[str] = ""
    options: ClassVar[Sequence[Option]] = ()
    count_flags: ClassVar[tuple[str, ...]] = ("--pilots", "-n")
    help: ClassVar[str] = ""
    states: ClassVar[Mapping[str, JobState]] = {}
    needs_credential: ClassVar[bool] = False

    def __init__(self, *, programs: Mapping[str, str] | None = None,
                 timeout: float = defaults.SCHEDULER_TIMEOUT) -> None:
        self._programs = {**self.programs, **(programs or {})}
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # --- pure ---------------------------------------------------------------------------

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse option values this backend can never submit, before anything is written (pure).

        Called by ``picas submit`` and ``picas autopilot`` before the pilots'
        credentials are prepared: a refusal must come before the operator's
        password is written into a private pilot profile that would then
        serve nothing.  The default checks :attr:`needs_credential`; a
        backend may check more.  Raises :class:`~picas.errors.InvalidInput`.
        """
        from picas.pool.credentials import OPTION

        if cls.needs_credential and not options.get(OPTION.name):
            raise InvalidInput(f"{cls.title or cls.name} pilots need a pilot credential: no password of yours "
                               "goes with them",
                               hint=f"make one with 'picas credentials create --output pilots.yml', then give "
                                    f"{OPTION.long_flag} pilots.yml")

    @abc.abstractmethod
    def build(self, request: PilotRequest) -> Submission:
        """The files that submit ``request.count`` pilots (pure: nothing runs, nothing is written).

        Raises :class:`~picas.errors.InvalidInput` for options that cannot
        be written.
        """

    def dry_run(self, submission: Submission, options: Mapping[str, Any]) -> str:
        """What ``picas submit NAME --dry-run`` prints: by default the main file.

        A backend whose submission is several files (a JDL and its sandbox)
        may write them where its ``options`` say and return the command that
        would submit them.
        """
        return submission.text

    @classmethod
    def map_state(cls, native: str) -> JobState:
        """The :class:`JobState` of one of the scheduler's state names; UNKNOWN if it has none."""
        wanted = native.strip().lower()
        for name, state in cls.states.items():
            if name.lower() == wanted:
                return state
        return JobState.UNKNOWN

    def job_id_of(self, task_id: str) -> str:
        """The submitted job a listed id belongs to (Slurm: ``123_4`` → ``123``).  Default: itself."""
        return task_id

    def describe(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The resources a registry entry records: the per-class options that are set (pure)."""
        return {opt.name: options[opt.name] for opt in self.options
                if opt.per_class and not opt.multiple and options.get(opt.name) is not None}

    # --- the batch system ---------------------------------------------------------------

    @abc.abstractmethod
    def submit(self, submission: Submission, *, cwd: str | None = None) -> list[str]:
        """Submit; return the new job ids.  ``cwd`` is where relative paths of the job land.

        Raises :class:`~picas.errors.SchedulerError` with the batch system's
        own message; nothing was submitted then.
        """

    @abc.abstractmethod
    def query(self, job_ids: Sequence[str]) -> list[JobStatus]:
        """What the scheduler still knows of ``job_ids`` (job or task ids).

        Jobs it has forgotten are absent, which is not an error.  Raises
        :class:`~picas.errors.SchedulerError` when it cannot be asked.
        """

    @abc.abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs (or tasks); running pilots get a signal to give their tokens back first.

        Jobs that already ended are not an error.
        """

    def signal(self, task_ids: Sequence[str], signal_name: str) -> None:
        """Send a signal to running pilots without cancelling them (``USR1``: finish and stop).

        Batch systems that cannot (the grid) raise
        :class:`~picas.errors.SchedulerError`.
        """
        raise SchedulerError(f"{self.title or self.name} cannot send a signal to running pilots",
                             hint="cancel them instead ('picas pilots cancel' without --signal)")

    def program(self, role: str) -> str:
        """The program that plays ``role`` (``"submit"``, ``"status"``...)."""
        return self._programs[role]

    def check_available(self, *roles: str) -> None:
        """Raise :class:`~picas.errors.SchedulerError` (exit 11) unless the programs are on PATH.

        Checks the programs of ``roles``, or all of them.
        """
        for role in roles or tuple(self._programs):
            program = self.program(role)
            if shutil.which(program) is None:
                raise SchedulerError(f"{program} not found: {self.title or self.name} is not installed on "
                                     "this machine", hint=self.install_hint or None)

    def available(self) -> bool:
        """Whether every program is on PATH (a cheap check, no daemon is asked)."""
        try:
            self.check_available()
        except SchedulerError:
            return False
        return True

    def run(self, argv: Sequence[str], *, stdin: str | None = None, cwd: str | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run one of the batch system's programs; a missing program or a hang becomes SchedulerError."""
        return run_program(argv, stdin=stdin, cwd=cwd, env=env, timeout=self.timeout if timeout is None else timeout,
                           title=self.title or self.name, hint=self.install_hint,
                           timeout_hint=self.timeout_hint)


def run_program(argv: Sequence[str], *, stdin: str | None = None, cwd: str | None = None,
                env: Mapping[str, str] | None = None, timeout: float = defaults.SCHEDULER_TIMEOUT,
                title: str = "the batch system", hint: str = "",
                timeout_hint: str = "") -> subprocess.CompletedProcess:
    """Run a batch-system program, capturing its output as text.

    A missing program and a program that does not answer within ``timeout``
    seconds become :class:`~picas.errors.SchedulerError` naming it.
    """
    try:
        return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                              env=dict(env) if env is not None else None)
    except FileNotFoundError:
        raise SchedulerError(f"{argv[0]} not found: {title} is not installed on this machine",
                             hint=hint or None) from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"{argv[0]} did not answer within {timeout:g}s", hint=timeout_hint or None) from None
