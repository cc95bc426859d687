"""The DIRAC scheduler: pilots on the grid as one parametric job, with everything in its sandbox.

A grid worker node has no shared file system, no pip and no network but the
CouchDB server, and its ``python3`` may be 3.9.  So a submission is a
directory: the JDL (:func:`picas.schedulers.jdl.build_jdl`, pure) and every
file its ``InputSandbox`` names (:mod:`picas.sandbox.directory`): the start
script, picas as one zipapp, the user's own files, and a *scoped pilot
credential* (:mod:`picas.pool.credentials`), never the operator's password.
``dirac-wms-job-submit pilot.jdl`` is run in that directory and prints the
job ids, one per pilot.

Status and cancelling go through ``dirac-wms-job-status`` and
``dirac-wms-job-kill``; DIRAC has no way to signal a running job, so
cancelling kills the pilots (the start script passes TERM on, and the pilot
gives its tokens back).

The sandbox carries a copy of picas: after upgrading picas, new submissions
carry the new version.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from picas.errors import ConfigError, InvalidInput, SchedulerError
from picas.pilot.options import Option, side_by_side
from picas.pool import credentials as creds
from picas.sandbox import deps
from picas.sandbox import directory as sandbox
from picas.schedulers import jdl
from picas.schedulers.base import JobState, JobStatus, PilotRequest, Scheduler, Submission, one_line
from picas.support.durations import parse_duration

__all__ = ["DiracScheduler", "DiracSubmission", "OPTIONS", "STATES", "JDL_NAME"]

JDL_NAME = "pilot.jdl"
#: Where ``--dry-run`` writes the JDL and the sandbox when no ``--output`` is given.
DRY_RUN_OUTPUT = "picas-dirac-sandbox"
#: Job ids per status or kill command: DIRAC takes them as arguments.
CHUNK = 200

#: DIRAC's job states (its JobStatus module) in picas' terms.
_WAITING = ("Submitting", "Received", "Checking", "Scouting", "Staging", "Waiting", "Matched", "Rescheduled")
STATES: dict[str, JobState] = {
    **{name: JobState.PENDING for name in _WAITING},
    **{name: JobState.RUNNING for name in ("Running", "Stalled", "Completing")},
    "Done": JobState.DONE, "Completed": JobState.DONE, "Failed": JobState.FAILED,
    "Killed": JobState.CANCELLED, "Deleted": JobState.CANCELLED,
}

OPTIONS: tuple[Option, ...] = (
    creds.OPTION,
    Option("site", "DIRAC site the pilots may run at (repeatable; default: any).", multiple=True,
           metavar="SITE", per_class=True),
    Option("banned_site", "DIRAC site the pilots must not run at (repeatable).", multiple=True,
           metavar="SITE", per_class=True),
    Option("cpu_time", "CPU time per pilot (DIRAC's CPUTime), e.g. 3600, 12h, 2d.", "duration", per_class=True),
    Option("tag", "Tag the worker node must have, e.g. 8Processors or GPU (repeatable).", multiple=True,
           metavar="TAG", per_class=True),
    Option("number_of_processors", "Cores per pilot (DIRAC's NumberOfProcessors) [default: one per payload it "
           "runs at once, its --jobs times its --slots].", "int", minimum=1,
           flags=("--number-of-processors", "--processors"), per_class=True),
    Option("platform", "Platform of the worker nodes, e.g. EL9.", metavar="NAME", per_class=True),
    Option("job_name", "DIRAC JobName.", default="picas-pilot"),
    Option("job_group", "DIRAC JobGroup [default: picas-<database>]; 'dirac-wms-job-status -g' finds it.",
           metavar="NAME"),
    Option("python", "Python on the worker nodes, e.g. from CVMFS [default: the newest python3.x >= 3.9 "
           "on PATH].", metavar="PATH"),
    Option("site_packages", "Let picas on the worker nodes import the node's own Python packages too (e.g. "
           "gfal2 for staging); by default it sees only what the sandbox carries.", "flag", default=False),
    Option("input_file", "A file of yours the pilots need, put in the sandbox (repeatable); payloads find "
           "it in $PICAS_SANDBOX.", "path", multiple=True, metavar="FILE"),
    Option("setup", "Shell line run in the sandbox before the pilot, e.g. 'cc -O2 -o prog prog.c' "
           "(repeatable).", multiple=True, metavar="TEXT"),
    Option("output", "Directory for the JDL and the sandbox [default: a temporary one; with --dry-run: "
           f"./{DRY_RUN_OUTPUT}].", "path", metavar="DIR"),
    Option("deps_dir", "Dependencies for the sandbox prepared with 'pip install --target DIR' (for a "
           "machine without PyPI).", "path", metavar="DIR"),
)


@dataclass
class DiracSubmission(Submission):
    """A JDL with its sandbox; ``directory`` is where it is written (``--output``), if chosen."""

    directory: Path | None = None
    credential: creds.PilotCredential | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Bytes of the sandbox (the files the JDL's InputSandbox names)."""
        return sum(len(v) for name, v in self.files.items() if name != self.main)


