"""A Snakemake job as a token body: pure functions, no Snakemake and no server needed.

The executor reads what it needs of a job into a :class:`JobSpec` and this
module makes the token: its ``input`` is the job's command as Snakemake formats
it for remote execution, and its fields say which run and which job it is::

    {"_id": "smk-3f2a...-7-1", "input": "cd /work/flow && python -m snakemake ...",
     "snakemake_run": "3f2a...", "rule": "align", "jobid": 7, "attempt": 1,
     "wildcards": {"sample": "A"}, "threads": 4, "mem_mb": 8000, "runtime": 60, "cpus_per_task": 4,
     "resources": {"mem_mb": 8000, "runtime": 60, "disk_mb": 1000}, "design_doc": "Monitor"}

The resource fields are top-level on purpose: a design document with a
condition (a pilot class) selects jobs with a short expression, e.g.
``picas views create --design-doc BigMem --condition 'doc.mem_mb > 16000'``.
A rule picks a design document itself with the resource
``picas_design_doc="BigMem"``.

Token ids hold the run id, the job id and the attempt, so they are unique per
run without asking the server anything (the seed's profile probed
``token_0``, ``token_1``, ... one request each), and a retry of a job is a
token of its own.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping

from picas.errors import InvalidInput

__all__ = ["JobSpec", "RESOURCE_FIELDS", "DESIGN_RESOURCE", "RUN_FIELD", "token_id", "design_for", "job_fields",
           "token_body", "in_workdir"]

#: The token field that holds the run id; the run view (:mod:`.runview`) is keyed by it.
RUN_FIELD = "snakemake_run"
#: Resources copied to top-level token fields, for short conditions in pilot classes.
RESOURCE_FIELDS = ("mem_mb", "runtime", "cpus_per_task")
#: The resource by which a rule picks the design document (the pilot class) that runs its jobs.
DESIGN_RESOURCE = "picas_design_doc"
#: Resources that mean something on the submitting host only, or to Snakemake's scheduler only.
_LOCAL_RESOURCES = ("tmpdir",)
_DESIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class JobSpec:
    """What a token needs to know about one Snakemake job (or group job)."""

    rule: str
    jobid: Any
    attempt: int
    threads: int
    wildcards: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)
    #: Paths relative to the workflow directory (used without a shared file system).
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    #: Log and benchmark files: brought back when written, never required.
    extra_outputs: tuple[str, ...] = ()


def token_id(run_id: str, jobid: Any, attempt: int) -> str:
    """``smk-<run>-<jobid>-<attempt>``: unique per run and attempt, readable in ``picas tokens``."""
    return f"smk-{run_id.replace('-', '')}-{jobid}-{attempt}"


def design_for(spec: JobSpec, default: str) -> str:
    """The design document whose pilots run this job: the rule's ``picas_design_doc`` resource, else ``default``."""
    chosen = spec.resources.get(DESIGN_RESOURCE)
    if chosen in (None, ""):
        return default
    name = str(chosen)
    if not _DESIGN_NAME.match(name):
        raise InvalidInput(f"rule {spec.rule}: the resource {DESIGN_RESOURCE}={name!r} is not a design document "
                           f"name (letters, digits, '_', '.', '+', '-')")
    return name


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def job_fields(spec: JobSpec, run_id: str, design_doc: str) -> dict[str, Any]:
    """The token fields that describe the job (everything but ``_id``, ``input`` and staging)."""
    resources = {name: value for name, value in spec.resources.items()
                 if not name.startswith("_") and name not in _LOCAL_RESOURCES and _plain(value)}
    fields: dict[str, Any] = {
        RUN_FIELD: run_id,
        "rule": spec.rule,
        "jobid": spec.jobid,
        "attempt": spec.attempt,
        "wildcards": {str(k): str(v) for k, v in spec.wildcards.items()},
        "threads": spec.threads,
    }
    for name in RESOURCE_FIELDS:
        if name in resources:
            fields[name] = resources[name]
    # As the Slurm plugin does: a job that names no cpus_per_task needs one core per thread.
    fields.setdefault("cpus_per_task", spec.threads)
    fields["resources"] = resources
    fields["design_doc"] = design_doc
    return fields


def token_body(spec: JobSpec, run_id: str, design_doc: str, command: str,
               staging: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body :func:`picas.pool.push.push` completes into a todo token."""
    body = {"_id": token_id(run_id, spec.jobid, spec.attempt), "input": command,
            **job_fields(spec, run_id, design_doc)}
    if staging:
        body.update(staging)
    return body


def in_workdir(workdir: str, command: str) -> str:
    """The command run from the workflow directory: with a shared file system, pilots work there."""
    return f"cd {shlex.quote(workdir)} && {command}"
