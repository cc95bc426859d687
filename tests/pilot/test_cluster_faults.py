"""Fault tests on a real 3-node CouchDB 3.4 cluster: nodes SIGKILLed while 16 pilots drain a pool.

Every pilot is given all three node URLs, each starting from another node, so
the pilots are spread over the nodes and move on when theirs dies.  The
payloads record their own token id; every token must have run exactly once,
the pool must end done, and no document (token or claim lock) may be left
with conflicting leaves.  The payloads sleep a little, so that the faults land
while the pool is far from drained.
"""
from __future__ import annotations

import time

import pytest

from picas.core import token as tok
from picas.core.locks import ClusterClaims, lock_id
from picas.core.replicas import attempt
from tests.core.test_cluster import _node_client, no_conflicts_left, spread_env
from tests.helpers import client_for, overview, push, side_effect_counts, start_pilot, wait_for

pytestmark = pytest.mark.slow

PILOTS = 16


def _drain_through(server, db_name, tmp_path, fault, tokens: int, seconds: float):
    client = client_for(server, db_name)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"sleep {seconds}; echo $PICAS_TOKEN_ID >> {sink}"] * tokens)
    pilots = [start_pilot(server, db_name, "-q", "--heartbeat", "3", "--outage-timeout", "300",
                          env=spread_env(server, db_name, i)) for i in range(PILOTS)]
    try:
        fault(lambda: len(side_effect_counts(sink)))
        done_at_fault_end = len(side_effect_counts(sink))
        outputs = [pilot.communicate(timeout=900) for pilot in pilots]
    finally:
        for pilot in pilots:
            if pilot.poll() is None:
                pilot.kill()
        server.ensure_up()
    for pilot, (out, err) in zip(pilots, outputs):
        assert pilot.returncode == 0, err
    assert done_at_fault_end < tokens, "the fault was over before the pool was drained"
    counts = side_effect_counts(sink)
    assert sorted(counts) == sorted(ids), "every token ran"
    assert [t for t, c in counts.items() if c > 1] == [], "no token ran twice"
    wait_for(lambda: overview(client) == {"done": tokens}, timeout=30, what="every token done")
    no_conflicts_left(client)
    return client, outputs


def test_a_node_killed_mid_run_and_restarted_later(couchdb_cluster, tmp_path):
    server = couchdb_cluster
    server.ensure_up()
    db = f"nodekill_{int(time.time())}"
    from tests.servers.couchdb import create_db
    create_db(server, db)

    def fault(progress) -> None:
        wait_for(lambda: progress() >= 200, timeout=300, what="progress before the kill")
        server.kill_node(1)
        before = progress()
        wait_for(lambda: progress() >= before + 200, timeout=300, what="progress with a node down")
        server.start_node(1)

    _drain_through(server, db, tmp_path, fault, tokens=2000, seconds=0.05)


def test_two_nodes_down_for_a_while_then_back(couchdb_cluster, tmp_path):
    server = couchdb_cluster
    server.ensure_up()
    db_name = f"twodown_{int(time.time())}"
    from tests.servers.couchdb import create_db
    create_db(server, db_name)

    def fault(progress) -> None:
        wait_for(lambda: progress() >= 100, timeout=300, what="progress before the kills")
        server.kill_node(1)
        server.kill_node(2)
        started = time.monotonic()
        # Every write answers 202 now: a lock proves nothing, so no claim counts; results wait on one copy.
        live = _node_client(server, db_name, 0)
        todo = [row.doc for row in live.view("Monitor", "todo", include_docs=True, limit=3).rows]
        probe = ClusterClaims(live, tok.PilotIdentity("probe"), 600)
        assert todo and probe.take_locks(todo, time.time()) == [], "no attempt is won with two copies away"
        # Each lock is answered 202 and deleted again, or 409 where a pilot caught by the kill had already
        # stored its own lock of that attempt on the live copy (its 202 is no proof either).
        assert probe.stats["locks_won"] == 0 and probe.stats["locks_lost"] == len(todo)
        for body in todo:
            leaves = live.leaves(lock_id(body["_id"], attempt(body) + 1))
            assert not [leaf for leaf in leaves if not leaf.get("_deleted") and leaf.get("pilot") == "probe"], \
                "a lock that proved nothing was deleted again"
        time.sleep(max(0.0, 8 - (time.monotonic() - started)))
        server.start_node(1)
        server.start_node(2)

    _drain_through(server, db_name, tmp_path, fault, tokens=600, seconds=0.05)