def _cache() -> Path:
    from picas.server.local import data_home

    return data_home() / "sandbox-deps"


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MiB"


class DiracScheduler(Scheduler):
    """Pilots on the grid through DIRAC: one parametric job per submission, one job id per pilot."""

    name = "dirac"
    title = "DIRAC"
    programs = {"submit": "dirac-wms-job-submit", "status": "dirac-wms-job-status", "cancel": "dirac-wms-job-kill"}
    install_hint = ("run picas on a grid user interface with the DIRAC client set up (e.g. source "
                    "diracos/diracosrc and dirac-proxy-init), or write the JDL with --dry-run --output DIR")
    timeout_hint = "check your grid proxy (dirac-proxy-info) and the DIRAC server"
    options = OPTIONS
    count_flags = ("--pilots", "-n")
    states = STATES
    needs_credential = True  # a sandbox passes through DIRAC's servers: never the operator's password
    help = """Submit pilots to the grid through DIRAC, as one parametric job.

    The pilots need nothing on the worker node but a Python 3.9 or newer:
    the sandbox carries picas as one file (picas.pyz), the start script, your
    --input-file files and a pilot credential (--credential, from 'picas
    credentials create'), never your own password.  Each pilot records its
    DIRAC job id in the tokens it runs.  The job ids are kept in the
    database for 'picas pilots list|cancel' and 'picas status'.  Every
    option of 'picas run' is passed on to the pilots.

    \b
    Examples:
      picas credentials create --output run42-pilots.yml
      picas submit dirac --credential run42-pilots.yml --pilots 50 --cpu-time 24h \\
          --site LCG.SARA.nl --site LCG.NIKHEF.nl --max-time 20h
      picas submit dirac --credential run42-pilots.yml -n 10 --input-file fractal.c \\
          --setup 'cc -O2 -o fractal fractal.c' --dry-run --output grid-job
    """

    # --- pure (but for reading the files that go into the sandbox) ---------------------------

    def _credential(self, request: PilotRequest) -> creds.PilotCredential:
        self.check_options(request.options)
        path = request.options[creds.OPTION.name]
        credential = creds.read_file(Path(path))
        if not credential.username.startswith(creds.PREFIX):
            raise ConfigError(f"{path} holds user {credential.username}, not a pilot credential",
                              hint="make one with 'picas credentials create'")
        database = request.env.get("PICAS_DATABASE")
        if database and credential.database != database:
            raise ConfigError(f"{path} is a credential for database {credential.database}, not {database}")
        return credential

    def jdl_options(self, request: PilotRequest, input_sandbox: Sequence[str]) -> jdl.JdlOptions:
        """The :class:`~picas.schedulers.jdl.JdlOptions` of a request (pure)."""
        opts = request.options
        cpu_time = opts.get("cpu_time")
        if cpu_time is not None and not isinstance(cpu_time, (int, float)):
            cpu_time = parse_duration(str(cpu_time))  # as typed in a pilot class; the command line gives seconds
        group = opts.get("job_group") or f"picas-{request.env.get('PICAS_DATABASE') or 'pilots'}"
        return jdl.JdlOptions(
            pilots=request.count, job_name=opts.get("job_name") or "picas-pilot", job_group=group,
            site=list(opts.get("site") or ()), banned_sites=list(opts.get("banned_site") or ()),
            cpu_time=int(cpu_time) if cpu_time is not None else None,
            tags=list(opts.get("tag") or ()),
            # A pilot that runs several payloads at once asks for a core for each, unless told otherwise.
            number_of_processors=opts.get("number_of_processors") or (
                side_by_side(request.pilot_args) if side_by_side(request.pilot_args) > 1 else None),
            platform=opts.get("platform"), start_script=sandbox.START_SCRIPT,
            start_args=[*(["--python", str(opts["python"])] if opts.get("python") else []),
                        *(["--site-packages"] if opts.get("site_packages") else [])],
            pilot_args=list(request.pilot_args), input_sandbox=[n for n in input_sandbox if n != sandbox.START_SCRIPT])

    def build(self, request: PilotRequest) -> DiracSubmission:
        """The JDL and its sandbox files; the zipapp is built from the installed picas.

        Nothing is written but, once per machine, the pip cache of
        dependency versions that run on Python 3.9.
        """
        opts = request.options
        credential = self._credential(request)
        inputs = [Path(p) for p in opts.get("input_file") or ()]
        deps_dir = Path(opts["deps_dir"]) if opts.get("deps_dir") else None
        files: dict[str, str | bytes] = dict(sandbox.contents(credential, cache=_cache(), input_files=inputs,
                                                              setup=opts.get("setup") or (), deps_dir=deps_dir,
                                                              python=deps.MIN_PYTHON))
        text = jdl.build_jdl(self.jdl_options(request, list(files)))
        resources = self.describe(opts)
        resources.update({key: list(opts[key]) for key in ("site", "tag") if opts.get(key)})
        output = Path(opts["output"]) if opts.get("output") else None
        return DiracSubmission(count=request.count, files={JDL_NAME: text, **files}, main=JDL_NAME,
                               resources=resources, directory=output, credential=credential)

    # --- files and DIRAC's commands ----------------------------------------------------------

    def _write(self, submission: Submission, directory: Path) -> Path:
        sandbox.write(directory, {name: content for name, content in submission.files.items()})
        return directory

    def dry_run(self, submission: Submission, options: Mapping[str, Any]) -> str:
        """Write the JDL and its sandbox to ``--output`` (or ./picas-dirac-sandbox); return the submit command."""
        directory = Path(options.get("output") or DRY_RUN_OUTPUT)
        self._write(submission, directory)
        size = sum(len(v) for name, v in submission.files.items() if name != submission.main)
        limit = "" if size <= sandbox.DIRAC_LIMIT else " -- over DIRAC's default limit of 10 MiB!"
        return (f"# wrote {JDL_NAME} and its sandbox ({len(submission.files) - 1} files, {_mib(size)}{limit}) "
                f"to {directory.absolute()}\n"
                f"cd {directory.absolute()} && {self.program('submit')} {JDL_NAME}\n")

    def submit(self, submission: Submission, *, cwd: str | None = None) -> list[str]:
        """Write the sandbox, check the credential with the server, run ``dirac-wms-job-submit``.

        Without ``--output`` the sandbox goes to a temporary directory that
        is removed afterwards: DIRAC has uploaded it by then.
        """
        self.check_available("submit")
        credential = getattr(submission, "credential", None)
        if credential is not None:
            creds.check_scoped(credential)  # refuses an admin, or a revoked user, before anything is queued
        chosen = getattr(submission, "directory", None)
        if chosen is None:
            base = Path(cwd) if cwd else None
            directory = Path(tempfile.mkdtemp(prefix="picas-dirac-", dir=base))
        else:
            directory = Path(cwd, chosen) if cwd else Path(chosen)
        try:
            self._write(submission, directory)
            proc = self.run([self.program("submit"), JDL_NAME], cwd=str(directory))
        finally:
            if chosen is None:
                shutil.rmtree(directory, ignore_errors=True)
        if proc.returncode != 0 and "JobID" not in proc.stdout:
            raise SchedulerError(one_line(proc.stderr, proc.stdout))
        ids = jdl.parse_job_ids(proc.stdout)
        if len(ids) != submission.count:
            raise SchedulerError(f"{self.program('submit')} returned {len(ids)} job ids for {submission.count} "
                                 f"pilots: {' '.join(ids)}")
        return ids

    def query(self, job_ids: Sequence[str]) -> list[JobStatus]:
        ids = _check_ids(job_ids)
        found: list[JobStatus] = []
        for start in range(0, len(ids), CHUNK):
            proc = self.run([self.program("status"), *ids[start:start + CHUNK]])
            answer = jdl.parse_status(proc.stdout)
            if proc.returncode != 0 and not answer:
                text = (proc.stdout + proc.stderr).lower()
                if "not found" in text or "does not exist" in text or "no jobs" in text:
                    continue  # DIRAC has forgotten them all (its JobCleaningAgent removes old jobs)
                raise SchedulerError(one_line(proc.stderr, proc.stdout))
            for job_id, state in jdl.states(answer).items():
                found.append(JobStatus(job_id=job_id, task_id=job_id, state=self.map_state(state), native=state))
        return found

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Kill the jobs; DIRAC sends the pilots TERM, they give their tokens back.  Ended jobs are no error."""
        ids = _check_ids(job_ids)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            proc = self.run([self.program("cancel"), *chunk])
            if proc.returncode == 0:
                continue
            still = [s for s in self.query(chunk) if s.state.active]
            if still:
                raise SchedulerError(one_line(proc.stderr, proc.stdout))


def _check_ids(job_ids: Sequence[str]) -> list[str]:
    ids = [str(j).strip() for j in job_ids]
    bad = [j for j in ids if not j.isdigit()]
    if bad:
        raise InvalidInput(f"not a DIRAC job id: {', '.join(bad)}")
    return ids
