"""What picas promises, on every kind of server: pouchdb-server, a CouchDB 3.4 node, a 3-node CouchDB cluster.

Each test runs three times (``any_server``).  On the cluster every client and
pilot is given all three nodes.  Leases and scrubbing, result saving, the
command line (push, status, reset, scrub) and the classic API are checked
here; claims by many pilots in ``test_cluster.py``; node faults in
``tests/pilot/test_cluster_faults.py``.
"""
from __future__ import annotations

import json
import os
import signal
import time

from click.testing import CliRunner

from picas.actors import RunActor
from picas.cli import main
from picas.clients import CouchDB
from picas.core import token as tok
from picas.core.client import CouchClient
from picas.core.replicas import current
from picas.core.states import SaveOutcome
from picas.modifiers import BasicTokenModifier
from picas.pilot.results import save_result
from picas.pool.scrub import scrub_expired
from tests.core.test_cluster import no_conflicts_left, spread_env
from tests.helpers import client_for, overview, push, side_effect_counts, start_pilot, wait_for


def cluster_client(server, db: str) -> CouchClient:
    """An admin client that knows every node of the server."""
    user, password = server.admin
    return client_for(server, db, deploy=False) if len(server.urls) == 1 else \
        CouchClient(",".join(server.urls), db, username=user, password=password)


def _cli(server, db: str, *args: str):
    user, password = server.admin
    env = {"PICAS_HOST_URL": ",".join(server.urls), "PICAS_DATABASE": db, "PICAS_USERNAME": user,
           "PICAS_PASSWORD": password, "PICAS_CONFIG": "/nonexistent/picas-test.yml"}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_killed_pilots_token_is_scrubbed_after_its_lease_and_runs_once_more(any_server, any_db, tmp_path):
    client_for(any_server, any_db)
    client = cluster_client(any_server, any_db)
    pidfile, gate, finished = tmp_path / "pgid", tmp_path / "gate", tmp_path / "finished"
    [token_id] = push(client, [f"echo $$ > {pidfile}; while [ ! -e {gate} ]; do sleep 0.1; done; "
                               f"echo $PICAS_TOKEN_ID >> {finished}"])
    victim = start_pilot(any_server, any_db, "--heartbeat", "1", env=spread_env(any_server, any_db, 1))
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="payload start")
    victim.kill()
    victim.wait()
    os.killpg(int(pidfile.read_text()), signal.SIGKILL)
    assert tok.state(current(client, token_id)) == "locked"
    assert scrub_expired(client).total == 0, "the lease has not run out yet"
    time.sleep(6)
    assert scrub_expired(client, settle_conflicts=True).reset == [token_id]
    gate.touch()
    healer = start_pilot(any_server, any_db, env=spread_env(any_server, any_db, 2))
    out, err = healer.communicate(timeout=120)
    assert healer.returncode == 0, err
    assert side_effect_counts(finished) == {token_id: 1}
    doc = current(client, token_id)
    assert tok.state(doc) == "done" and doc["scrub_count"] == 1 and doc["attempts"] == 2
    no_conflicts_left(client)


def test_a_result_wins_over_a_renewal_and_loses_to_a_new_owner(any_server, any_db):
    client_for(any_server, any_db)
    client = cluster_client(any_server, any_db)
    [first, second] = push(client, ["true", "true"])
    me, other = tok.PilotIdentity("me"), tok.PilotIdentity("other")
    # A renewal moved the revision on after the result was computed: the result is merged on top and saved.
    held = client.save(tok.claim(client.get(first), me, time.time(), 600))
    client.save(tok.heartbeat(dict(held), time.time(), 600))
    result = tok.finish(held, me, time.time(), 0, output={"answer": 42})
    assert save_result(client, result, me, base=held) == SaveOutcome.SAVED
    stored = current(client, first)
    assert tok.state(stored) == "done" and stored["output"] == {"answer": 42}
    # The token was reset and claimed by another pilot meanwhile: the new owner wins, the loss is noted.
    held = client.save(tok.claim(client.get(second), me, time.time(), 600))
    reset = client.save(tok.reset(dict(held), None, time.time(), "reset by operator"))
    client.save(tok.claim(reset, other, time.time(), 600))
    assert save_result(client, tok.finish(held, me, time.time(), 0), me, base=held) == SaveOutcome.LOST
    stored = current(client, second)
    assert stored["pilot"] == "other" and tok.state(stored) == "locked"
    assert stored["history"][-1]["event"] == "result_discarded"
    no_conflicts_left(client)


def test_push_status_reset_and_scrub_from_the_command_line(any_server, any_db, tmp_path):
    commands = tmp_path / "commands.txt"
    commands.write_text("".join(f"echo {i}\n" for i in range(12)))
    _cli(any_server, any_db, "views", "create")
    _cli(any_server, any_db, "push", str(commands))
    status = json.loads(_cli(any_server, any_db, "status", "--json").strip().splitlines()[-1])
    assert status["counts"]["todo"] == 12
    pilot = start_pilot(any_server, any_db, "-q", "--max-tasks", "5", env=spread_env(any_server, any_db, 0))
    out, err = pilot.communicate(timeout=120)
    assert pilot.returncode == 0, err
    client = cluster_client(any_server, any_db)
    # A cluster's view reads one copy of each shard, which may be a moment behind the writes: wait for it.
    wait_for(lambda: overview(client) == {"done": 5, "todo": 7}, timeout=30, what="five done")
    # The reset reads the view too, maybe from another copy than the wait did: a token it missed is reset by
    # the next call (a reset is idempotent), and no call may reset more than the five.
    changed = []

    def reset_done() -> bool:
        changed.append(json.loads(_cli(any_server, any_db, "reset", "--view", "done", "--json"))["changed"])
        return sum(changed) >= 5

    wait_for(reset_done, timeout=30, what="five tokens reset")
    assert sum(changed) == 5
    wait_for(lambda: overview(client) == {"todo": 12}, timeout=30, what="all twelve todo again")
    assert "reset 0 tokens" in _cli(any_server, any_db, "scrub")
    no_conflicts_left(client)


class _Appender(RunActor):
    """A classic actor whose task appends its token id to a file, as the pilots' payloads do."""

    picas_heartbeat = 1

    def __init__(self, db, sink, **kwargs):
        super().__init__(db, **kwargs)
        self.sink = sink

    def process_task(self, task):
        with open(self.sink, "a") as handle:
            handle.write(task.id + "\n")
        task["exit_code"] = 0
        BasicTokenModifier().close(task)


def test_the_classic_api_and_pilots_share_a_pool_and_run_each_token_once(any_server, any_db, tmp_path):
    client_for(any_server, any_db)
    client = cluster_client(any_server, any_db)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"echo $PICAS_TOKEN_ID >> {sink}"] * 60)
    pilot = start_pilot(any_server, any_db, "-q", "--heartbeat", "5", env=spread_env(any_server, any_db, 1))
    user, password = any_server.admin
    classic = CouchDB(url=",".join(any_server.urls), db=any_db, username=user, password=password)
    actor = _Appender(classic, str(sink))
    actor.run()
    out, err = pilot.communicate(timeout=300)
    assert pilot.returncode == 0, err
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert actor.tasks_processed > 0, "the classic actor took its share"
    wait_for(lambda: overview(client) == {"done": 60}, timeout=30, what="all sixty done")
    no_conflicts_left(client)
