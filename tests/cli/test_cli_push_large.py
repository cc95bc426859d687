"""A large sweep pushed through ``picas push``: every token arrives exactly once, with its own input.

This was a test that ran ``benchmarks/push_100k.py`` and asserted its rates;
rates are the benchmark's to print (run it yourself, see its docstring), so
only what the push must do is checked here.  It runs on an in-memory server
of its own so that the other tests' shared server does not carry 20,000
extra documents.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from picas.core.client import CouchClient
from picas.server.local import LocalServer, find_binary, free_port

TOKENS = 20_000


@pytest.mark.slow
def test_a_large_sweep_arrives_whole_in_batches_with_progress(tmp_path):
    admin = ("admin", secrets.token_urlsafe(12))
    server = LocalServer(tmp_path / "server", port=free_port(), admin=admin, in_memory=True, binary=find_binary())
    server.start(wait=30)
    try:
        client = CouchClient(server.url, "large", username=admin[0], password=admin[1])
        client.create_db()
        env = {**os.environ, "PICAS_HOST_URL": server.url, "PICAS_DATABASE": "large", "PICAS_USERNAME": admin[0],
               "PICAS_PASSWORD": admin[1], "PICAS_CONFIG": str(tmp_path / "conf.yml")}
        done = subprocess.run([sys.executable, "-m", "picas", "push", "--param", f"i=1..{TOKENS}",
                               "--command", "echo {i}", "--batch-size", "1000"],
                              capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"Pushed {TOKENS:,} of {TOKENS:,} tokens" in done.stdout
        assert "Pushing" in done.stderr, "a progress bar on stderr, stdout left for the summary"
        assert client.db_info()["doc_count"] == TOKENS
        inputs = sorted(row.doc["input"] for row in client.all_docs(include_docs=True).rows)
        assert inputs == sorted(f"echo {i}" for i in range(1, TOKENS + 1)), "each value of the sweep exactly once"
        client.close()
    finally:
        server.stop()
