"""picas.core.merge: after a 409, the pilot's changes win and everything else stays as stored."""
from picas.core import token as tok
from picas.core.merge import merge, merge_history, merge_result

WHO = tok.PilotIdentity(pilot_id="pilot-a", hostname="node1")


def test_a_result_keeps_the_current_body_and_wins_its_own_fields():
    locked = tok.claim(tok.new_token("true", "t"), WHO, 10, 60)
    current = {**tok.heartbeat(locked, 30, 60), "_rev": "3-x", "note": "added by a user"}
    mine = tok.finish(locked, WHO, 40, 0, output={"answer": 42})
    merged = merge_result(current, mine)
    assert merged["_rev"] == "3-x" and merged["note"] == "added by a user"
    assert tok.state(merged) == "done" and merged["output"] == {"answer": 42}
    assert "lease_until" not in merged, "finishing ended the lease"
    assert merged["heartbeat"] == 30 and merged["pilot"] == "pilot-a"
    assert [e["event"] for e in merged["history"]] == ["locked", "done"]


def test_with_a_base_every_change_the_pilot_made_wins_removals_included():
    locked = tok.claim(tok.new_token("true", "t"), WHO, 10, 60)
    mine = {**tok.finish(locked, WHO, 40, 0), "custom": "set by a classic process_task"}
    mine = tok.reset(mine, WHO, 41, "retry")                # the retry removed the pilot and lease
    current = {**tok.heartbeat(locked, 30, 60), "_rev": "3-x", "note": "user"}
    merged = merge_result(current, mine, base=locked)
    assert merged["custom"] == "set by a classic process_task" and merged["note"] == "user"
    assert tok.state(merged) == "todo" and merged["scrub_count"] == 1
    assert not {"pilot", "heartbeat", "lease_until"} & set(merged)


def test_without_a_base_a_retry_still_drops_the_holder_fields():
    locked = tok.claim(tok.new_token("true", "t"), WHO, 10, 60)
    current = {**tok.heartbeat(locked, 30, 60), "_rev": "2-x"}
    mine = tok.reset(tok.finish(locked, WHO, 40, 3), WHO, 41, "retry")
    merged = merge_result(current, mine)
    assert tok.state(merged) == "todo"
    assert not {"pilot", "heartbeat", "lease_until"} & set(merged), "a todo token has no holder"


def test_fields_the_task_did_not_touch_keep_their_current_value():
    base = {"_id": "t", "_rev": "1-a", "lock": 5, "input": "x", "gone": 1, "heartbeat": 1, "note": "old"}
    mine = {"_id": "t", "_rev": "1-a", "lock": 5, "input": "x", "done": 9, "heartbeat": 1, "note": "old"}
    current = {"_id": "t", "_rev": "3-c", "lock": 5, "input": "x", "gone": 1, "heartbeat": 7, "note": "new"}
    assert merge(current, mine, base) == {"_id": "t", "_rev": "3-c", "lock": 5, "input": "x", "done": 9,
                                          "heartbeat": 7, "note": "new"}


def test_without_a_base_nothing_is_removed_but_the_body_wins_and_the_lease_stays_current():
    current = {"_id": "t", "_rev": "4-d", "lock": 5, "pilot": "p", "heartbeat": 9, "lease_until": 99, "user": "u"}
    mine = {"_id": "t", "_rev": "2-b", "lock": 5, "pilot": "p", "heartbeat": 1, "lease_until": 60, "progress": 50}
    merged = merge(current, mine)
    assert merged == {"_id": "t", "_rev": "4-d", "lock": 5, "pilot": "p", "heartbeat": 9, "lease_until": 99,
                      "user": "u", "progress": 50}


def test_attachments_added_inline_are_kept_next_to_the_current_ones():
    current = {"_id": "t", "_rev": "2-b", "_attachments": {"old.txt": {"stub": True, "length": 3}}}
    mine = {"_id": "t", "_rev": "1-a", "_attachments": {"old.txt": {"stub": True, "length": 1},
                                                        "logs.out": {"content_type": "text/plain", "data": "aGk="}}}
    merged = merge(current, mine)
    assert merged["_attachments"] == {"old.txt": {"stub": True, "length": 3},
                                      "logs.out": {"content_type": "text/plain", "data": "aGk="}}


def test_the_inputs_are_not_changed():
    current = {"_id": "t", "_rev": "2", "output": {"a": 1}, "history": [{"event": "locked", "time": 1}]}
    mine = {"_id": "t", "_rev": "1", "output": {"b": 2}, "history": [{"event": "done", "time": 2}]}
    snapshot = repr((current, mine))
    merged = merge(current, mine)
    merged["output"]["b"] = 3
    merged["history"].append("x")
    assert repr((current, mine)) == snapshot


def test_history_each_entry_once_in_time_order_cut_to_the_limit():
    ours = [{"event": "locked", "time": 1}, {"event": "done", "time": 5}]
    theirs = [{"event": "locked", "time": 1}, {"event": "note", "time": 3}]
    assert [e["time"] for e in merge_history(ours, theirs)] == [1, 3, 5]
    many = [{"event": "x", "time": t} for t in range(100)]
    assert merge_history(many, None)[0]["time"] == 100 - tok.HISTORY_LIMIT
