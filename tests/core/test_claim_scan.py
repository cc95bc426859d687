"""Claiming from ``_all_docs`` while the pool is rich; from a lap of it or from the view once it is not.

The scan is only allowed where it selects exactly what the ``todo`` view
selects; these tests pin that down on a real server: which design documents
allow it, that it never takes a body the view would not list, that a
drained pool is finished by a lap when the view's index lags far behind and
through the view when it does not, and that tokens that came back to todo
are still found.
"""
import random

from picas.core import token as tok
from picas.core.claim import ClaimStats, Claimer
from picas.core.scanner import (CLASSIC_TODO_MAP, LAP_MAX_ROWS, Scanner, lap_is_cheaper, scan_claimable,
                                scannable, seq_number)
from picas.core.views import deploy, design_document
from tests.helpers import client_for, push

WHO = tok.PilotIdentity("scan-test")


def _drain(claimer: Claimer, client, limit: int = 1000) -> list[str]:
    """Claim until the claimer says there is no work; finish each token at once."""
    taken = []
    for _ in range(limit):
        body = claimer.claim()
        if body is None:
            return taken
        taken.append(body["_id"])
        client.save(tok.finish(body, WHO, 2, 0))
    raise AssertionError("the claimer never ran out of work")


def test_only_the_standard_todo_view_may_be_scanned():
    assert scannable(design_document())
    classic = {"language": "javascript", "views": {"todo": {"map": CLASSIC_TODO_MAP.replace(" ", "\n  ")}}}
    assert scannable(classic), "whitespace does not matter"
    assert not scannable(design_document("doc.cores == 4")), "an extra condition must be obeyed"
    custom = {"views": {"todo": {"map": 'function(doc){ if(doc.lock == 0) emit(doc._id, 1); }'}}}
    assert not scannable(custom)
    assert not scannable(None) and not scannable({"views": {}})


def test_the_scan_takes_only_bodies_the_view_lists():
    assert scan_claimable({"type": "token", "lock": 0, "done": 0})
    assert not scan_claimable({"lock": 0, "done": 0}), "the view wants type == 'token'"
    assert not scan_claimable({"type": "token", "lock": 5, "done": 0})
    assert not scan_claimable({"type": "token", "lock": 0, "done": 0, "_deleted": True})


def test_update_sequences_of_both_servers_are_counted():
    assert seq_number(1234) == 1234, "pouchdb-server"
    assert seq_number("1234-g1AAAABXeJzLYWBgYMpgTmHgz8tPSTV0MDQy") == 1234, "CouchDB 2 and later"
    assert seq_number("opaque") is None and seq_number(None) is None and seq_number(True) is None


def test_a_lap_is_chosen_only_when_it_costs_the_server_less_than_the_index_update():
    assert lap_is_cheaper(1000, backlog=1300, crowd=16), "a small pool, an index far behind"
    assert not lap_is_cheaper(1000, backlog=10, crowd=16), "an index nearly up to date is cheaper to ask"
    assert not lap_is_cheaper(1000, backlog=1300, crowd=1000), "a crowd of pilots would each pay for a lap"
    assert not lap_is_cheaper(1000, backlog=None, crowd=1), "an unknown backlog leaves it to the view"
    assert not lap_is_cheaper(LAP_MAX_ROWS + 1, backlog=10 * LAP_MAX_ROWS, crowd=1), "too large to read whole"


def test_a_rich_pool_is_claimed_through_all_docs_and_drained_by_a_lap(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 60)
    # Not tokens to the view: a claimer must never take them, even though they sit among the tokens.
    client.save({"_id": "token_zz_untyped", "lock": 0, "done": 0})
    client.save({"_id": "token_zz_other", "type": "result", "lock": 0, "done": 0})
    client.view("Monitor", "todo", limit=1)  # the index is built now, and lags behind every claim from here
    claimer = Claimer(client, WHO, window=5)
    taken = _drain(claimer, client)
    assert sorted(taken) == sorted(ids), "every token once, nothing else"
    assert claimer.stats.scan_queries > 0, "the rich pool was read through _all_docs"
    assert claimer.scan is True and claimer.stats.laps >= 1, "the last tokens were found by reading _all_docs whole"
    assert claimer.stats.view_queries <= 3, "the view was asked for its key shape and its backlog only"
    assert client.get("token_zz_untyped")["lock"] == 0 and client.get("token_zz_other")["lock"] == 0
    assert client.get("_local/picas-drained-Monitor")["seq"], "the empty lap left its proof"


def test_a_proof_left_by_an_empty_lap_spares_the_next_pilot_its_lap(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 200)
    client.view("Monitor", "todo", limit=1)
    assert len(_drain(Claimer(client, WHO, window=2), client)) == 200
    comeback = ids[7]
    client.save(tok.reset(client.get(comeback), WHO, 3, "test"))  # changed after the proof: must be found
    other = tok.PilotIdentity("scan-test-2")
    claimer = Claimer(client, other, window=2)
    body = claimer.claim()
    assert body is not None and body["_id"] == comeback
    client.save(tok.finish(body, other, 4, 0))
    before = claimer.stats.scanned_rows
    assert claimer.claim() is None
    assert claimer.stats.scanned_rows - before < 200, "the proof and the changes since it decided, not a lap"


