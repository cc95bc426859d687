"""A 100,000-token push, run through the benchmark script on a server of its own.

Slow (about 35 s: the benchmark also times raw ``_bulk_docs`` for comparison),
so it is marked ``slow``; deselect it with ``-m 'not slow'``.  It runs on a
separate in-memory server so that 200,000 documents never weigh on the
session server the other tests share.
"""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from picas.server.local import LocalServer, find_binary, free_port

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "push_100k.py"


@pytest.mark.slow
def test_push_100k_through_the_benchmark(tmp_path):
    server = LocalServer(tmp_path / "server", port=free_port(), admin=("admin", secrets.token_urlsafe(12)),
                         in_memory=True, binary=find_binary())
    server.start(wait=30)
    try:
        done = subprocess.run([sys.executable, str(SCRIPT), server.admin_url], capture_output=True, text=True,
                              timeout=900)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["tokens"] == 100_000 and figures["picas_tokens_per_s"] > 0
    assert figures["ratio_picas_to_raw"] > 0.5  # picas adds little to what the server itself costs
    assert "Pushing" in done.stderr and "Pushed 100,000 of 100,000" in done.stderr
