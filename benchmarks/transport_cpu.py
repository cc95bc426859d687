#!/usr/bin/env python3
"""Client CPU per GET of one document: picas' transport against its old one and the libraries below them.

usage: transport_cpu.py [--gets N] [--rounds R] [--old-rev REV] [--instructions]

One fresh in-memory pouchdb-server on loopback holds one token-sized
document; each client GETs it over one kept-alive connection.  Per client
and round: N GETs after a warm-up, the CPU this process spent
(``time.process_time``: the client only, the server is another process),
the wall time, and the server's CPU over the same GETs.  The clients take
turns round by round, so a change in the machine's load touches them all;
the figure is the median over the rounds.

Clients: ``http.client`` (the standard library, no pooling logic),
``urllib3.HTTPConnectionPool``, ``picas.core.http.Transport`` (this
checkout), the old ``http.client`` transport of picas (``picas/transport.py``
at ``--old-rev``, read from git; skipped if the commit is not there) and a
``requests.Session`` (skipped if requests is not installed).

CPU seconds swell when other processes compete for the cores.  With
``--instructions`` each client also runs in a process of its own under
``valgrind --tool=callgrind``, once with G and once with 5G GETs, and the
difference gives the instructions one GET costs: a count that the machine's
load does not change.
"""
from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, ServerURL, client_for, emit, fresh_server, log  # noqa: E402

import urllib3  # noqa: E402

from picas.core import token as tok  # noqa: E402
from picas.core.http import Transport  # noqa: E402

HEADERS = {"Accept": "application/json"}


def _old_transport(rev: str):
    """The module picas/transport.py of an old commit, loaded from git; None if git does not have it."""
    done = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:picas/transport.py"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        log(f"old transport skipped: {done.stderr.strip()}")
        return None
    path = Path(tempfile.mkdtemp(prefix="picas-old-transport-")) / "old_transport.py"
    path.write_text(done.stdout)
    spec = importlib.util.spec_from_file_location("old_transport", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LABELS = {
    "http.client": "http.client",
    "urllib3": "urllib3.HTTPConnectionPool",
    "picas": "picas Transport (urllib3, this checkout)",
    "picas-old": "picas Transport (http.client, {rev})",
    "requests": "requests.Session",
}


def clients(url: str, path: str, old_rev: str, only: str | None = None) -> dict[str, Callable[[], bytes]]:
    """One GET function per client (keys of LABELS), each holding its own kept-alive connection."""
    parts = urllib.parse.urlsplit(url)
    made: dict[str, Callable[[], bytes]] = {}
    wanted = set(LABELS) if only is None else {only}

    if "http.client" in wanted:
        conn = http.client.HTTPConnection(parts.hostname, parts.port)

        def stdlib() -> bytes:
            try:
                conn.request("GET", path, headers=HEADERS)
                return conn.getresponse().read()
            except (http.client.RemoteDisconnected, ConnectionError):  # the server closed it while others ran
                conn.close()
                conn.request("GET", path, headers=HEADERS)
                return conn.getresponse().read()
        made["http.client"] = stdlib

    if "urllib3" in wanted:
        pool = urllib3.HTTPConnectionPool(parts.hostname, parts.port, maxsize=1, retries=False)
        made["urllib3"] = lambda: pool.urlopen("GET", path, headers=HEADERS).data

    if "picas" in wanted:
        transport = Transport(url, environment_proxy=False)
        made["picas"] = lambda: transport.request("GET", path, headers=HEADERS).content

    old = _old_transport(old_rev) if "picas-old" in wanted else None
    if old is not None:
        old_transport = old.Transport(url, environment_proxy=False)
        made["picas-old"] = lambda: old_transport.request("GET", path, headers=HEADERS).content

    if "requests" in wanted:
        try:
            import requests
        except ImportError:
            log("requests not installed: its row is skipped")
        else:
            session = requests.Session()
            session.trust_env = False
            made["requests"] = lambda: session.get(url + path, headers=HEADERS).content
    return made


def instructions_per_get(key: str, url: str, path: str, gets: int, old_rev: str) -> float | None:
    """Instructions one GET costs this client: callgrind's count at 5G GETs minus that at G, over 4G."""
    counts = []
    for number in (gets, 5 * gets):
        done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                               sys.executable, __file__, "--one", key, "--url", url, "--path", path,
                               "--gets", str(number), "--old-rev", old_rev],
                              capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not found:
            log(f"callgrind of {key} failed: {done.stderr.strip()[-300:]}")
            return None
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (4 * gets)


def measure(gets: int, rounds: int, old_rev: str, instructions: bool = False) -> dict:
    with fresh_server() as url:
        client = client_for(url, "transport_cpu")
        client.create_db()
        doc = client.save(tok.new_token("echo hello", "token_0123456789abcdef"))
        path = f"/transport_cpu/{doc['_id']}"
        made = clients(url, path, old_rev)
        samples: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": [], "server": []} for name in made}
        for get in made.values():  # warm-up: connections open, code paths hot
            for _ in range(300):
                get()
        for number in range(rounds):
            log(f"round {number + 1}/{rounds}")
            for name, get in made.items():
                for _ in range(50):  # untimed: a connection the server closed while the others ran is renewed here
                    get()
                server_before = url.cpu_seconds() if isinstance(url, ServerURL) else None
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(gets):
                    get()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                samples[name]["cpu"].append(cpu / gets * 1000)
                samples[name]["wall"].append(wall / gets * 1000)
                if server_before is not None:
                    samples[name]["server"].append((url.cpu_seconds() - server_before) / gets * 1000)
        counted: dict[str, float | None] = {}
        if instructions:  # after the timed rounds, so that valgrind's own CPU does not load them
            log("counting instructions under callgrind")
            counted = {key: instructions_per_get(key, url, path, 50, old_rev) for key in made}
    rows = []
    for name, got in samples.items():
        rows.append({"client": LABELS[name].format(rev=old_rev),
                     "client_cpu_ms_per_get": round(statistics.median(got["cpu"]), 4),
                     "wall_ms_per_get": round(statistics.median(got["wall"]), 4),
                     "server_cpu_ms_per_get": round(statistics.median(got["server"]), 4) if got["server"] else None,
                     "client_cpu_ms_per_round": [round(v, 4) for v in got["cpu"]]})
        if instructions:
            rows[-1]["instructions_per_get"] = round(counted[name]) if counted.get(name) else None
    return {"figure": "transport_cpu", "gets_per_round": gets, "rounds": rounds, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=2000, help="GETs per client and round [2000]")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median counts [5]")
    parser.add_argument("--old-rev", default="f42f7f0", help="commit of the old http.client transport [f42f7f0]")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per GET under valgrind (callgrind)")
    parser.add_argument("--one", choices=sorted(LABELS), help=argparse.SUPPRESS)  # a callgrind child
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        get = clients(args.url, args.path, args.old_rev, only=args.one)[args.one]
        for _ in range(args.gets + 20):
            get()
        return 0
    record = measure(args.gets, args.rounds, args.old_rev, args.instructions)
    emit(record)
    print(f"\n{'client':45} {'client CPU ms/GET':>18} {'wall ms/GET':>12} {'server CPU ms/GET':>18} "
          f"{'instructions/GET':>17}")
    for row in record["rows"]:
        server, counted = row["server_cpu_ms_per_get"], row.get("instructions_per_get")
        print(f"{row['client']:45} {row['client_cpu_ms_per_get']:18.3f} {row['wall_ms_per_get']:12.3f} "
              f"{server if server is None else format(server, '.3f'):>18} {counted or '-':>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
