"""The bash executor on real processes: both pipes read in one thread, stragglers, stops, environment."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from picas.pilot.payload import LOG_MEMORY, BashExecutor
from picas.support import procgroup


def test_both_streams_are_read_in_full_while_the_payload_writes_to_both(tmp_path):
    executor = BashExecutor(tmp_path / "pilot")
    # 1 MiB on each stream, interleaved: with either pipe left unread the payload would block for good.
    script = "for i in $(seq 1 4096); do printf '%0255d\\n' $i; printf '%0255d\\n' $i >&2; done"
    result = executor.run({"_id": "t1", "input": script})
    assert result.exit_code == 0 and not result.truncated
    expected = b"".join(b"%0255d\n" % i for i in range(1, 4097))
    assert result.log("stdout") == expected and result.log("stderr") == expected


def test_a_background_child_holding_the_pipes_is_stopped_after_the_payload_exits(tmp_path):
    executor = BashExecutor(tmp_path / "pilot", grace=1.0)
    pids = tmp_path / "pids"
    result = executor.run({"_id": "t1", "input": f"sleep 300 & echo $! > {pids}; echo main done; exit 3"})
    assert result.exit_code == 3 and not result.interrupted and not result.timed_out
    assert result.log("stdout") == b"main done\n"
    straggler = int(pids.read_text())
    assert not procgroup.process_alive(straggler), "the sleep left behind was ended with its group"


def test_output_written_while_stopping_is_kept(tmp_path):
    executor = BashExecutor(tmp_path / "pilot", grace=20.0)
    ready = tmp_path / "ready"
    # On TERM the payload writes 256 KiB (more than a pipe holds) before it exits: the stop must keep reading.
    script = (f"trap 'head -c 262144 /dev/zero | tr \"\\0\" y; echo; echo cleaned up; exit 0' TERM; "
              f"touch {ready}; while :; do sleep 0.05; done")
    stop = threading.Event()
    watcher = threading.Thread(target=lambda: (_wait_for_file(ready), stop.set()), daemon=True)
    watcher.start()
    result = executor.run({"_id": "t1", "input": script}, should_stop=stop.is_set)
    out = result.log("stdout")
    assert result.interrupted
    assert out.endswith(b"cleaned up\n") and out.count(b"y") == 262144, "the payload ended by itself, not by KILL"


def _wait_for_file(path: Path) -> None:
    event = threading.Event()
    while not path.exists():
        event.wait(0.02)


def test_environment_carries_the_token_and_not_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv("PICAS_PASSWORD", "secret")
    monkeypatch.setenv("PICAS_TEST_VISIBLE", "seen")
    executor = BashExecutor(tmp_path / "pilot", env={"PICAS_DATABASE": "pool"})
    script = 'echo "$0|$PICAS_TOKEN_ID|$PICAS_DATABASE|${PICAS_PASSWORD-unset}|$PICAS_TEST_VISIBLE|$PWD"'
    result = executor.run({"_id": "tok/1", "input": script})
    fields = result.log("stdout").decode().strip().split("|")
    assert fields[:5] == ["bash", "tok/1", "pool", "unset", "seen"]
    assert fields[5] == str(executor.workdir_for("tok/1"))
    # The environment is read again for every token: a change made meanwhile reaches the next payload.
    monkeypatch.setenv("PICAS_TEST_VISIBLE", "changed")
    result = executor.run({"_id": "t2", "input": "echo $PICAS_TEST_VISIBLE"})
    assert result.log("stdout") == b"changed\n"


def test_bash_is_looked_up_on_the_payloads_path(tmp_path, monkeypatch):
    executor = BashExecutor(tmp_path / "pilot")
    assert executor.run({"_id": "t1", "input": "true"}).exit_code == 0
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    result = executor.run({"_id": "t2", "input": "true"})
    assert result.exit_code == 127 and "command not found: bash" in result.error


def test_working_directories_are_fresh_and_removed(tmp_path):
    executor = BashExecutor(tmp_path / "pilot")
    workdir = executor.workdir_for("t1")
    workdir.mkdir(parents=True)
    (workdir / "left-over").write_text("from an earlier run")
    result = executor.run({"_id": "t1", "input": "ls -A; touch made-here"})
    assert result.exit_code == 0 and result.log("stdout") == b""
    assert not workdir.exists(), "the directory goes, files the payload made included"
    assert os.listdir(executor.workdir_root) == [], "small logs never touch the disk"


def test_a_log_larger_than_what_is_kept_in_memory_goes_to_a_file_and_is_read_whole(tmp_path):
    executor = BashExecutor(tmp_path / "pilot")
    size = 3 * LOG_MEMORY
    result = executor.run({"_id": "t1", "input": f"head -c {size} /dev/zero | tr '\\0' z; echo small >&2"})
    assert result.stdout_data is None and result.stdout.exists(), "the big log went to its file"
    assert result.stderr_data == b"small\n" and not result.stderr.exists(), "the small one stayed in memory"
    assert result.log("stdout") == b"z" * size and result.log("stderr") == b"small\n"
    executor.cleanup_logs(result)
    assert not result.stdout.exists()
