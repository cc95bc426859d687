"""The classic picas API (clients, documents, modifiers, iterators, actors) on top of the new core.

The headline tests run scripts written in the style of picas 1.x's examples
(views made with ``add_view``, tokens pushed with ``Task`` and
``save_documents``, a ``RunActor`` subclass that runs a shell script with
``execute`` and attaches its logs) as real ``python3`` processes against the
real test server, and then check the database.
"""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from picas import executers
from picas.core import token as tok
from picas.actors import RunActor
from picas.clients import CouchDB, ResourceConflict
from picas.core.client import CouchClient
from picas.documents import Document, Job, Task, User
from picas.errors import Conflict, NotFound, PicasError
from picas.iterators import EndlessViewIterator, PrioritizedViewIterator, TaskViewIterator
from picas.pilot.jobid import add_job_id, remove_job_id
from picas.modifiers import BasicTokenModifier, NestedTokenModifier
from picas.util import Timer, merge_dicts, seconds, time_elapsed
from tests.helpers import process_gone, wait_for

# ---------------------------------------------------------------------- classic user scripts
# Views as classic createViews.py made them, through the client's add_view.
CREATE_VIEWS = '''
import picasconfig
from picas.clients import CouchDB


def getViewCode(s):
    generalViewCode = """
function(doc) {{
   if(doc.type == "token") {{
    if({0}) {{
      emit(doc._id, doc._id);
    }}
  }}
}}
"""
    return generalViewCode.format(s)


def createViews(db, design_doc_name="Monitor"):
    todoCondition = "doc.lock == 0 && doc.done == 0"
    db.add_view("todo", getViewCode(todoCondition), design_doc=design_doc_name)
    lockedCondition = "doc.lock > 0 && doc.done == 0"
    db.add_view("locked", getViewCode(lockedCondition), design_doc=design_doc_name)
    doneCondition = "doc.lock > 0 && doc.done > 0 && parseInt(doc.exit_code) == 0"
    db.add_view("done", getViewCode(doneCondition), design_doc=design_doc_name)
    errorCondition = "doc.lock > 0 && doc.done > 0 && parseInt(doc.exit_code) != 0"
    db.add_view("error", getViewCode(errorCondition), design_doc=design_doc_name)
    overviewMapCode = f"""
function(doc) {{
   if(doc.type == "token") {{
       if ({todoCondition}) {{ emit('todo', 1); }}
       if ({lockedCondition}) {{ emit('locked', 1); }}
       if ({doneCondition}) {{ emit('done', 1); }}
       if ({errorCondition}) {{ emit('error', 1); }}
   }}
}}
"""
    overviewReduceCode = """
function (key, values, rereduce) {
   return sum(values);
}
"""
    db.add_view("overview_total", overviewMapCode, reduce_fun=overviewReduceCode, design_doc=design_doc_name)


if __name__ == "__main__":
    db = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                 username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
    createViews(db)
'''

# Tokens as classic pushTokens.py made them: Task objects, saved with save_documents.
PUSH_TOKENS = '''
import json
import sys
import picasconfig
from picas.clients import CouchDB
from picas.documents import Task


def createTokens(fields):
    tokens = []
    i = db.doc_count()
    for arg in fields:
        for line in fields[arg]:
            token = {
                "_id": "token_" + str(i),
                "type": "token",
                arg: line,
            }
            tokens.append(Task(token))
            i = i + 1
    return tokens


if __name__ == "__main__":
    db = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                 username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
    with open(sys.argv[1]) as f:
        fields = {"input": f.read().splitlines()}
    tokens = createTokens(fields)
    extra = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    for token in tokens:
        token.update(extra.get(token["input"], {}))
    print(db.save_documents(tokens))
'''

