"""The example workflow on real Slurm pilots: 'picas submit slurm' starts them, Snakemake only writes tokens.

The cluster is this machine (scripts/slurm-up.sh), so the workflow directory
is shared, as on a cluster with a common file system.  Every job must have
run inside a Slurm array task (the token records which), exactly once.
Locally the test skips without a cluster; with CI=true it fails instead.
"""
from __future__ import annotations

import sys
import time

import pytest
from click.testing import CliRunner

from picas.cli import main
from picas.core import token as tok
from picas.schedulers.slurm import cancel, count_active
from tests.slurm_fixture import slurm_cluster  # noqa: F401
from tests.snakemake.conftest import FAST, example_jobs, expected_summary, job_key, output, read_summary, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def test_the_example_runs_on_slurm_pilots(pool, flow, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # sbatch runs where the command runs
    env = {**pool.env, "PICAS_CONFIG": str(tmp_path / "conf.yml")}
    submitted = CliRunner().invoke(main, ["submit", "slurm", "--array", "2", "--time", "15", "--wait",
                                          "--max-time", "10m", "--picas-command", f"{sys.executable} -m picas",
                                          "--output", str(tmp_path / "pilot-%A_%a.out"), "--parsable"],
                                   env=env, catch_exceptions=False)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.strip().splitlines()[-1]
    try:
        proc = snakemake(flow, pool.env, "--executor", "picas", "--jobs", "20", *FAST)
        assert proc.returncode == 0, output(proc)
    finally:
        cancel([job_id])
        deadline = time.monotonic() + 60
        while count_active([job_id]) and time.monotonic() < deadline:
            time.sleep(0.5)

    assert read_summary(flow / "results" / "summary.tsv") == expected_summary(flow / "data")
    tokens = pool.run_tokens()
    assert sorted(job_key(doc) for doc in tokens) == sorted(example_jobs(flow / "data")), "one token per job"
    for doc in tokens:
        assert tok.state(doc) == "done" and doc["attempts"] == 1
        assert doc["slurm_array_job_id"] == job_id and doc["slurm_job_id"].startswith(f"{job_id}_")
