"""The pool commands (db, views, push, status, tokens, reset, delete) against a real server.

Every test drives the ``picas`` command through click's test runner with the
connection in the environment, as a batch job would set it, and a config
file path of its own so the real ``~/.config`` is never read.  Assertions are
made on the database afterwards, read with a separate admin client, not only
on what the command printed.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time

import pytest
import requests
from click.testing import CliRunner

from picas.pool import push as pushing
from picas.core import token as tok
from picas.cli import main
from picas.cli.db_cmd import db
from picas.cli.push_cmd import push_cmd
from picas.cli.status_cmd import status_cmd
from picas.cli.tokens_cmd import delete_cmd, reset_cmd, tokens
from picas.cli.views_cmd import views
from picas.core.client import CouchClient
from picas.errors import (ConfigError, Conflict, DatabaseNotFound, ServerUnavailable, TokenNotFound, Unauthorized,
                          ViewNotFound)
from picas.server.local import free_port
from picas.core.views import deploy
from tests.helpers import cli_env

for _command in (db, views, push_cmd, status_cmd, tokens, reset_cmd, delete_cmd):
    main.add_command(_command)

TOKEN_ID = re.compile(r"^token_[0-9a-f]{16}$")


@pytest.fixture
def env(couch_server, db_name, tmp_path) -> dict:
    return cli_env(couch_server, db_name, tmp_path / "conf.yml")


@pytest.fixture
def client(couch_server, db_name):
    user, password = couch_server.admin
    handle = CouchClient(couch_server.url, db_name, username=user, password=password)
    yield handle
    handle.close()


@pytest.fixture
def pool_db(client):
    """The test database with the views deployed."""
    deploy(client)
    return client


def run(env: dict, *args: str, input: str | None = None, code: int = 0):
    result = CliRunner().invoke(main, list(args), env=env, input=input)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    return result


def all_tokens(client: CouchClient) -> dict[str, dict]:
    return {row.id: row.doc for row in client.all_docs(include_docs=True).rows if not row.id.startswith("_design/")}


def make_states(client: CouchClient, now: float | None = None) -> dict[str, list[str]]:
    """A pool with tokens in every state, made with the same token functions a pilot uses."""
    now = time.time() if now is None else now
    who = tok.PilotIdentity("pilot-a", hostname="node1", job_ids=(("slurm_job_id", "4242"),))
    old = tok.PilotIdentity("pilot-b", hostname="node2")
    docs = []
    ids: dict[str, list[str]] = {"todo": [], "locked": [], "old_locked": [], "done": [], "error": []}
    for i in range(4):
        docs.append(tok.new_token(f"echo todo {i}", f"todo_{i}"))
        ids["todo"].append(f"todo_{i}")
    for i in range(2):
        docs.append(tok.claim(tok.new_token("sleep 100", f"locked_{i}"), who, now - 60, 600))
        ids["locked"].append(f"locked_{i}")
    docs.append(tok.claim(tok.new_token("sleep 100", "old_locked_0"), old, now - 3 * 3600, 600))
    ids["old_locked"].append("old_locked_0")
    for i in range(6):
        body = tok.claim(tok.new_token(f"echo {i}", f"done_{i}"), who, now - 120, 600)
        docs.append(tok.finish(body, who, now - 10 - i, 0))
        ids["done"].append(f"done_{i}")
    for i, code in enumerate((1, 1, 127)):
        body = tok.claim(tok.new_token("false", f"error_{i}"), who, now - 120, 600)
        docs.append(tok.fail(body, who, now - 30, f"payload failed with {code}", exit_code=code))
        ids["error"].append(f"error_{i}")
    assert all(result.ok for result in client.bulk_save(docs))
    return ids


# --------------------------------------------------------------------------- db and views


def test_db_create_info_delete(env, couch_server, client):
    name = env["PICAS_DATABASE"] + "_new"
    env = {**env, "PICAS_DATABASE": name}
    other = client.copy(name)
    try:
        out = run(env, "db", "create").output
        assert "Created database" in out
        assert other.db_exists()
        assert other.get_security()["members"]["names"] == [couch_server.admin[0]]
        assert "exists already" in run(env, "db", "create", "--exist-ok").output
        run(env, "db", "create", code=Conflict.exit_code)

        info = json.loads(run(env, "db", "info", "--json").output)
        assert info["name"] == name and info["doc_count"] == 0 and info["designs"] == []

        result = run(env, "db", "delete", input="n\n", code=1)
        assert "Aborted" in result.output and other.db_exists()
        run(env, "db", "delete", input="y\n")
        assert not other.db_exists()
        run(env, "db", "delete", "--yes", code=DatabaseNotFound.exit_code)
    finally:
        if other.db_exists():
            other.delete_db()


def test_non_admin_cannot_create_and_the_server_survives(env, couch_server, client):
    """pouchdb-server crashes on a non-admin PUT /db; picas refuses before sending it."""
    user_doc = {"_id": "org.couchdb.user:bob", "name": "bob", "password": "pw", "roles": [], "type": "user"}
    requests.put(f"{couch_server.url}/_users/org.couchdb.user:bob", json=user_doc, auth=couch_server.admin,
                 timeout=10)
    bob = {**env, "PICAS_USERNAME": "bob", "PICAS_PASSWORD": "pw", "PICAS_DATABASE": env["PICAS_DATABASE"] + "_bob"}
    result = run(bob, "db", "create", code=6)
    assert "server admin" in result.stderr
    run(bob, "db", "delete", "--yes", code=6)
    assert client.server_info()  # still up
    assert not client.db_exists(bob["PICAS_DATABASE"])


def test_views_create_makes_database_and_views(env, couch_server, client):
    name = env["PICAS_DATABASE"] + "_v"
    env = {**env, "PICAS_DATABASE": name}
    other = client.copy(name)
    try:
        out = run(env, "views", "create").output
        assert "Created database" in out and "Deployed views" in out
        design = other.get("_design/Monitor")
        assert {"todo", "locked", "done", "error", "overview_total"} <= set(design["views"])
        assert other.get_security()["members"]["names"] == [couch_server.admin[0]]
        assert "up to date" in run(env, "views", "create").output

        run(env, "views", "create", "--design-doc", "Cores4", "--condition", "doc.cores == 4")
        assert "(doc.cores == 4)" in other.get("_design/Cores4")["views"]["todo"]["map"]
        listed = run(env, "views", "list").output
        assert "_design/Monitor" in listed and "_design/Cores4" in listed and "doc.cores == 4" in listed
        data = json.loads(run(env, "views", "list", "--json").output)
        assert {d["design"] for d in data} == {"Monitor", "Cores4"}

        result = run(env, "views", "create", "--design-doc", "Bad", "--condition", "1); emit(2", code=10)
        assert "single JavaScript expression" in result.stderr
        assert other.get_or_none("_design/Bad") is None
    finally:
        if other.db_exists():
            other.delete_db()


# --------------------------------------------------------------------------- push


def test_push_text_file(env, pool_db, tmp_path):
    path = tmp_path / "commands.txt"
    path.write_text("echo one\n\n# a comment\necho two\necho 'three'\n")
    result = run(env, "push", str(path))
    assert "Pushed 3 of 3" in result.stdout
    docs = all_tokens(pool_db)
    assert sorted(d["input"] for d in docs.values()) == ["echo 'three'", "echo one", "echo two"]
    for token_id, doc in docs.items():
        assert TOKEN_ID.match(token_id)
        assert tok.state(doc) == "todo"
        assert {"lock", "done", "hostname", "scrub_count", "output", "exit_code", "error"} <= set(doc)


def test_push_json_yaml_and_stdin(env, pool_db, tmp_path):
    (tmp_path / "list.json").write_text(json.dumps([{"input": "a", "cores": 2}, {"_id": "mine", "input": "b"}]))
    (tmp_path / "map.yaml").write_text("y1:\n  input: echo y1\ny2:\n  input: [python3, -c, 'print(2)']\n")
    result = run(env, "push", str(tmp_path / "list.json"), str(tmp_path / "map.yaml"), "--json", "--no-progress")
    assert json.loads(result.stdout)["created"] == 4
    run(env, "push", "-", input="echo from stdin\n")
    docs = all_tokens(pool_db)
    assert docs["mine"]["input"] == "b"
    assert docs["y2"]["input"] == ["python3", "-c", "print(2)"]
    assert [d["cores"] for d in docs.values() if d.get("cores")] == [2]
    assert any(d["input"] == "echo from stdin" for d in docs.values())
    assert len(docs) == 5


def test_push_rejects_bad_input_and_writes_nothing(env, pool_db, tmp_path):
    (tmp_path / "rev.json").write_text(json.dumps([{"input": "a"}, {"input": "b", "_rev": "1-abc"}]))
    result = run(env, "push", str(tmp_path / "rev.json"), code=10)
    assert "item 2" in result.stderr and "_rev" in result.stderr
    (tmp_path / "broken.yaml").write_text("a:\n  input: [1, 2\nb: 3\n")
    result = run(env, "push", str(tmp_path / "broken.yaml"), code=10)
    assert "broken.yaml:3:" in result.stderr and "malformed YAML" in result.stderr
    (tmp_path / "broken.json").write_text('[{"input": "a"},\n {"input": }]')
    assert "broken.json:2" in run(env, "push", str(tmp_path / "broken.json"), code=10).stderr
    run(env, "push", str(tmp_path / "missing.txt"), code=10)
    run(env, "push", code=10)  # nothing to push
    assert all_tokens(pool_db) == {}

    (tmp_path / "noinput.json").write_text(json.dumps([{"x": 1}]))
    result = run(env, "push", str(tmp_path / "noinput.json"))
    assert "has no 'input'" in result.stderr
    assert len(all_tokens(pool_db)) == 1


def test_push_sweep(env, pool_db):
    result = run(env, "push", "--param", "x=1..3", "--param", "y=a,b", "--command", "sim --x {x} --y {y}")
    assert "Pushed 6 of 6" in result.stdout
    docs = all_tokens(pool_db).values()
    assert sorted(d["input"] for d in docs) == sorted(f"sim --x {x} --y {y}" for x in (1, 2, 3) for y in "ab")
    assert {(d["parameters"]["x"], d["parameters"]["y"]) for d in docs} == {(x, y) for x in (1, 2, 3) for y in "ab"}
    result = run(env, "push", "--param", "z=1..2", "--command", "sim --x {x}", code=10)
    assert "'z' does not appear" in result.stderr
    run(env, "push", "--param", "x=1..2", code=10)  # no --command
    assert len(all_tokens(pool_db)) == 6


def test_push_duplicates_are_reported_never_overwritten(env, pool_db, tmp_path):
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"a": {"input": "original a"}, "b": {"input": "original b"}}))
    run(env, "push", str(first))
    rev_a = pool_db.get("a")["_rev"]
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"a": {"input": "changed a"}, "c": {"input": "new c"}}))

    dry = run(env, "push", str(second), "--dry-run")
    assert "Would push 2" in dry.stdout and "a" in dry.stderr and "duplicates" in dry.stderr
    assert set(all_tokens(pool_db)) == {"a", "b"}

    result = run(env, "push", str(second), code=Conflict.exit_code)
    assert "Pushed 1 of 2" in result.stdout
    assert "duplicate" in result.stderr and ": a" in result.stderr
    docs = all_tokens(pool_db)
    assert docs["a"]["input"] == "original a" and docs["a"]["_rev"] == rev_a
    assert docs["c"]["input"] == "new c"

    result = run(env, "push", str(second), "--skip-duplicates", "--json")
    assert json.loads(result.stdout)["duplicates"] == ["a", "c"]
    # The same id twice in one push: the first is created, the second reported.
    third = tmp_path / "third.json"
    third.write_text(json.dumps([{"_id": "d", "input": "1"}, {"_id": "d", "input": "2"}]))
    run(env, "push", str(third), code=Conflict.exit_code)
    assert pool_db.get("d")["input"] == "1"


def test_push_dry_run_writes_nothing(env, pool_db, tmp_path):
    result = run(env, "push", "--param", "x=1..50", "--command", "run {x}", "--dry-run")
    assert "Would push 50 tokens" in result.stdout and "Nothing was written" in result.stdout
    assert all_tokens(pool_db) == {}


def test_concurrent_pushes_never_share_an_id(pool_db):
    reports = []

    def one() -> None:
        handle = pool_db.copy()
        reports.append(pushing.push(handle, [{"input": f"echo {i}"} for i in range(2000)], batch=250))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.created for r in reports] == [2000] * 4
    assert all(r.ok for r in reports)
    assert pool_db.db_info()["doc_count"] == 8000 + 1  # the tokens and the design document


def test_large_push_shows_progress_on_stderr(env, pool_db):
    result = run(env, "push", "--param", "i=1..5000", "--command", "echo {i}", "--batch-size", "500")
    assert "Pushing" in result.stderr and "Pushing" not in result.stdout
    assert "Pushed 5,000 of 5,000" in result.stdout
    assert pool_db.db_info()["doc_count"] == 5001


# --------------------------------------------------------------------------- status and tokens


def test_status_counts_rate_and_breakdowns(env, pool_db):
    make_states(pool_db)
    data = json.loads(run(env, "status", "--json").stdout)
    assert data["counts"] == {"todo": 4, "locked": 3, "done": 6, "error": 3}
    assert data["total"] == 16 and data["fraction_done"] == pytest.approx(9 / 16)
    assert data["rate"] and data["rate"] > 0 and data["eta_seconds"] > 0
    assert data["errors"]["exit_codes"] == {"1": 2, "127": 1}
    assert data["errors"]["messages"]["payload failed with 1"] == 2
    assert data["locked"]["hosts"] == {"node1 (job 4242)": 2, "node2": 1}
    assert data["locked"]["ages"]["<10m"] == 2 and data["locked"]["ages"]["<1d"] == 1
    assert data["locked"]["expired_leases"] == 1

    text = run(env, "status").stdout
    assert re.search(r"todo\s+4", text) and re.search(r"error\s+3", text)
    assert "[" in text and "% done" in text and "tokens/s" in text and "ETA" in text
    assert "exit 1: 2" in text and "node1 (job 4242)" in text


def test_status_watch_refreshes(env, pool_db):
    make_states(pool_db)
    result = run(env, "status", "--watch", "--json", "--interval", "0.2", "--iterations", "3")
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) == 3 and all(f["counts"]["todo"] == 4 for f in frames)
    assert frames[-1]["rate_basis"].startswith("last")  # measured between refreshes
    text = run(env, "status", "--watch", "--interval", "0.1", "--iterations", "2").stdout
    assert text.count("% done") == 2


def test_tokens_list_show_logs(env, pool_db):
    make_states(pool_db)
    rows = [json.loads(line) for line in run(env, "tokens", "list", "--view", "error", "--json").stdout.splitlines()]
    assert {r["id"] for r in rows} == {"error_0", "error_1", "error_2"}
    assert all(r["state"] == "error" and r["host"] == "node1" and r["job_id"] == "4242" for r in rows)
    assert sorted(r["exit_code"] for r in rows) == [1, 1, 127]
    table = run(env, "tokens", "list", "--view", "locked", "--limit", "2").output
    assert table.splitlines()[0].split() == ["ID", "STATE", "HOST", "JOB", "AGE", "EXIT"]
    assert len([line for line in table.splitlines() if line.startswith("locked_")]) == 2
    todo = run(env, "tokens", "list", "--view", "todo", "--design-doc", "Monitor", "--limit", "0").stdout
    assert len([line for line in todo.splitlines() if line.startswith("todo_")]) == 4
    deploy(pool_db, "Cores4", "doc.cores == 4")
    assert "No tokens in view 'error'" in run(env, "tokens", "list", "--view", "error", "--design-doc",
                                              "Cores4").stdout

    doc = pool_db.get("error_0")
    out_log = "".join(f"line {i}\n" for i in range(50))
    doc["_attachments"] = {
        "logs_error_0.out": {"content_type": "text/plain", "data": base64.b64encode(out_log.encode()).decode()},
        "logs_error_0.err": {"content_type": "text/plain", "data": base64.b64encode(b"it broke\n").decode()},
    }
    pool_db.save(doc)
    shown = run(env, "tokens", "show", "error_0", "--tail", "3").stdout
    assert "payload failed with 1" in shown and "exit_code" in shown and "node1" in shown
    assert "line 49" in shown and "line 46" not in shown and "it broke" in shown
    assert json.loads(run(env, "tokens", "show", "error_0", "--json").stdout)["_id"] == "error_0"
    assert run(env, "tokens", "logs", "error_0").stdout == out_log
    assert run(env, "tokens", "logs", "error_0", "--err").stdout == "it broke\n"
    assert "no stdout log" in run(env, "tokens", "logs", "todo_0").stderr

    result = run(env, "tokens", "show", "no_such_token", code=TokenNotFound.exit_code)
    assert "no_such_token" in result.stderr and "picas tokens list" in result.stderr
    run(env, "tokens", "logs", "no_such_token", code=TokenNotFound.exit_code)


# --------------------------------------------------------------------------- reset and delete


def test_reset_error_tokens(env, pool_db):
    ids = make_states(pool_db)
    before = all_tokens(pool_db)
    dry = run(env, "reset", "--view", "error", "--dry-run")
    assert "Would reset 3 tokens" in dry.stdout and "error_0" in dry.stdout
    assert all_tokens(pool_db) == before

    assert "Reset 3 tokens" in run(env, "reset", "--view", "error").stdout
    after = all_tokens(pool_db)
    for token_id in ids["error"]:
        assert tok.state(after[token_id]) == "todo"
        assert after[token_id]["scrub_count"] == 1
        assert after[token_id]["history"][-1]["event"] == "reset"
    for token_id in ids["done"] + ids["locked"]:
        assert after[token_id]["_rev"] == before[token_id]["_rev"]
    assert "Reset 0 tokens" in run(env, "reset", "--view", "error").stdout


def test_reset_locked_older_than(env, pool_db):
    ids = make_states(pool_db)
    result = run(env, "reset", "--view", "locked", "--older-than", "2h", "--json")
    assert json.loads(result.stdout)["ids"] == ids["old_locked"]
    docs = all_tokens(pool_db)
    assert tok.state(docs["old_locked_0"]) == "todo" and "pilot" not in docs["old_locked_0"]
    assert all(tok.state(docs[i]) == "locked" for i in ids["locked"])
    run(env, "reset", "--view", "locked", "--older-than", "2 fortnights", code=2)


def test_reset_by_ids_checks_every_id_first(env, pool_db):
    make_states(pool_db)
    before = all_tokens(pool_db)
    result = run(env, "reset", "--ids", "done_0,nope_1", code=TokenNotFound.exit_code)
    assert "nope_1" in result.stderr and "nothing was changed" in result.stderr
    assert all_tokens(pool_db) == before
    result = run(env, "reset", "--ids", "done_0,todo_0", "--ids", "locked_1")
    assert "Reset 2 tokens" in result.stdout  # todo_0 is todo already: left alone
    docs = all_tokens(pool_db)
    assert tok.state(docs["done_0"]) == "todo" and docs["done_0"]["scrub_count"] == 1
    assert docs["todo_0"]["_rev"] == before["todo_0"]["_rev"]
    run(env, "reset", code=2)  # neither --view nor --ids


def test_reset_leaves_a_token_a_pilot_took_meanwhile(pool_db, monkeypatch):
    """A 409 on reset means the token changed: it is reset only if it still qualifies."""
    from picas.pool import tokens as pool

    make_states(pool_db)
    pilot = pool_db.copy()
    real = pool_db.bulk_save
    calls = []

    def racing_bulk_save(docs, **kwargs):
        if not calls:
            # Between our read and our write, error_0 is retried and locked by a pilot, while
            # error_1 only gets an annotation (still an error token: it must still be reset).
            who = tok.PilotIdentity("racer", hostname="racer-host")
            current = pilot.get("error_0")
            pilot.save(tok.claim(tok.reset(current, who, time.time(), "retry"), who, time.time(), 600))
            note = pilot.get("error_1")
            pilot.save(tok.note(note, who, time.time(), "looked at"))
        calls.append(len(docs))
        return real(docs, **kwargs)

    monkeypatch.setattr(pool_db, "bulk_save", racing_bulk_save)
    report = pool.reset_tokens(pool_db, view="error")
    assert report.changed == 2 and report.skipped == 1 and len(calls) == 2
    docs = all_tokens(pool_db)
    assert tok.state(docs["error_0"]) == "locked" and docs["error_0"]["pilot"] == "racer"
    assert tok.state(docs["error_1"]) == "todo" and docs["error_1"]["history"][-2]["event"] == "looked at"
    assert tok.state(docs["error_2"]) == "todo"


def test_delete_asks_and_deletes(env, pool_db):
    ids = make_states(pool_db)
    result = run(env, "delete", "--view", "done", input="n\n", code=1)
    assert "Delete 6 tokens" in result.output
    assert len(all_tokens(pool_db)) == 16
    assert "Would delete 6 tokens" in run(env, "delete", "--view", "done", "--dry-run").stdout
    run(env, "delete", "--view", "done", input="y\n")
    docs = all_tokens(pool_db)
    assert not set(ids["done"]) & set(docs) and len(docs) == 10
    assert "Deleted 2 tokens" in run(env, "delete", "--ids", "error_0", "--ids", "todo_1", "--yes").stdout
    assert "error_0" not in all_tokens(pool_db) and "todo_1" not in all_tokens(pool_db)
    run(env, "delete", "--ids", "error_0", "--yes", code=TokenNotFound.exit_code)
    run(env, "delete", "--ids", "_design/Monitor", "--yes", code=10)
    assert pool_db.get("_design/Monitor")


# --------------------------------------------------------------------------- errors


def test_error_classes_have_distinct_exit_codes(env, pool_db, tmp_path):
    codes = {}
    port = free_port()
    result = run({**env, "PICAS_HOST_URL": f"http://127.0.0.1:{port}"}, "status",
                 code=ServerUnavailable.exit_code)
    assert f"http://127.0.0.1:{port}" in result.stderr and result.stderr.count("\n") == 1
    codes["unreachable"] = result.exit_code

    result = run({**env, "PICAS_PASSWORD": "wrong"}, "status", code=Unauthorized.exit_code)
    assert "rejected user" in result.stderr
    codes["credentials"] = result.exit_code

    bad = tmp_path / "bad.yml"
    bad.write_text("profiles:\n  default:\n    url: [unclosed\n")
    result = run({**env, "PICAS_CONFIG": str(bad)}, "tokens", "list", code=ConfigError.exit_code)
    assert "bad.yml" in result.stderr and re.search(r"line \d|:\d", result.stderr)
    codes["config"] = result.exit_code

    result = run(env, "status", "--design-doc", "Nope", code=ViewNotFound.exit_code)
    assert "picas views create" in result.stderr
    result = run(env, "tokens", "list", "--view", "nonsense", code=ViewNotFound.exit_code)
    assert "nonsense" in result.stderr
    codes["unknown view"] = result.exit_code
    result = run({**env, "PICAS_DATABASE": env["PICAS_DATABASE"] + "_missing"}, "status",
                 code=DatabaseNotFound.exit_code)
    assert "does not exist" in result.stderr and "picas db create" in result.stderr
    codes["missing database"] = result.exit_code
    codes["unknown token"] = run(env, "tokens", "show", "no_such_token", code=TokenNotFound.exit_code).exit_code

    (tmp_path / "dup.json").write_text(json.dumps({"x": {"input": "1"}}))
    run(env, "push", str(tmp_path / "dup.json"))
    codes["duplicates"] = run(env, "push", str(tmp_path / "dup.json"), code=Conflict.exit_code).exit_code
    codes["invalid input"] = run(env, "push", "--param", "x=1..0:0", "--command", "{x}", code=10).exit_code
    assert len(set(codes.values())) == len(codes), codes
    assert 0 not in codes.values() and 1 not in codes.values()


def test_debug_shows_the_traceback(env, pool_db):
    result = CliRunner().invoke(main, ["--debug", "tokens", "show", "nope"], env=env)
    assert result.exit_code != 0 and isinstance(result.exception, TokenNotFound)


def test_every_command_has_help_with_an_example(env):
    for args in (["db"], ["db", "create"], ["db", "info"], ["db", "delete"], ["views"], ["views", "create"],
                 ["views", "list"], ["push"], ["status"], ["tokens"], ["tokens", "list"], ["tokens", "show"],
                 ["tokens", "logs"], ["reset"], ["delete"]):
        result = run(env, *args, "--help")
        assert "Example" in result.output, args


def test_shell_completion_knows_commands_and_views(env):
    def complete(words: str) -> list[str]:
        cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        result = CliRunner().invoke(main, [], prog_name="picas", env={
            **env, "_PICAS_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword})
        return [line.split(",", 1)[1] for line in result.output.splitlines()]

    assert {"db", "views", "push", "status", "tokens", "reset", "delete"} <= set(complete("picas "))
    assert complete("picas tokens list --view e") == ["error"]
    assert complete("picas reset --view l") == ["locked"]
