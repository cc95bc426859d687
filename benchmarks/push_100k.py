#!/usr/bin/env python3
"""Benchmark: push 100,000 tokens with ``picas push`` and compare with raw ``_bulk_docs``.

Why: a push of 10^5 tokens must be bounded by the server, not by picas.  So
the same run also creates the same number of equally shaped documents with
plain ``requests`` calls to ``_bulk_docs`` (same batch size), and reports the
ratio of the two rates; a ratio near 1 means picas adds little.

The picas side runs the real command (``picas push --param i=1..N --command
'echo {i}'``) in-process, progress bar on stderr included.  Each side gets a
fresh database, deleted afterwards unless ``--keep``.

Usage::

    python3 benchmarks/push_100k.py http://admin:secret@127.0.0.1:5984 [--tokens 100000] [--batch 1000]

Prints one JSON line on stdout.  Not run by the test suite.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.parse
import uuid

import requests

from picas.cli import main
from picas.cli.push_cmd import push_cmd
from picas.pool.push import new_token_id
from picas.core.token import new_token


def split_url(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without credentials, and the credentials it carried."""
    parts = urllib.parse.urlsplit(url)
    auth = None
    if parts.username:
        auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


def raw_bulk(session: requests.Session, base: str, tokens: int, batch: int) -> float:
    """Seconds to create ``tokens`` token-shaped documents with plain _bulk_docs requests."""
    started = time.perf_counter()
    for start in range(0, tokens, batch):
        docs = [new_token(f"echo {i}", new_token_id(), parameters={"i": i})
                for i in range(start + 1, min(start + batch, tokens) + 1)]
        response = session.post(f"{base}/_bulk_docs", data=json.dumps({"docs": docs}),
                                headers={"Content-Type": "application/json"}, timeout=300)
        response.raise_for_status()
        if any("error" in item for item in response.json()):
            raise SystemExit("raw _bulk_docs reported per-document errors")
    return time.perf_counter() - started


def picas_push(url: str, auth: tuple[str, str] | None, db: str, tokens: int, batch: int) -> float:
    """Seconds for ``picas push`` of a sweep of ``tokens`` tokens, as a user would run it."""
    if "push" not in main.commands:
        main.add_command(push_cmd)
    os.environ.update({"PICAS_HOST_URL": url, "PICAS_DATABASE": db})
    if auth:
        os.environ.update({"PICAS_USERNAME": auth[0], "PICAS_PASSWORD": auth[1]})
    args = ["push", "--param", f"i=1..{tokens}", "--command", "echo {i}", "--batch-size", str(batch)]
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the benchmark's JSON line
            main.main(args, prog_name="picas", standalone_mode=False)
    except SystemExit as exc:  # PicasGroup exits on errors
        if exc.code:
            raise
    return time.perf_counter() - started


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="server URL, credentials embedded (http://user:pw@host:port)")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the two databases")
    args = parser.parse_args()

    url, auth = split_url(args.url)
    session = requests.Session()
    session.auth = auth
    tag = uuid.uuid4().hex[:8]
    raw_db, picas_db = f"bench_raw_{tag}", f"bench_picas_{tag}"
    for db in (raw_db, picas_db):
        session.put(f"{url}/{db}", timeout=60).raise_for_status()
    try:
        raw_seconds = raw_bulk(session, f"{url}/{raw_db}", args.tokens, args.batch)
        picas_seconds = picas_push(url, auth, picas_db, args.tokens, args.batch)
        counts = {db: session.get(f"{url}/{db}", timeout=60).json()["doc_count"] for db in (raw_db, picas_db)}
    finally:
        if not args.keep:
            for db in (raw_db, picas_db):
                session.delete(f"{url}/{db}", timeout=60)
    if counts[picas_db] != args.tokens or counts[raw_db] != args.tokens:
        raise SystemExit(f"expected {args.tokens} documents in each database, found {counts}")
    raw_rate = args.tokens / raw_seconds
    picas_rate = args.tokens / picas_seconds
    print(json.dumps({
        "benchmark": "push_100k", "server": url, "tokens": args.tokens, "batch": args.batch,
        "picas_seconds": round(picas_seconds, 2), "picas_tokens_per_s": round(picas_rate, 1),
        "raw_bulk_docs_seconds": round(raw_seconds, 2), "raw_bulk_docs_tokens_per_s": round(raw_rate, 1),
        "ratio_picas_to_raw": round(picas_rate / raw_rate, 3),
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main_())
