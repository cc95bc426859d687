"""The Slurm batch script of a pilot array (pure).

:func:`build_sbatch_script` turns :class:`SbatchOptions` into the text of a
batch script: one ``#SBATCH`` line per option, the user's setup lines, the
connection variables, and the pilot started so that Slurm's signals reach it
at once.  Nothing is run, so every script is tested without a cluster;
:mod:`picas.schedulers.slurm` submits it.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from string import Template

from picas import defaults
from picas.errors import InvalidInput

__all__ = ["DEFAULT_OUTPUT", "DEFAULT_TEMPLATE", "SbatchOptions", "build_sbatch_script"]

#: Where a pilot's stdout and stderr go: ``%A`` is the array job id, ``%a`` the task.
DEFAULT_OUTPUT = "picas-pilot-%A_%a.out"

#: Environment variable names that look like secrets are not written into a batch
#: script (the script lands in Slurm's spool and is readable with ``scontrol write
#: batch_script``) unless the caller sets ``SbatchOptions.export_secrets``.
_SECRET_WORDS = ("PASSWORD", "SECRET")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    job_name: str = defaults.PILOT_JOB_NAME
    output: str = DEFAULT_OUTPUT
    signal_grace: int | None = defaults.SIGNAL_GRACE
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
