"""The local server (pouchdb-server behind picas' guard) survives hostile and buggy requests.

Without the guard each of the first requests below kills pouchdb-server 4.2.0
(measured): an anonymous ``PUT /x`` once an admin exists, a non-admin's
``DELETE /picas``, ``_changes?filter=_selector``; an anonymous ``DELETE /_users``
leaves every later request hanging.  (The list comes from a sweep of 45 paths,
5 methods and 6 bodies as an anonymous client and as a non-admin member.)  Here a stream of them, from
anonymous clients and from a logged-in non-admin, hits a server while pilots
drain a pool: the server process is the same one at the end, the database
answers, nothing was lost, and every token ran exactly once.
"""
from __future__ import annotations

import threading

import pytest
import requests

from picas.core import token as tok
from tests.conftest import start_local_server
from tests.helpers import client_for, overview, pilot_env, push, side_effect_counts, start_pilot

DB = "picas"

#: (method, path, body) of requests that crash pouchdb-server, or have crashed servers like it.
HOSTILE = [
    ("PUT", "/x", None),
    ("PUT", f"/{DB}", None),
    ("DELETE", f"/{DB}", None),
    ("DELETE", f"/{DB}/", None),
    ("PUT", "/x%2Fy", None),
    ("GET", f"/{DB}/_changes?filter=_selector", None),
    ("POST", f"/{DB}/_changes?filter=_selector", {"selector": {"type": "token"}}),
    ("GET", f"/{DB}/_changes?filter=_design/_selector&since=0", None),
    ("GET", f"/{DB}/_changes?filter=nope/nothing", None),
    ("GET", f"/{DB}/_changes?filter=_view&view=nope/nothing", None),
    ("POST", f"/{DB}/_bulk_docs", "not json"),
    ("POST", f"/{DB}/_bulk_docs", {"docs": "not a list"}),
    ("PUT", f"/{DB}/_security", {"members": {"names": []}}),
    ("POST", f"/{DB}/_find", {"selector": "not an object"}),
    ("GET", f"/{DB}/_all_docs?keys=notjson", None),
    ("POST", "/_replicate", {"source": DB, "target": "elsewhere", "create_target": True}),
    ("PUT", "/_config/admins/mallory", "secret"),
    ("DELETE", "/_users", None),       # not a crash, but every later request hung
    ("PUT", "/_session", None),        # left unanswered
    ("POST", "/_session", "name=&password="),
]


@pytest.fixture
def guarded(tmp_path):
    handle = start_local_server(tmp_path / "server", in_memory=False)
    try:
        yield handle
    finally:
        handle.server.stop()


def _setup(handle) -> tuple:
    admin = handle.admin
    url = handle.url
    assert requests.put(f"{url}/{DB}", auth=admin, timeout=30).status_code == 201
    assert requests.put(f"{url}/_users/org.couchdb.user:bob", auth=admin, timeout=30,
                        json={"name": "bob", "password": "bobpw", "roles": [], "type": "user"}).ok
    security = {"admins": {"names": [admin[0]], "roles": []}, "members": {"names": [admin[0], "bob"], "roles": []}}
    assert requests.put(f"{url}/{DB}/_security", json=security, auth=admin, timeout=30).ok
    return url, admin


def _send(url: str, method: str, path: str, body, auth) -> int | None:
    kwargs = {"json": body} if isinstance(body, (dict, list)) else {"data": body}
    try:
        return requests.request(method, url + path, auth=auth, timeout=10, **kwargs).status_code
    except requests.RequestException:
        return None


def test_each_crashing_request_is_refused_and_the_server_goes_on(guarded):
    url, admin = _setup(guarded)
    pid = guarded.server.pid
    answers = {}
    for auth in (None, ("bob", "bobpw"), ("bob", "wrong")):
        for method, path, body in HOSTILE:
            answers[(str(auth and ":".join(auth)), method, path)] = _send(url, method, path, body, auth)
            assert requests.get(url, timeout=10).ok, f"the server died on {method} {path} as {auth}"
    assert guarded.server.pid == pid, "it never went down"
    assert answers[("None", "PUT", "/x")] == 401
    assert answers[("bob:bobpw", "DELETE", f"/{DB}")] == 403
    assert answers[("bob:bobpw", "GET", f"/{DB}/_changes?filter=_selector")] == 400
    assert all(code is not None for code in answers.values()), "every request got an answer"
    assert requests.get(f"{url}/_all_dbs", auth=admin, timeout=10).json().count(DB) == 1
    # An admin may still create and delete databases.
    assert requests.put(f"{url}/scratch", auth=admin, timeout=10).status_code == 201
    assert requests.delete(f"{url}/scratch", auth=admin, timeout=10).status_code == 200


def test_pilots_drain_a_pool_through_a_stream_of_hostile_requests(guarded, tmp_path):
    url, admin = _setup(guarded)
    pid = guarded.server.pid
    client = client_for(guarded, DB)
    sink = tmp_path / "executions.txt"
    ids = push(client, [f"echo $PICAS_TOKEN_ID >> {sink}"] * 150)
    stop = threading.Event()
    sent = []

    def attack(auth) -> None:
        while not stop.is_set():
            for method, path, body in HOSTILE:
                sent.append(_send(url, method, path, body, auth))

    attackers = [threading.Thread(target=attack, args=(auth,), daemon=True) for auth in (None, ("bob", "bobpw"))]
    for thread in attackers:
        thread.start()
    env = pilot_env(guarded, DB)
    pilots = [start_pilot(guarded, DB, "-q", "--heartbeat", "5", env=env) for _ in range(3)]
    outputs = [pilot.communicate(timeout=300) for pilot in pilots]
    stop.set()
    for thread in attackers:
        thread.join(timeout=30)
    for pilot, (out, err) in zip(pilots, outputs):
        assert pilot.returncode == 0, err
    assert len(sent) > len(HOSTILE), "the stream ran while the pilots worked"
    assert guarded.server.pid == pid, "the server never went down"
    counts = side_effect_counts(sink)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert overview(client) == {"done": 150}
    assert all(tok.state(client.get(t)) == "done" for t in ids[:5])
