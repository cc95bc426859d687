"""The claim protocol: exactly-once under contention, even when view rows are stale.

Executions are counted through the payloads' own side effects (a line each
payload appends to a shared file), not through the token documents, so a
token that ran twice is caught even if the documents look right.
"""
import subprocess

import pytest

from picas.core import token as tok
from picas.core.claim import Claimer, KeySpace
from picas.defaults import DESIGN
from picas.errors import Conflict
from tests.helpers import client_for, overview, pilot_env, push, side_effect_counts, start_pilot

WHO = tok.PilotIdentity("claim-test")


def _run_pilots(couch_server, db_name, n, extra=()):
    env = pilot_env(couch_server, db_name)
    procs = [start_pilot(couch_server, db_name, "-q", "--heartbeat", "5", *extra, env=env) for _ in range(n)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    return outputs


@pytest.mark.parametrize("pilots, tokens", [(8, 500), pytest.param(16, 2000, marks=pytest.mark.slow)])
def test_concurrent_pilot_processes_run_each_token_exactly_once(couch_server, db_name, tmp_path, pilots, tokens):
    client = client_for(couch_server, db_name)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"echo $PICAS_TOKEN_ID >> {sink}"] * tokens)
    _run_pilots(couch_server, db_name, pilots)
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids), "every token ran"
    assert [t for t, c in counts.items() if c > 1] == [], "no token ran twice"
    assert overview(client) == {"done": tokens}


def test_batch_claims_are_exactly_once_too(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"echo $PICAS_TOKEN_ID >> {sink}"] * 300)
    _run_pilots(couch_server, db_name, 6, extra=("--prefetch", "5"))
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert overview(client) == {"done": 300}


def test_a_stale_view_row_is_never_claimed(couch_server, db_name):
    """Rows of a stale index still list tokens that are locked by now: the body decides, not the row."""
    client = client_for(couch_server, db_name)
    ids = push(client, ["true"] * 10)
    assert len(client.view(DESIGN, "todo").rows) == 10          # the index now lists all ten
    other = tok.PilotIdentity("someone-else")
    for token_id in ids[:7]:
        client.save(tok.claim(client.get(token_id), other, 1, 600))
    stale_rows = client.view(DESIGN, "todo", stale="ok").rows
    assert len(stale_rows) == 10, "the index is stale, as a busy server's would be"
    claimer = Claimer(client, WHO, view_params={"stale": "ok"}, window=10)
    got = [claimer.claim() for _ in range(4)]
    assert sorted(d["_id"] for d in got[:3]) == sorted(ids[7:])
    assert got[3] is None
    for token_id in ids[:7]:
        assert client.get(token_id)["pilot"] == "someone-else"
    assert claimer.stats.conflicts == 0, "stale rows are skipped without a write"


def test_two_claimers_on_one_revision_one_wins(couch_server, db_name):
    client = client_for(couch_server, db_name)
    push(client, ["true"])
    body = client.view(DESIGN, "todo", include_docs=True).rows[0].doc
    a, b = tok.PilotIdentity("a"), tok.PilotIdentity("b")
    client.save(tok.claim(body, a, 1, 60))
    with pytest.raises(Conflict):
        client.save(tok.claim(body, b, 1, 60))
    assert client.get(body["_id"])["pilot"] == "a"


def test_random_start_keys_follow_the_key_shape():
    import random
    space = KeySpace()
    space.learn(["token_0a1f", "token_9b2c", "token_f3e4"])
    assert space.prefix == "token_"
    rng = random.Random(1)
    keys = {space.random_key(rng) for _ in range(50)}
    assert all(k.startswith("token_") for k in keys) and len(keys) > 40


def test_no_work_means_the_pilot_exits_at_once(couch_server, db_name):
    client_for(couch_server, db_name)
    proc = start_pilot(couch_server, db_name)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "0 tokens" in out and "no more work" in out


def test_a_missing_view_is_one_clear_line(couch_server, db_name):
    client_for(couch_server, db_name, deploy=False)
    proc = start_pilot(couch_server, db_name, "--design-doc", "Nope")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 15
    assert err.strip().count("\n") == 0 and "picas views create" in err and "Traceback" not in err


def test_pilot_without_server_settings_says_what_to_do(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PICAS_CONFIG": str(tmp_path / "none.yml")}
    import sys
    proc = subprocess.run([sys.executable, "-m", "picas", "run"], env=env, capture_output=True, text=True)
    assert proc.returncode == 3 and "PICAS_HOST_URL" in proc.stderr
