"""picas.core.states: enum members are their strings, so documents and JSON keep their shape."""
import json

import pytest

from picas.core import token as tok
from picas.core.states import STATES, HistoryEvent, PilotEvent, RunOutcome, SaveOutcome, State


@pytest.mark.parametrize("enum", [State, RunOutcome, SaveOutcome, PilotEvent, HistoryEvent])
def test_members_print_compare_hash_and_serialise_as_their_value(enum):
    for member in enum:
        assert member == member.value and hash(member) == hash(member.value)
        assert str(member) == member.value and f"{member}" == member.value and f"{member:>12}" == f"{member.value:>12}"
        assert json.dumps({member: member}) == json.dumps({member.value: member.value})
        assert enum(member.value) is member


def test_the_four_view_states_in_order():
    assert [s.value for s in STATES] == ["todo", "locked", "done", "error"]


def test_documents_hold_plain_strings_not_members():
    who = tok.PilotIdentity("p", "h")
    body = tok.finish(tok.claim(tok.new_token("true", "t"), who, 1, 60), who, 2, 0)
    events = [entry["event"] for entry in body["history"]]
    assert events == ["locked", "done"]
    assert all(type(event) is str for event in events), "a body built here equals one read back from the server"
    assert tok.state(body) is State.DONE
