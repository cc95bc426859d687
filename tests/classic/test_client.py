"""The classic client, documents, modifiers, helpers and iterators, in process against the real test server."""
from __future__ import annotations

import base64
import os
import signal
import threading
import time

import pytest

from picas import executers
from picas.clients import CouchDB, ResourceConflict
from picas.core import token as tok
from picas.core.client import CouchClient
from picas.documents import Document, Job, Task, User
from picas.errors import Conflict, NotFound, PicasError
from picas.iterators import EndlessViewIterator, PrioritizedViewIterator, TaskViewIterator
from picas.modifiers import BasicTokenModifier, NestedTokenModifier
from picas.pilot.jobid import add_job_id, remove_job_id
from picas.util import Timer, merge_dicts, seconds, time_elapsed
from tests.classic.conftest import deploy_views
from tests.helpers import wait_for


# ---------------------------------------------------------------------- the client
def test_save_conflict_is_a_picas_error(classic):
    doc = classic.save(Task({"_id": "t1", "input": "x"}))
    stale = Document(dict(doc.value))
    doc["note"] = "first"
    classic.save(doc)
    stale["note"] = "second"
    with pytest.raises(PicasError) as caught:
        classic.save(stale)
    assert isinstance(caught.value, Conflict)
    assert ResourceConflict is Conflict
    with pytest.raises(ResourceConflict):
        classic.save(stale)
    assert classic.get("t1")["note"] == "first"


def test_client_documents_and_views(classic, admin_client):
    tasks = [Task({"_id": f"t{i}", "input": f"echo {i}"}) for i in range(5)]
    assert classic.save_documents(tasks) == [True] * 5
    assert all(task.rev.startswith("1-") for task in tasks)
    # A new document whose id exists already fails on its own; the others are saved.
    assert classic.save_documents([Task({"_id": "t0"}), Task({"_id": "t9"})]) == [False, True]
    assert classic.doc_count() == 6

    todo = "function(doc) { if (doc.type == 'token' && doc.lock == 0 && doc.done == 0) emit(doc._id, doc._id); }"
    assert classic.add_view("todo", todo) is True
    assert classic.add_view("todo", todo) is False  # idempotent: nothing written
    assert classic.add_view("count", "function(doc) { emit(doc.type, 1); }", "_count") is True
    design = admin_client.get("_design/Monitor")
    assert set(design["views"]) == {"todo", "count"} and design["views"]["count"]["reduce"] == "_count"

    view = classic.view("todo")
    assert len(view.rows) == 6
    row = view.rows[0]
    assert row.id == row["id"] == row.key == row["value"]
    assert [r.id for r in classic.view("todo", limit=2)] == ["t0", "t1"]
    assert classic.view("count", group=True).rows[0].value == 6
    assert classic.view("todo", include_docs=True, limit=1).rows[0].doc["input"] == "echo 0"

    assert classic.get_single_from_view("todo", window_size=3).id in {"t0", "t1", "t2"}
    assert classic.is_view_nonempty("todo")
    assert not classic.is_view_nonempty("nope")
    assert {doc.id for doc in classic.get_from_view("todo")} == {t.id for t in tasks} | {"t9"}

    with pytest.raises(ValueError):
        classic.get("missing")
    with pytest.raises(NotFound):
        classic["missing"]
    stored = classic["t1"]
    assert stored.id == "t1" and stored["input"] == "echo 1" and stored.rev

    assert classic.delete_documents([classic.get("t0"), Document({"_id": "t1", "_rev": "1-bogus"})]) == [True, False]
    assert classic.delete_from_view("todo") == [True] * 5
    assert not classic.is_view_nonempty("todo")
    with pytest.raises(IndexError):
        classic.get_single_from_view("todo")

    copy = classic.copy()
    assert copy.client is not classic.client and copy.doc_count() == classic.doc_count()


