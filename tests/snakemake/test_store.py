"""A run's tokens on the real server (pouchdb-server): bulk submit, the run view, failures, cancel, design documents.

No Snakemake here: :class:`RunStore` is what the executor calls, with the
bodies :mod:`snakemake_executor_plugin_picas.jobs` makes.
"""
from __future__ import annotations

import time
import uuid

from picas.core import token as tok
from picas.core import views
from picas.core.states import State
from snakemake_executor_plugin_picas import jobs, runview
from snakemake_executor_plugin_picas.store import RunStore
from tests.helpers import client_for


def _bodies(run_id: str, count: int, rule: str = "r") -> list[dict]:
    return [jobs.token_body(jobs.JobSpec(rule=rule, jobid=i, attempt=1, threads=1), run_id, "Monitor", f"echo {i}")
            for i in range(count)]


def _store(couch_server, db_name) -> RunStore:
    store = RunStore(client_for(couch_server, db_name), str(uuid.uuid4()))
    store.prepare()
    return store


def test_states_answer_for_the_whole_run_in_one_request(couch_server, db_name):
    store = _store(couch_server, db_name)
    other = RunStore(store.client, str(uuid.uuid4()))
    assert store.submit(_bodies(store.run_id, 30)) == {}
    assert other.submit(_bodies(other.run_id, 5)) == {}
    duplicate = jobs.token_id(store.run_id, 0, 1)
    assert store.submit(_bodies(store.run_id, 1)) == {duplicate: "a token with this id exists already"}
    ids = [jobs.token_id(store.run_id, i, 1) for i in range(30)]
    # A pilot finishes one, fails one, holds one; a scrub puts one back to todo.
    now = time.time()
    who = tok.PilotIdentity("p1")
    docs = store.client.bulk_get(ids[:4])
    changed = [tok.finish(tok.claim(docs[ids[0]], who, now, 60), who, now, 0),
               tok.finish(tok.claim(docs[ids[1]], who, now, 60), who, now, 2),
               tok.claim(docs[ids[2]], who, now, 60),
               tok.reset(tok.claim(docs[ids[3]], who, now, 60), None, now, "scrubbed")]
    assert all(result.ok for result in store.client.bulk_save(changed))

    before = store.client.stats["requests"]
    states = store.states(ids)
    assert store.client.stats["requests"] - before == 1 and store.rereads == 0
    assert len(states) == 30, "only this run's tokens"
    assert [states[token_id] for token_id in ids[:4]] == ["done", "error", "locked", "todo"]
    assert [runview.outcome(states[token_id]) for token_id in ids[:4]] == [
        runview.Outcome.SUCCESS, runview.Outcome.FAILED, runview.Outcome.RUNNING, runview.Outcome.RUNNING]

    # A token the view does not list is read directly, in one more request; one that is gone stays absent.
    missing = jobs.token_id(store.run_id, 99, 1)
    assert missing not in store.states(ids + [missing]) and store.rereads == 1


def test_a_failure_carries_the_error_host_and_logs(couch_server, db_name):
    store = _store(couch_server, db_name)
    store.submit(_bodies(store.run_id, 1))
    token_id = jobs.token_id(store.run_id, 0, 1)
    who = tok.PilotIdentity("p1", hostname="node7")
    doc = tok.claim(store.client.get(token_id), who, time.time(), 60)
    doc = tok.finish(doc, who, time.time(), 3, failed_stage="stage_in")
    doc["error"] = [{"message": "stage-in failed for in.txt: gone"}]
    doc["hostname"] = "node7"
    store.client.save(doc)
    err = "\n".join(f"line {n}" for n in range(100)).encode()
    rev = store.client.put_attachment(token_id, doc["_rev"], f"logs_{token_id}.err", err, "text/plain")
    store.client.put_attachment(token_id, rev, f"logs_{token_id}.out", b"out\n", "text/plain")

    failure = store.failure(token_id)
    assert (failure.exit_code, failure.host, failure.stage) == (3, "node7", "stage_in")
    assert failure.stderr == err and failure.stdout == b"out\n"
    summary = failure.summary(lines=5)
    assert summary.splitlines()[0] == (f"picas token {token_id} failed in stage-in on node7 (exit code 3): "
                                       f"stage-in failed for in.txt: gone")
    assert summary.splitlines()[1:] == ["Last 5 lines of its stderr:", "line 95", "line 96", "line 97", "line 98",
                                        "line 99"]
    assert "gone from the database" in store.failure("smk-nothing-1-1").message


def test_cancel_deletes_todo_marks_locked_and_touches_nothing_else(couch_server, db_name):
    store = _store(couch_server, db_name)
    other = RunStore(store.client, str(uuid.uuid4()))
    store.submit(_bodies(store.run_id, 6))
    other.submit(_bodies(other.run_id, 3))
    store.client.bulk_save([tok.new_token("echo plain", "plain")])
    ids = [jobs.token_id(store.run_id, i, 1) for i in range(6)]
    now = time.time()
    who = tok.PilotIdentity("p1")
    docs = store.client.bulk_get(ids[:3])
    held = [tok.claim(docs[ids[0]], who, now, 60), tok.claim(docs[ids[1]], who, now, 60),
            tok.finish(tok.claim(docs[ids[2]], who, now, 60), who, now, 0)]
    assert all(result.ok for result in store.client.bulk_save(held))
    others = {row.id: row.doc["_rev"] for row in store.client.all_docs(include_docs=True).rows
              if not row.id.startswith("_design/") and row.id not in ids}
    assert len(others) == 4

    report = store.cancel("cancelled: test")
    assert (report.deleted, report.marked, report.left) == (3, 2, [])
    left = {doc["_id"]: doc for doc in store.client.bulk_get(ids).values()}
    assert sorted(left) == ids[:3], "the todo tokens are gone"
    for token_id in ids[:2]:
        assert tok.state(left[token_id]) is State.ERROR and left[token_id]["cancelled"]
        assert left[token_id]["error"][-1]["message"] == "cancelled: test"
        assert not tok.owned_by(left[token_id], "p1"), "its pilot's next heartbeat finds it lost"
    assert tok.state(left[ids[2]]) is State.DONE and "cancelled" not in left[ids[2]]
    assert {token_id: doc["_rev"] for token_id, doc in store.client.bulk_get(list(others)).items()} == others
    assert store.cancel("again").deleted == 0


def test_a_pilot_design_is_created_only_when_missing(couch_server, db_name):
    store = _store(couch_server, db_name)
    client = store.client
    client.delete(client.get("_design/Monitor"))
    store.ensure_pilot_design("Monitor", "Monitor")
    assert "picas_condition" not in client.get("_design/Monitor"), "the run's design takes any token"
    store.ensure_pilot_design("BigMem", "Monitor")
    assert client.get("_design/BigMem")["picas_condition"] == 'doc.design_doc == "BigMem"'
    views.deploy(client, "Gpu", "doc.gpu == true")
    store.ensure_pilot_design("Gpu", "Monitor")
    assert client.get("_design/Gpu")["picas_condition"] == "doc.gpu == true", "an operator's condition stays"
