"""The Slurm scheduler: build pilot batch scripts, submit, watch and cancel them.

The module is split on purpose into a pure core and a thin subprocess layer:

* pure: :class:`SbatchOptions`, :func:`build_sbatch_script`,
  :func:`parse_squeue`, :func:`array_task_count`, :func:`count_active_tasks`,
  :func:`plan_submissions` and :func:`explain_plan` take values and return
  values, so they are tested without a cluster and reused by the autopilot;
* subprocess: :func:`submit`, :func:`queued_jobs`, :func:`count_active`,
  :func:`cancel` and :func:`slurm_available` run ``sbatch``, ``squeue``,
  ``scancel`` and ``sinfo`` and turn their failures into
  :class:`~picas.errors.SchedulerError` carrying Slurm's own message, because
  that message (``invalid partition specified``...) is what the user must see.
"""
from __future__ import annotations

import heapq
import math
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from string import Template
from typing import Mapping

from picas.errors import InvalidInput, SchedulerError

__all__ = [
    "ACTIVE_STATES",
    "SbatchOptions",
    "array_task_count",
    "build_sbatch_script",
    "cancel",
    "count_active",
    "count_active_tasks",
    "explain_plan",
    "parse_squeue",
    "plan_submissions",
    "queued_jobs",
    "slurm_available",
    "submit",
]

#: squeue states in which a pilot still holds, or will hold, a slot.  COMPLETING
#: is left out: the pilot has already finished and only Slurm's cleanup remains.
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "RESIZING",
    "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT",
})

#: Environment variable names that look like secrets are not written into a batch
#: script (the script lands in Slurm's spool and is readable with ``scontrol write
#: batch_script``) unless the caller sets ``SbatchOptions.export_secrets``.
_SECRET_WORDS = ("PASSWORD", "SECRET")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JOB_ID = re.compile(r"^\d+(?:_\d+|_\[[0-9,\-:%]+\])?$")


@dataclass
class SbatchOptions:
    """Everything that decides what one submission of pilots looks like.

    ``None`` means "leave it to the cluster's default" and produces no
    ``#SBATCH`` line, so the same options work on clusters with different
    accounting rules.

    Attributes:
        array: number of pilot tasks; becomes ``--array=0-(array-1)``.
        time: wall-clock limit such as ``"01:00:00"``.
        partition, account, qos: where the pilots run and who pays.
        cpus_per_task: cores each pilot gets.
        mem: memory per pilot in sbatch syntax (``"4G"``).
        job_name: ``--job-name``; lets ``squeue -n`` find pilots.
        output: log path pattern; ``%A`` is the array job id, ``%a`` the task.
        signal_grace: seconds before the time limit at which Slurm sends USR1 to
            the batch shell, which forwards it so the pilot stops taking tokens
            and finishes in time.  0 or ``None`` sends no early warning.
        extra_sbatch: raw extra lines (``"--constraint=gpu"`` or
            ``"#SBATCH --constraint=gpu"``) for what the options above miss.
        setup: shell lines run before the pilot (``module load ...``,
            ``source venv/bin/activate``).
        pilot_args: arguments passed to ``picas run``.
        env: variables exported in the script (``PICAS_HOST_URL``,
            ``PICAS_DATABASE``, ``PICAS_CONFIG``...).  Names containing
            PASSWORD or SECRET are left out unless ``export_secrets`` is true:
            the script is stored by Slurm where others may read it, so by
            default the pilot reads its password from ``PICAS_CONFIG``.
        export_secrets: write secret-looking variables into the script anyway.
        picas_command: how the pilot is started on the node; shell text, so
            ``"python -m picas"`` or a venv path works.
    """

    array: int = 1
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    job_name: str = "picas-pilot"
    output: str = "picas-pilot-%A_%a.out"
    signal_grace: int | None = 120
    extra_sbatch: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    pilot_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    export_secrets: bool = False
    picas_command: str = "picas"


DEFAULT_TEMPLATE = """\
#!/bin/bash
${sbatch_lines}

# Written by picas: a pilot that drains a CouchDB token pool.
${setup}

${env}

${run_pilot}
"""