def test_client_db_facade_and_security(classic, couch_server):
    db = classic.db
    assert db.name == classic.client.database
    results = db.update([{"_id": "a", "type": "token", "lock": 0, "done": 0}, {"_id": "b"}])
    assert [ok for ok, _, _ in results] == [True, True]
    assert db.update([{"_id": "a"}])[0][0] is False
    assert isinstance(db.update([{"_id": "a"}])[0][2], Conflict)
    doc = db["a"]
    doc["x"] = 1
    doc_id, rev = db.save(doc)
    assert doc_id == "a" and rev.startswith("2-") and db.get("a")["x"] == 1
    assert db.get("zzz", "dflt") == "dflt" and "a" in db and "zzz" not in db
    classic.add_view("all", "function(doc) { emit(doc._id, null); }")
    assert [row.id for row in db.view("Monitor/all")] == ["a", "b"]
    assert db.info()["doc_count"] == 3

    user, _ = couch_server.admin
    classic.set_users(members=[user, "alice"], member_roles=["pilots"])
    security = classic.client.get_security()
    assert security["members"] == {"names": [user, "alice"], "roles": ["pilots"]}
    assert security["admins"]["names"] == [user]  # left as it was


def test_client_create_and_missing_database(couch_server):
    user, password = couch_server.admin
    with pytest.raises(NotFound):
        CouchDB(url=couch_server.url, db="compat_missing_db", username=user, password=password)
    name = f"compat_created_{os.getpid()}"
    try:
        created = CouchDB(url=couch_server.url, db=name, username=user, password=password, create=True)
        assert created.doc_count() == 0
        CouchDB(url=couch_server.url, db=name, username=user, password=password, create=True)  # exists: fine
    finally:
        CouchClient(couch_server.url, name, username=user, password=password).delete_db()


# ---------------------------------------------------------------------- documents, modifiers, helpers
def test_documents(classic):
    task = Task({"input": "echo hi"})
    assert task.id.startswith("task_") and task["type"] == "token"
    assert task["lock"] == 0 and task["done"] == 0 and task["error"] == [] and task.input == "echo hi"
    with pytest.raises(AttributeError):
        task.rev
    task.output = {"a": 1}
    task.uploads = {"f": "url"}
    assert task.output == {"a": 1} and task.uploads == {"f": "url"}
    assert Task({"type": "task"})["type"] == "task"
    # The base is copied, never shared.
    Task()["error"].append("x")
    assert Task()["error"] == []

    task.put_attachment("log.txt", "text")
    task.put_attachment("data.bin", b"\x00\x01", mimetype="application/x-raw")
    assert task["_attachments"]["log.txt"]["content_type"] == "text/plain"
    assert task.get_attachment("data.bin")["data"] == b"\x00\x01"
    classic.save(task)
    stored = classic.get(task.id)
    assert "data" not in stored["_attachments"]["log.txt"]
    assert stored.get_attachment("log.txt", retrieve_from_database=classic)["data"] == b"text"
    assert base64.b64decode(stored["_attachments"]["log.txt"]["data"]) == b"text"
    stored.remove_attachment("data.bin")
    classic.save(stored)
    assert list(classic.get(task.id)["_attachments"]) == ["log.txt"]

    task = Task({"_id": "states", "exit_code": ""})
    assert task.lock() is task and task["lock"] > 0 and task["hostname"]
    task.done()
    assert task.is_done() and task["history"][-1]["event"] == "done"
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        task.error("it broke", exception=exc)
    assert task.has_error() and task["lock"] == task["done"] == 99
    (entry,) = task.get_errors()
    assert entry["message"] == "it broke" and "RuntimeError: boom" in entry["exception"]
    task.scrub()
    assert task["lock"] == task["done"] == 0 and task["scrub_count"] == 1
    assert tok.state(task.value) == "todo"

    data = {"_id": "x", "_rev": "1-a", "k": 1}
    doc = Document(data)
    assert doc.value is data and doc.id == "x" and doc.rev == "1-a" and len(doc) == 3 and "k" in doc
    doc.update({"k": 2})
    assert data["k"] == 2 and dict(doc.items())["k"] == 2
    assert Document(doc).value is data

    user = User("alice", "pw", roles=["r"])
    assert user.id == "org.couchdb.user:alice" and user["roles"] == ["r"] and user["type"] == "user"
    job = Job({"_id": "job1"}).queue("slurm", host="h")
    assert job["method"] == "slurm" and job["queue"] > 0 and not job.is_done()
    job["_rev"] = "1-x"
    job.start().finish().archive()
    assert job.id.startswith("archived-job1-") and "_rev" not in job and job.is_done()
    with pytest.raises(ValueError):
        Job({})


