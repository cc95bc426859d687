"""Signals to real pilot processes: the payload stops, the token goes back, the pilot exits 0."""
import signal
import threading
import time

import pytest

from picas.core import token as tok
from picas.pilot.loop import Pilot, PilotConfig
from picas.pilot.signals import DEBOUNCE
from tests.helpers import client_for, pilot_env, process_gone, push, start_pilot, wait_for


def _locked(client, token_id):
    doc = client.get(token_id)
    return doc if tok.state(doc) == "locked" else None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_signal_stops_payload_and_puts_token_back(couch_server, db_name, tmp_path, signum):
    client = client_for(couch_server, db_name)
    pidfile = tmp_path / "payload.pid"
    [token_id] = push(client, [f"echo $$ > {pidfile}; sleep 120"])
    pilot = start_pilot(couch_server, db_name, "--grace", "5")
    wait_for(lambda: _locked(client, token_id) and pidfile.exists() and pidfile.read_text().strip(), what="payload")
    payload_pid = int(pidfile.read_text())
    pilot.send_signal(signum)
    out, err = pilot.communicate(timeout=30)
    assert pilot.returncode == 0, err
    assert f"stopped by {signal.Signals(signum).name}" in out
    doc = client.get(token_id)
    assert tok.state(doc) == "todo" and doc["scrub_count"] == 0, "a pilot told to stop is not the token's fault"
    assert doc["history"][-1]["event"] == "released" and "pilot" not in doc
    wait_for(lambda: process_gone(payload_pid), timeout=10, what="payload to die")


def test_second_signal_forces_an_immediate_stop(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    ready = tmp_path / "ready"
    # The payload ignores TERM: only the KILL after the grace period (or a forced stop) ends it.
    [token_id] = push(client, [f"trap '' TERM; touch {ready}; for i in $(seq 600); do sleep 0.1; done"])
    pilot = start_pilot(couch_server, db_name, "--grace", "60")
    wait_for(lambda: ready.exists() and _locked(client, token_id), what="payload")
    pilot.send_signal(signal.SIGTERM)
    time.sleep(DEBOUNCE * 1.5)  # signals within DEBOUNCE count as one (scancel sends two at once)
    assert pilot.poll() is None, "the first signal waits for the payload's grace period"
    pilot.send_signal(signal.SIGTERM)
    out, err = pilot.communicate(timeout=30)  # well within the 60 s grace: the second signal forced the stop
    assert pilot.returncode == 0, err
    assert tok.state(client.get(token_id)) == "todo"


def test_release_state_can_be_configured_by_classic_reset_values(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    started = tmp_path / "started"
    [token_id] = push(client, [f"touch {started}; sleep 60"])
    pilot = Pilot(client, PilotConfig(workdir=tmp_path / "work", release_state=(1, 1)), install_signals=False)
    runner = threading.Thread(target=lambda: reports.append(pilot.run()))
    reports: list = []
    runner.start()
    # The stop must come while the pilot holds the token, or there would be nothing to give back.
    wait_for(lambda: started.exists() and _locked(client, token_id), what="the payload of the claimed token")
    pilot.flags.handle(signal.SIGTERM)
    runner.join(timeout=60)
    assert not runner.is_alive(), "the pilot stopped"
    assert reports[0].released == 1
    doc = client.get(token_id)
    assert doc["lock"] == 1 and doc["done"] == 1
    assert doc["history"][-1]["event"] == "released"


def test_supervisor_forwards_signals_to_its_pilots(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    ids = push(client, [f"touch {tmp_path}/$PICAS_TOKEN_ID; sleep 120"] * 2)
    supervisor = start_pilot(couch_server, db_name, "-j", "2", env=pilot_env(couch_server, db_name))
    wait_for(lambda: all((tmp_path / t).exists() for t in ids), what="both payloads")
    supervisor.send_signal(signal.SIGTERM)
    out, err = supervisor.communicate(timeout=40)
    assert supervisor.returncode == 0, err
    assert "2 given back" in out
    assert all(tok.state(client.get(t)) == "todo" for t in ids)
