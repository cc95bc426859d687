"""The HTTP transport: keep-alive reuse, servers that close idle connections, proxies, refused connections.

The CouchDB behaviour of the client is tested against the real server
elsewhere.  The cases here are about the network and an HTTP proxy, which
pouchdb-server cannot play: a tiny socket server stands in for each, and
says exactly what it does.
"""
import socket

import pytest

from picas.server.local import free_port
from picas.core.http import Transport, TransportError, _environment_proxy
from tests.helpers import StandInServer, wait_for


class OneAnswerServer(StandInServer):
    """Answers each connection's first request with keep-alive promised, then closes it (as Node does when idle)."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = 0
        self.request_lines: list[str] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.connections += 1
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.request_lines.append(data.split(b"\r\n", 1)[0].decode())
            body = b'{"ok":true}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                         b"Set-Cookie: AuthSession=abc; Path=/; HttpOnly\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        # closing here is what a server does to an idle keep-alive connection
        self.closed += 1


@pytest.fixture
def one_answer_server():
    server = OneAnswerServer()
    yield server
    server.close()


def test_a_connection_the_server_closed_is_not_reused(one_answer_server, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    transport = Transport(f"http://127.0.0.1:{one_answer_server.port}")
    assert transport.request("GET", "/").json() == {"ok": True}
    wait_for(lambda: one_answer_server.closed == 1, what="the server to close the first connection")
    # Without the idle check the second request would go out on the closed socket and fail
    # after sending, which the client would have to treat as a lost answer.
    assert transport.request("GET", "/again").json() == {"ok": True}
    assert one_answer_server.connections == 2
    assert transport.cookies == {"AuthSession": "abc"}, "cookies the server sets are kept"


def test_an_http_proxy_from_the_environment_gets_the_absolute_url(one_answer_server, monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{one_answer_server.port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    transport = Transport("http://couch.example.org:5984/prefix")
    assert transport.request("GET", "/db", query="limit=1").json() == {"ok": True}
    assert one_answer_server.request_lines == ["GET http://couch.example.org:5984/prefix/db?limit=1 HTTP/1.1"]


def test_no_proxy_and_the_opt_out_are_respected(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://user:pw@proxy.example.org:3128")
    monkeypatch.setenv("no_proxy", "localhost,.internal.org")
    assert _environment_proxy("https", "couch.example.org").hostname == "proxy.example.org"
    assert _environment_proxy("https", "db.internal.org") is None
    assert _environment_proxy("https", "localhost") is None
    assert Transport("https://couch.example.org", environment_proxy=False).proxy is None
    assert Transport("https://couch.example.org")._proxy_auth.startswith("Basic ")


def test_a_refused_connection_was_never_sent():
    transport = Transport(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransportError) as caught:
        transport.request("PUT", "/db/doc", body=b"{}")
    assert caught.value.sent is False, "nothing reached a server, so a write may be sent again blindly"


def test_an_answer_that_never_comes_may_have_been_sent():
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
