"""Fault tests with real processes and a real server: killed pilots, server restarts and outages.

Each ends with every token done or error exactly once (counted through the
payloads' side effects) and no result lost.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from picas.core import token as tok
from picas.defaults import DESIGN
from picas.pool.scrub import scrub_expired
from tests.helpers import client_for, overview, pilot_env, push, side_effect_counts, start_pilot, wait_for

pytestmark = pytest.mark.slow


def _lease_over(client, token_id: str) -> bool:
    return tok.lease_expired(client.get(token_id), time.time())


def _crash(pilot, payload_pgid: int | None = None) -> None:
    """What a node crash does: the pilot and its payload die at once, with no chance to clean up."""
    pilot.kill()
    pilot.wait()
    if payload_pgid:
        try:
            os.killpg(payload_pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_kill_9_mid_run_is_recovered_by_scrubbing_after_the_lease(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    pidfile, gate, finished = tmp_path / "pgid", tmp_path / "gate", tmp_path / "finished"
    payload = (f"echo $$ > {pidfile}; while [ ! -e {gate} ]; do sleep 0.1; done; "
               f"echo $PICAS_TOKEN_ID >> {finished}")
    [token_id] = push(client, [payload])
    victim = start_pilot(couch_server, db_name, "--heartbeat", "1")        # a lease of 5 s
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="payload start")
    _crash(victim, int(pidfile.read_text()))
    assert tok.state(client.get(token_id)) == "locked", "nobody gave the token back"
    assert scrub_expired(client).total == 0, "the lease has not run out yet"
    wait_for(lambda: _lease_over(client, token_id), timeout=30, what="the crashed pilot's lease to run out")
    report = scrub_expired(client)
    assert report.reset == [token_id]
    doc = client.get(token_id)
    assert tok.state(doc) == "todo" and doc["scrub_count"] == 1
    assert "lease of pilot" in doc["history"][-1]["reason"]
    gate.touch()
    healer = start_pilot(couch_server, db_name)
    out, err = healer.communicate(timeout=60)
    assert healer.returncode == 0, err
    assert side_effect_counts(finished) == {token_id: 1}
    assert tok.state(client.get(token_id)) == "done"


def test_pilots_heal_the_pool_themselves_and_batches_are_recovered(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    gate, finished, started = tmp_path / "gate", tmp_path / "finished", tmp_path / "started"
    pgids = tmp_path / "pgids"
    payload = (f"echo $$ >> {pgids}; echo $PICAS_TOKEN_ID >> {started}; while [ ! -e {gate} ]; do sleep 0.1; done; "
               f"echo $PICAS_TOKEN_ID >> {finished}")
    ids = push(client, [payload] * 5)
    victim = start_pilot(couch_server, db_name, "--heartbeat", "1", "--prefetch", "5", "--keep-workdirs")
    wait_for(lambda: started.exists(), what="first payload")
    held = [r.id for r in client.view(DESIGN, "locked")]
    assert len(held) == 5, "the batch holds all five tokens"
    [payload_pgid] = pgids.read_text().split()  # one payload runs at a time; it leads its own group
    _crash(victim, int(payload_pgid))
    wait_for(lambda: all(_lease_over(client, t) for t in ids), timeout=30, what="the batch's leases to run out")
    gate.touch()
    healer = start_pilot(couch_server, db_name, "--scrub-expired", "1")
    out, err = healer.communicate(timeout=120)
    assert healer.returncode == 0, err
    assert side_effect_counts(finished) == {t: 1 for t in ids}
    assert overview(client) == {"done": 5}
    assert all(client.get(t)["scrub_count"] == 1 for t in ids)


def test_scrubbed_too_often_goes_to_error(couch_server, db_name):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, ["true"])
    who = tok.PilotIdentity("ghost")
    for _ in range(3):
        client.save(tok.claim(client.get(token_id), who, 1, 1))
        scrub_expired(client, max_attempts=2)
    doc = client.get(token_id)
    assert tok.state(doc) == "error" and doc["scrub_count"] == 2
    assert "--max-attempts 2" in doc["error"][-1]["message"]


def test_old_client_locks_need_older_than(couch_server, db_name):
    client = client_for(couch_server, db_name)
    client.bulk_save([{"_id": "old", "type": "token", "lock": int(time.time()) - 7200, "done": 0},
                      {"_id": "recent", "type": "token", "lock": int(time.time()) - 60, "done": 0}])
    assert scrub_expired(client).total == 0
    assert scrub_expired(client, older_than=3600).reset == ["old"]
    assert tok.state(client.get("recent")) == "locked"


def _drain_with_restarts(server, db_name, tmp_path, disrupt, tokens=120, seconds=0.05):
    client = client_for(server, db_name)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"sleep {seconds}; echo $PICAS_TOKEN_ID >> {sink}"] * tokens)
    env = pilot_env(server, db_name)
    pilots = [start_pilot(server, db_name, "-q", "--heartbeat", "2", "--outage-timeout", "120", env=env)
              for _ in range(4)]
    wait_for(lambda: len(side_effect_counts(sink)) >= 20, what="progress before the fault")
    disrupt()
    assert len(side_effect_counts(sink)) < tokens, "the fault came while the pilots still had work"
    results = [p.communicate(timeout=300) for p in pilots]
    for pilot, (out, err) in zip(pilots, results):
        assert pilot.returncode == 0, err
    counts = side_effect_counts(sink)
    never = {token_id: tok.state(client.get(token_id)) for token_id in set(ids) - set(counts)}
    assert not never, f"tokens that never ran, by state: {never}"
    assert set(counts) == set(ids) and max(counts.values()) == 1, "no token ran twice"
    assert overview(client) == {"done": tokens}
    return results


def _fresh_db(server):
    import uuid
    import requests
    name = f"faults_{uuid.uuid4().hex[:8]}"
    assert requests.put(f"{server.url}/{name}", auth=server.admin, timeout=30).ok
    requests.put(f"{server.url}/{name}/_security", auth=server.admin, timeout=30,
                 json={"admins": {"names": ["admin"]}, "members": {"names": ["admin"]}})
    return name


def test_server_restart_during_a_multi_pilot_run(disk_server, tmp_path):
    db_name = _fresh_db(disk_server)
    _drain_with_restarts(disk_server, db_name, tmp_path, lambda: disk_server.server.restart(), tokens=200,
                         seconds=0.2)


def test_outage_longer_than_a_claim_then_the_pilots_resume(disk_server, tmp_path):
    db_name = _fresh_db(disk_server)

    def outage():
        disk_server.server.stop()
        time.sleep(6)
        disk_server.server.start()

    # Payloads long enough that the pool cannot drain while the server is away.
    results = _drain_with_restarts(disk_server, db_name, tmp_path, outage, tokens=200, seconds=0.2)
    assert any("server unreachable" in err for _, err in results), "the pilots said they were waiting"


def test_result_computed_during_an_outage_is_saved_when_the_server_is_back(disk_server, tmp_path):
    db_name = _fresh_db(disk_server)
    client = client_for(disk_server, db_name)
    gate, started = tmp_path / "gate", tmp_path / "started"
    [token_id] = push(client, [f"touch {started}; while [ ! -e {gate} ]; do sleep 0.1; done; echo computed"])
    pilot = start_pilot(disk_server, db_name, "--outage-timeout", "120", "--workdir", str(tmp_path / "w"))
    wait_for(started.exists, what="payload")
    disk_server.server.stop()
    gate.touch()                                     # the payload finishes while the server is down
    wait_for(lambda: list((tmp_path / "w").glob("journal-*.jsonl")), timeout=60,
             what="the result to wait in the local journal")
    disk_server.server.start()
    out, err = pilot.communicate(timeout=120)
    assert pilot.returncode == 0, err
    doc = client.get(token_id)
    assert tok.state(doc) == "done"
    assert client.get_attachment(token_id, f"logs_{token_id}.out") == b"computed\n"
    assert not list((tmp_path / "w").glob("journal-*.jsonl")), "the journal is emptied once saved"


def test_outage_beyond_the_limit_exits_with_a_clear_message_and_keeps_the_result(disk_server, tmp_path):
    db_name = _fresh_db(disk_server)
    client = client_for(disk_server, db_name)
    gate, started = tmp_path / "gate", tmp_path / "started"
    [token_id] = push(client, [f"touch {started}; while [ ! -e {gate} ]; do sleep 0.1; done; echo computed"])
    workdir = tmp_path / "w"
    pilot = start_pilot(disk_server, db_name, "--outage-timeout", "3", "--workdir", str(workdir))
    wait_for(started.exists, what="payload")
    disk_server.server.stop()
    gate.touch()
    out, err = pilot.communicate(timeout=120)
    assert pilot.returncode == 13
    assert "unreachable" in err and "journal" in err and "Traceback" not in err
    disk_server.server.start()
    # The next pilot on this host, with the same work directory, saves the journaled result first.
    second = start_pilot(disk_server, db_name, "--workdir", str(workdir))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    doc = client.get(token_id)
    assert tok.state(doc) == "done"
    assert client.get_attachment(token_id, f"logs_{token_id}.out") == b"computed\n"
