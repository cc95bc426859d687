"""Keep-alive goes on working when the process holds more than 1,024 open files.

``select.select`` cannot watch a file descriptor of 1,024 or more; a check
of idle connections built on it failed there, and every request opened a
new connection.  The client here talks to the real test server through a
stand-in relay (``CountingRelay``) that only counts the connections opened
through it.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from picas.core.client import CouchClient
from tests.core import test_transport
from tests.core.test_transport import CountingRelay
from tests.helpers import client_for, overview, pilot_env, push

no_proxies = test_transport.no_proxies  # the fixture, shared

OPEN_FILES = 1100


@pytest.fixture
def many_open_files():
    """1,100 open files in this process, so that every new socket gets a descriptor above 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES + 200
    if soft < wanted:
        assert hard == resource.RLIM_INFINITY or hard >= wanted, f"the hard limit of open files is {hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    files = [os.open(os.devnull, os.O_RDONLY) for _ in range(OPEN_FILES)]
    try:
        assert max(files) >= 1024
        yield files
    finally:
        for fd in files:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def relay(couch_server):
    server = CountingRelay(couch_server.server.port)
    yield server
    server.close()


def test_a_client_with_many_open_files_reuses_one_connection(many_open_files, relay, couch_server, db_name,
                                                             no_proxies):
    user, password = couch_server.admin
    client = CouchClient(f"http://127.0.0.1:{relay.port}", db_name, username=user, password=password)
    for number in range(30):
        doc = client.save({"_id": f"doc{number}", "value": number})
        assert client.get(doc["_id"])["value"] == number
    assert client.stats["requests"] == 60
    assert relay.accepted == 1, f"60 requests took {relay.accepted} connections"


#: A pilot process that first opens 1,100 files, so that all its sockets get descriptors above 1,024.
PILOT_WITH_OPEN_FILES = f"""
import os, runpy, socket, sys
held = [os.open(os.devnull, os.O_RDONLY) for _ in range({OPEN_FILES})]
probe = socket.socket()
assert probe.fileno() >= 1024, probe.fileno()
probe.close()
sys.argv = ["picas", "run"]
runpy.run_module("picas", run_name="__main__", alter_sys=True)
"""


def test_a_pilot_with_many_open_files_keeps_its_connections(relay, couch_server, db_name, no_proxies):
    client = client_for(couch_server, db_name)
    tokens = 40
    push(client, ["true"] * tokens)
    env = pilot_env(couch_server, db_name, PICAS_HOST_URL=f"http://127.0.0.1:{relay.port}")
    pilot = subprocess.run([sys.executable, "-c", PILOT_WITH_OPEN_FILES], env=env, capture_output=True, text=True,
                           timeout=120)
    assert pilot.returncode == 0, pilot.stderr
    assert overview(client) == {"done": tokens}
    # Each of the pilot's clients (the command's, the pilot loop's, the lease keeper's) keeps one
    # connection; without keep-alive every claim and every result would open one of its own.
    assert relay.accepted <= 3, f"{tokens} tokens took {relay.accepted} connections"