# The classic local example: a RunActor subclass running process_task.sh per token.
LOCAL_EXAMPLE = '''
import argparse
import logging
import time
import picasconfig

from picas.actors import RunActor
from picas.clients import CouchDB
from picas.executers import execute
from picas.iterators import TaskViewIterator
from picas.iterators import EndlessViewIterator
from picas.modifiers import BasicTokenModifier
from picas.util import Timer


log = logging.getLogger(__name__)


def arg_parser():
    parser = argparse.ArgumentParser(description="Arguments used in the different classes in the example.")
    parser.add_argument("--design_doc", default="Monitor", type=str,
                        help="Select the designdoc used by the actor class")
    parser.add_argument("--view", default="todo", type=str, help="Select the view used by the actor class")
    parser.add_argument("--endless", action="store_true", help="Keep waiting for work")
    return parser


class ExampleActor(RunActor):
    def __init__(self, db, modifier, view="todo", endless=False, **viewargs):
        super(ExampleActor, self).__init__(db, view=view, **viewargs)
        self.timer = Timer()
        if endless:
            self.iterator = EndlessViewIterator(self.iterator)
        self.modifier = modifier
        self.client = db

    def process_task(self, token):
        # Print token information
        print("-----------------------")
        print("Working on token: " + token['_id'])
        for key, value in token.doc.items():
            print(key, value)
        print("-----------------------", flush=True)

        # Start running the main job, the logging is done internally and saved below
        command = ["/usr/bin/time", "./process_task.sh", token['input'], token['_id']]
        out = execute(command)

        logsout = f"logs_{token['_id']}.out"
        logserr = f"logs_{token['_id']}.err"

        # write the logs
        with open(logsout, 'w') as f:
            f.write(out[2].decode('utf-8'))
        with open(logserr, 'w') as f:
            f.write(out[3].decode('utf-8'))

        self.subprocess = out[0]

        # Get the job exit code and done in the token
        token['exit_code'] = out[1]
        token = self.modifier.close(token)

        # Attach logs in token
        curdate = time.strftime("%d/%m/%Y_%H:%M:%S_")
        try:
            log_handle = open(logsout, 'rb')
            token.put_attachment(logsout, log_handle.read())

            log_handle = open(logserr, 'rb')
            token.put_attachment(logserr, log_handle.read())
        except:
            pass


def main():
    args = arg_parser().parse_args()
    client = CouchDB(
        url=picasconfig.PICAS_HOST_URL,
        db=picasconfig.PICAS_DATABASE,
        username=picasconfig.PICAS_USERNAME,
        password=picasconfig.PICAS_PASSWORD)
    print("Connected to the database %s sucessfully. Now starting work..." % (picasconfig.PICAS_DATABASE), flush=True)
    modifier = BasicTokenModifier()
    actor = ExampleActor(client, modifier, view=args.view, endless=args.endless, design_doc=args.design_doc)
    actor.run(max_token_time=5, max_total_time=120, max_tasks=20, max_scrub=2)


if __name__ == '__main__':
    main()
'''

PROCESS_TASK_SH = '''#!/bin/bash
# usage: process_task.sh <input> <token id>
echo "Running token $2 with input: $1"
eval "$1"
'''

# A plain iterator loop, as scripts that drive picas without an actor do.
ITERATOR_LOOP = '''
import picasconfig
from picas.clients import CouchDB
from picas.executers import execute
from picas.iterators import TaskViewIterator
from picas.modifiers import BasicTokenModifier

client = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                 username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
modifier = BasicTokenModifier()
for task in TaskViewIterator(client, "todo"):
    proc, code, out, err = execute(["sh", "-c", 'echo "$1" >> claims.log', "sh", task.id])
    task["exit_code"] = code
    modifier.close(task)
    client.save(task)
'''

ACTOR_LOOP = '''
import picasconfig
from picas.actors import RunActor
from picas.clients import CouchDB
from picas.executers import execute
from picas.modifiers import BasicTokenModifier


class AppendActor(RunActor):
    def process_task(self, task):
        proc, code, out, err = execute(["sh", "-c", 'echo "$1" >> claims.log', "sh", task.id])
        task["exit_code"] = code
        BasicTokenModifier().close(task)


client = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                 username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
AppendActor(client).run()
'''


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def classic(couch_server, db_name) -> CouchDB:
    user, password = couch_server.admin
    return CouchDB(url=couch_server.url, db=db_name, username=user, password=password)


@pytest.fixture
def admin_client(couch_server, db_name) -> CouchClient:
    user, password = couch_server.admin
    return CouchClient(couch_server.url, db_name, username=user, password=password)


@pytest.fixture
def workdir(tmp_path: Path, couch_server, db_name) -> Path:
    """A directory holding the classic scripts and a picasconfig.py for the test database."""
    user, password = couch_server.admin
    (tmp_path / "picasconfig.py").write_text(
        f"PICAS_HOST_URL = {couch_server.url!r}\nPICAS_DATABASE = {db_name!r}\n"
        f"PICAS_USERNAME = {user!r}\nPICAS_PASSWORD = {password!r}\n")
    time_cmd = '"/usr/bin/time", ' if os.path.exists("/usr/bin/time") else ""
    scripts = {"createViews.py": CREATE_VIEWS, "pushTokens.py": PUSH_TOKENS,
               "local_example.py": LOCAL_EXAMPLE.replace('"/usr/bin/time", ', time_cmd),
               "iterator_loop.py": ITERATOR_LOOP, "actor_loop.py": ACTOR_LOOP}
    for name, text in scripts.items():
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip())
    script = tmp_path / "process_task.sh"
    script.write_text(PROCESS_TASK_SH)
    script.chmod(0o755)
    return tmp_path


