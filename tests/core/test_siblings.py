"""Siblings: the claimers of one process's slots never race each other for a token (real pouchdb-server)."""
from __future__ import annotations

import sys
import threading
import time

from picas.core import token as tok
from picas.core.claim import Claimer
from picas.core.siblings import Siblings
from tests.helpers import client_for, push, side_effect_counts, wait_for


def test_a_token_in_flight_is_taken_by_one_sibling_only():
    siblings = Siblings()
    body = {"_id": "t1", "_rev": "1-a"}
    mine, dropped = siblings.take([body, {"_id": "t2", "_rev": "1-b"}])
    assert [b["_id"] for b in mine] == ["t1", "t2"] and dropped == []
    assert siblings.take([dict(body)]) == ([], [body]), "a sibling is writing a claim for t1 right now"
    siblings.release([body])  # lost: t1 may be claimable again at that revision (a cluster's burned attempt)
    assert siblings.take([dict(body)])[0] == [body]


def test_a_revision_a_sibling_won_is_never_written_again_and_memory_is_bounded():
    siblings = Siblings(remembered=3)
    bodies = [{"_id": f"t{i}", "_rev": "1-x"} for i in range(5)]
    mine, _ = siblings.take(bodies)
    siblings.release(mine, won=mine)
    assert len(siblings) == 3, "only the most recent won revisions are kept"
    assert siblings.take([bodies[4]]) == ([], [bodies[4]])
    assert siblings.take([{"_id": "t4", "_rev": "3-y"}])[0], "a newer revision of the token is a new candidate"
    assert siblings.take([bodies[0]])[0] == [bodies[0]], "forgotten: the server's revision check still decides"


def test_memo_makes_a_shared_thing_once():
    siblings = Siblings()
    made = []
    first = siblings.memo("keys", lambda: made.append(1) or object())
    assert siblings.memo("keys", lambda: made.append(1) or object()) is first and made == [1]


def test_a_stale_candidate_won_by_a_sibling_costs_no_request(couch_server, db_name):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 3)
    todo = {token_id: client.get(token_id) for token_id in ids}
    siblings = Siblings()
    first = Claimer(client.copy(), tok.PilotIdentity("slot-0"), siblings=siblings, scan=False)
    second = Claimer(client.copy(), tok.PilotIdentity("slot-1"), siblings=siblings, scan=False)
    won = first.claim()
    assert won is not None
    # A window a sibling read just before that claim still holds the token at its todo revision.
    siblings.candidates.appendleft(todo[won["_id"]])
    requests = second.client.stats["requests"]
    other = second.claim()
    assert other is not None and other["_id"] != won["_id"]
    assert second.stats.sibling_skips == 1 and second.stats.conflicts == 0
    assert second.client.stats["requests"] - requests == 1, "the stale candidate was dropped without a write"


def test_claimers_sharing_siblings_take_every_token_once_without_a_lost_race(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 60)
    siblings = Siblings()
    claimers = [Claimer(client.copy(), tok.PilotIdentity(f"slot-{i}"), siblings=siblings, window=10)
                for i in range(6)]
    sink = tmp_path / "claimed"
    lock = threading.Lock()

    def drain(claimer: Claimer) -> None:
        while True:
            doc = claimer.claim()
            if doc is None:
                return
            with lock, open(sink, "a") as handle:
                handle.write(doc["_id"] + "\n")

    threads = [threading.Thread(target=drain, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert sum(c.stats.conflicts for c in claimers) == 0, "siblings never wrote a claim a sibling had won"


def test_a_siblings_proof_that_no_work_is_left_counts_only_if_it_began_after_the_slot_asked(couch_server, db_name):
    client = client_for(couch_server, db_name)
    siblings = Siblings()
    claimer = Claimer(client.copy(), tok.PilotIdentity("slot-0"), siblings=siblings, scan=False)
    claimer.replicas  # noqa: B018 - learned before counting requests
    siblings.none_left_since = time.monotonic()  # a look that began before this slot asks proves nothing for it
    requests = claimer.client.stats["requests"]
    assert claimer.claim() is None and claimer.client.stats["requests"] > requests

    answers: list = []
    with siblings.refilling:  # a sibling is looking for work; the slot asks meanwhile, then waits for it
        asker = threading.Thread(target=lambda: answers.append(claimer.claim()))
        asker.start()
        wait_for(lambda: _waiting_in(asker, "_refill_shared"), what="the slot to wait for its sibling's look")
        requests = claimer.client.stats["requests"]
        siblings.none_left_since = time.monotonic()  # the sibling's look began after the slot asked: none left
    asker.join(timeout=30)
    assert answers == [None]
    assert claimer.client.stats["requests"] == requests, "the sibling's look answered for this slot"


def _waiting_in(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is inside ``function`` now (it blocks there on the siblings' lock)."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False
