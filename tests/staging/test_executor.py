"""The staging wrapper around the real BashExecutor: stage in, run, stage out, events, manifests, outputs."""
from __future__ import annotations

import hashlib
import json
import zlib

import pytest

from picas.pilot.payload import BashExecutor, ExecResult
from picas.staging.executor import StagingExecutor
from picas.staging.stager import Stager
from picas.staging.transfer import Transfer
from tests.staging.test_transfer import FAST


@pytest.fixture
def executor(registry, tmp_path) -> StagingExecutor:
    return StagingExecutor(BashExecutor(tmp_path / "pilot"), Stager(Transfer(registry, FAST)))


def events(result) -> list[str]:
    return [entry["event"] for entry in result.events]


def adler(data: bytes) -> str:
    return f"adler32:{zlib.adler32(data):08x}"


def test_a_token_without_staging_runs_exactly_as_before(executor, tmp_path):
    marker = tmp_path / "ran"
    result = executor.run({"_id": "plain", "input": f"echo hi; touch {marker}"})
    assert isinstance(result, ExecResult) and result.exit_code == 0 and marker.exists()
    assert result.events == [] and result.token_fields == {} and result.attachments == {}
    assert not executor.workdir_for("plain").exists()


def test_stage_in_run_stage_out_with_globs_manifests_and_outputs(executor, dav, area, tmp_path):
    name, folder = area
    folder.mkdir()
    (folder / "in.dat").write_bytes(b"input data\n")
    local_src = tmp_path / "local.txt"
    local_src.write_text("from a shared file system\n")
    doc = {
        "_id": "tok-1", "sample": "s1",
        "input": "mkdir -p out/logs && tr a-z A-Z < data/in.dat > out/result.dat && echo one > out/logs/a.log "
                 "&& echo two > out/logs/b.log && rm local.txt",
        "stage_in": [{"src": dav.dav(f"{name}/in.dat"), "dst": "data/in.dat", "checksum": adler(b"input data\n")},
                     "file://" + str(local_src)],
        "stage_out": [{"src": "out/result.dat", "dst": dav.dav(f"{name}/{{sample}}/{{token_id}}/")},
                      {"src": "out/logs/*.log", "dst": dav.dav(f"{name}/{{sample}}/logs/")}],
    }
    result = executor.run(doc)
    assert result.exit_code == 0 and result.error is None, result.error
    assert (folder / "s1" / "tok-1" / "result.dat").read_bytes() == b"INPUT DATA\n"
    assert (folder / "s1" / "logs" / "a.log").read_text() == "one\n"
    assert (folder / "s1" / "logs" / "b.log").read_text() == "two\n"
    assert events(result) == ["stage_in_start", "stage_in_success", "run_start", "run_success",
                              "stage_out_start", "stage_out_success"]
    stage_in = result.events[1]
    assert stage_in["files"] == 2 and stage_in["bytes"] == len(b"input data\n") + len("from a shared file system\n")
    assert result.events[5]["files"] == 3
    outputs = result.token_fields["outputs"]
    assert outputs[dav.dav(f"{name}/s1/tok-1/result.dat")] == {"size": 11, "checksum": adler(b"INPUT DATA\n")}
    assert len(outputs) == 3 and result.token_fields["failed_stage"] is None
    setup = json.loads(result.attachments["setup_md5_checksums.json"][1])
    assert setup == {"data/in.dat": hashlib.md5(b"input data\n").hexdigest(),
                     "local.txt": hashlib.md5(b"from a shared file system\n").hexdigest()}
    upload = json.loads(result.attachments["upload_md5_checksums.json"][1])
    assert set(upload) == {"data/in.dat", "out/result.dat", "out/logs/a.log", "out/logs/b.log"}
    assert result.attachments["deleted.txt"][1] == b"local.txt\n"
    assert not executor.workdir_for("tok-1").exists()
    assert local_src.exists()  # stage-in copies, it never moves


def test_a_missing_input_fails_stage_in_naming_the_file_and_the_payload_never_runs(executor, dav, area, tmp_path):
    name, _ = area
    marker = tmp_path / "ran"
    result = executor.run({"_id": "t2", "input": f"touch {marker}",
                           "stage_in": [{"src": dav.dav(f"{name}/absent.dat"), "dst": "in.dat"}]})
    assert result.exit_code != 0 and not marker.exists()
    assert result.error.startswith("stage-in failed for in.dat: ") and "does not exist" in result.error
    assert result.token_fields == {"failed_stage": "stage_in"}
    assert events(result) == ["stage_in_start", "stage_in_fail"]
    assert result.events[1]["file"] == "in.dat"
    assert "stage-in failed" in result.stderr.read_text()


