"""picas on every kind of server, and what a CouchDB cluster adds: claim locks, 202s, conflicts, several nodes.

The tests that run on all three kinds (``any_server``: pouchdb-server, a
CouchDB single node, a 3-node cluster) define what holds everywhere; the rest
run on the cluster only, for what only a cluster can do: answer 202, let two
writers both win a revision, lose a node.  Executions are counted through the
payloads' own side effects.  The fault tests with real node kills are in
``tests/pilot/test_cluster_faults.py``.
"""
from __future__ import annotations

import threading

import pytest
import requests

from picas.core import token as tok
from picas.core.claim import Claimer
from picas.core.client import CouchClient
from picas.core.locks import LOCK_TYPE, ClusterClaims, lock_id
from picas.core.replicas import current, rank, replicas_of, settle_all
from picas.server.local import free_port
from tests.helpers import client_for, overview, pilot_env, push, side_effect_counts, start_pilot, wait_for


def conflicted(client: CouchClient) -> list[str]:
    """Ids of documents that still have conflicting live leaves (tokens and locks alike)."""
    rows = client.all_docs(include_docs=True, conflicts=True).rows
    return [row.id for row in rows if row.doc and row.doc.get("_conflicts")]


def no_conflicts_left(client: CouchClient, timeout: float = 30) -> None:
    """Wait until no document shows conflicting leaves.

    ``_all_docs`` on a cluster reads one copy of each shard, which may be a
    moment behind (a loser deleted on the others, not yet on it); a conflict
    that is really left behind stays, and fails this after ``timeout``.
    """
    wait_for(lambda: conflicted(client) == [], timeout=timeout, what="no document with conflicting leaves")


def settled(client: CouchClient, doc_id: str) -> None:
    """Wait until every copy the reads reach shows no conflict (a cluster's copies meet within moments)."""
    wait_for(lambda: not client.get(doc_id, conflicts=True).get("_conflicts"), timeout=30,
             what=f"{doc_id} without conflicts")


def spread_env(server, db_name: str, index: int) -> dict:
    """A pilot's environment that names every node, starting from a different one for each pilot."""
    urls = server.urls[index % len(server.urls):] + server.urls[:index % len(server.urls)]
    return pilot_env(server, db_name, PICAS_HOST_URL=",".join(urls))


def test_pilots_on_every_kind_of_server_run_each_token_once(any_server, any_db, tmp_path):
    client = client_for(any_server, any_db)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"echo $PICAS_TOKEN_ID >> {sink}"] * 200)
    pilots = [start_pilot(any_server, any_db, "-q", "--heartbeat", "5", env=spread_env(any_server, any_db, i))
              for i in range(6)]
    for pilot in pilots:
        out, err = pilot.communicate(timeout=600)
        assert pilot.returncode == 0, err
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    wait_for(lambda: overview(client) == {"done": 200}, timeout=30, what="200 done")
    no_conflicts_left(client)


# --------------------------------------------------------------------------- settling conflicting leaves


def _leaf(doc_id: str, gen_ids: list[str], body: dict) -> dict:
    """A revision written with new_edits=false: the way two copies' writes meet."""
    return {**body, "_id": doc_id, "_rev": f"{len(gen_ids)}-{gen_ids[0]}",
            "_revisions": {"start": len(gen_ids), "ids": gen_ids}}


def test_conflicting_leaves_are_settled_by_the_tokens_history(any_server, any_db):
    client = client_for(any_server, any_db)
    base = tok.new_token("true", "t1")
    locked = tok.claim(base, tok.PilotIdentity("p1"), 100, 600)
    done = tok.finish(locked, tok.PilotIdentity("p1"), 200, 0)
    reset = tok.reset(locked, tok.PilotIdentity("scrub"), 200, "lease expired")
    again = tok.claim(reset, tok.PilotIdentity("p2"), 300, 600)
    # The result and a racing reset of the same attempt: the result wins, whatever the revision ids say.
    client.bulk_save([_leaf("t1", ["a1", "r0"], locked), _leaf("t1", ["ff", "a1", "r0"], reset),
                      _leaf("t1", ["00", "a1", "r0"], done)], new_edits=False)
    kept = current(client, "t1")
    assert tok.state(kept) == "done" and kept["_rev"].startswith("3-00")
    settled(client, "t1")
    # A later attempt outranks an earlier one, even a result; the result that gave way is noted.
    client.bulk_save([_leaf("t2", ["d", "c", "r"], done), _leaf("t2", ["e", "d2", "c", "r"], again)],
                     new_edits=False)
    kept = current(client, "t2")
    assert kept["pilot"] == "p2" and tok.state(kept) == "locked" and kept["attempts"] == 2
    assert kept["history"][-1]["event"] == "result_discarded"
    settled(client, "t2")
    assert rank(done) > rank(reset) > rank(locked) and rank(again) > rank(done)


