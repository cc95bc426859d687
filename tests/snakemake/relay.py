"""A logging HTTP relay in front of the real test server: it forwards every request and records its line.

The status-cost test points Snakemake (only Snakemake) at the relay and
counts what the executor asked for: view queries, bulk writes, single-token
reads.  It forwards bodies and answers unchanged, one upstream connection per
client connection, so keep-alive behaves as without it.
"""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class LoggingRelay:
    """``LoggingRelay(port).url`` forwards to 127.0.0.1:port; ``requests`` holds (method, path, query)."""

    def __init__(self, upstream_port: int) -> None:
        self.requests: list[tuple[str, str, str]] = []
        lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                parts = urlsplit(self.path)
                with lock:
                    relay.requests.append((self.command, unquote(parts.path), parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if not hasattr(self, "upstream"):
                    self.upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                answer = self.upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_COPY = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def matching(self, method: str, contains: str) -> list[tuple[str, str, str]]:
        return [r for r in list(self.requests) if r[0] == method and contains in r[1]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