def test_a_proof_serves_the_next_pilots_while_the_changes_since_are_a_fraction_of_the_database(couch_server,
                                                                                               db_name):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 1200)
    finished = [tok.finish(tok.claim(client.get(i), WHO, 1, 600), WHO, 2, 0) for i in ids]
    assert all(r.ok for r in client.bulk_save(finished))
    first = Claimer(client, WHO, window=4)
    assert first.claim() is None and first.stats.laps, "an empty lap proved the pool drained"
    # The other pilots' last results came in after that proof: more changes than MARKER_CHANGES, which
    # used to send every later pilot round the whole database, but few next to its 1,200 rows.
    later = [{**doc, "note": "saved after the proof"} for doc in (client.get(i) for i in ids[:250])]
    assert all(r.ok for r in client.bulk_save(later))
    other = Claimer(client, tok.PilotIdentity("scan-test-2"), window=4)
    assert other.claim() is None
    assert other.stats.scanned_rows < 600, "the proof and the 250 changes since decided, not a lap of 1,200 rows"


def _scanner(client) -> Scanner:
    return Scanner(client, WHO, ClaimStats(), design="Monitor", view="todo", window=4,
                   random_key=lambda: None, rng=random.Random(1))


def test_a_lap_goes_round_the_whole_database_from_where_it_starts(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = sorted(push(client, ["true"] * 30))
    for token_id in ids[:3] + ids[4:]:
        client.save(tok.finish(tok.claim(client.get(token_id), WHO, 1, 60), WHO, 2, 0))
    scanner = _scanner(client)
    scanner._start_lap(ids[20])  # the one todo token lies behind the start: only the wrap reaches it
    bodies = None
    while bodies is None:
        bodies = scanner._lap_step()
    assert [b["_id"] for b in bodies] == [ids[3]]


def test_an_empty_lap_goes_round_once_and_leaves_its_proof(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = sorted(push(client, ["true"] * 30))
    for token_id in ids:
        client.save(tok.finish(tok.claim(client.get(token_id), WHO, 1, 60), WHO, 2, 0))
    seq = client.db_info()["update_seq"]
    scanner = _scanner(client)
    scanner._start_lap(ids[11])
    bodies = None
    while bodies is None:
        bodies = scanner._lap_step()
    assert bodies == []
    total = client.all_docs(limit=0).total_rows
    # The circle restarts after its first window, once it has read the sequence: that window is read twice.
    assert total <= scanner.stats.scanned_rows <= total + scanner.window, "the whole circle, once"
    assert client.get("_local/picas-drained-Monitor")["seq"] == seq


def test_a_drained_pool_whose_index_is_up_to_date_is_finished_through_the_view(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 60)
    for n, token_id in enumerate(ids[:48]):  # worked by many pilots: each of them would pay for a lap
        other = tok.PilotIdentity(f"other-pilot-{n}")
        client.save(tok.finish(tok.claim(client.get(token_id), other, 1, 60), other, 2, 0))
    client.view("Monitor", "todo", limit=1)  # brings the index up to date: asking it is now cheap
    claimer = Claimer(client, WHO, window=5)
    taken = _drain(claimer, client)
    assert sorted(taken) == sorted(ids[48:])
    assert claimer.scan is False and claimer.stats.laps == 0, "the poor pool was handed over to the view"


def test_tokens_back_in_todo_are_found_after_the_pool_drained(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 30)
    claimer = Claimer(client, WHO, window=5)
    assert len(_drain(claimer, client)) == 30
    for token_id in ids[:3]:
        client.save(tok.reset(client.get(token_id), WHO, 3, "test"))
    assert sorted(_drain(claimer, client)) == sorted(ids[:3])


def test_a_design_with_a_condition_is_read_through_its_view(couch_server, db_name):
    client = client_for(couch_server, db_name)
    deploy(client, "Big", condition="doc.cores == 4")
    big = [f"token_big{i}" for i in range(5)]
    small = [f"token_small{i}" for i in range(5)]
    client.bulk_save([tok.new_token("true", t, cores=4) for t in big]
                     + [tok.new_token("true", t, cores=1) for t in small])
    claimer = Claimer(client, WHO, design="Big", window=5)
    taken = _drain(claimer, client)
    assert sorted(taken) == sorted(big)
    assert claimer.scan is False and claimer.stats.scan_queries == 0
    assert all(client.get(t)["lock"] == 0 for t in small)


def test_only_pouchdb_server_is_scanned_apache_couchdb_is_read_through_the_view(any_server, any_db, server_kind):
    client = client_for(any_server, any_db)
    ids = push(client, ["true"] * 20)
    claimer = Claimer(client, WHO, window=5)
    taken = _drain(claimer, client)
    assert sorted(taken) == sorted(ids)
    if server_kind == "pouchdb":
        assert claimer.scan is True and claimer.stats.scan_queries > 0, "pouchdb-server's slow indexer is spared"
    else:
        # CouchDB indexes fast and serves _all_docs with bodies slowly; on a cluster a lap would prove nothing.
        assert claimer.scan is False and claimer.stats.scan_queries == 0 and claimer.stats.laps == 0