# The batch shell must pass USR1 (Slurm's early warning, --signal=B:USR1@grace)
# and TERM (scancel, time limit) to the pilot at once.  (INT is not forwarded:
# a background command of a non-interactive shell ignores it anyway.)  Bash runs a trap only
# after the foreground command returns, so the pilot runs in the background and
# the shell sits in `wait`, which a trapped signal interrupts (status > 128).
# The shell then waits again until the pilot has really exited, and exits with
# the pilot's status.  `signalled` tells an interrupted wait from a pilot that
# was itself killed by a signal; waiting again for a pid already collected
# returns its saved status (127 on older bash, where the last status is kept),
# so the race where both happen at once is harmless.
_RUN_PILOT = """\
pilot_pid=""
signalled=0
forward() {
    signalled=1
    if [ -n "$pilot_pid" ]; then
        kill -s "$1" "$pilot_pid" 2>/dev/null || true
    fi
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

${pilot_command} &
pilot_pid=$!
status=""
while :; do
    signalled=0
    wait "$pilot_pid"
    rc=$?
    if [ "$rc" -eq 127 ] && [ -n "$status" ]; then
        break
    fi
    status=$rc
    if [ "$signalled" -eq 0 ]; then
        break
    fi
done
exit "$status"
"""


class _ScriptTemplate(Template):
    """``${name}`` placeholders for picas' names only; every other ``$`` is bash's.

    A plain :class:`string.Template` would choke on ``$!`` and turn ``$$``
    into ``$``, which breaks ordinary shell code in a user's template.
    """

    flags = 0
    pattern = r"""
        \$(?:
            (?P<escaped>(?!x)x)
          | (?P<named>(?!x)x)
          | \{(?P<braced>sbatch_lines|setup|env|pilot_command|run_pilot)\}
          | (?P<invalid>(?!x)x)
        )
    """


def _one_line(value: object, what: str) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise InvalidInput(f"{what} must be one line, got {text!r}")
    return text


def _sbatch_value(value: object, name: str) -> str:
    """One option value as sbatch reads it from a ``#SBATCH`` line.

    sbatch splits those lines on whitespace but honours double quotes, so a
    value with spaces (a job name, a log path) is quoted; a double quote inside
    cannot be written and is refused rather than silently mangled.
    """
    text = _one_line(value, name)
    if any(ch.isspace() for ch in text):
        if '"' in text:
            raise InvalidInput(f"{name} cannot contain both spaces and double quotes: {text!r}")
        return f'"{text}"'
    return text


def _sbatch_lines(opts: SbatchOptions) -> list[str]:
    if not isinstance(opts.array, int) or opts.array < 1:
        raise InvalidInput(f"the number of pilot tasks (array) must be at least 1, got {opts.array!r}")
    if opts.cpus_per_task is not None and opts.cpus_per_task < 1:
        raise InvalidInput(f"cpus_per_task must be at least 1, got {opts.cpus_per_task!r}")
    if opts.signal_grace is not None and opts.signal_grace < 0:
        raise InvalidInput(f"signal_grace must be 0 or more seconds, got {opts.signal_grace!r}")
    pairs: list[tuple[str, object]] = [
        ("job-name", opts.job_name),
        ("array", f"0-{opts.array - 1}"),
        ("output", opts.output),
        ("time", opts.time),
        ("partition", opts.partition),
        ("account", opts.account),
        ("qos", opts.qos),
        ("cpus-per-task", opts.cpus_per_task),
        ("mem", opts.mem),
    ]
    if opts.signal_grace:
        pairs.append(("signal", f"B:USR1@{opts.signal_grace}"))
    lines = []
    for name, value in pairs:
        if value is None or value == "":
            continue
        lines.append(f"#SBATCH --{name}={_sbatch_value(value, name)}")
    for raw in opts.extra_sbatch:
        raw = _one_line(raw, "an extra #SBATCH line").strip()
        if not raw:
            continue
        lines.append(raw if raw.startswith("#SBATCH") else f"#SBATCH {raw}")
    return lines


def _is_secret(name: str) -> bool:
    return any(word in name.upper() for word in _SECRET_WORDS)


def _env_lines(opts: SbatchOptions) -> list[str]:
    lines = []
    for name, value in opts.env.items():
        if not _ENV_NAME.match(name):
            raise InvalidInput(f"not a valid environment variable name: {name!r}")
        if _is_secret(name) and not opts.export_secrets:
            lines.append(f"# {name} not written into this script (it would be stored by Slurm): "
                         "the pilot reads it from PICAS_CONFIG")
            continue
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return lines


