"""The HTTP transport: keep-alive reuse, servers that close idle connections, "was it sent?", cookies.

The CouchDB behaviour of the client is tested against the real server
elsewhere.  The cases here are about the network, which pouchdb-server
cannot play: small socket servers stand in for a server that misbehaves,
a proxy or a relay, and each says exactly what it does.  They live here
and the other ``test_http_*`` modules import them.
"""
from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Callable

import pytest

from picas.server.local import free_port
from picas.core.http import Transport, TransportError, _environment_proxy
from tests.helpers import StandInServer, wait_for


# ---------------------------------------------------------------------- stand-ins

@dataclass
class SeenRequest:
    line: str
    headers: dict[str, str]
    body: bytes


def read_head(conn: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes] | None:
    """Read up to the blank line that ends an HTTP head; None if the peer closed first."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


Answer = Callable[[SeenRequest], "tuple[int, dict[str, str], bytes]"]


def ok_answer(request: SeenRequest) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"ok":true}'


class HTTPStandIn(StandInServer):
    """A stand-in HTTP/1.1 server: answers every request of a kept-alive connection with ``answer``.

    It records each request and counts the connections it accepted, which
    is how the tests see whether the client reused one.  With ``tls`` it
    speaks TLS with the test certificate (as an https proxy would).
    """

    def __init__(self, answer: Answer = ok_answer, tls: ssl.SSLContext | None = None,
                 close_after_each: bool = False) -> None:
        self.answer = answer
        self.tls = tls
        self.close_after_each = close_after_each
        self.accepted = 0
        self.closed = 0
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._serve_connection(conn)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.closed += 1

    def _serve_connection(self, conn: socket.socket) -> None:
        rest = b""
        while True:
            got = read_head(conn, rest)
            if got is None:
                return
            head, rest = got
            line, headers = parse_head(head)
            length = int(headers.get("content-length", 0))
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                rest += chunk
            request = SeenRequest(line, headers, rest[:length])
            rest = rest[length:]
            with self._lock:
                self.requests.append(request)
            status, extra, body = self.answer(request)
            head_lines = [f"HTTP/1.1 {status} Stand-in", f"Content-Length: {len(body)}"]
            head_lines += [f"{name}: {value}" for name, value in extra.items()]
            conn.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1") + body)
            if self.close_after_each:
                return  # what a server does to an idle keep-alive connection, here at once


def pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until either side closes, then close both."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.close()
            except OSError:
                pass


def splice(one: socket.socket, other: socket.socket) -> None:
    threading.Thread(target=pump, args=(other, one), daemon=True).start()
    pump(one, other)


class CountingRelay(StandInServer):
    """A stand-in TCP relay to a real server that counts the connections clients open through it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.accepted = 0
        self._lock = threading.Lock()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
        splice(conn, socket.create_connection(("127.0.0.1", self.upstream_port)))


def clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def no_proxies(monkeypatch):
    clear_proxy_environment(monkeypatch)


@pytest.fixture
def stand_in():
    servers: list[StandInServer] = []

    def start(server: StandInServer) -> StandInServer:
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


# ---------------------------------------------------------------------- keep-alive

def test_requests_reuse_one_kept_alive_connection(stand_in, no_proxies):
    server = stand_in(HTTPStandIn())
    transport = Transport(f"http://127.0.0.1:{server.port}/prefix")
    for number in range(20):
        assert transport.request("GET", f"/db/{number}", query="limit=1").json() == {"ok": True}
    assert server.accepted == 1
    assert server.requests[0].line == "GET /prefix/db/0?limit=1 HTTP/1.1"
    assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"


def test_a_connection_the_server_closed_is_not_reused(stand_in, no_proxies):
    server = stand_in(HTTPStandIn(close_after_each=True))
    transport = Transport(f"http://127.0.0.1:{server.port}")
    assert transport.request("GET", "/").json() == {"ok": True}
    wait_for(lambda: server.closed == 1, what="the server to close the first connection")
    # Sent on the closed socket, the second request would fail after leaving, which the
    # client would have to treat as a lost answer; the pool checks the socket first.
    assert transport.request("PUT", "/again", body=b"{}").json() == {"ok": True}
    assert server.accepted == 2


def test_cookies_the_server_sets_are_sent_back(stand_in, no_proxies):
    def answer(request: SeenRequest):
        return 200, {"Set-Cookie": "AuthSession=abc; Path=/; HttpOnly"}, b"{}"
    server = stand_in(HTTPStandIn(answer))
    transport = Transport(f"http://127.0.0.1:{server.port}")
    transport.request("POST", "/_session", body=b"{}")
    transport.request("GET", "/db")
    assert transport.cookies == {"AuthSession": "abc"}
    assert "cookie" not in server.requests[0].headers
    assert server.requests[1].headers["cookie"] == "AuthSession=abc"


# ---------------------------------------------------------------------- was the request sent?

def test_a_refused_connection_was_never_sent(no_proxies):
    transport = Transport(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransportError) as caught:
        transport.request("PUT", "/db/doc", body=b"{}")
    assert caught.value.sent is False, "nothing reached a server, so a write may be sent again blindly"
    assert not caught.value.timed_out and not caught.value.tls
    assert "refused" in str(caught.value).lower()


def test_an_answer_that_never_comes_may_have_been_sent(no_proxies):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        transport = Transport(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        with pytest.raises(TransportError) as caught:
            transport.request("PUT", "/db/doc", body=b"{}")
        assert caught.value.sent and caught.value.timed_out
    finally:
        listener.close()


class ReadThenHangUp(StandInServer):
    """Reads a request and closes the connection without answering: the answer is lost."""

    def handle(self, conn: socket.socket) -> None:
        with conn:
            read_head(conn)


def test_a_connection_that_breaks_after_the_request_may_have_been_sent(stand_in, no_proxies):
    server = stand_in(ReadThenHangUp())
    transport = Transport(f"http://127.0.0.1:{server.port}", timeout=5)
    with pytest.raises(TransportError) as caught:
        transport.request("PUT", "/db/doc", body=b"{}")
    assert caught.value.sent is True, "the server read the request: the write may have happened"
    assert not caught.value.timed_out


# ---------------------------------------------------------------------- proxy environment

def test_no_proxy_and_the_opt_out_are_respected(monkeypatch):
    clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("https_proxy", "http://user:pw@proxy.example.org:3128")
    monkeypatch.setenv("no_proxy", "localhost,.internal.org,::1")
    assert _environment_proxy("https", "couch.example.org") == "http://user:pw@proxy.example.org:3128"
    assert _environment_proxy("https", "db.internal.org") is None
    assert _environment_proxy("https", "localhost") is None
    assert _environment_proxy("https", "::1") is None
    assert Transport("https://couch.example.org", environment_proxy=False).proxy is None
    assert Transport("https://couch.example.org").proxy == "http://proxy.example.org:3128", \
        "the proxy is used, and its password never shows"


def test_all_proxy_serves_every_scheme(monkeypatch):
    clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("all_proxy", "proxy.example.org:3128")
    assert _environment_proxy("http", "couch.example.org") == "http://proxy.example.org:3128"
    assert _environment_proxy("https", "couch.example.org") == "http://proxy.example.org:3128"
