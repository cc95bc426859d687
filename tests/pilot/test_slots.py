"""``picas run --slots N``: N pilots as threads of one process, on every kind of server.

Executions are counted from the payloads' side effects.  Whether the slots
really run payloads side by side is shown by the payloads themselves: each
waits until it sees a sibling payload running, which a pilot running one
payload at a time could never let happen.
"""
from __future__ import annotations

import signal
import threading

import pytest

from picas.core import token as tok
from picas.pilot.report import PilotReport
from picas.pilot.signals import StopFlags
from picas.pilot.slots import run_slots
from tests.core.test_cluster import spread_env
from tests.core.test_every_server import cluster_client
from tests.helpers import client_for, overview, pilot_env, push, side_effect_counts, start_pilot, wait_for


def test_slots_run_every_token_once_on_every_server(any_server, any_db, tmp_path):
    client_for(any_server, any_db)
    client = cluster_client(any_server, any_db)
    sink = tmp_path / "executed"
    ids = push(client, [f"echo $PICAS_TOKEN_ID >> {sink}"] * 120)
    pilot = start_pilot(any_server, any_db, "-q", "--slots", "6", "--workdir", str(tmp_path / "w"),
                        env=spread_env(any_server, any_db, 0))
    out, err = pilot.communicate(timeout=600)
    assert pilot.returncode == 0, err
    assert "120 tokens in" in out
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids) and max(counts.values()) == 1, "every token ran, none twice"
    wait_for(lambda: overview(client) == {"done": 120}, what="every token done")
    holders = {event["pilot"] for token_id in ids for event in client.get(token_id)["history"]
               if event.get("event") == "locked"}
    assert len(holders) > 1, "each slot is a pilot of its own, with its own identity"


def test_slots_run_payloads_side_by_side(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    running, seen = tmp_path / "running", tmp_path / "seen"
    running.mkdir()
    # Each payload marks itself running, then waits (at most 60 s) until another payload is running too.
    ids = push(client, [f"touch {running}/$PICAS_TOKEN_ID; for i in $(seq 600); do "
                        f"[ $(ls {running} | wc -l) -ge 2 ] && break; sleep 0.1; done; "
                        f"echo $(ls {running} | wc -l) >> {seen}"] * 4)
    pilot = start_pilot(couch_server, db_name, "-q", "--slots", "4", "--workdir", str(tmp_path / "w"))
    out, err = pilot.communicate(timeout=300)
    assert pilot.returncode == 0, err
    assert overview(client) == {"done": 4}
    assert all(int(n) >= 2 for n in seen.read_text().split()), "every payload saw a sibling payload running"
    assert len(ids) == 4


def test_a_signal_stops_every_slot_and_gives_every_token_back(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    ids = push(client, [f"touch {tmp_path}/$PICAS_TOKEN_ID; sleep 120"] * 3)
    pilot = start_pilot(couch_server, db_name, "--slots", "3", "--grace", "5", "--workdir", str(tmp_path / "w"),
                        env=pilot_env(couch_server, db_name))
    wait_for(lambda: all((tmp_path / t).exists() for t in ids)
             and all(tok.state(client.get(t)) == "locked" for t in ids), what="three payloads")
    pilot.send_signal(signal.SIGTERM)
    out, err = pilot.communicate(timeout=60)
    assert pilot.returncode == 0, err
    assert "3 given back" in out and "stopped by SIGTERM" in out
    assert all(tok.state(client.get(t)) == "todo" for t in ids)


class _WaitingPilot:
    """Stands in for a pilot in the runner's own test: it waits to be told to stop (no server involved)."""

    def __init__(self, index: int, flags: StopFlags, fail: bool) -> None:
        self.index, self.flags, self.fail = index, flags, fail

    def run(self) -> PilotReport:
        if self.fail:
            raise RuntimeError("slot 1 broke")
        assert self.flags.requested.wait(30), "the failing slot asked its siblings to stop"
        return PilotReport(pilot_id=f"slot-{self.index}", reason="stopped by request")


def test_a_failing_slot_stops_its_siblings_and_its_error_is_raised():
    started = threading.active_count()
    with pytest.raises(RuntimeError, match="slot 1 broke"):
        run_slots(lambda index, flags, siblings: _WaitingPilot(index, flags, fail=index == 1), 3)
    assert threading.active_count() == started, "no slot thread is left behind"
