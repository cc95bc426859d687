"""Token state functions: pure, so tested without a server."""
import pytest

from picas.core import token as tok

WHO = tok.PilotIdentity(pilot_id="pilot-a", hostname="node1")
OTHER = tok.PilotIdentity(pilot_id="pilot-b", hostname="node2")


@pytest.mark.parametrize("fields, expected", [
    ({"lock": 0, "done": 0}, "todo"),
    ({"lock": 5, "done": 0}, "locked"),
    ({"lock": 5, "done": 6, "exit_code": 0}, "done"),
    ({"lock": 5, "done": 6, "exit_code": "0"}, "done"),
    ({"lock": 5, "done": 6, "exit_code": 2}, "error"),
    ({"lock": 5, "done": 6, "exit_code": ""}, "error"),      # parseInt('') is NaN: the classic error view
    ({"lock": 99, "done": 99, "exit_code": ""}, "error"),    # classic Task.error()
    ({"lock": 5, "done": 6, "exit_code": "12abc"}, "error"),
])
def test_state_matches_the_classic_views(fields, expected):
    assert tok.state({"type": "token", **fields}) == expected


def test_parse_exit_code_is_javascript_parseint():
    assert tok.parse_exit_code("0") == 0
    assert tok.parse_exit_code(" 7 ") == 7
    assert tok.parse_exit_code("3x") == 3
    assert tok.parse_exit_code("") is None
    assert tok.parse_exit_code(None) is None


def test_claim_of_a_classic_token_adds_owner_lease_and_history():
    classic = {"_id": "t1", "_rev": "1-a", "type": "token", "lock": 0, "done": 0, "input": "echo"}
    locked = tok.claim(classic, WHO, now=1000, lease_seconds=300)
    assert classic["lock"] == 0 and "history" not in classic, "claim must not change its argument"
    assert tok.state(locked) == "locked"
    assert locked["pilot"] == "pilot-a" and locked["hostname"] == "node1"
    assert locked["lease_until"] == 1300 and locked["heartbeat"] == 1000
    assert locked["attempts"] == 1 and locked["scrub_count"] == 0
    assert locked["history"][-1] == {"event": "locked", "time": 1000, "host": "node1", "pilot": "pilot-a"}
    assert locked["_rev"] == "1-a", "the write must carry the revision of the body that was checked"
    assert tok.owned_by(locked, "pilot-a") and not tok.owned_by(locked, "pilot-b")


def test_is_claimable_only_for_live_todo_tokens():
    assert tok.is_claimable({"type": "token", "lock": 0, "done": 0})
    assert not tok.is_claimable({"type": "token", "lock": 1, "done": 0})
    assert not tok.is_claimable({"type": "token", "lock": 0, "done": 0, "_deleted": True})
    assert not tok.is_claimable({"type": "job", "lock": 0, "done": 0})
    assert not tok.is_claimable(None)


def test_finish_and_fail():
    locked = tok.claim(tok.new_token("true", "t"), WHO, 10, 60)
    done = tok.finish(locked, WHO, 20, 0, duration=1.5)
    assert tok.state(done) == "done" and done["duration"] == 1.5 and "lease_until" not in done
    failed = tok.finish(locked, WHO, 20, 3)
    assert tok.state(failed) == "error" and failed["history"][-1]["exit_code"] == 3
    bad = tok.fail(locked, WHO, 20, "the token has no input")
    assert tok.state(bad) == "error" and bad["exit_code"] == -1
    assert bad["error"][-1]["message"] == "the token has no input"


def test_reset_counts_scrubs_but_release_does_not():
    locked = tok.claim(tok.new_token("true", "t"), WHO, 10, 60)
    scrubbed = tok.reset(locked, None, 20, "lease expired")
    assert tok.state(scrubbed) == "todo" and scrubbed["scrub_count"] == 1
    assert "pilot" not in scrubbed and "lease_until" not in scrubbed
    released = tok.reset(locked, WHO, 20, "SIGTERM", count_scrub=False)
    assert tok.state(released) == "todo" and released["scrub_count"] == 0
    assert [e["event"] for e in released["history"]] == ["locked", "released"]


def test_history_is_bounded():
    doc = tok.new_token("true", "t")
    for i in range(100):
        doc = tok.reset(tok.claim(doc, WHO, i, 60), WHO, i, "again")
    assert len(doc["history"]) == tok.HISTORY_LIMIT


def test_lease_expiry():
    locked = tok.claim(tok.new_token("true", "t"), WHO, 100, 60)
    assert not tok.lease_expired(locked, 150)
    assert tok.lease_expired(locked, 161)
    classic = {"type": "token", "lock": 100, "done": 0}
    assert not tok.lease_expired(classic, 10_000), "without a lease only --older-than can expire a lock"
    assert tok.lease_expired(classic, 10_000, older_than=3600)
    assert not tok.lease_expired(classic, 1000, older_than=3600)


def test_identity_records_slurm_array_ids():
    who = tok.PilotIdentity.from_environment("p", {"SLURM_JOB_ID": "101", "SLURM_ARRAY_JOB_ID": "100",
                                                   "SLURM_ARRAY_TASK_ID": "1"})
    locked = tok.claim(tok.new_token("true", "t"), who, 1, 1)
    assert locked["slurm_job_id"] == "100_1" and locked["slurm_array_task_id"] == "1"
    released = tok.reset(locked, who, 2, "x", count_scrub=False)
    assert "slurm_job_id" not in released


def test_state_changes_never_share_mutable_parts_with_the_body_they_started_from():
    who = tok.PilotIdentity("p1", hostname="h")
    original = tok.new_token("echo", "t1", output={"files": ["a"]}, params={"grid": [[1, 2], [3, 4]]},
                             extra=("kept", ["as", "given"]), _attachments={"log": {"data": "aGk="}})
    original["history"] = [{"event": "locked", "time": 1}]
    claimed = tok.claim(original, who, 100.0, 60)
    claimed["output"]["files"].append("b")
    claimed["params"]["grid"][0][0] = 9
    claimed["history"][0]["time"] = 2
    claimed["extra"][1].append("changed")
    assert original["output"] == {"files": ["a"]} and original["params"]["grid"] == [[1, 2], [3, 4]]
    assert original["history"] == [{"event": "locked", "time": 1}]
    assert original["extra"] == ("kept", ["as", "given"]), "values JSON does not have are copied deeply too"
    assert claimed["_attachments"] == original["_attachments"]
    assert claimed["_attachments"] is not original["_attachments"], "the attachment map is the copy's own"
