"""The live dashboard: the report page served on 127.0.0.1, redrawn as the pool changes.

``picas dashboard`` serves two things, both read-only:

* ``/`` the report page (:mod:`picas.report.page`), told to poll ``data.json``;
* ``/data.json`` the report data (:func:`picas.report.build.build`), made
  again when the pool changed and the last one is older than the refresh
  interval; the page redraws when its ``meta.generated`` moves.

The pool is read once in full and then followed through the changes feed
(:class:`picas.report.collect.Mirror`): an idle pool costs one small request
per interval, a busy one only the documents that changed.  With a design
document or view the dashboard reads that view again whenever the
database's update sequence moved.

It listens on 127.0.0.1 only, answers GET and HEAD only, and talks to the
server with the caller's own credentials: it can show no more than the
caller could read with ``picas tokens``.
"""
from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from picas.core.client import CouchClient
from picas.report.build import build
from picas.report.collect import Mirror, Pool, fetch_log_tails, read_pool
from picas.report.failures import failed_ids
from picas.report.page import render

__all__ = ["Dashboard", "serve"]

LOG_TAILS = 50


class Dashboard:
    """The report data of one pool, kept fresh; thread-safe (one refresh at a time)."""

    def __init__(self, client: CouchClient, *, design: str | None = None, view: str | None = None,
                 since: Callable[[float], float | None] = lambda now: None, title: str = "", interval: float = 5.0,
                 log_tails: int = LOG_TAILS, source: str = "", scope: str = "",
                 clock: Callable[[], float] = time.time,
                 progress: Callable[[int, int | None], None] | None = None) -> None:
        self.client = client
        self.design, self.view = design, view
        self.since, self.title, self.interval = since, title, interval
        self.log_tails, self.source, self.scope = log_tails, source, scope
        self.clock = clock
        self.progress = progress  # for the first, full read only
        self.mirror = Mirror(client) if design is None and view is None else None
        self._seq: object = None
        self._pool = Pool()
        self._tails: dict[str, str] = {}
        self._data: dict | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _changed(self) -> bool:
        progress, self.progress = self.progress, None
        if self.mirror is not None:
            return self.mirror.refresh(progress)
        seq = self.client.db_info().get("update_seq")
        if seq == self._seq:
            return False
        self._pool = read_pool(self.client, design=self.design, view=self.view, progress=progress)
        self._seq = seq
        return True

    def data(self) -> dict:
        """The current report data; read again when the pool changed and the interval has passed."""
        with self._lock:
            now = self.clock()
            if self._data is not None and now - self._checked < self.interval:
                return self._data
            self._checked = now
            if not self._changed() and self._data is not None:
                return self._data
            pool = self.mirror.pool() if self.mirror is not None else self._pool
            wanted = [i for i in failed_ids(pool.tokens, self.log_tails) if i not in self._tails]
            self._tails.update(fetch_log_tails(self.client, pool.tokens, wanted))
            now = self.clock()
            self._data = build(pool.tokens, pool.pilots, now=now, since=self.since(now), title=self.title,
                               source=self.source, scope=self.scope, log_tails=self._tails, tries_of=pool.tries_of)
            return self._data

    def page(self) -> str:
        return render(self.data(), live={"url": "data.json", "interval": self.interval})


def _handler(dashboard: Dashboard, log: Callable[[str], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "picas-dashboard"

        def _send(self, status: int, body: bytes, content_type: str, head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _answer(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(200, dashboard.page().encode(), "text/html; charset=utf-8", head)
                elif path == "/data.json":
                    body = json.dumps(dashboard.data(), separators=(",", ":")).encode()
                    self._send(200, body, "application/json", head)
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8", head)
            except Exception as exc:  # noqa: BLE001 - one bad refresh must not stop the dashboard
                log(f"picas dashboard: error: {exc}")
                self._send(503, f"the pool could not be read: {exc}\n".encode(), "text/plain; charset=utf-8", head)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._answer(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(head=True)

        def _refuse(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"the dashboard is read-only\n", "text/plain; charset=utf-8")

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server API
            pass

    return Handler


def serve(dashboard: Dashboard, port: int = 8050, stop: threading.Event | None = None,
          ready: Callable[[str], None] | None = None, log: Callable[[str], None] = print) -> None:
    """Serve ``dashboard`` on 127.0.0.1:``port`` (0: any free port) until ``stop`` is set."""
    stop = stop or threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(dashboard, log))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        if ready:
            ready(f"http://127.0.0.1:{server.server_address[1]}/")
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
