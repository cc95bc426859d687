"""DIRAC job descriptions (JDL) for pilots, and DIRAC's command output, as pure functions.

A set of N pilots is one *parametric* job: ``Parameters = N`` with
``ParameterStart``/``ParameterStep`` makes DIRAC expand the description into
N jobs, each with ``%s`` in its strings replaced by its own parameter value.
That is one submission, one JobGroup and a list of N job ids back, instead of
N round trips to the DIRAC server.

DIRAC reads JDL with its own light ClassAd parser, which is stricter than
the ClassAd language: a ``"`` cannot be escaped, a ``;`` inside a string
ends the attribute, and list items lose their blanks and split at commas
(measured with DIRACCommon 9.1's ``loadJDLAsCFG`` and ``ClassAd``).  So the
builder refuses such values instead of writing a JDL that DIRAC would read
differently from what was meant.

Everything here takes values and returns values: :func:`build_jdl` writes
the text, :func:`parse_job_ids` and :func:`parse_status` read what
``dirac-wms-job-submit`` and ``dirac-wms-job-status`` print.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from picas.errors import InvalidInput, SchedulerError

__all__ = [
    "ACTIVE_STATES",
    "JdlOptions",
    "RUNNING_STATES",
    "arguments",
    "build_jdl",
    "parse_job_ids",
    "parse_kill",
    "parse_status",
    "states",
]

#: DIRAC job states in which a pilot is still waiting for a slot or holds one
#: (DIRAC's JobStatus module; Done, Completed, Failed, Killed and Deleted are final).
ACTIVE_STATES = frozenset({
    "Submitting", "Received", "Checking", "Scouting", "Staging", "Waiting", "Matched", "Rescheduled",
    "Running", "Stalled", "Completing",
})
#: The active states in which the pilot's start script has started on a worker node.
RUNNING_STATES = frozenset({"Running", "Stalled", "Completing"})

_FORBIDDEN = re.compile(r'["\\;\r\n]')
_LIST_FORBIDDEN = re.compile(r'[",\\;{}\s]')
_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")


@dataclass
class JdlOptions:
    """What one parametric submission of pilots looks like.

    ``None`` and empty lists write no attribute, leaving the choice to DIRAC
    (and the VO's defaults).

    Attributes:
        pilots: the number of pilots, ``Parameters``.
        job_name, job_group: ``JobName`` and ``JobGroup``; the group lets
            ``dirac-wms-job-status -g GROUP`` find the set again.
        site, banned_sites: ``Site`` and ``BannedSites`` (lists of DIRAC site names).
        cpu_time: ``CPUTime`` in seconds (DIRAC normalises it by the CPU power of a node).
        tags: ``Tags`` the node must offer (``"8Processors"``, ``"GPU"``, ...).
        number_of_processors: ``NumberOfProcessors`` per pilot.
        platform: ``Platform``, e.g. ``"EL9"``.
        start_script: the file in the sandbox that ``/bin/sh`` runs.
        start_args: options of the start script itself (``--python PATH``).
        pilot_args: the ``picas run`` arguments the start script passes on.
        input_sandbox: every file the pilot needs, names relative to the JDL's directory.
        stdout, stderr, pilot_log: the job's captured output and the pilot's own log;
            all three come back in the ``OutputSandbox``.
        output_files: further files to bring back.
        parameter_start, parameter_step: the first pilot's parameter and the step.
        priority: ``Priority`` among the owner's own jobs, when given.
    """

    pilots: int = 1
    job_name: str = "picas-pilot"
    job_group: str | None = None
    site: list[str] = field(default_factory=list)
    banned_sites: list[str] = field(default_factory=list)
    cpu_time: int | None = None
    tags: list[str] = field(default_factory=list)
    number_of_processors: int | None = None
    platform: str | None = None
    start_script: str = "picas-pilot.sh"
    start_args: list[str] = field(default_factory=list)
    pilot_args: list[str] = field(default_factory=list)
    input_sandbox: list[str] = field(default_factory=list)
    stdout: str = "picas-pilot.out"
    stderr: str = "picas-pilot.err"
    pilot_log: str = "picas-pilot.log"
    output_files: list[str] = field(default_factory=list)
    parameter_start: int = 0
    parameter_step: int = 1
    priority: int | None = None


def _string(value: object, what: str) -> str:
    text = str(value)
    if not text:
        raise InvalidInput(f"{what} must not be empty")
    if _FORBIDDEN.search(text):
        raise InvalidInput(f"{what} cannot be written into a DIRAC JDL: {text!r} holds a double quote, "
                           "backslash, semicolon or line break, which DIRAC's JDL reader does not accept")
    return text


def _list_item(value: object, what: str) -> str:
    text = _string(value, what)
    if _LIST_FORBIDDEN.search(text):
        raise InvalidInput(f"{what} {text!r} cannot be a JDL list item: DIRAC drops its blanks and splits "
                           "it at commas and braces")
    return text


def _count(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _word(value: object, what: str) -> str:
    """One shell word that needs no quoting: DIRAC's job wrapper may or may not pass Arguments to a shell."""
    text = _string(value, what)
    if shlex.quote(text) != text:
        raise InvalidInput(f"{what} {text!r} cannot be passed in the JDL's Arguments: it needs shell quoting, "
                           "and DIRAC's job wrapper does not promise to honour quotes")
    return text


def _sandbox_name(value: object, what: str) -> str:
    text = _list_item(value, what)
    if text.startswith("/") or ".." in text.split("/"):
        raise InvalidInput(f"{what} {text!r} must be a path relative to the JDL's directory, inside it")
    return text


def arguments(opts: JdlOptions) -> str:
    """The ``Arguments`` string: the start script, its own options, ``--index %s``, then ``picas run`` options.

    ``%s`` becomes each pilot's parameter when DIRAC expands the job, so every
    pilot knows its place in the set (it shows up in its log).
    """
    words = [_word(opts.start_script, "the start script")]
    words += [_word(a, "a start script argument") for a in opts.start_args]
    words += ["--index", "%s", "--"]
    words += [_word(a, "a pilot argument") for a in opts.pilot_args]
    return " ".join(words)


def build_jdl(opts: JdlOptions) -> str:
    """The JDL text of ``opts.pilots`` pilots as one parametric job (pure).

    ``Executable`` is ``/bin/sh`` with the start script as its first
    argument: the sandbox store does not keep file modes, so the script
    itself need not be executable.  The start script is always in the
    ``InputSandbox``; stdout, stderr and the pilot log always come back in
    the ``OutputSandbox``.  Raises :class:`~picas.errors.InvalidInput` for a
    value DIRAC would misread (see the module docstring).
    """
    pilots = _count(opts.pilots, "the number of pilots")
    start = _count(opts.parameter_start, "ParameterStart", 0)
    step = _count(opts.parameter_step, "ParameterStep", 1)
    inputs = [_sandbox_name(opts.start_script, "the start script")]
    for name in opts.input_sandbox:
        name = _sandbox_name(name, "an InputSandbox file")
        if name not in inputs:
            inputs.append(name)
    outputs: list[str] = []
    for name in (opts.stdout, opts.stderr, opts.pilot_log, *opts.output_files):
        name = _sandbox_name(name, "an OutputSandbox file")
        if name not in outputs:
            outputs.append(name)

    attrs: list[tuple[str, str]] = [("JobName", _quoted(_string(opts.job_name, "JobName")))]
    if opts.job_group:
        attrs.append(("JobGroup", _quoted(_string(opts.job_group, "JobGroup"))))
    attrs += [
        ("Executable", _quoted("/bin/sh")),
        ("Arguments", _quoted(arguments(opts))),
        ("Parameters", str(pilots)),
        ("ParameterStart", str(start)),
        ("ParameterStep", str(step)),
        ("StdOutput", _quoted(outputs[0])),
        ("StdError", _quoted(outputs[1])),
        ("InputSandbox", _list(inputs)),
        ("OutputSandbox", _list(outputs)),
    ]
    if opts.site:
        attrs.append(("Site", _list([_list_item(s, "a Site") for s in opts.site])))
    if opts.banned_sites:
        attrs.append(("BannedSites", _list([_list_item(s, "a BannedSite") for s in opts.banned_sites])))
    if opts.cpu_time is not None:
        attrs.append(("CPUTime", str(_count(opts.cpu_time, "CPUTime"))))
    if opts.number_of_processors is not None:
        attrs.append(("NumberOfProcessors", str(_count(opts.number_of_processors, "NumberOfProcessors"))))
    if opts.tags:
        attrs.append(("Tags", _list([_list_item(t, "a Tag") for t in opts.tags])))
    if opts.platform:
        attrs.append(("Platform", _quoted(_list_item(opts.platform, "the Platform"))))
    if opts.priority is not None:
        attrs.append(("Priority", str(_count(opts.priority, "Priority", 0))))
    width = max(len(name) for name, _ in attrs)
    body = "\n".join(f"    {name:<{width}} = {value};" for name, value in attrs)
    return f"[\n{body}\n]\n"


def _quoted(text: str) -> str:
    return f'"{text}"'


def _list(items: Iterable[str]) -> str:
    return "{" + ", ".join(_quoted(i) for i in items) + "}"


# --- what the DIRAC commands print -------------------------------------------------------

_JOB_ID_LINE = re.compile(r"^\s*JobID\s*=\s*(.+?)\s*$", re.MULTILINE)


def parse_job_ids(output: str) -> list[str]:
    """The job ids in ``dirac-wms-job-submit`` output (pure).

    DIRAC prints ``JobID = 123`` for a single job and ``JobID = [123, 124]``
    for a parametric one (a Python list, as its script formats it).  Raises
    :class:`~picas.errors.SchedulerError` when there is no such line, with
    DIRAC's own words (e.g. ``ERROR pilot.jdl: ...``) in the message.
    """
    ids: list[str] = []
    for match in _JOB_ID_LINE.finditer(output):
        text = match.group(1).strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        for part in text.split(","):
            part = part.strip().strip("'\"")
            if not part:
                continue
            if not part.isdigit():
                raise SchedulerError(f"dirac-wms-job-submit printed a job id that is not a number: {part!r}")
            ids.append(part)
    if not ids:
        said = "; ".join(line.strip() for line in output.splitlines() if line.strip()) or "nothing"
        raise SchedulerError(f"dirac-wms-job-submit gave no job id (it said: {said})")
    return ids


_STATUS_LINE = re.compile(r"^\s*JobID=(\d+)\s+(.*)$")


def parse_status(output: str) -> dict[str, dict[str, str]]:
    """Job ids to their fields from ``dirac-wms-job-status`` output (pure).

    Each line looks like ``JobID=2 Status=Done; MinorStatus=Execution
    Complete; Site=EELA.UTFSM.cl;``: fields are separated by ``; `` and a
    value may contain blanks.  Jobs DIRAC does not know are simply absent.
    """
    jobs: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        match = _STATUS_LINE.match(line)
        if not match:
            continue
        fields: dict[str, str] = {}
        for part in match.group(2).split(";"):
            name, eq, value = part.strip().partition("=")
            if eq and _NAME.match(name.strip()):
                fields[name.strip()] = value.strip()
        jobs[match.group(1)] = fields
    return jobs


def states(answer: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Job id to ``Status`` from a :func:`parse_status` answer (pure)."""
    return {job_id: str(fields.get("Status", "Unknown")) for job_id, fields in answer.items()}


def parse_kill(output: str) -> list[str]:
    """The ids ``dirac-wms-job-kill`` says it killed: ``Killed jobs 1,2,3`` (pure)."""
    killed: list[str] = []
    for line in output.splitlines():
        match = re.match(r"^\s*Killed jobs?\s+(.+?)\s*$", line)
        if match:
            killed += [part.strip() for part in re.split(r"[,\s]+", match.group(1)) if part.strip().isdigit()]
    return killed
