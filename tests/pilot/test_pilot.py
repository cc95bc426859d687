"""The pilot loop with real payloads on a real server: results survive conflicts, timeouts kill whole groups,
failures are retried within bounds, and bad input ends a token in error while the pilot goes on."""
import base64
import os
import sys
import textwrap
import time

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.defaults import DESIGN
from picas.errors import Conflict
from picas.pilot.loop import Pilot, PilotConfig
from tests.helpers import client_for, overview, push


def _pilot(client, tmp_path, **config):
    config.setdefault("heartbeat", 60)
    return Pilot(client, PilotConfig(workdir=tmp_path / "work", **config), install_signals=False)


def _touch_token_script(couch_server, db_name, change: str) -> str:
    """A payload that changes its own token while it runs, as a user or another tool might."""
    user, password = couch_server.admin
    code = textwrap.dedent(f"""
        import os, requests
        url = "{couch_server.url}/{db_name}/" + os.environ["PICAS_TOKEN_ID"]
        auth = ("{user}", "{password}")
        doc = requests.get(url, auth=auth).json()
        {change}
        assert requests.put(url, json=doc, auth=auth).ok
        print("payload done")
    """)
    return f"{sys.executable} -c '{code}'"


def test_a_result_survives_a_409_on_save(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, [_touch_token_script(couch_server, db_name, 'doc["note"] = "annotated"')])
    report = _pilot(client, tmp_path).run()
    doc = client.get(token_id)
    assert report.done == 1 and report.conflicts >= 1, "the save met a 409"
    assert tok.state(doc) == "done" and doc["exit_code"] == 0
    assert doc["note"] == "annotated", "the change made meanwhile is kept"
    assert client.get_attachment(token_id, f"logs_{token_id}.out") == b"payload done\n"


