"""A classic RunActor on a real client, in process: exceptions, timeouts, merges, heartbeats, lost locks, signals."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from picas import executers
from picas.actors import RunActor
from picas.clients import CouchDB
from picas.core import token as tok
from picas.core.client import CouchClient
from picas.documents import Task
from picas.errors import Conflict
from picas.modifiers import BasicTokenModifier
from tests.classic.conftest import deploy_views


# ---------------------------------------------------------------------- the actor, in process
class Recorder(RunActor):
    """An actor whose process_task runs a callable given per token input."""

    picas_heartbeat = 0.2

    def __init__(self, db, actions, **kwargs):
        super().__init__(db, **kwargs)
        self.actions = actions
        self.log = []

    def prepare_env(self):
        self.log.append("prepare_env")

    def process_task(self, task):
        self.log.append(("process", task.id))
        self.actions[task["input"]](self, task)

    def cleanup_run(self):
        stored = self.db.client.get(self.current_task.id)
        self.log.append(("cleanup", self.current_task.id, tok.state(stored)))

    def cleanup_env(self):
        self.log.append("cleanup_env")


def _ok(actor, task):
    task["exit_code"] = 0
    BasicTokenModifier().close(task)


def _push(classic: CouchDB, *inputs: str) -> None:
    deploy_views(classic)
    assert all(classic.save_documents([Task({"_id": f"tok_{i}", "input": text}) for i, text in enumerate(inputs)]))


def test_actor_records_exceptions_and_goes_on(classic, admin_client):
    def boom(actor, task):
        task["partial"] = True
        raise KeyError("missing thing")

    _push(classic, "boom", "ok")
    actor = Recorder(classic, {"boom": boom, "ok": _ok})
    report = actor.run()
    assert report.processed == 2 and actor.tasks_processed == 2
    failed, done = admin_client.get("tok_0"), admin_client.get("tok_1")
    assert tok.state(failed) == "error" and failed["lock"] == failed["done"] == 99 and failed["partial"] is True
    assert "KeyError" in failed["error"][0]["message"] and "Traceback" in failed["error"][0]["exception"]
    assert tok.state(done) == "done"
    # cleanup_run runs after each task is saved; the env hooks once around everything.
    assert actor.log[0] == "prepare_env" and actor.log[-1] == "cleanup_env"
    assert ("cleanup", "tok_0", "error") in actor.log and ("cleanup", "tok_1", "done") in actor.log
    assert actor.current_task is None


def test_actor_timeout_interrupts_python_and_subprocesses(classic, admin_client):
    def spin(actor, task):
        while True:
            pass

    def popen(actor, task):
        actor.subprocess = subprocess.Popen(["sleep", "60"])
        task["exit_code"] = actor.subprocess.wait()
        BasicTokenModifier().close(task)

    def stray_child(actor, task):
        subprocess.run(["sleep", "60"])  # not registered anywhere: found as a child of this process
        _ok(actor, task)

    _push(classic, "spin", "popen", "stray")
    actor = Recorder(classic, {"spin": spin, "popen": popen, "stray": stray_child})
    actor.picas_grace = 1.0
    started = time.monotonic()
    report = actor.run(max_token_time=1)
    assert time.monotonic() - started < 30
    assert report.processed == 3
    for token_id in ("tok_0", "tok_1", "tok_2"):
        doc = admin_client.get(token_id)
        assert tok.state(doc) == "error", doc
        assert doc["timed_out"] is True
        assert "exceeded timeout limit of 1 seconds" in doc["error"][-1]["message"]
    assert admin_client.get("tok_1")["exit_code"] == -signal.SIGTERM
    assert admin_client.get("tok_2")["exit_code"] == -1  # it claimed success after being stopped: not believed
    assert actor.subprocess.poll() is not None


def test_actor_merges_a_users_edit_made_while_the_task_ran(classic, admin_client):
    def annotated(actor, task):
        stored = admin_client.get(task.id)
        stored["annotation"] = "added by a user while the task ran"
        admin_client.save(stored)
        task["my_result"] = 7
        task.put_attachment("result.txt", "42")
        _ok(actor, task)

    _push(classic, "annotated")
    actor = Recorder(classic, {"annotated": annotated})
    actor.picas_heartbeat = 600  # no heartbeat comes in between to pick the edit up
    report = actor.run()
    assert report.conflicts == 0
    doc = admin_client.get("tok_0")
    assert tok.state(doc) == "done" and doc["exit_code"] == 0 and doc["my_result"] == 7
    assert doc["annotation"] == "added by a user while the task ran"
    assert admin_client.get_attachment("tok_0", "result.txt") == b"42"


def test_actor_result_survives_a_conflict_on_save(classic, admin_client, monkeypatch):
    real_get_or_none = CouchClient.get_or_none
    edits = []

    def get_or_none_then_edit(self, doc_id):
        body = real_get_or_none(self, doc_id)
        if not edits and body is not None and doc_id == "tok_0":
            # A user's edit lands between the actor's last read and its write: the write gets a 409.
            edited = dict(body, annotation="late edit")
            admin_client.save(edited)
            edits.append(edited["_rev"])
        return body

    monkeypatch.setattr(CouchClient, "get_or_none", get_or_none_then_edit)
    _push(classic, "annotated")

    def attach(actor, task):
        task.put_attachment("r.txt", "42")
        _ok(actor, task)

    actor = Recorder(classic, {"annotated": attach})
    actor.picas_heartbeat = 600
    report = actor.run()
    assert edits and report.conflicts == 1
    doc = admin_client.get("tok_0")
    assert tok.state(doc) == "done" and doc["exit_code"] == 0 and doc["annotation"] == "late edit"
    assert admin_client.get_attachment("tok_0", "r.txt") == b"42"


def test_actor_keeps_heartbeats_and_custom_fields(classic, admin_client):
    def slow(actor, task):
        heartbeat = admin_client.get(task.id)["heartbeat"]
        time.sleep(1.0)
        assert admin_client.get(task.id)["heartbeat"] >= heartbeat  # renewed meanwhile
        task["my_result"] = {"value": 1}
        _ok(actor, task)

    _push(classic, "slow")
    actor = Recorder(classic, {"slow": slow})
    actor.run()
    doc = admin_client.get("tok_0")
    assert tok.state(doc) == "done" and doc["my_result"] == {"value": 1}
    assert int(doc["_rev"].split("-")[0]) > 3  # claim, heartbeats, result


def test_actor_task_may_save_itself_between_heartbeats(classic, admin_client):
    def progress(actor, task):
        for step in range(3):
            task["progress"] = step
            actor.db.save(task)  # classic scripts record progress; heartbeats move the revision meanwhile
            time.sleep(0.5)
        _ok(actor, task)

    _push(classic, "progress")
    actor = Recorder(classic, {"progress": progress})
    report = actor.run()
    assert report.processed == 1
    doc = admin_client.get("tok_0")
    assert tok.state(doc) == "done" and doc["progress"] == 2 and doc["error"] == []


def test_actor_drops_a_task_whose_lock_was_taken(classic, admin_client):
    def stolen(actor, task):
        thief = tok.PilotIdentity(pilot_id="thief")
        for _ in range(20):  # the actor's heartbeats (every 0.2 s) may move the revision on between get and save
            current = admin_client.get(task.id)
            try:
                admin_client.save(tok.claim(tok.reset(current, None, time.time(), "operator"), thief, time.time(),
                                            600))
                break
            except Conflict:
                continue
        executers.execute(["sleep", "30"])  # stopped once the heartbeat finds the token taken
        _ok(actor, task)

    _push(classic, "stolen")
    actor = Recorder(classic, {"stolen": stolen})
    started = time.monotonic()
    report = actor.run()
    assert time.monotonic() - started < 20
    assert report.lost == 1 and report.processed == 0
    doc = admin_client.get("tok_0")
    assert tok.state(doc) == "locked" and doc["pilot"] == "thief"


def test_actor_limits_and_stop_function(classic, admin_client):
    _push(classic, "a", "b", "c", "d")
    actions = {key: _ok for key in "abcd"}
    assert Recorder(classic, actions).run(max_tasks=2).processed == 2
    calls = []

    def stop_after_one(marker):
        calls.append(marker)
        return True

    report = Recorder(classic, actions).run(stop_function=stop_after_one, marker="m")
    assert report.processed == 1 and calls == ["m"]
    overview = {tok.state(row.doc) for row in admin_client.all_docs(include_docs=True).rows
                if not row.id.startswith("_design")}
    assert overview == {"done", "todo"}


def test_actor_stop_signal_in_process(classic, admin_client):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")

    def stop_me(actor, task):
        os.kill(os.getpid(), signal.SIGTERM)  # only sets a flag; the watchdog stops the payload
        executers.execute(["sleep", "30"])
        _ok(actor, task)

    _push(classic, "stop")
    previous = signal.getsignal(signal.SIGTERM)
    actor = Recorder(classic, {"stop": stop_me}, token_reset_values=[0, 0])
    actor.picas_grace = 1.0
    report = actor.run()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert report.processed == 0 and report.released == 1 and "SIGTERM" in report.reason
    doc = admin_client.get("tok_0")
    assert tok.state(doc) == "todo" and doc["scrub_count"] == 0
    assert actor.log[-1] == "cleanup_env"