def test_modifiers_and_job_ids(monkeypatch):
    for var in ("DIRACJOBID", "GLITE_WMS_JOBID", "CREAM_JOBID", "PBS_JOBID", "SLURM_ARRAY_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    modifier = BasicTokenModifier()
    token = {"lock": 0, "done": 0}
    modifier.lock(token)
    assert token["lock"] > 0 and token["slurm_job_id"] == "123" and token["hostname"]
    modifier.close(token)
    assert token["done"] > 0
    modifier.unclose(token)
    assert token["done"] == 0 and "slurm_job_id" not in token
    modifier.add_output(token, {"result": 5})
    assert token["result"] == 5
    modifier.scrub(token)
    modifier.scrub(token)
    assert token["scrub_count"] == 2 and token["lock"] == 0
    modifier.set_error(token)
    assert token["lock"] == token["done"] == 99
    task = modifier.close(Task({"_id": "t"}))
    assert isinstance(task, Task) and task["done"] > 0

    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    doc: dict = {}
    add_job_id(doc)
    assert doc == {"slurm_job_id": "7_3"}
    monkeypatch.setenv("GLITE_WMS_JOBID", "not-a-url")
    add_job_id(doc)
    assert doc["wms_job_id"] is None
    remove_job_id(doc)
    assert doc == {}

    nested = NestedTokenModifier()
    record = {"tokens": {"a": {"lock": 0, "done": 0}}, "flat": {"lock": 0}}
    nested.lock(["record", "tokens", "a"], record)
    assert record["tokens"]["a"]["lock"] > 0
    nested.set_error("flat", record)
    assert record["flat"]["lock"] == 99
    assert nested.get_token(["record", "tokens", "a"], record) is record["tokens"]["a"]


def test_util_and_execute():
    timer = Timer()
    assert not time_elapsed(timer, max=10) and time_elapsed(timer, max=-1)
    assert timer.reset() >= 0 and abs(seconds() - time.time()) <= 1
    base = {"l": [1]}
    merged = merge_dicts(base, {"x": 2})
    merged["l"].append(2)
    assert base == {"l": [1]} and merged["x"] == 2

    proc, code, out, err = executers.execute(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (code, out, err) == (4, b"out\n", b"err\n") and proc.returncode == 4
    assert executers.execute("echo $((2+3))", shell=True)[2] == b"5\n"
    assert executers.running() == []


def test_execute_stops_a_payload_group_from_another_thread():
    def stopper():
        wait_for(lambda: executers.running(), timeout=10, interval=0.02)
        executers.terminate(*executers.running(), grace=2)

    thread = threading.Thread(target=stopper)
    thread.start()
    started = time.monotonic()
    # A child that leaves a grandchild behind: both must go, or communicate() would wait for the grandchild.
    _, code, _, _ = executers.execute(["sh", "-c", "sleep 30 & sleep 30"])
    thread.join()
    assert code == -signal.SIGTERM and time.monotonic() - started < 10


# ---------------------------------------------------------------------- iterators
def test_task_view_iterator_hands_out_locked_tasks(classic, admin_client):
    deploy_views(classic)
    classic.save_documents([Task({"_id": f"t{i}", "input": i}) for i in range(3)])
    iterator = TaskViewIterator(classic, "todo", design_doc="Monitor")
    got = list(iterator)
    assert sorted(task.id for task in got) == ["t0", "t1", "t2"]
    for task in got:
        stored = admin_client.get(task.id)
        assert isinstance(task, Task) and task.rev == stored["_rev"]
        assert tok.state(stored) == "locked" and stored["pilot"] == iterator.who.pilot_id
        assert stored["lease_until"] - time.time() > 3600  # nobody heartbeats a standalone iterator's tokens
    assert iterator.is_stopped()
    assert list(iterator) == []


def test_prioritized_and_endless_iterators(classic):
    deploy_views(classic)
    classic.add_view("high", "function(doc) { if (doc.type == 'token' && doc.lock == 0 && doc.done == 0 "
                             "&& doc.priority == 'high') emit(doc._id, doc._id); }")
    classic.save_documents([Task({"_id": "low1"}), Task({"_id": "high1", "priority": "high"}), Task({"_id": "low2"})])
    iterator = PrioritizedViewIterator(classic, "high", "todo")
    assert [task.id for task in iterator][0] == "high1"

    endless = EndlessViewIterator(TaskViewIterator(classic, "todo"), sleep_sec=0.2,
                                  stop_callback=time_elapsed, timer=Timer(), max=1.0)
    started = time.monotonic()
    assert list(endless) == []
    assert 0.9 < time.monotonic() - started < 5
    assert endless.is_stopped()
