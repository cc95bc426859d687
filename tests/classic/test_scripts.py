"""Scripts in the style of picas 1.x's examples, run unchanged as real processes against the real test server.

Views made with ``add_view``, tokens pushed with ``Task`` and
``save_documents``, a ``RunActor`` subclass that runs a shell script with
``execute`` and attaches its logs, plain iterator loops: each runs as a
``python3`` process, and the test then checks the database.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from picas.core import token as tok
from picas.core.client import CouchClient
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
