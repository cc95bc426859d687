"""The example workflow end to end: real Snakemake 9, local pilots, a profile from 'picas snakemake profile'.

Checked: the outputs (recomputed here in Python), exactly one token per job
with the job's fields, the local pilots stopped at the end, a second run
submits nothing, a failing rule fails the workflow with the tail of its
stderr in Snakemake's output and is retried once with ``--retries 1``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from picas.core import token as tok
from tests.snakemake.conftest import (FAST, example_jobs, expected_summary, job_key, output, read_summary,
                                      snakemake)


def _write_profile(directory: Path, env: dict, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "picas", "snakemake", "profile", str(directory), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "password" not in (directory / "config.yaml").read_text().split("# Snakemake profile")[1].split(
        "executor:")[1]


def _watchdogs_of(pid: int) -> list[int]:
    """Local-pilot watchdogs started by the Snakemake process ``pid`` that still run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"snakemake_executor_plugin_picas.pilots" in argv and str(pid).encode() in argv:
            found.append(int(entry.name))
    return found


def test_example_runs_on_local_pilots_once_per_job_and_a_rerun_submits_nothing(pool, flow, tmp_path):
    profile = tmp_path / "profile"
    _write_profile(profile, pool.env, "--local-pilots", "3", "--jobs", "20", "--status-interval", "1")
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--profile", str(profile), *FAST], cwd=flow,
                            env=pool.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    assert read_summary(flow / "results" / "summary.tsv") == expected_summary(flow / "data")
    assert len(list((flow / "counts").glob("*.tsv"))) == len(list((flow / "top").glob("*.tsv"))) == 6
    assert (flow / "logs" / "summary.log").read_text().startswith("summarised top/")

    tokens = pool.run_tokens()
    assert len({doc["snakemake_run"] for doc in tokens}) == 1
    keys = [job_key(doc) for doc in tokens]
    assert sorted(keys) == sorted(example_jobs(flow / "data")), "exactly one token per job"
    assert all(tok.state(doc) == "done" for doc in tokens)
    assert len({doc["jobid"] for doc in tokens}) == len(tokens) == 13
    count = next(doc for doc in tokens if doc["rule"] == "count_words")
    assert (count["threads"], count["mem_mb"], count["runtime"], count["cpus_per_task"]) == (1, 100, 5, 1)
    assert count["design_doc"] == "Monitor" and count["attempt"] == 1 and count["input"].startswith(f"cd {flow} ")
    assert "-m snakemake" in count["input"] and "--target-jobs" in count["input"]
    assert [entry["event"] for entry in count["history"]] == ["locked", "done"]

    # The local pilots were stopped with the run: none of its watchdogs is left, the pilots said why they stopped.
    assert _watchdogs_of(proc.pid) == []
    pilot_logs = list((flow / ".snakemake" / "picas").glob("*/pilots.log"))
    assert len(pilot_logs) == 1 and "stopped by SIGTERM" in pilot_logs[0].read_text()

    again = snakemake(flow, pool.env, "--profile", str(profile), *FAST)
    assert again.returncode == 0, output(again)
    assert "Nothing to be done" in output(again)
    assert len(pool.run_tokens()) == 13, "a rerun with nothing to do writes no token"


FAILING = """
localrules: all

rule all:
    input: "ok.txt", "bad.txt"

rule ok:
    output: "ok.txt"
    shell: "echo fine > {output}"

rule bad:
    output: "bad.txt"
    shell: "echo attempt >> attempts.log; echo 'the tool broke: MARKER' >&2; exit 3"
"""


def test_a_failing_rule_fails_the_workflow_with_its_stderr_tail_and_is_retried_once(pool, tmp_path):
    flow = tmp_path / "failing"
    flow.mkdir()
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    (flow / "Snakefile").write_text(FAILING.replace("MARKER", marker))
    proc = snakemake(flow, pool.env, "--executor", "picas", "--jobs", "4", "--retries", "1",
                     "--picas-local-pilots", "2", *FAST)
    text = output(proc)
    assert proc.returncode != 0, text
    attempts = flow / "attempts.log"
    assert attempts.exists() and attempts.read_text().split() == ["attempt", "attempt"], f"retried once: {text}"
    assert (flow / "ok.txt").read_text() == "fine\n"
    assert not (flow / "bad.txt").exists()

    tokens = pool.run_tokens()
    bad = sorted((doc for doc in tokens if doc["rule"] == "bad"), key=lambda doc: doc["attempt"])
    assert [doc["attempt"] for doc in bad] == [1, 2], "each attempt is a token of its own"
    assert all(tok.state(doc) == "error" and doc["exit_code"] not in (0, "0") for doc in bad)
    assert [tok.state(doc) for doc in tokens if doc["rule"] == "ok"] == ["done"]

    # Snakemake's error message carries the failed token, its exit code and the tail of the job's stderr.
    assert text.count(f"the tool broke: {marker}") >= 2, text
    assert f"picas token {bad[0]['_id']} failed on " in text and "Last " in text
    for doc in bad:
        err = next((flow / ".snakemake" / "picas").glob(f"*/{doc['_id']}.err"))
        assert marker in err.read_text()
        assert str(err) in text, "the job's stderr is passed on as an aux log"


def test_the_plugin_refuses_a_password_on_the_command_line(pool, tmp_path):
    flow = tmp_path / "refused"
    flow.mkdir()
    (flow / "Snakefile").write_text("rule a:\n    output: 'a.txt'\n    shell: 'touch {output}'\n")
    env = {k: v for k, v in pool.env.items() if k != "PICAS_HOST_URL"}
    url = pool.server.url.replace("http://", "http://admin:secret@")
    proc = snakemake(flow, env, "--executor", "picas", "--jobs", "1", "--picas-url", url, *FAST)
    assert proc.returncode != 0
    assert "--picas-url holds a password" in output(proc) and not os.path.exists(flow / "a.txt")
    assert pool.run_tokens() == []
