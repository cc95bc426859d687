#!/usr/bin/env python3
"""What one request of each kind costs the server: the facts the claimer's choices rest on.

usage: server_costs.py [--tokens 2000] [--repeat 300]

One client sends the same kind of request again and again to a fresh
in-memory pouchdb-server, and the server's own CPU time (user + system, read
from /proc) is divided by the number of requests.  A single sequential client
keeps the server's time per request free of other clients' work; under load
the server is somewhat cheaper per request, so these are upper bounds.

Kinds: ``GET /``; GET and PUT of a token; a rejected PUT (409); ``_all_docs``
windows of 25 and 1,000 rows with bodies; a token's two writes (claim, then
result) as two PUTs against one ``_bulk_docs`` that carries the claim with
the previous token's result, as a pilot sends them; a window of the ``todo``
view read as it stands; and bringing the ``todo`` index up to date after N
tokens changed, per changed token.  ``picas/core/scanner.py`` quotes these figures.
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, fresh_server, log, make_pool, warm_views  # noqa: E402

from picas.core import token as tok  # noqa: E402


def _per_request(url, count: int, send: Callable[[int], object]) -> dict:
    """Server CPU and wall time per request over ``count`` requests, after a few unmeasured ones."""
    for i in range(5):
        send(i)
    cpu, started = url.cpu_seconds(), time.perf_counter()
    for i in range(5, 5 + count):
        send(i)
    wall = time.perf_counter() - started
    return {"server_cpu_ms": round((url.cpu_seconds() - cpu) * 1000 / count, 3),
            "wall_ms": round(wall * 1000 / count, 3), "requests": count}


def measure(tokens: int = 2000, repeat: int = 300) -> dict:
    """Every kind of request, each on the same fresh pool of ``tokens`` tokens."""
    rows = []
    who = tok.PilotIdentity("server-costs")
    with fresh_server() as url:
        client, _ = make_pool(url, f"bench_costs_{uuid.uuid4().hex[:6]}", tokens)
        warm_views(client, ["todo"])
        ids = sorted(row.id for row in client.all_docs().rows if row.id.startswith("token_"))
        repeat = min(repeat, len(ids) // 3 - 5)

        def one(kind: str, count: int, send: Callable[[int], object], per: int = 1) -> None:
            log(f"server costs: {kind}")
            row = {"kind": kind, **_per_request(url, count, send)}
            if per > 1:
                row["server_cpu_ms_per_item"] = round(row["server_cpu_ms"] / per, 4)
            rows.append(row)

        bodies: dict[int, dict] = {}
        one("GET /", repeat, lambda i: client.server_info())
        one("GET token", repeat, lambda i: bodies.__setitem__(i, client.get(ids[i])))
        one("PUT token (lock)", repeat, lambda i: client.save(tok.claim(bodies[i], who, time.time(), 600)))
        stale = {i: bodies[i] for i in bodies}
        one("PUT rejected (409)", repeat, lambda i: _rejected(client, stale[i]))
        one("_all_docs, 25 rows with bodies", repeat,
            lambda i: client.all_docs(startkey=ids[i], limit=25, include_docs=True))
        big = max(1, min(repeat // 10, 30))
        one("_all_docs, 1,000 rows with bodies", big,
            lambda i: client.all_docs(startkey=ids[i], limit=1000, include_docs=True), per=1000)
        # What a pilot writes per token: the claim and, later, the result.  Apart, that is two requests;
        # together (the result of the last token riding with the next claim), one of two documents.
        spare = ids[2 * repeat + 10:]
        apart = spare[:repeat]
        together = spare[repeat:2 * repeat]
        if len(together) == repeat:
            held: dict[str, dict] = {}

            def claim_then_result(i: int) -> None:
                locked = client.save(tok.claim(client.get(apart[i]), who, time.time(), 600))
                client.save(tok.finish(locked, who, time.time(), 0))

            def claim_with_result(i: int) -> None:
                docs = [tok.claim(client.get(together[i]), who, time.time(), 600)]
                if i > 0:
                    docs.append(tok.finish(held.pop(together[i - 1]), who, time.time(), 0))
                assert all(result.ok for result in client.bulk_save(docs))
                held[together[i]] = docs[0]

            before_read = url.cpu_seconds()
            for i in range(repeat):
                client.get(spare[i])  # the GETs both ways share, measured apart so they can be taken out
            get_ms = (url.cpu_seconds() - before_read) * 1000 / repeat
            one("per token: GET, claim PUT, result PUT", repeat - 5, claim_then_result)
            one("per token: GET, claim with the last result in one _bulk_docs", repeat - 5, claim_with_result)
            rows[-2]["server_cpu_ms_without_get"] = round(rows[-2]["server_cpu_ms"] - get_ms, 3)
            rows[-1]["server_cpu_ms_without_get"] = round(rows[-1]["server_cpu_ms"] - get_ms, 3)
        one("todo view as it stands, 25 rows with bodies", repeat,
            lambda i: client.view("Monitor", "todo", stale="ok", startkey=ids[i], limit=25, include_docs=True))
        # Every token written above changed since the index was last read: one fresh query indexes them all.
        changed = repeat + 5 + (2 * repeat if len(together) == repeat else 0)
        log(f"server costs: bringing the todo index up to date after {changed} changed tokens")
        cpu = url.cpu_seconds()
        client.view("Monitor", "todo", limit=1)
        rows.append({"kind": "todo index update, per changed token", "changed": changed,
                     "server_cpu_ms_per_item": round((url.cpu_seconds() - cpu) * 1000 / changed, 3)})
    return {"figure": "server_costs", "tokens": tokens, "rows": rows}


def _rejected(client, body: dict) -> None:
    """A write with a revision that is no longer current: the server answers 409."""
    from picas.errors import Conflict
    try:
        client.save(dict(body))
    except Conflict:
        return
    raise AssertionError(f"the write of {body['_id']} with an old revision was accepted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=300, help="requests of each kind")
    args = parser.parse_args()
    result = measure(args.tokens, args.repeat)
    emit(result)
    print(f"\n{'request':46s} {'server ms':>10s} {'per row/token':>14s}", file=sys.stderr)
    for row in result["rows"]:
        per = row.get("server_cpu_ms_per_item", "")
        print(f"{row['kind']:46s} {row.get('server_cpu_ms', ''):>10} {per:>14}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
