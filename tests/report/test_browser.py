"""The report and the dashboard in a real headless Chromium, on a pool that really ran.

The pool: real pilots (``picas run``) on the real pouchdb-server fixture, with
payloads that fail (retried once, then in error), one that writes to stderr,
and a token whose pilot was killed (SIGKILL) while holding it, so that its
lease ran out and ``picas scrub`` gave it to another pilot.

Chromium runs with every host name resolving to nothing and a dead proxy, and
records every request the page makes: the page must make none but its own
file (and, on the dashboard, ``data.json`` from 127.0.0.1).
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from picas.core import token as tok
from picas.report import page as report_page
from tests.conftest import ADMIN_USER
from tests.helpers import client_for, pilot_env, start_pilot, wait_for
from tests.report.browser import Browser, chromium_binary, png_colours

PLOTS = ("progress", "throughput", "concurrency", "timeline", "runtime", "waittime", "exitcodes", "hosts",
         "pilotends", "busy")
#: What every plot shows once drawn: plotly's SVG, and marks (bars, lines) with a size.
DRAWN = """Array.from(document.querySelectorAll('[data-plot]')).map(function (d) {
  var marks = Array.from(d.querySelectorAll('.cartesianlayer .trace path')).filter(function (p) {
    var b = p.getBBox(); return b.width > 0 || b.height > 0; });
  return [d.dataset.plot, d.querySelectorAll('.main-svg').length, marks.length, d.getBoundingClientRect().height];
})"""
READY = "document.body && (document.body.dataset.error ? 'error: ' + document.body.dataset.error : " \
        "document.body.dataset.ready)"
#: Attributes and CSS that make a browser fetch something.
LOADS = re.compile(r"""(?:\b(?:src|href|srcset|poster|data|action|formaction|background)\s*=\s*["']?\s*"""
                   r"""|url\(\s*["']?|@import\s+["']?)(?:https?:)?//""", re.IGNORECASE)


def picas(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "picas", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def ran_pool(couch_server, tmp_path_factory):
    """A database that real pilots drained, with failures, retries and a scrub; and its report."""
    chromium_binary()  # skip (or fail in CI) before spending half a minute on the pool
    name = f"test_report_{uuid.uuid4().hex[:10]}"
    auth = couch_server.admin
    assert requests.put(f"{couch_server.url}/{name}", auth=auth, timeout=30).status_code in (201, 202)
    security = {"admins": {"names": [ADMIN_USER], "roles": []}, "members": {"names": [ADMIN_USER], "roles": []}}
    assert requests.put(f"{couch_server.url}/{name}/_security", json=security, auth=auth, timeout=30).ok
    tmp = tmp_path_factory.mktemp("report")
    env = pilot_env(couch_server, name)
    client = client_for(couch_server, name)
    try:
        # 1. A pilot takes a slow token and is killed: its lease (5 heartbeats of 1 s) runs out.
        (tmp / "slow.yml").write_text("slow-token: {input: 'sleep 2'}\n")
        assert picas(env, "push", str(tmp / "slow.yml")).returncode == 0
        doomed = start_pilot(couch_server, name, "--heartbeat", "1", "--max-tasks", "1",
                             "--workdir", str(tmp / "w"))
        wait_for(lambda: tok.state(client.get("slow-token")) == "locked", what="the slow token to be claimed")
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate(timeout=30)
        killed = time.time()
        wait_for(lambda: client.get("slow-token")["lease_until"] < time.time() - 1, timeout=30,
                 what="the dead pilot's lease to run out")
        scrub = picas(env, "scrub")
        assert scrub.returncode == 0, scrub.stderr
        assert tok.state(client.get("slow-token")) == "todo"
        # 2. Work with failures: exit 3 fails twice (one retry), one writes its reason to stderr.
        lines = ["sleep 0.2"] * 12 + ["exit 3"] * 3 + ["echo 'cannot open input.dat' >&2; exit 2"]
        (tmp / "work.txt").write_text("\n".join(lines) + "\n")
        assert picas(env, "push", str(tmp / "work.txt")).returncode == 0
        run = picas(env, "run", "-j", "2", "--retries", "1", "--workdir", str(tmp / "w"), "-q", timeout=300)
        assert run.returncode == 0, run.stderr
        # The killed pilot wrote no end record; silent for more than two leases (2 x 5 s), it counts as lost.
        time.sleep(max(0.0, killed + 11 - time.time()))
        report = tmp / "report.html"
        made = picas(env, "report", "-o", str(report), "--title", "A pool that ran")
        assert made.returncode == 0, made.stderr
        yield {"client": client, "env": env, "report": report, "stderr": made.stderr, "tmp": tmp}
    finally:
        requests.delete(f"{couch_server.url}/{name}", auth=auth, timeout=30)


@pytest.fixture
def browser():
    chrome = Browser()
    try:
        yield chrome
    finally:
        chrome.close()


def check_drawn(chrome: Browser) -> None:
    plots = {name: (svgs, marks, height) for name, svgs, marks, height in chrome.evaluate(DRAWN)}
    assert sorted(plots) == sorted(PLOTS)
    for name, (svgs, marks, height) in plots.items():
        assert svgs >= 1 and height > 100, f"plot {name} was not drawn: {plots[name]}"
        assert marks >= 1, f"plot {name} has no visible bars or lines: {plots[name]}"


def test_the_report_of_a_pool_that_ran_draws_every_plot_offline(ran_pool, browser):
    report = ran_pool["report"]
    assert "reading the pool" in ran_pool["stderr"] and "wrote" in ran_pool["stderr"]
    browser.open(report.as_uri())
    assert browser.wait_for(READY) == "1"
    assert browser.errors == []
    check_drawn(browser)
    text = browser.evaluate("document.body.innerText")
    assert "A pool that ran" in text
    # The failures the pool really had: the retried exit 3s, the stderr message with its log tail, the scrub.
    data = json.loads(browser.evaluate("document.getElementById('picas-data').textContent"))
    fail = data["failures"]
    assert data["counts"] == {"todo": 0, "locked": 0, "done": 13, "error": 4}
    assert fail["by_exit_code"] == {"3": 6, "2": 2} and fail["retried"] == 4
    assert fail["scrub_events"] == 1 and fail["scrubbed_tokens"] == 1
    # Three pilot records: the killed one (lost) and the two of 'picas run -j 2' (the pool ran dry).
    assert data["pilots"]["ends"] == {"no work": 2, "lost": 1} and data["pilots"]["with_record"] == 3
    assert len(data["notes"]) == 1 and data["notes"][0].startswith("1 of the 4 failed tokens show the end of their log")
    tails = [row["log_tail"] for row in fail["rows"] if row["exit_code"] == "2"]
    assert tails == ["cannot open input.dat"]
    assert browser.evaluate("document.querySelectorAll('#failed tr[id^=\"token-\"]').length") == 4
    assert "cannot open input.dat" in browser.evaluate("document.getElementById('failed').innerHTML")
    # Nothing came from anywhere but the file itself.
    local = ("file:", "data:", "blob:", "about:")
    assert browser.requests and all(url.startswith(local) for url in browser.requests), browser.requests
    shot = browser.screenshot(str(ran_pool["tmp"] / "report.png"), scale=0.5)
    assert png_colours(shot) > 20, "the screenshot is blank"


class Outside(HTMLParser):
    """Every place in the markup that names another host: URL attributes, and url()/@import in styles.

    Script bodies are not markup: the inlined plotly.js holds URL strings (map
    tile servers, attribution links) that this report never uses; whether
    anything is really fetched is what the browser's request log tells.
    """

    URL_ATTRS = {"src", "href", "srcset", "data", "poster", "action", "formaction", "background", "xlink:href",
                 "manifest", "ping"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts: list[dict] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        self._in_style = tag == "style"
        for name, value in attrs.items():
            if name in self.URL_ATTRS and value and re.match(r"\s*(?:[a-z]+:)?//", value, re.I):
                self.found.append(f"<{tag} {name}={value}>")
            if name == "style" and value and LOADS.search(value):
                self.found.append(f"<{tag} style={value}>")

    def handle_data(self, data):
        if self._in_style and LOADS.search(data):
            self.found.append(f"<style> {LOADS.search(data).group(0)}")

    def handle_endtag(self, tag):
        self._in_style = False


def outside_loads(page: str) -> list[str]:
    parser = Outside()
    parser.feed(page)
    return parser.found + [f"<script src={a['src']}>" for a in parser.scripts if a.get("src")]


def test_the_report_html_names_no_other_host_to_load_from(ran_pool):
    page = ran_pool["report"].read_text()
    assert outside_loads(page) == []
    # Our own script and style name no URL at all (the library is checked by the browser test above).
    static = Path(report_page.__file__).parent / "static"
    for name in ("report.js", "report.css", "body.html"):
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", (static / name).read_text(), re.I), name
    # The check is not blind: outside images, scripts, styles and fonts are each caught.
    for bad in ('<img src="https://example.org/x.png">', '<script src="//cdn.example.org/p.js"></script>',
                '<link rel="stylesheet" href="http://example.org/s.css">',
                '<style>@font-face { src: url("https://fonts.example.org/f.woff2"); }</style>'):
        assert outside_loads(page.replace("<main>", "<main>" + bad)), bad


def test_a_page_that_loads_from_another_host_is_caught_and_blocked(ran_pool, browser):
    """The control: the browser check sees an outside request, and the network is closed to it."""
    bad = ran_pool["tmp"] / "bad.html"
    bad.write_text('<html><body><img src="https://cdn.example.org/x.png"><script>'
                   'fetch("https://api.example.org/y").catch(function () {});</script></body></html>')
    browser.open(bad.as_uri())
    wait_for(lambda: sum("example.org" in url for url in browser.requests) >= 2, timeout=30,
             what="the outside requests to be recorded")
    loaded = browser.evaluate("document.images[0].complete && document.images[0].naturalWidth")
    assert not loaded


def test_the_dashboard_answers_and_refreshes_after_tokens_change(ran_pool, browser, tmp_path):
    env = ran_pool["env"]
    proc = subprocess.Popen([sys.executable, "-m", "picas", "dashboard", "--port", "0", "--refresh", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line, f"the dashboard exited: {proc.wait(5)} {proc.stdout.read()}"
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert page.startswith("<!DOCTYPE html>") and '"url":"data.json"' in page
        before = json.load(urllib.request.urlopen(url + "data.json", timeout=30))
        assert before["counts"]["done"] == 13
        refused = requests.post(url + "data.json", timeout=30)
        assert refused.status_code == 405  # read-only
        browser.open(url)
        assert browser.wait_for(READY) == "1"
        check_drawn(browser)
        # New work arrives: the page redraws by itself with the new counts.
        (tmp_path / "more.txt").write_text("true\ntrue\ntrue\n")
        assert picas(env, "push", str(tmp_path / "more.txt")).returncode == 0
        browser.wait_for("document.body.dataset.ready === '2'", timeout=30)
        cards = browser.evaluate("document.querySelector('.card.todo .n').textContent")
        assert cards == "3"
        after = json.load(urllib.request.urlopen(url + "data.json", timeout=30))
        assert after["counts"]["todo"] == 3 and after["meta"]["generated"] > before["meta"]["generated"]
        assert browser.errors == []
        hosts = {re.match(r"^[a-z]+:(?://([^/]*))?", u).group(1) for u in browser.requests}
        assert hosts <= {url.split("/")[2]}, browser.requests
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "dashboard stopped" in err


def test_report_without_plotly_says_what_to_install(ran_pool, tmp_path):
    env = {**ran_pool["env"], "PICAS_PLOTLY_JS": str(tmp_path / "missing.js")}
    result = picas(env, "report", "-o", str(tmp_path / "r.html"))
    assert result.returncode == 20 and not (tmp_path / "r.html").exists()
    assert result.stderr.startswith("picas: error: ") and "pip install 'picas[report]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