def build_sbatch_script(opts: SbatchOptions, template: str | None = None) -> str:
    """Return the text of a batch script that runs ``opts.array`` pilots.

    Pure: nothing is run.  The default script puts every option on its own
    ``#SBATCH`` line, runs the ``setup`` lines, exports ``env`` and then starts
    the pilot in the background, forwarding USR1 and TERM to it at once and
    exiting with its status (see the comment at ``_RUN_PILOT`` for why).

    A user ``template`` is a bash script with these ``${...}`` placeholders
    (string.Template style; any other ``$`` text, such as ``$HOME``, ``$!`` or
    ``$$``, is left for bash):

    * ``${sbatch_lines}``: the ``#SBATCH`` lines, one per option;
    * ``${setup}``: the setup lines;
    * ``${env}``: the ``export NAME=value`` lines;
    * ``${pilot_command}``: the pilot command alone, ``picas run ARGS...``;
    * ``${run_pilot}``: the pilot command with the signal forwarding and exit.

    The template must contain ``${pilot_command}`` or ``${run_pilot}``: a pilot
    script that starts no pilot is always a mistake.  Raises
    :class:`~picas.errors.InvalidInput` for options that cannot be written.
    """
    pilot_command = " ".join([opts.picas_command.strip(), "run", *(shlex.quote(str(a)) for a in opts.pilot_args)])
    _one_line(pilot_command, "the pilot command")
    values = {
        "sbatch_lines": "\n".join(_sbatch_lines(opts)),
        "setup": "\n".join(_one_line(line, "a setup line") for line in opts.setup),
        "env": "\n".join(_env_lines(opts)),
        "pilot_command": pilot_command,
    }
    values["run_pilot"] = _ScriptTemplate(_RUN_PILOT).substitute(values).rstrip("\n")
    text = DEFAULT_TEMPLATE if template is None else template
    if template is not None and "${pilot_command}" not in text and "${run_pilot}" not in text:
        raise InvalidInput("the sbatch template must contain ${pilot_command} or ${run_pilot}")
    script = _ScriptTemplate(text).substitute(values)
    if not script.endswith("\n"):
        script += "\n"
    return script


# --- subprocess layer -------------------------------------------------------------


def _run(argv: list[str], *, stdin: str | None = None, cwd: str | None = None,
         timeout: float = 60.0, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one Slurm command; a missing program or a hang becomes SchedulerError."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, env=dict(env) if env is not None else None)
    except FileNotFoundError:
        raise SchedulerError(f"{argv[0]} not found: Slurm is not installed on this machine",
                             hint="run picas where the Slurm client commands are on PATH") from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"{argv[0]} did not answer within {timeout:g}s",
                             hint="check that slurmctld runs ('sinfo')") from None