def test_settle_all_leaves_no_conflicts_and_two_settlers_agree(any_server, any_db):
    client = client_for(any_server, any_db)
    for i in range(5):
        body = tok.new_token("true", f"c{i}")
        client.bulk_save([_leaf(f"c{i}", ["aa"], dict(body, note=1)), _leaf(f"c{i}", ["bb"], dict(body, note=2))],
                         new_edits=False)
    wait_for(lambda: len(conflicted(client)) == 5, timeout=30, what="five conflicted documents")
    other = client.copy()
    threads = [threading.Thread(target=settle_all, args=(c,)) for c in (client, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: conflicted(client) == [], timeout=30, what="no conflicts left")
    # Both deleted the same losers with the same revisions: no new conflict among the deleted leaves either.
    for i in range(5):
        leaves = client.leaves(f"c{i}")
        assert sorted(bool(leaf.get("_deleted")) for leaf in leaves) == [False, True]


# --------------------------------------------------------------------------- the cluster only


@pytest.fixture
def cluster_db(couchdb_cluster):
    from tests.servers.couchdb import create_db
    couchdb_cluster.ensure_up()
    name = f"cl_{threading.get_ident() % 100000}_{free_port()}"
    create_db(couchdb_cluster, name)
    yield name
    requests.delete(f"{couchdb_cluster.url}/{name}", auth=couchdb_cluster.admin, timeout=30)


def _node_client(server, db, node: int) -> CouchClient:
    user, password = server.admin
    return CouchClient(",".join(server.urls), db, username=user, password=password, node=node)


def test_each_attempt_is_won_by_one_pilot_through_any_node(couchdb_cluster, cluster_db):
    server = couchdb_cluster
    client = client_for(server, cluster_db)
    assert replicas_of(client).n == 3 and replicas_of(client).w == 2
    ids = push(client, ["true"] * 60)
    bodies = [client.get(t) for t in ids]
    won: dict[str, list[str]] = {}

    def racer(index: int) -> None:
        who = tok.PilotIdentity(f"racer-{index}")
        claims = ClusterClaims(_node_client(server, cluster_db, index), who, 600)
        got, _ = claims.write_claims([dict(b) for b in bodies], [])
        for body in got:
            won.setdefault(body["_id"], []).append(who.pilot_id)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(pilots) == 1 for pilots in won.values()), "no attempt was won twice"
    # Six creators through three nodes may split a lock's copies so that none commits: such a token is
    # nobody's this round, and must be left as it was, todo and unclaimed, for a later round.  (When each
    # node's own copy takes its own coordinator's write first, that holds for every token: a round may be
    # won by nobody at all.  That costs time, never a double claim; the pool-draining tests show progress.)
    for token_id in set(ids) - set(won):
        stored = current(client, token_id)
        assert tok.is_claimable(stored) and stored.get("attempts", 0) == 0 and not stored.get("pilot")
    for token_id, [pilot] in won.items():
        stored = current(client, token_id)
        assert stored["pilot"] == pilot and stored["attempts"] == 1
        # A creator answered 409 may still have stored its lock on the one copy it reached first: a losing leaf
        # that the lock's readers tolerate (they decide from the token). The winner's lock is among the leaves.
        live = [leaf["pilot"] for leaf in client.leaves(lock_id(token_id, 1), r=3) if not leaf.get("_deleted")]
        assert pilot in live
    wait_for(lambda: all(i.startswith("picas-claim:") for i in conflicted(client)), timeout=30,
             what="no token with conflicting leaves (a lock may keep a losing leaf)")


def test_a_burned_attempt_is_skipped_once_its_lease_ran_out(couchdb_cluster, cluster_db):
    client = client_for(couchdb_cluster, cluster_db)
    [fresh, burned] = push(client, ["true"] * 2)
    for token_id, lease_until in ((fresh, 4e9), (burned, 1.0)):
        client.save({"_id": lock_id(token_id, 1), "type": LOCK_TYPE, "token": token_id, "attempt": 1,
                     "pilot": "ghost", "time": 0.0, "lease_until": lease_until})
    claimer = Claimer(client, tok.PilotIdentity("heir"), window=5)
    got = claimer.claim()
    assert got is not None and got["_id"] == burned and got["attempts"] == 2
    assert client.get(lock_id(burned, 2))["pilot"] == "heir"
    assert claimer.claim_batch(1, max_rounds=3) == [], "the attempt its winner may still claim is left alone"
    assert tok.state(client.get(fresh)) == "todo"


def test_the_client_moves_on_to_the_next_node_when_one_does_not_answer(couchdb_cluster, cluster_db):
    dead = f"http://127.0.0.1:{free_port()}"
    user, password = couchdb_cluster.admin
    client = CouchClient(f"{dead},{couchdb_cluster.url}", cluster_db, username=user, password=password, node=0)
    assert client.db_info()["db_name"] == cluster_db
    assert client.url == couchdb_cluster.url and client.stats["retries"] >= 1
    cookies = CouchClient(f"{dead},{couchdb_cluster.url}", cluster_db, username=user, password=password, node=0,
                          cookie_auth=True)
    assert cookies.db_info()["db_name"] == cluster_db, "a session is opened on the node that answers"


def test_db_create_with_shards_and_copies(couchdb_cluster):
    from click.testing import CliRunner
    from picas.cli import main
    name = f"qn_{free_port()}"
    user, password = couchdb_cluster.admin
    env = {"PICAS_HOST_URL": ",".join(couchdb_cluster.urls), "PICAS_DATABASE": name, "PICAS_USERNAME": user,
           "PICAS_PASSWORD": password, "PICAS_CONFIG": "/nonexistent/picas.yml"}
    result = CliRunner().invoke(main, ["db", "create", "--q", "4", "--n", "2"], env=env)
    assert result.exit_code == 0, result.output
    info = requests.get(f"{couchdb_cluster.url}/{name}", auth=couchdb_cluster.admin, timeout=30).json()
    assert info["cluster"]["q"] == 4 and info["cluster"]["n"] == 2
    result = CliRunner().invoke(main, ["db", "info"], env=env)
    assert "4 shards x 2 copies" in result.output
    requests.delete(f"{couchdb_cluster.url}/{name}", auth=couchdb_cluster.admin, timeout=30)
