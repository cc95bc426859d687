"""The plugin's pure pieces: token bodies, the run view's meaning, settings, the profile, staging entries.

None of these needs Snakemake; the settings class check does (it builds the
class Snakemake reads) and skips or fails as the other Snakemake tests do.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from picas.cli import main
from picas.errors import InvalidInput
from picas.staging.spec import plan_for
from picas.staging.transfer import Transfer
from snakemake_executor_plugin_picas import jobs, runview
from snakemake_executor_plugin_picas.remote import ARCHIVE_NAME, RemoteFiles
from snakemake_executor_plugin_picas.settings import SETTINGS, profile_key
from tests.helpers import wait_for
from tests.snakemake.conftest import require_snakemake

SPEC = jobs.JobSpec(rule="align", jobid=7, attempt=2, threads=4, wildcards={"sample": "A"},
                    resources={"_cores": 4, "_nodes": 1, "mem_mb": 8000, "runtime": 60, "tmpdir": "/tmp",
                               "disk_mb": 1000, "picas_design_doc": "BigMem", "flag": True},
                    inputs=("data/A.txt",), outputs=("out/A.bam",), extra_outputs=("logs/A.log",))


def test_a_job_becomes_a_token_body_with_its_fields():
    body = jobs.token_body(SPEC, "3f2a-77", "BigMem", "cd /w && python -m snakemake ...")
    assert body["_id"] == "smk-3f2a77-7-2" == jobs.token_id("3f2a-77", 7, 2)
    assert body["input"] == "cd /w && python -m snakemake ..."
    assert {key: body[key] for key in ("snakemake_run", "rule", "jobid", "attempt", "wildcards", "threads",
                                       "mem_mb", "runtime", "cpus_per_task", "design_doc")} == {
        "snakemake_run": "3f2a-77", "rule": "align", "jobid": 7, "attempt": 2, "wildcards": {"sample": "A"},
        "threads": 4, "mem_mb": 8000, "runtime": 60, "cpus_per_task": 4, "design_doc": "BigMem"}
    # Snakemake's own bookkeeping, the submit host's tmpdir and non-values stay out.
    assert body["resources"] == {"mem_mb": 8000, "runtime": 60, "disk_mb": 1000, "picas_design_doc": "BigMem"}
    assert jobs.token_id("3f2a-77", 7, 1) != body["_id"], "a retry is a token of its own"


def test_a_rule_picks_its_design_document_by_resource():
    assert jobs.design_for(SPEC, "Monitor") == "BigMem"
    assert jobs.design_for(dataclasses.replace(SPEC, resources={}), "Monitor") == "Monitor"
    with pytest.raises(InvalidInput, match="picas_design_doc"):
        jobs.design_for(dataclasses.replace(SPEC, resources={"picas_design_doc": "a/b"}), "Monitor")


def test_cpus_per_task_defaults_to_threads_and_an_explicit_one_wins():
    assert jobs.job_fields(dataclasses.replace(SPEC, resources={}), "r", "M")["cpus_per_task"] == 4
    assert jobs.job_fields(dataclasses.replace(SPEC, resources={"cpus_per_task": 2}), "r", "M")["cpus_per_task"] == 2


def test_the_command_runs_from_the_workflow_directory_quoted():
    assert jobs.in_workdir("/data/my flow", "python -m snakemake") == "cd '/data/my flow' && python -m snakemake"


def test_what_each_state_means_to_snakemake():
    assert runview.outcome("todo") is runview.Outcome.RUNNING, "a token scrubbed back to todo is still running"
    assert runview.outcome("locked") is runview.Outcome.RUNNING
    assert runview.outcome("done") is runview.Outcome.SUCCESS
    assert runview.outcome("error") is runview.Outcome.FAILED
    assert runview.outcome("other") is runview.Outcome.FAILED
    assert runview.outcome(None) is runview.Outcome.MISSING
    body = runview.design_body()
    assert list(body["views"]) == [runview.VIEW] and "emit(doc.snakemake_run, state)" in body["views"]["by_run"]["map"]
    assert "//" not in body["views"]["by_run"]["map"]


def test_the_settings_class_snakemake_reads_has_one_field_per_setting():
    require_snakemake()
    from snakemake_executor_plugin_picas import ExecutorSettings, common_settings

    fields = {field.name: field for field in dataclasses.fields(ExecutorSettings)}
    assert list(fields) == [setting.name for setting in SETTINGS]
    assert "password" not in fields, "passwords only through PICAS_PASSWORD or the config file"
    assert all(field.metadata["help"] for field in fields.values())
    assert ExecutorSettings().design_doc == "Monitor" and ExecutorSettings().local_pilots == 0
    assert common_settings.auto_deploy_default_storage_provider is False, "nothing runs pip install on a worker"
    assert common_settings.non_local_exec and common_settings.can_transfer_local_files


def test_snakemake_lists_the_plugin_options_from_the_installed_package(tmp_path):
    """Found by module name on the installed path (run from an unrelated directory, not the checkout)."""
    require_snakemake()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for setting in SETTINGS:
        assert setting.flag in proc.stdout
    found = subprocess.run([sys.executable, "-c", "import snakemake_executor_plugin_picas as m; print(m.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert found.returncode == 0 and Path(found.stdout.strip()).parent.name == "snakemake_executor_plugin_picas"


def test_picas_snakemake_profile_writes_the_plugin_keys_and_never_a_password(tmp_path):
    runner = CliRunner()
    target = tmp_path / "profile"
    result = runner.invoke(main, ["snakemake", "profile", str(target), "--db", "lofar", "--local-pilots", "4",
                                  "--storage-prefix", "davs://se.example.org/data/me", "--retries", "2",
                                  "--status-interval", "5", "--insecure"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load((target / "config.yaml").read_text())
    assert data == {"executor": "picas", "jobs": 100, "seconds-between-status-checks": 5, "retries": 2,
                    "shared-fs-usage": "none", "picas-database": "lofar", "picas-insecure": True,
                    "picas-storage-prefix": "davs://se.example.org/data/me", "picas-local-pilots": 4}
    assert set(data) - {"executor", "jobs", "seconds-between-status-checks", "retries", "shared-fs-usage"} <= {
        profile_key(setting.name) for setting in SETTINGS}

    again = runner.invoke(main, ["snakemake", "profile", str(target)])
    assert again.exit_code != 0 and "exists already" in again.output
    refused = runner.invoke(main, ["snakemake", "profile", str(tmp_path / "p2"), "--url", "https://u:pw@couch:6984"])
    assert refused.exit_code != 0 and "password" in refused.output and not (tmp_path / "p2").exists()
    assert "--password" not in runner.invoke(main, ["snakemake", "profile", "--help"]).output


def test_staging_entries_for_a_job_without_a_shared_file_system(tmp_path):
    workdir = tmp_path / "flow"
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "A {x}.txt").write_text("hello\n")
    storage = tmp_path / "storage"
    remote = RemoteFiles(f"file://{storage}", workdir, Transfer())
    spec = jobs.JobSpec(rule="r", jobid=1, attempt=1, threads=1, inputs=("data/A {x}.txt",),
                        outputs=("out/A.txt",), extra_outputs=("logs/A.log",))

    def archive(path: Path) -> None:
        path.write_bytes(b"sources")

    remote.upload_sources(archive)
    assert remote.upload_inputs(spec) == 1 and remote.upload_inputs(spec) == 0, "an input goes up once per run"
    assert (storage / "data" / "A {x}.txt").read_text() == "hello\n"
    fields = remote.stage_fields(spec)
    plan = plan_for({"_id": "t", **fields})  # the pilot reads the entries back exactly
    assert [(entry.src, entry.dst) for entry in plan.stage_in] == [
        (remote._sources.url, ARCHIVE_NAME), (f"file://{storage}/data/A%20%7Bx%7D.txt", "data/A {x}.txt")]
    assert plan.stage_in[1].checksum is not None
    assert [(entry.src, entry.dst, entry.optional) for entry in plan.stage_out] == [
        ("out/A.txt", f"file://{storage}/out/A.txt", False), ("logs/A.log", f"file://{storage}/logs/A.log", True)]
    assert RemoteFiles.command("python", "python -m snakemake x") == \
        f"python -m tarfile -e {ARCHIVE_NAME} . && rm -f {ARCHIVE_NAME} && python -m snakemake x"
    with pytest.raises(InvalidInput, match="outside the workflow directory"):
        remote.stage_fields(dataclasses.replace(spec, inputs=("/etc/passwd",)))
    with pytest.raises(InvalidInput, match="outside the workflow directory"):
        remote.stage_fields(dataclasses.replace(spec, inputs=("../elsewhere.txt",)))


def test_local_pilots_stop_when_the_process_that_started_them_is_killed(tmp_path):
    """The watchdog between Snakemake and its local pilots ends them when Snakemake dies without a word."""
    marker = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000:03d}"  # a sleep nobody else runs
    starter = (f"import os, subprocess, sys, time\n"
               f"subprocess.Popen([sys.executable, '-m', 'snakemake_executor_plugin_picas.pilots', '--parent',"
               f" str(os.getpid()), '--', 'sleep', '{marker}'], start_new_session=True)\n"
               f"print('started', flush=True)\n"
               f"time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "started"
        wait_for(lambda: _running(f"sleep {marker}"), timeout=60, what="the stand-in pilot command to start")
        parent.kill()  # SIGKILL: no cleanup of its own
        parent.wait()
        wait_for(lambda: not _running(f"sleep {marker}"), timeout=30, what="the watchdog to stop the pilots")
    finally:
        parent.kill()


def _running(text: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == text.encode():
                    return True
            except OSError:
                continue
    return False
