"""Ctrl-C: SIGINT to Snakemake deletes the run's waiting tokens and stops its running jobs at the next heartbeat.

Two real pilots (``picas run --wait --heartbeat 1``, started by the test, so
that Snakemake's end does not stop them) run two of four long jobs when
Snakemake gets SIGINT.  Afterwards no todo token of the run is left, the two
running ones are marked cancelled, their pilots stop the payloads at their
next heartbeat and save no result, and the tokens of another run and of
plain picas work are untouched.
"""
from __future__ import annotations

import re
import signal
import uuid
from pathlib import Path

from picas.core import token as tok
from picas.core import views
from picas.core.states import State
from picas.support import procgroup
from tests.helpers import start_pilot, wait_for
from tests.snakemake.conftest import FAST, start_snakemake

SLOW = """
localrules: all

rule all:
    input: expand("slow/{i}.txt", i=range(4))

rule slow:
    output: "slow/{i}.txt"
    shell:
        "echo started >> started-{wildcards.i}; sleep SECONDS; "
        "echo finished >> finished-{wildcards.i}; touch {output}"
"""


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sigint_leaves_no_todo_token_of_the_run_and_stops_its_running_jobs(pool, tmp_path):
    # Pilots of a class that takes only this workflow's rule, so the foreign tokens below stay where they are.
    views.deploy(pool.client, "SlowJobs", "doc.rule == 'slow'")
    other_run = str(uuid.uuid4())
    foreign = [tok.new_token("echo other run", "foreign-todo", snakemake_run=other_run, rule="other"),
               tok.new_token("echo plain", "plain-todo"),
               tok.claim(tok.new_token("echo other", "foreign-locked", snakemake_run=other_run, rule="other"),
                         tok.PilotIdentity("someone-else"), 1e9, 1e9)]
    assert all(result.ok for result in pool.client.bulk_save(foreign))
    before = {doc["_id"]: doc["_rev"] for doc in foreign}

    seconds = f"{40 + uuid.uuid4().int % 1000 / 1000:.3f}"  # a sleep no other process on this machine runs
    flow = tmp_path / "slow"
    flow.mkdir()
    (flow / "Snakefile").write_text(SLOW.replace("SECONDS", seconds))
    pilots = start_pilot(pool.server, pool.db, "--wait", "--heartbeat", "1", "-j", "2", "--design-doc", "SlowJobs",
                         env=pool.env, start_new_session=True)
    run = start_snakemake(flow, pool.env, "--executor", "picas", "--jobs", "4", "--picas-design-doc", "SlowJobs",
                          *FAST)
    try:
        wait_for(lambda: len(list(flow.glob("started-*"))) == 2, timeout=300, what="two jobs running on the pilots")
        tokens = [doc for doc in pool.run_tokens() if doc["rule"] == "slow"]
        run_id = tokens[0]["snakemake_run"]
        assert sorted(tok.state(doc) for doc in tokens) == ["locked", "locked", "todo", "todo"]
        dispositions = _signal_masks(run.proc.pid)  # what the process does with a signal, for a failure's message
        run.proc.send_signal(signal.SIGINT)
        out = run.finish(timeout=120)
        assert run.proc.returncode != 0, f"Snakemake's signal masks: {dispositions}\n{out[-3000:]}"

        left = pool.run_tokens(run_id)
        assert [tok.state(doc) for doc in left] == [State.ERROR, State.ERROR], "todo tokens of the run are deleted"
        for doc in left:
            assert doc["cancelled"] and doc["error"][-1]["message"] == f"cancelled: Snakemake run {run_id} was " \
                                                                       f"interrupted"
        assert "cancelled run" in out and "deleted 2 waiting tokens" in out, out

        # Each pilot finds out at its next heartbeat, stops the payload, and writes nothing.
        wait_for(lambda: not _processes_with(f"sleep {seconds}"), timeout=60, what="the payloads to be stopped")
        after = {doc["_id"]: doc for doc in pool.run_tokens(run_id)}
        assert all(tok.state(doc) == State.ERROR and "done" not in [e["event"] for e in doc["history"]]
                   for doc in after.values())
        assert not list(flow.glob("finished-*")) and not (flow / "slow").exists()
        assert {doc["_id"]: doc["_rev"] for doc in pool.client.bulk_get(list(before)).values()} == before
    finally:
        run.stop()
        pilots.send_signal(signal.SIGTERM)  # picas run passes it on to its two pilots
        try:
            pilots.wait(timeout=60)
        finally:
            procgroup.terminate(pilots, grace=5)
    err = pilots.stderr.read()
    assert len(re.findall(r"^\[\d\] lost +smk-", err, re.M)) == 2, err


def _signal_masks(pid: int) -> str:
    """The SigBlk/SigIgn/SigCgt lines of a process (bit 2 of each, 0x2, is SIGINT)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return " ".join(line.strip() for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError as exc:
        return f"unknown ({exc})"
