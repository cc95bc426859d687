"""Reading a pool for the report, against the real pouchdb-server: pages, filters, the changes feed, records."""
from __future__ import annotations

import base64
import time

from picas.core import token as tok
from picas.pilot import record
from picas.pool import push as pushing
from picas.report.collect import Mirror, fetch_log_tails, read_pool, slim
from picas.report.dashboard import Dashboard
from tests.helpers import client_for

WHO = tok.PilotIdentity("pilot-x", hostname="nodeX")


def test_push_stamps_each_token_with_its_creation_time(couch_server, db_name):
    client = client_for(couch_server, db_name)
    before = int(time.time())
    report = pushing.push(client, [{"input": "true"}, {"input": "false", "_id": "mine", "created_at": 5}])
    assert report.created == 2
    tokens = {row.id: row.doc for row in client.all_docs(include_docs=True).rows if not row.id.startswith("_")}
    assert tokens["mine"]["created_at"] == 5  # a value the input brings is kept
    [generated] = [doc for name, doc in tokens.items() if name != "mine"]
    assert before <= generated["created_at"] <= time.time()


def test_read_pool_in_pages_with_progress_and_slim_bodies(couch_server, db_name):
    client = client_for(couch_server, db_name)
    pushing.push(client, [{"input": f"echo {i}", "big": "x" * 1000} for i in range(25)])
    start = record.start_record(WHO, time.time(), design="Monitor", view="todo", lease_seconds=60)
    assert record.write_start(client, start)["_rev"]
    client.save({"_id": "picas-pilot-jobs", "type": "pilot_jobs", "jobs": []})
    client.save({"_id": "notes", "type": "memo"})
    calls = []
    pool = read_pool(client, page_size=7, progress=lambda n, total: calls.append((n, total)))
    assert len(pool.tokens) == 25 and [p["pilot"] for p in pool.pilots] == ["pilot-x"]
    assert all("input" not in doc and "big" not in doc and doc["created_at"] for doc in pool.tokens)
    reads = [n for n, _ in calls]
    assert reads == sorted(reads) and reads[-1] == 29 and len(calls) == 5  # 25 tokens, 3 others, the design
    assert calls[-1][1] == 29
    assert pool.update_seq is not None


def test_read_pool_of_one_design_document_or_view(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = [doc["_id"] for doc in pushing.make_tokens([{"input": "true"}] * 6)]
    client.bulk_save(pushing.make_tokens([{"input": "true", "_id": i} for i in ids]))
    body = tok.claim(client.get(ids[0]), WHO, time.time(), 60)
    client.save(tok.finish(body, WHO, time.time(), 1))
    client.save(record.start_record(WHO, time.time(), design="Monitor", view="todo", lease_seconds=60))
    other = tok.PilotIdentity("pilot-y")
    client.save(record.start_record(other, time.time(), design="Other", view="todo", lease_seconds=60))
    everything = read_pool(client, design="Monitor", page_size=4)
    assert sorted(d["_id"] for d in everything.tokens) == sorted(ids)
    assert [p["pilot"] for p in everything.pilots] == ["pilot-x"]
    errors = read_pool(client, design="Monitor", view="error")
    assert [d["_id"] for d in errors.tokens] == [ids[0]] and errors.pilots == []


def test_mirror_follows_the_changes_feed(couch_server, db_name):
    client = client_for(couch_server, db_name, deploy=False)
    pushing.push(client, [{"input": "true", "_id": f"m{i}"} for i in range(5)])
    mirror = Mirror(client, page_size=2)
    assert mirror.refresh() is True and len(mirror.tokens) == 5
    assert mirror.refresh() is False
    client.save(tok.claim(client.get("m1"), WHO, time.time(), 60))
    client.delete(client.get("m2"))
    assert mirror.refresh() is True
    assert tok.state(mirror.tokens["m1"]) == "locked" and "m2" not in mirror.tokens
    assert len(mirror.pool().tokens) == 4


def test_log_tails_of_failed_tokens(couch_server, db_name):
    client = client_for(couch_server, db_name, deploy=False)
    body = tok.claim(tok.new_token("x", "f1"), WHO, time.time(), 60)
    logs = {"logs_f1.err": {"content_type": "text/plain",
                            "data": base64.b64encode(b"".join(b"line %d\n" % i for i in range(30))).decode()},
            "logs_f1.out": {"content_type": "text/plain", "data": base64.b64encode(b"out\n").decode()}}
    client.save({**tok.finish(body, WHO, time.time(), 2), "_attachments": logs})
    client.save(tok.finish(tok.claim(tok.new_token("x", "f2"), WHO, time.time(), 60), WHO, time.time(), 2))
    pool = read_pool(client)
    tails = fetch_log_tails(client, pool.tokens, ["f1", "f2"], lines=3)
    assert tails == {"f1": "line 27\nline 28\nline 29"}


def test_pilot_records_start_and_end(couch_server, db_name):
    client = client_for(couch_server, db_name, deploy=False)
    recorder = record.Recorder(client, WHO, design="Monitor", view="todo", lease_seconds=60)
    recorder.start(1000.0)
    stored = client.get(record.record_id("pilot-x"))
    assert (stored["type"], stored["started"], stored["host"]) == ("pilot", 1000.0, "nodeX") and "ended" not in stored

    class Report:
        processed, done, failed, retried, released, lost = 3, 2, 1, 0, 0, 0

    recorder.end(1100.0, "reached --max-time 100 s", Report())
    stored = client.get(record.record_id("pilot-x"))
    assert (stored["ended"], stored["end"], stored["counts"]["done"]) == (1100.0, "walltime", 2)
    # An unreachable server never breaks the pilot: the record is simply not written.
    gone = client_for(couch_server, "no_such_database_here", deploy=False)
    lost = record.Recorder(gone, WHO, design="Monitor", view="todo", lease_seconds=60)
    lost.start(1.0)
    lost.end(2.0, "no more work")
    assert lost.record is None


def test_dashboard_data_is_made_again_only_when_the_pool_changed(couch_server, db_name):
    client = client_for(couch_server, db_name)
    pushing.push(client, [{"input": "true"}] * 3)
    clock = [1000.0]
    board = Dashboard(client, interval=5, clock=lambda: clock[0])
    first = board.data()
    assert first["counts"]["todo"] == 3
    pushing.push(client, [{"input": "true"}])
    assert board.data() is first  # within the interval: the same data
    clock[0] += 6
    second = board.data()
    assert second["counts"]["todo"] == 4
    clock[0] += 6
    assert board.data() is second  # nothing changed: nothing is made again
    view = Dashboard(client, design="Monitor", view="todo", interval=0, clock=lambda: clock[0])
    assert view.data()["counts"]["todo"] == 4


def test_slim_keeps_what_the_report_reads():
    doc = tok.finish(tok.claim(tok.new_token("x" * 5000, "s", created_at=7), WHO, 10, 60), WHO, 20, 1,
                     output={"big": "y" * 5000})
    doc["error"] = [{"message": "m" * 1000}]
    small = slim(doc)
    assert small["created_at"] == 7 and small["history"][0]["event"] == "locked"
    assert "input" not in small and "output" not in small and len(small["error"][0]["message"]) < 400