def test_a_wrong_checksum_fails_stage_in(executor, dav, area):
    name, folder = area
    folder.mkdir()
    (folder / "in.dat").write_bytes(b"abc")
    result = executor.run({"_id": "t3", "input": "true",
                           "stage_in": [{"src": dav.dav(f"{name}/in.dat"), "checksum": "adler32:deadbeef"}]})
    assert "stage-in failed for in.dat" in result.error and "deadbeef" in result.error
    assert result.token_fields["failed_stage"] == "stage_in"


def test_bad_staging_fields_are_a_stage_in_error(executor):
    result = executor.run({"_id": "t4", "input": "true", "stage_in": [{"src": "https://u:pw@h/x"}]})
    assert "stage-in failed for the token's staging fields" in result.error and "password" in result.error


def test_a_failed_payload_stages_nothing_out_unless_the_token_asks(executor, dav, area):
    name, folder = area
    doc = {"_id": "t5", "input": "echo partial > r.txt; exit 3",
           "stage_out": [{"src": "r.txt", "dst": dav.dav(f"{name}/r.txt")}]}
    result = executor.run(doc)
    assert result.exit_code == 3 and events(result) == ["run_start", "run_fail"]
    assert result.token_fields["failed_stage"] == "run" and "outputs" not in result.token_fields
    assert not (folder / "r.txt").exists()
    result = executor.run({**doc, "stage_out_on_failure": True})
    assert result.exit_code == 3 and events(result)[-1] == "stage_out_success"
    assert (folder / "r.txt").read_text() == "partial\n"


def test_a_failed_stage_out_names_the_file_and_keeps_the_working_directory(executor, dav, area):
    name, folder = area
    folder.mkdir()
    (folder / "r.txt").write_text("someone else's result\n")
    result = executor.run({"_id": "t6", "input": "echo mine > r.txt; echo fine > ok.txt",
                           "stage_out": [{"src": "ok.txt", "dst": dav.dav(f"{name}/ok.txt")},
                                         {"src": "r.txt", "dst": dav.dav(f"{name}/r.txt")}]})
    assert result.exit_code != 0
    assert result.error.startswith("stage-out failed for r.txt: ") and "already exists" in result.error
    assert result.token_fields["failed_stage"] == "stage_out" and result.token_fields["payload_exit_code"] == 0
    assert events(result)[-1] == "stage_out_fail" and result.events[-1]["file"] == "r.txt"
    kept = executor.workdir_for("t6")
    assert (kept / "r.txt").read_text() == "mine\n" and str(kept) in result.error
    assert (folder / "r.txt").read_text() == "someone else's result\n"
    assert list(result.token_fields["outputs"]) == [dav.dav(f"{name}/ok.txt")]


def test_an_output_the_payload_did_not_write_fails_stage_out(executor, dav, area):
    name, _ = area
    result = executor.run({"_id": "t7", "input": "true",
                           "stage_out": [{"src": "nothing.dat", "dst": dav.dav(f"{name}/n.dat")},
                                         {"src": "*.none", "dst": dav.dav(f"{name}/x/"), "optional": True}]})
    assert result.error.startswith("stage-out failed for nothing.dat: the payload did not write it")


def test_skip_done_outputs_reports_done_without_running(registry, dav, area, tmp_path):
    name, folder = area
    marker = tmp_path / "ran"
    inner = BashExecutor(tmp_path / "pilot")
    first = StagingExecutor(inner, Stager(Transfer(registry, FAST))).run(
        {"_id": "t8", "input": "echo result > r.txt", "stage_out": [{"src": "r.txt", "dst": dav.dav(f"{name}/")}]})
    doc = {"_id": "t8", "input": f"touch {marker}; echo result > r.txt",
           "stage_out": [{"src": "r.txt", "dst": dav.dav(f"{name}/")}], "outputs": first.token_fields["outputs"]}
    skipping = StagingExecutor(inner, Stager(Transfer(registry, FAST)), skip_done_outputs=True)
    result = skipping.run(doc)
    assert result.exit_code == 0 and not marker.exists()
    assert events(result) == ["run_skip"] and result.token_fields["skipped_run"] is True
    (folder / "r.txt").write_text("changed\n")  # the stored output no longer matches: run again
    result = skipping.run(doc)
    assert marker.exists() and events(result)[-1] == "stage_out_fail"  # and it will not overwrite the changed one


def test_a_stop_during_stage_in_gives_the_token_back(executor, dav, area):
    name, folder = area
    folder.mkdir()
    (folder / "in.dat").write_bytes(b"x")
    result = executor.run({"_id": "t9", "input": "true", "stage_in": [dav.dav(f"{name}/in.dat")]},
                          should_stop=lambda: True)
    assert result.interrupted and not executor.workdir_for("t9").exists()
