#!/usr/bin/env python3
"""Make docs/report.png: a screenshot of the report of a pool that really ran.

A throw-away pouchdb-server (``picas server``'s LocalServer), real pilots
(``picas run -j 3`` with one retry), payloads that take 0.2-2 s, some that
fail, one pilot killed while it held a token (scrubbed later, so the pool
has a lost pilot and a scrub), then ``picas report`` and headless Chromium.

    python3 docs/make_report_screenshot.py [docs/report.png]

Takes about two minutes.  Needs pouchdb-server (``picas server install``),
plotly and Chromium, as the tests do.
"""
from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from picas.core import token as tok  # noqa: E402
from picas.core.client import CouchClient  # noqa: E402
from picas.server.local import LocalServer, find_binary, free_port  # noqa: E402
from tests.report.browser import Browser  # noqa: E402


def picas(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "picas", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.2)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "report.png")
    tmp = Path(tempfile.mkdtemp(prefix="picas-shot-"))
    admin = ("admin", secrets.token_urlsafe(12))
    server = LocalServer(tmp / "server", port=free_port(), admin=admin, in_memory=True, binary=find_binary())
    server.start(wait=30)
    try:
        env = {**os.environ, "PICAS_HOST_URL": server.url, "PICAS_DATABASE": "demo", "PICAS_USERNAME": admin[0],
               "PICAS_PASSWORD": admin[1], "PICAS_CONFIG": "/nonexistent/picas-demo.yml"}
        picas(env, "db", "create")
        picas(env, "views", "create")
        client = CouchClient(server.url, "demo", username=admin[0], password=admin[1])
        (tmp / "slow.yml").write_text("long-job: {input: 'sleep 3'}\n")
        picas(env, "push", str(tmp / "slow.yml"))
        doomed = subprocess.Popen([sys.executable, "-m", "picas", "run", "--heartbeat", "1", "--max-tasks", "1",
                                   "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: tok.state(client.get("long-job")) == "locked")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        rnd = random.Random(7)
        lines = []
        for i in range(150):
            roll = rnd.random()
            if roll < 0.06:
                lines.append("sleep 0.5; exit 3")
            elif roll < 0.09:
                lines.append("echo 'cannot open input.dat' >&2; exit 2")
            else:
                lines.append(f"sleep {rnd.uniform(0.2, 2.0):.2f}")
        (tmp / "work.txt").write_text("\n".join(lines) + "\n")
        picas(env, "push", str(tmp / "work.txt"))
        wait(lambda: client.get("long-job")["lease_until"] < time.time() - 1)
        picas(env, "scrub")
        picas(env, "run", "-j", "3", "--retries", "1", "-q", "--workdir", str(tmp / "w"))
        report = tmp / "report.html"
        picas(env, "report", "-o", str(report), "--title", "picas report: 151 tokens, 4 pilots")
        browser = Browser(width=1280, height=2400)
        try:
            browser.open(report.as_uri())
            browser.wait_for("document.body.dataset.ready")
            browser.screenshot(str(out))
        finally:
            browser.close()
        print(f"wrote {out}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