def test_a_pilot_that_lost_its_lock_does_not_overwrite_the_new_owner(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    steal = 'doc["pilot"] = "new-owner"; doc["lock"] = 12345'
    [token_id] = push(client, [_touch_token_script(couch_server, db_name, steal)])
    report = _pilot(client, tmp_path).run()
    doc = client.get(token_id)
    assert report.lost == 1 and report.done == 0
    assert doc["pilot"] == "new-owner" and doc["lock"] == 12345 and tok.state(doc) == "locked"
    assert doc["history"][-1]["event"] == "result_discarded"


def test_token_timeout_kills_the_whole_process_group(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    pids = tmp_path / "pids"
    payload = f"sleep 300 & echo $! >> {pids}; bash -c 'sleep 300' & echo $! >> {pids}; wait"
    [token_id] = push(client, [payload])
    started = time.monotonic()
    report = _pilot(client, tmp_path, token_timeout=1.5, grace=1).run()
    assert time.monotonic() - started < 20
    doc = client.get(token_id)
    assert report.failed == 1 and tok.state(doc) == "error" and doc["timed_out"] is True
    assert "timed out after 1.5 s" in doc["error"][-1]["message"]
    for pid in map(int, pids.read_text().split()):
        try:
            os.kill(pid, 0)
            alive = not open(f"/proc/{pid}/stat").read().split()[2] == "Z"
        except (ProcessLookupError, FileNotFoundError):
            alive = False
        assert not alive, f"child {pid} of the payload survived the timeout"


def test_failed_payload_is_retried_then_stays_in_error_with_every_attempt_recorded(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, ["echo attempt; exit 3"])
    report = _pilot(client, tmp_path, retries=2).run()
    doc = client.get(token_id)
    assert report.processed == 3 and report.retried == 2 and report.failed == 1
    assert tok.state(doc) == "error" and doc["exit_code"] == 3 and doc["attempts"] == 3
    failures = [e for e in doc["history"] if e["event"] == "failed"]
    assert len(failures) == 3 and all(e["exit_code"] == 3 and e["host"] and e["time"] for e in failures)


def test_bad_input_ends_in_error_and_the_pilot_goes_on(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    bad = {
        "no_input": None,
        "dict_input": {"cmd": "true"},
        "empty_list": [],
        "missing_command": "no-such-command-xyz --flag",
        "missing_argv0": ["/no/such/binary", "x"],
    }
    docs = [tok.new_token(value, name) for name, value in bad.items()]
    docs[0].pop("input")
    docs.append(tok.new_token("printf 'ok'", "good"))
    client.bulk_save(docs)
    report = _pilot(client, tmp_path).run()
    assert report.processed == 6 and report.done == 1 and report.failed == 5
    msgs = {name: client.get(name) for name in bad}
    assert "no input" in msgs["no_input"]["error"][-1]["message"]
    assert "expected a command string" in msgs["dict_input"]["error"][-1]["message"]
    assert "input" in msgs["empty_list"]["error"][-1]["message"]
    assert msgs["missing_command"]["exit_code"] == 127
    assert b"command not found" in client.get_attachment("missing_command", "logs_missing_command.err")
    assert "command not found: /no/such/binary" in msgs["missing_argv0"]["error"][-1]["message"]
    assert overview(client) == {"done": 1, "error": 5}


def test_binary_output_and_huge_output_are_kept_within_the_cap(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["printf 'bin\\xff\\xfe\\x00end'"], prefix="bin_")
    [huge] = push(client, ["echo first; head -c 30000000 /dev/zero | tr '\\0' x; echo; echo last"], prefix="huge_")
    report = _pilot(client, tmp_path, log_cap=64 * 1024).run()
    assert report.done == 2
    [binary] = [r.id for r in client.view(DESIGN, "done") if r.id.startswith("bin_")]
    assert client.get_attachment(binary, f"logs_{binary}.out") == b"bin\xff\xfe\x00end"
    log = client.get_attachment(huge, f"logs_{huge}.out")
    assert len(log) < 70 * 1024 and log.startswith(b"first\n") and log.endswith(b"last\n")
    assert b"bytes of output cut here" in log
    assert client.get(huge)["log_truncated"]["stdout"] > 29_000_000


def test_unusable_working_directory_is_an_error_of_the_token(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, ["true"])
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    report = Pilot(client, PilotConfig(workdir=blocker), install_signals=False).run()
    doc = client.get(token_id)
    assert report.failed == 1 and tok.state(doc) == "error"
    assert "cannot create the working directory" in doc["error"][-1]["message"]


def test_token_records_times_host_and_environment(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, ["echo $PICAS_TOKEN_ID $PICAS_DATABASE $PICAS_HOST_URL; pwd; sleep 0.2"])
    _pilot(client, tmp_path).run()
    doc = client.get(token_id)
    assert doc["finished"] >= doc["started"] and doc["duration"] >= 0.2 and doc["hostname"]
    out = base64.b64decode(client.get(token_id, attachments=True)["_attachments"][f"logs_{token_id}.out"]["data"])
    first, workdir = out.decode().splitlines()
    assert first == f"{token_id} {db_name} {couch_server.url}"
    assert workdir.endswith(token_id)


def test_list_input_runs_without_a_shell(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, [["echo", "$HOME", "a b"]])
    _pilot(client, tmp_path).run()
    assert client.get_attachment(token_id, f"logs_{token_id}.out") == b"$HOME a b\n"


def test_max_tasks_and_stop_callback(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["true"] * 5)
    assert _pilot(client, tmp_path, max_tasks=2).run().processed == 2
    calls = []
    pilot = Pilot(client, PilotConfig(workdir=tmp_path / "w"), install_signals=False,
                  stop_callback=lambda: calls.append(1) or len(calls) > 1)
    assert pilot.run().processed == 1 and overview(client) == {"done": 3, "todo": 2}


def test_lease_renewal_that_finds_the_token_taken_stops_the_payload(couch_server, db_name, tmp_path):
    import threading
    client = client_for(couch_server, db_name)
    [token_id] = push(client, ["sleep 60"])
    pilot = _pilot(client, tmp_path, heartbeat=0.3, grace=1)

    def steal():
        doc = client.get(token_id)
        while tok.state(doc) != "locked":
            time.sleep(0.05)
            doc = client.get(token_id)
        time.sleep(0.5)                      # a few renewals happen first
        for _ in range(50):  # a renewal landing between our read and our write is a 409: read again
            doc = client.get(token_id)
            scrubbed = tok.reset(doc, None, time.time(), "scrubbed by an operator")
            try:
                client.save({**tok.claim(scrubbed, tok.PilotIdentity("new-owner"), time.time(), 600),
                             "note": "new owner"})
                return
            except Conflict:
                continue

    thief = threading.Thread(target=steal)
    thief.start()
    started = time.monotonic()
    report = pilot.run()
    thief.join()
    assert time.monotonic() - started < 20, "the payload was stopped, not waited for"
    assert report.lost == 1 and report.done == 0 and pilot.keeper.renewals >= 1
    doc = client.get(token_id)
    assert doc["note"] == "new owner" and doc["pilot"] == "new-owner", "the new owner's state is kept"


def test_a_pilot_leaves_no_empty_directories_behind(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["true"] * 3)
    pilot = _pilot(client, tmp_path)
    assert pilot.run().done == 3
    assert not pilot.executor.workdir_root.exists()


def test_each_result_rides_in_the_request_of_the_next_claim(couch_server, db_name, tmp_path, monkeypatch):
    client = client_for(couch_server, db_name)
    ids = push(client, ["echo $PICAS_TOKEN_ID"] * 8)
    writes = []
    send = CouchClient.request

    def counting(self, method, path, **kwargs):
        if method in ("PUT", "POST") and "/_design/" not in path and "/_local/" not in path:
            docs = (kwargs.get("json_body") or {}).get("docs") if path.endswith("/_bulk_docs") else None
            writes.append([tok.state(d) for d in docs] if docs is not None else method)
        return send(self, method, path, **kwargs)

    monkeypatch.setattr(CouchClient, "request", counting)  # counts what the pilot's client copies send
    report = _pilot(client, tmp_path).run()
    assert report.done == 8 and overview(client) == {"done": 8}
    assert all(client.get(t)["exit_code"] == 0 for t in ids)
    carried = [w for w in writes if isinstance(w, list) and w[0] == "locked" and "done" in w[1:]]
    assert len(carried) == 7, "every result but the last went back with the claim of the next token"
    assert len(writes) <= 8 + 1 + 2, "a claim-and-result request per token, the last result alone"