def run_script(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def push_inputs(workdir: Path, inputs: list[str], extra: dict | None = None) -> None:
    import json
    (workdir / "inputs.txt").write_text("\n".join(inputs) + "\n")
    run_script(workdir, "createViews.py")
    run_script(workdir, "pushTokens.py", "inputs.txt", json.dumps(extra or {}))


def by_input(client: CouchClient) -> dict[str, dict]:
    rows = client.all_docs(include_docs=True).rows
    return {row.doc["input"]: row.doc for row in rows if row.doc.get("type") == "token"}


# ---------------------------------------------------------------------- end to end: classic scripts
def test_classic_local_example_runs_unchanged(workdir, admin_client):
    inputs = ["echo hello $((6*7))", "echo second", "echo third", "echo failing; exit 3", "sleep 30"]
    # The slow token has used up its scrubs, so it times out once and stays in error.
    push_inputs(workdir, inputs, extra={"sleep 30": {"scrub_count": 2}})

    started = time.monotonic()
    result = run_script(workdir, "local_example.py")
    elapsed = time.monotonic() - started
    assert "Working on token" in result.stdout
    assert elapsed < 60, result.stderr

    docs = by_input(admin_client)
    for text, expected in (("echo hello $((6*7))", "hello 42"), ("echo second", "second")):
        doc = docs[text]
        assert tok.state(doc) == "done", doc
        assert doc["exit_code"] == 0 and doc["done"] > 0 and doc["lock"] > 0
        assert doc["type"] == "token"
        name = f"logs_{doc['_id']}.out"
        assert name in doc["_attachments"] and f"logs_{doc['_id']}.err" in doc["_attachments"]
        assert expected in admin_client.get_attachment(doc["_id"], name).decode()
        assert "lease_until" not in doc  # finished tokens hold no lease
        assert doc["history"][-1]["event"] == "done"

    failing = docs["echo failing; exit 3"]
    assert tok.state(failing) == "error"
    assert failing["exit_code"] == 3
    assert failing["scrub_count"] == 2  # failed, scrubbed twice (max_scrub=2), failed for good the third time
    assert [e["event"] for e in failing["history"]].count("reset") == 2
    assert failing["attempts"] == 3

    slow = docs["sleep 30"]
    assert tok.state(slow) == "error"
    assert slow["timed_out"] is True
    assert any("exceeded timeout limit of 5 seconds" in e.get("message", "") for e in slow["error"])
    assert slow["scrub_count"] == 2

    overview = {row.key: row.value for row in admin_client.view("Monitor", "overview_total", group=True)}
    assert overview == {"done": 3, "error": 2}


def test_sigterm_mid_token_puts_it_back_to_todo(workdir, admin_client):
    push_inputs(workdir, ["echo $$ > payload.pid; exec sleep 60"])
    proc = subprocess.Popen([sys.executable, "local_example.py"], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        pid_file = workdir / "payload.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
        payload_pid = int(pid_file.read_text())
        (token,) = by_input(admin_client).values()
        assert tok.state(token) == "locked"

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    wait_for(lambda: process_gone(payload_pid), timeout=5)

    (token,) = by_input(admin_client).values()
    assert tok.state(token) == "todo"
    assert token["lock"] == 0 and token["done"] == 0
    assert token["scrub_count"] == 0  # being stopped is not the token's fault
    assert "pilot" not in token and "lease_until" not in token
    assert token["history"][-1]["event"] == "released"


#: Runs local_example.py --endless unchanged, with an hour between polls of an empty pool and INFO logging,
#: so that the test sees the iterator start waiting and a stop that does not cut the wait short hangs.
_ENDLESS_HOUR = """
import logging, runpy, sys
from picas.classic import iterators
logging.basicConfig(level=logging.INFO)
plain_init = iterators.EndlessViewIterator.__init__
def hour_init(self, view_iterator, sleep_sec=10, *args, **kwargs):
    plain_init(self, view_iterator, 3600, *args, **kwargs)
iterators.EndlessViewIterator.__init__ = hour_init
sys.argv = ["local_example.py", "--endless"]
runpy.run_path("local_example.py", run_name="__main__")
"""


def test_sigterm_while_endless_iterator_waits(workdir, admin_client):
    push_inputs(workdir, ["echo only"])
    proc = subprocess.Popen([sys.executable, "-c", _ENDLESS_HOUR], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: tok.state(next(iter(by_input(admin_client).values()))) == "done", timeout=120,
                 what="the token done")
        wait_for(lambda: any("waiting for work" in line for line in lines), timeout=120,
                 what="the iterator to wait for work")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # the wait between polls is an hour: only a stop that cuts it short ends here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert proc.returncode == 0, "".join(lines)


@pytest.mark.parametrize("script", ["iterator_loop.py", "actor_loop.py"])
def test_four_processes_claim_each_token_exactly_once(workdir, admin_client, script):
    push_inputs(workdir, [f"echo {i}" for i in range(100)])
    procs = [subprocess.Popen([sys.executable, script], cwd=workdir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    claims = (workdir / "claims.log").read_text().split()
    ids = {doc["_id"] for doc in by_input(admin_client).values()}
    assert len(claims) == 100, f"{len(claims)} runs for 100 tokens"
    assert set(claims) == ids
    assert all(tok.state(doc) == "done" for doc in by_input(admin_client).values())


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
def _views(classic: CouchDB) -> None:
    import picas.core.views
    picas.core.views.deploy(classic.client)


def test_task_view_iterator_hands_out_locked_tasks(classic, admin_client):
    _views(classic)
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
    _views(classic)
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
    _views(classic)
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
