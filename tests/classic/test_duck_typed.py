"""RunActor and the iterators on a duck-typed database: the picas 1.x algorithm through the object's methods.

These are the unit tests a user writes for their own actor, with a mock
database instead of a server (tests/classic/mockdb.py; there is nothing to
mock around it: the mock *is* the component under test's collaborator).
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from picas import executers
from picas.actors import AbstractRunActor, RunActor
from picas.documents import Task
from picas.errors import Conflict
from picas.iterators import EndlessViewIterator, PrioritizedViewIterator, TaskViewIterator
from picas.modifiers import BasicTokenModifier
from picas.util import Timer, time_elapsed
from tests.classic.mockdb import RevisionDB, require_couchdb_http
from tests.helpers import process_gone, wait_for


def tokens(*inputs: str, **fields) -> list[dict]:
    return [dict({"_id": f"t{i}", "type": "token", "lock": 0, "done": 0, "scrub_count": 0, "input": text}, **fields)
            for i, text in enumerate(inputs)]


class Actor(RunActor):
    """Runs ``self.actions[input](actor, task)``; records the hooks in order."""

    picas_grace = 1.0

    def __init__(self, db, actions, **kwargs):
        super().__init__(db, **kwargs)
        self.actions = actions
        self.calls: list = []

    def prepare_env(self):
        self.calls.append("prepare_env")

    def prepare_run(self):
        self.calls.append("prepare_run")

    def process_task(self, task):
        self.calls.append(("process", task.id))
        self.actions[task["input"]](self, task)

    def cleanup_run(self):
        self.calls.append(("cleanup_run", self.current_task.id))

    def cleanup_env(self):
        self.calls.append("cleanup_env")


def ok(actor, task):
    task["exit_code"] = 0
    BasicTokenModifier().close(task)


def fail(actor, task):
    task["exit_code"] = 2
    BasicTokenModifier().close(task)


def test_actor_runs_every_task_once_through_the_objects_methods():
    db = RevisionDB(tokens("a", "b", "c"))
    actor = Actor(db, {"a": ok, "b": ok, "c": fail})
    report = actor.run()
    assert report.processed == 3 and report.done == 2 and report.failed == 1
    assert actor.tasks_processed == 3
    processed = [call[1] for call in actor.calls if isinstance(call, tuple) and call[0] == "process"]
    assert sorted(processed) == ["t0", "t1", "t2"]
    assert actor.calls[0] == "prepare_env" and actor.calls[-1] == "cleanup_env"
    first = processed[0]
    assert actor.calls[1:5] == ["prepare_run", ("process", first), ("cleanup_run", first), "prepare_run"]
    for doc_id, state in (("t0", 0), ("t1", 0), ("t2", 2)):
        stored = db.docs[doc_id]
        assert stored["lock"] > 0 and stored["done"] > 0 and stored["exit_code"] == state
    # Each token was written twice, one after the other: locked by the iterator, then its result.
    assert [save["_id"] for save in db.saves] == [doc_id for doc_id in processed for _ in range(2)]


def test_abstract_actor_on_a_mock_and_a_custom_iterator():
    db = RevisionDB(tokens("a", "b"))

    class Plain(AbstractRunActor):
        def process_task(self, task):
            ok(self, task)

    iterator = TaskViewIterator(db, "todo")
    actor = Plain(db, iterator=iterator)
    assert actor.iterator is iterator
    actor.run()
    assert actor.tasks_processed == 2 and all(doc["done"] > 0 for doc in db.docs.values())


def test_result_that_meets_a_conflict_is_merged_not_lost():
    db = RevisionDB(tokens("edited"))

    def edited(actor, task):
        db.edit(task.id, note="a user's edit while it ran")
        task["my_result"] = 42
        task.put_attachment("out.txt", b"result")
        ok(actor, task)

    report = Actor(db, {"edited": edited}).run()
    assert report.processed == 1
    stored = db.docs["t0"]
    assert stored["my_result"] == 42 and stored["exit_code"] == 0 and stored["done"] > 0
    assert stored["note"] == "a user's edit while it ran"  # the other writer's field survives too
    assert "out.txt" in stored["_attachments"]


def test_couchdb_python_conflicts_from_a_mock_are_handled():
    couchdb_http = require_couchdb_http()
    db = RevisionDB(tokens("a", "b"), conflict=couchdb_http.ResourceConflict)
    db.stale_rows = []
    calls = {"n": 0}

    def interfere(body):
        # The first lock attempt of each token loses a race, as with two workers on one view.
        calls["n"] += 1
        if calls["n"] in (1, 4):
            db.edit(body["_id"], touched=True)

    db.before_save = interfere
    actor = Actor(db, {"a": ok, "b": ok})
    report = actor.run()
    assert report.processed == 2 and all(doc["done"] > 0 for doc in db.docs.values())


def test_a_token_locked_by_someone_else_is_not_claimed_again():
    db = RevisionDB(tokens("a", "b"))
    db.edit("t0", lock=12345)  # another worker has it; the view still lists it (its index is stale)
    db.stale_rows = ["t0"]
    task = next(iter(TaskViewIterator(db, "todo")))
    assert task.id == "t1" and task["lock"] > 0
    assert db.docs["t0"]["lock"] == 12345


def test_iterator_gives_up_after_repeated_conflicts():
    db = RevisionDB(tokens("a"))
    db.before_save = lambda body: db.edit(body["_id"], touched=True)
    with pytest.raises(EnvironmentError, match="Unable to claim"):
        next(iter(TaskViewIterator(db, "todo")))


def test_prioritized_and_endless_iterators_on_a_mock():
    db = RevisionDB(tokens("low1") + [{"_id": "h", "type": "token", "lock": 0, "done": 0, "priority": "high"}])
    got = [task.id for task in PrioritizedViewIterator(db, "high", "todo")]
    assert got == ["h", "t0"]

    empty = RevisionDB([])
    started = time.monotonic()
    endless = EndlessViewIterator(TaskViewIterator(empty, "todo"), sleep_sec=0.1, stop_callback=time_elapsed,
                                  timer=Timer(), max=0.5)
    assert list(endless) == [] and endless.is_stopped()
    assert time.monotonic() - started >= 0.5


def test_timeout_and_exception_put_the_task_in_error():
    def spin(actor, task):
        actor.subprocess = subprocess.Popen(["sleep", "60"])
        task["exit_code"] = actor.subprocess.wait()

    def boom(actor, task):
        raise RuntimeError("broken input")

    db = RevisionDB(tokens("spin", "boom"))
    actor = Actor(db, {"spin": spin, "boom": boom})
    report = actor.run(max_token_time=1)
    assert report.processed == 2 and report.failed == 2
    spun, broken = db.docs["t0"], db.docs["t1"]
    assert spun["timed_out"] is True and spun["lock"] == spun["done"] == 99
    assert "exceeded timeout limit of 1 seconds" in spun["error"][-1]["message"]
    assert actor.subprocess.poll() is not None
    assert broken["lock"] == 99 and "RuntimeError" in broken["error"][0]["message"]
    assert "Traceback" in broken["error"][0]["exception"]


def test_failed_task_is_scrubbed_in_the_same_save_while_it_may_retry():
    db = RevisionDB(tokens("fail"))
    Actor(db, {"fail": fail}).run(max_scrub=2)
    stored = db.docs["t0"]
    assert stored["scrub_count"] == 2 and stored["exit_code"] == 2 and stored["lock"] > 0 and stored["done"] > 0
    # claim, result (scrubbed), claim, result (scrubbed), claim, result (error for good)
    assert len(db.saves) == 6


def test_limits_and_stop_function():
    db = RevisionDB(tokens("a", "b", "c"))
    assert Actor(db, {k: ok for k in "abc"}).run(max_tasks=1).processed == 1
    seen = []

    def stop(actor, marker):
        seen.append((marker, actor.current_task.id))
        return True

    actor = Actor(db, {k: ok for k in "abc"})
    report = actor.run(stop_function=stop, actor=actor, marker="m")
    assert report.processed == 1 and seen == [("m", actor.current_task.id)]
    assert sorted(doc["lock"] > 0 for doc in db.docs.values()) == [False, True, True]


def test_sigterm_in_a_classic_loop_only_sets_a_flag_and_puts_the_task_back():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")
    pid_seen = []

    def stop_me(actor, task):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler only notes it; the watchdog stops the payload
        proc, code, out, err = executers.execute(["sh", "-c", "echo $$; exec sleep 60"])
        pid_seen.append(int(out))
        task["exit_code"] = code

    db = RevisionDB(tokens("stop", "never"))
    previous = signal.getsignal(signal.SIGTERM)
    actor = Actor(db, {"stop": stop_me, "never": ok}, token_reset_values=[0, 0])
    report = actor.run()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert report.processed == 0 and report.released == 1 and "SIGTERM" in report.reason
    assert process_gone(pid_seen[0])
    assert db.docs["t0"]["lock"] == 0 and db.docs["t0"]["done"] == 0 and db.docs["t0"]["scrub_count"] == 0
    assert db.docs["t1"]["lock"] == 0  # the next token was never taken
    assert actor.calls[-1] == "cleanup_env"


def test_handler_outside_run_stops_at_once_as_in_1x():
    db = RevisionDB(tokens("a"))
    actor = Actor(db, {}, token_reset_values=[3, 4])
    task = next(iter(actor.iterator))
    actor.current_task = task
    actor.subprocess = subprocess.Popen(["sleep", "60"])
    with pytest.raises(SystemExit) as stopped:
        actor.handler(signal.SIGTERM, None)
    assert stopped.value.code == 0
    assert actor.subprocess.poll() is not None
    assert db.docs["t0"]["lock"] == 3 and db.docs["t0"]["done"] == 4
    assert actor.calls == ["cleanup_env"]


def test_setup_handler_installs_the_actors_handler():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")
    actor = Actor(RevisionDB([]), {})
    previous = signal.getsignal(signal.SIGINT)
    try:
        actor.setup_handler()
        assert signal.getsignal(signal.SIGTERM) == actor.handler
        assert signal.getsignal(signal.SIGINT) == actor.handler
    finally:
        actor._picas_restore_handlers()
    assert signal.getsignal(signal.SIGINT) is previous


def test_unresolvable_conflict_on_the_result_is_logged_and_the_actor_goes_on(caplog):
    db = RevisionDB(tokens("a", "b"))
    results = []

    def always_conflict(body):
        if body.get("exit_code") == 0 and body["_id"] == "t0":
            results.append(body["_id"])
            db.edit(body["_id"], touched=len(results))

    db.before_save = always_conflict
    actor = Actor(db, {"a": ok, "b": ok})
    with caplog.at_level("INFO", logger="picas"):
        report = actor.run()
    assert report.processed == 2 and actor.tasks_processed == 2
    assert len(results) == 4  # the first save and three merged retries
    assert "could not be saved after 4 conflicts" in caplog.text
    assert db.docs["t1"]["done"] > 0


def test_picas_conflict_is_one_of_the_handled_types():
    from picas.classic.conflicts import conflict_types

    assert Conflict in conflict_types()
    assert all(issubclass(kind, BaseException) for kind in conflict_types())


def test_task_objects_and_plain_dicts_from_a_custom_iterator():
    db = RevisionDB(tokens("a"))

    class ListIterator:
        def __init__(self, items):
            self.items = list(items)

        def __iter__(self):
            return self

        def __next__(self):
            if not self.items:
                raise StopIteration
            return self.items.pop(0)

    body = db.get("t0").value
    body["lock"] = 1
    actor = Actor(db, {"a": ok}, iterator=ListIterator([body]))
    assert actor.run().processed == 1
    assert db.docs["t0"]["exit_code"] == 0


def test_second_run_finds_new_work():
    db = RevisionDB(tokens("a"))
    actor = Actor(db, {"a": ok, "b": ok})
    assert actor.run().processed == 1
    db.docs["t9"] = {"_id": "t9", "_rev": "1-a", "type": "token", "lock": 0, "done": 0, "input": "b"}
    assert actor.run().processed == 1
    wait_for(lambda: db.docs["t9"]["done"] > 0, timeout=1)
    assert Task(db.docs["t9"]).is_done()
