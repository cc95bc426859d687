"""Batch job ids in tokens, as classic picas records them.

A pilot that locks a token writes the id of the batch job it runs in, so that
a token can be traced back to the job (and its log) that worked on it.  Batch
systems can be layered (a grid job that runs on PBS), so only the outermost
one is recorded, in this order of precedence: DIRAC, gLite WMS, CREAM, PBS,
Slurm (array job first).  The new pilot (``picas.core.token.claim``) records every
id it finds instead; this module keeps the classic single-id behaviour for
classic scripts.
"""
from __future__ import annotations

import os
from typing import Any, MutableMapping

#: Every field add_job_id (classic) or picas.core.token.claim (new) may write.
JOB_ID_KEYS = ("dirac_job_id", "wms_job_id", "cream_job_id", "pbs_job_id", "slurm_job_id",
               "slurm_array_job_id", "slurm_array_task_id")


def add_job_id(doc: MutableMapping[str, Any], environ: MutableMapping[str, str] | None = None) -> None:
    """Record the outermost batch job id found in the environment in ``doc`` (in place)."""
    env = os.environ if environ is None else environ
    if env.get("DIRACJOBID") is not None:
        doc["dirac_job_id"] = env["DIRACJOBID"]
    elif env.get("GLITE_WMS_JOBID") is not None:
        wms = env["GLITE_WMS_JOBID"]
        # Classic picas stores only URL-shaped WMS ids; anything else is recorded as unknown (None).
        doc["wms_job_id"] = wms if wms.startswith("http") else None
    elif env.get("CREAM_JOBID") is not None:
        doc["cream_job_id"] = env["CREAM_JOBID"]
    elif env.get("PBS_JOBID") is not None:
        doc["pbs_job_id"] = env["PBS_JOBID"]
    elif env.get("SLURM_ARRAY_JOB_ID") is not None:
        # squeue shows array tasks as <array job>_<task>; record them the way users look them up.
        doc["slurm_job_id"] = f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    elif env.get("SLURM_JOB_ID") is not None:
        doc["slurm_job_id"] = env["SLURM_JOB_ID"]


def remove_job_id(doc: MutableMapping[str, Any]) -> None:
    """Forget every batch job id in ``doc`` (in place): the token is no longer held by that job."""
    for key in JOB_ID_KEYS:
        if key in doc:
            del doc[key]
