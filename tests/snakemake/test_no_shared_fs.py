"""No shared file system: the example's files travel through a real WebDAV server, pilots work in empty directories.

Snakemake runs with ``--shared-fs-usage none --picas-storage-prefix dav://...``;
two real pilots (``picas run --wait``) run in an empty directory of their own
with an empty ``--workdir``.  Each token stages its inputs and the workflow
sources in from the WebDAV server and its outputs out to it; its command
never names the workflow directory.  The outputs end up both on the storage
and, brought back by the executor, in the workflow directory.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from picas.core import token as tok
from picas.support import procgroup
from snakemake_executor_plugin_picas.remote import ARCHIVE_NAME, SOURCES_FOLDER
from tests.helpers import start_pilot
from tests.snakemake.conftest import FAST, example_jobs, expected_summary, job_key, output, read_summary, snakemake
from tests.staging.conftest import start_dav


@pytest.fixture
def dav(tmp_path):
    server = start_dav(tmp_path / "dav-root")
    yield server
    server.stop()


def test_the_example_runs_with_its_files_on_webdav_and_pilots_in_empty_directories(pool, flow, dav, tmp_path):
    empty = tmp_path / "pilot-home"
    work = tmp_path / "pilot-work"
    empty.mkdir()
    work.mkdir()
    pilots = start_pilot(pool.server, pool.db, "--wait", "-j", "2", "--workdir", str(work), env=pool.env, cwd=empty,
                         start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        proc = snakemake(flow, pool.env, "--executor", "picas", "--jobs", "20", "--shared-fs-usage", "none",
                         "--picas-storage-prefix", dav.dav("area"), *FAST)
    finally:
        procgroup.terminate(pilots, grace=30)
    assert proc.returncode == 0, output(proc)

    storage = dav.root / "area"
    expected = expected_summary(flow / "data")
    assert read_summary(flow / "results" / "summary.tsv") == expected
    assert read_summary(storage / "results" / "summary.tsv") == expected
    for name in ("A", "F"):
        assert (storage / "data" / f"{name}.txt").read_bytes() == (flow / "data" / f"{name}.txt").read_bytes()
        assert (storage / "top" / f"{name}.tsv").read_bytes() == (flow / "top" / f"{name}.tsv").read_bytes()
    assert len(list((storage / SOURCES_FOLDER).glob("sources-*.tar.xz"))) == 1

    tokens = pool.run_tokens()
    assert sorted(job_key(doc) for doc in tokens) == sorted(example_jobs(flow / "data"))
    for doc in tokens:
        assert tok.state(doc) == "done"
        assert str(flow) not in doc["input"], "a job must not rely on the workflow directory"
        assert doc["input"].startswith(f"python -m tarfile -e {ARCHIVE_NAME} . && ")
        assert doc["stage_in"][0]["dst"] == ARCHIVE_NAME and doc["stage_in"][0]["checksum"].startswith("adler32:")
        events = [entry["event"] for entry in doc["history"]]
        assert "stage_in_success" in events and "stage_out_success" in events
    summary = next(doc for doc in tokens if doc["rule"] == "summary")
    assert sorted(entry["dst"] for entry in summary["stage_in"][1:]) == [f"top/{s}.tsv" for s in "ABCDEF"]
    assert [entry["src"] for entry in summary["stage_out"]] == ["results/summary.tsv", "logs/summary.log"]
    assert set(os.listdir(empty)) == set(), "the pilots' own directory stays empty"