def _message(stderr: str, stdout: str = "") -> str:
    """Slurm's own complaint as one line.

    Distinct non-empty lines are joined with "; ", and the repeated
    ``sbatch: error:`` prefix is kept only on the first, so a message such as
    ``sbatch: error: invalid partition specified: nope; Batch job submission
    failed: Invalid partition name specified`` reads as one sentence.
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


def _check_ids(job_ids: list[str]) -> list[str]:
    ids = [str(j).strip() for j in job_ids]
    bad = [j for j in ids if not _JOB_ID.match(j)]
    if bad:
        raise InvalidInput(f"not a Slurm job id: {', '.join(bad)}")
    return ids


def submit(script: str, sbatch: str = "sbatch", *, cwd: str | None = None, timeout: float = 60.0) -> str:
    """Submit ``script`` with ``sbatch --parsable`` on stdin; return the job id.

    The job's working directory (where relative ``--output`` paths land) is
    ``cwd``, or the current directory.  On failure raises
    :class:`~picas.errors.SchedulerError` with sbatch's own stderr as one line,
    e.g. ``sbatch: error: invalid partition specified: nope``.
    """
    proc = _run([sbatch, "--parsable"], stdin=script, cwd=cwd, timeout=timeout)
    if proc.returncode != 0:
        raise SchedulerError(_message(proc.stderr, proc.stdout))
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
    return sum(array_task_count(job_id) for job_id, state in states.items() if state in ACTIVE_STATES)


def queued_jobs(job_ids: list[str], squeue: str = "squeue", *, timeout: float = 60.0) -> dict[str, str]:
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
        raise SchedulerError(_message(proc.stderr, proc.stdout))
    return parse_squeue(proc.stdout)


def count_active(job_ids: list[str], squeue: str = "squeue", *, timeout: float = 60.0) -> int:
    """Number of pilot tasks of ``job_ids`` still pending or running."""
    return count_active_tasks(queued_jobs(job_ids, squeue, timeout=timeout))


def cancel(job_ids: list[str], scancel: str = "scancel", *, signal: str | None = None,
           timeout: float = 60.0) -> None:
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
        raise SchedulerError(_message(proc.stderr, proc.stdout))


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


# --- autopilot planning (pure) ------------------------------------------------------


def _check_counts(counts: Mapping[str, int], what: str) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{what} for {name!r} must be a count of 0 or more, got {value!r}")


def plan_submissions(work: Mapping[str, int], active: Mapping[str, int], max_pilots: int,
                     tokens_per_pilot: int = 10) -> dict[str, int]:
    """How many new pilots to submit per pilot class (design document).

    ``work`` holds the todo-token count per class, ``active`` the pilots
    already pending or running per class.  The answer has one entry per class
    in ``work`` and obeys, so that repeated autopilot rounds converge instead
    of piling up pilots:

    * a class with no todo tokens gets none;
    * a class never gets more than its work needs: active + new is at most
      ``ceil(todo / tokens_per_pilot)``, so pilots already queued count;
    * all active pilots (any class) plus the new ones never exceed
      ``max_pilots``;
    * when slots are short they go where the work is: one at a time to the
      class with the most todo tokens per pilot (D'Hondt), so the totals end up
      proportional to the work; ties go to more work, then to the name, so the
      plan is deterministic.
    """
    if not isinstance(max_pilots, int) or max_pilots < 0:
        raise InvalidInput(f"max_pilots must be 0 or more, got {max_pilots!r}")
    if not isinstance(tokens_per_pilot, int) or tokens_per_pilot < 1:
        raise InvalidInput(f"tokens_per_pilot must be at least 1, got {tokens_per_pilot!r}")
    _check_counts(work, "the todo count")
    _check_counts(active, "the active pilot count")

    plan = {name: 0 for name in work}
    slots = max_pilots - sum(active.values())
    current = {name: active.get(name, 0) for name in work}
    need = {name: math.ceil(todo / tokens_per_pilot) for name, todo in work.items()}
    # Max-heap on todo tokens per pilot once one more is added; then more work; then name.
    heap = [(-Fraction(work[n], current[n] + 1), -work[n], n) for n in work if current[n] < need[n]]
    heapq.heapify(heap)
    while slots > 0 and heap:
        _, _, name = heapq.heappop(heap)
        plan[name] += 1
        current[name] += 1
        slots -= 1
        if current[name] < need[name]:
            heapq.heappush(heap, (-Fraction(work[name], current[name] + 1), -work[name], name))
    return plan


def explain_plan(work: Mapping[str, int], active: Mapping[str, int], max_pilots: int,
                 plan: Mapping[str, int] | None = None, tokens_per_pilot: int = 10) -> str:
    """One line telling a person why the autopilot submits what it submits.

    ``plan`` defaults to :func:`plan_submissions` of the same arguments.
    """
    if plan is None:
        plan = plan_submissions(work, active, max_pilots, tokens_per_pilot)
    total_new = sum(plan.values())
    total_active = sum(active.values())
    total_todo = sum(work.values())
    todo_text = ", ".join(f"{name} {count}" for name, count in sorted(work.items()) if count) or "none"
    state = f"{total_active} active of max {max_pilots}; todo: {todo_text}"
    if total_new:
        parts = ", ".join(f"{name} {count}" for name, count in sorted(plan.items()) if count)
        return f"submit {total_new} pilot{'s' if total_new != 1 else ''} ({parts}): {state}"
    if total_todo == 0:
        reason = "no todo tokens"
    elif total_active >= max_pilots:
        reason = "already at the pilot limit"
    else:
        reason = f"the active pilots cover the todo tokens (1 pilot per {tokens_per_pilot} tokens)"
    return f"submit nothing, {reason}: {state}"
