"""The ``slurm_cluster`` fixture: a real Slurm cluster, or a skip (a failure in CI).

Kept out of conftest.py on purpose: test modules that need Slurm import it
explicitly, so nothing else pays for the check.  Bring a cluster up on this
machine with ``scripts/slurm-up.sh``.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import pytest

from picas.schedulers.slurm import cancel, count_active, slurm_available, submit


@dataclass(frozen=True)
class SlurmCluster:
    """What a test needs to know about the cluster it submits to."""

    partition: str


_USABLE = {"idle", "mixed", "allocated", "completing"}


def _sinfo(fmt: str) -> list[str]:
    proc = subprocess.run(["sinfo", "-h", "-o", fmt], capture_output=True, text=True, timeout=10)
    return proc.stdout.split()


def _default_partition() -> str:
    names = _sinfo("%P")
    for name in names:
        if name.endswith("*"):
            return name[:-1]
    return names[0] if names else "debug"


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """A Slurm cluster that answers; skipped locally when absent, failed when CI=true.

    In CI a missing cluster means the CI script forgot ``scripts/slurm-up.sh``,
    which must not pass silently as a skip.  A controller whose node is down
    counts as absent too: jobs would wait forever instead of failing.
    """
    if not slurm_available():
        _unavailable("no Slurm cluster answers (sbatch missing or sinfo fails): run scripts/slurm-up.sh")
    states = _sinfo("%T")
    if not _USABLE.intersection(states):
        _unavailable(f"Slurm answers but no node takes jobs (sinfo states: {' '.join(states) or 'none'}): "
                     "run scripts/slurm-up.sh")
    _runs_a_job()
    return SlurmCluster(partition=_default_partition())


def _runs_a_job(timeout: float = 30.0) -> None:
    """Run one trivial job: the only sure sign that slurmd is there too.

    slurmctld keeps calling a node idle for minutes (SlurmdTimeout) after its
    slurmd died, and every test would then wait for jobs that never start.
    """
    job_id = submit("#!/bin/sh\n#SBATCH --output=/dev/null\n#SBATCH --job-name=picas-probe\ntrue\n", cwd="/tmp")
    deadline = time.monotonic() + timeout
    while count_active([job_id]):
        if time.monotonic() > deadline:
            cancel([job_id])
            _unavailable(f"Slurm accepts jobs but did not run a trivial one in {timeout:g}s "
                         "(is slurmd running?): run scripts/slurm-up.sh")
        time.sleep(0.1)
