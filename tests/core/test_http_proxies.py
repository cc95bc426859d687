"""Proxies from the environment: http, https (TLS to the proxy), CONNECT tunnels, SOCKS, IPv6 literals.

No proxy server can be installed here, so small stand-ins play them, each
on 127.0.0.1: a forward proxy that records what it is asked and answers
itself (``HTTPStandIn``), a CONNECT proxy that tunnels to the real test
server's TLS terminator (``TunnelProxy``), and a SOCKS5 proxy that relays
to the real test server (``Socks5Proxy``).  Everything behind the tunnels
and the SOCKS proxy is the real CouchDB API.
"""
from __future__ import annotations

import base64
import socket
import ssl
import sys

import pytest

from picas.core.client import CouchClient
from picas.core.http import Transport, TransportError
from picas.errors import ConfigError
from tests.core import test_tls, test_transport
from tests.core.test_tls import CERT, KEY
from tests.core.test_transport import HTTPStandIn, clear_proxy_environment, parse_head, read_head, splice
from tests.helpers import StandInServer

stand_in, tls_url = test_transport.stand_in, test_tls.tls_url  # the fixtures, shared


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    return context


@pytest.fixture
def proxy_env(monkeypatch):
    """Set one proxy variable on a clean proxy environment."""
    clear_proxy_environment(monkeypatch)

    def set_proxy(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
    return set_proxy


class TunnelProxy(StandInServer):
    """A stand-in CONNECT proxy: records each CONNECT, then tunnels to ``upstream_port`` on 127.0.0.1.

    Whatever host the client names, the tunnel ends at the upstream port (the
    real server's TLS terminator).  With ``refuse`` it answers 407 instead,
    as a proxy that wants credentials does; with ``tls`` clients reach it over
    TLS (an https:// proxy).
    """

    def __init__(self, upstream_port: int = 0, refuse: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.upstream_port = upstream_port
        self.refuse = refuse
        self.tls = tls
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            got = read_head(conn)
            if got is None:
                conn.close()
                return
            line, headers = parse_head(got[0])
            self.seen.append((line, headers))
            if self.refuse or not line.startswith("CONNECT "):
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                conn.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        except OSError:
            conn.close()
            return
        splice(conn, upstream)


def recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("SOCKS client went away")
        data += chunk
    return data


class Socks5Proxy(StandInServer):
    """A stand-in SOCKS5 proxy (RFC 1928, no authentication, CONNECT only) relaying to ``upstream_port``.

    It records the address each client asked for: an IP address when the
    client resolved the name itself (``socks5://``), the name when the proxy
    is to resolve it (``socks5h://``).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.targets: list[tuple[str, int]] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        try:
            version, count = recv_exact(conn, 2)
            methods = recv_exact(conn, count)
            assert version == 5 and 0 in methods
            conn.sendall(b"\x05\x00")
            _, command, _, kind = recv_exact(conn, 4)
            assert command == 1, "CONNECT"
            if kind == 1:
                host = socket.inet_ntop(socket.AF_INET, recv_exact(conn, 4))
            elif kind == 4:
                host = socket.inet_ntop(socket.AF_INET6, recv_exact(conn, 16))
            else:
                host = recv_exact(conn, recv_exact(conn, 1)[0]).decode()
            port = int.from_bytes(recv_exact(conn, 2), "big")
            self.targets.append((host, port))
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
        except (OSError, AssertionError):
            conn.close()
            return
        splice(conn, upstream)


# ---------------------------------------------------------------------- http:// and https:// proxies

def test_an_http_proxy_gets_the_absolute_url_and_its_credentials(stand_in, proxy_env):
    proxy = stand_in(HTTPStandIn())
    proxy_env("http_proxy", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    transport = Transport("http://couch.example.org:5984/prefix")
    assert transport.request("GET", "/db", query="limit=1").json() == {"ok": True}
    seen = proxy.requests[0]
    assert seen.line == "GET http://couch.example.org:5984/prefix/db?limit=1 HTTP/1.1"
    assert seen.headers["host"] == "couch.example.org:5984"
    assert seen.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    transport.request("GET", "/db")
    assert proxy.accepted == 1, "the connection to the proxy is kept alive"


def test_an_ipv6_literal_keeps_its_brackets_behind_a_proxy(stand_in, proxy_env):
    proxy = stand_in(HTTPStandIn())
    proxy_env("http_proxy", f"http://127.0.0.1:{proxy.port}")
    transport = Transport("http://[::1]:5984")
    transport.request("GET", "/db/doc")
    assert proxy.requests[0].line == "GET http://[::1]:5984/db/doc HTTP/1.1"
    assert proxy.requests[0].headers["host"] == "[::1]:5984"


def test_an_ipv6_literal_keeps_its_brackets_in_a_connect(stand_in, proxy_env):
    proxy = stand_in(TunnelProxy(refuse=True))
    proxy_env("https_proxy", f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(TransportError):
        Transport("https://[2001:db8::7]:6984").request("GET", "/")
    line, headers = proxy.seen[0]
    assert line.split()[:2] == ["CONNECT", "[2001:db8::7]:6984"]
    assert headers.get("host", "[2001:db8::7]:6984") == "[2001:db8::7]:6984"  # sent by Python 3.12 and later


def test_https_through_a_connect_tunnel_reaches_the_real_server(stand_in, proxy_env, tls_url,
                                                                couch_server, db_name):
    terminator_port = int(tls_url.rsplit(":", 1)[1])
    proxy = stand_in(TunnelProxy(terminator_port))
    proxy_env("https_proxy", f"http://127.0.0.1:{proxy.port}")
    user, password = couch_server.admin
    client = CouchClient(tls_url, db_name, username=user, password=password, verify=str(CERT))
    saved = client.save({"_id": "tunnelled", "value": 1})
    assert client.get("tunnelled") == saved
    assert [line.split()[:2] for line, _ in proxy.seen] == [["CONNECT", f"127.0.0.1:{terminator_port}"]]


def test_a_refused_tunnel_was_never_sent(stand_in, proxy_env):
    proxy = stand_in(TunnelProxy(refuse=True))
    proxy_env("https_proxy", f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(TransportError) as caught:
        Transport("https://127.0.0.1:6984", verify=str(CERT)).request("PUT", "/db/doc", body=b"{}")
    assert caught.value.sent is False, "the proxy refused before any byte of the request went out"
    assert "407" in str(caught.value)


def test_an_https_proxy_is_spoken_to_over_tls(stand_in, proxy_env):
    proxy = stand_in(HTTPStandIn(tls=server_context()))
    proxy_env("http_proxy", f"https://127.0.0.1:{proxy.port}")
    transport = Transport("http://couch.example.org:5984", verify=str(CERT))
    assert transport.request("GET", "/db").json() == {"ok": True}
    assert proxy.requests[0].line == "GET http://couch.example.org:5984/db HTTP/1.1"


def test_https_through_an_https_proxy_reaches_the_real_server(stand_in, proxy_env, tls_url, couch_server,
                                                              db_name):
    terminator_port = int(tls_url.rsplit(":", 1)[1])
    proxy = stand_in(TunnelProxy(terminator_port, tls=server_context()))
    proxy_env("https_proxy", f"https://127.0.0.1:{proxy.port}")
    user, password = couch_server.admin
    client = CouchClient(tls_url, db_name, username=user, password=password, verify=str(CERT))
    assert client.db_info()["db_name"] == db_name, "TLS to the server inside TLS to the proxy"
    assert proxy.seen[0][0].split()[:2] == ["CONNECT", f"127.0.0.1:{terminator_port}"]


# ---------------------------------------------------------------------- SOCKS

@pytest.mark.parametrize("scheme, expected_host", [("socks5h", "couch.example.org"), ("socks5", "127.0.0.1")])
def test_a_socks5_proxy_from_all_proxy_reaches_the_real_server(scheme, expected_host, stand_in, proxy_env,
                                                               couch_server, db_name, monkeypatch):
    proxy = stand_in(Socks5Proxy(couch_server.server.port))
    proxy_env("all_proxy", f"{scheme}://127.0.0.1:{proxy.port}")
    if scheme == "socks5":
        # socks5:// resolves the name here; make couch.example.org resolve to loopback for this test.
        real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: real(
            "127.0.0.1" if host == "couch.example.org" else host, *args, **kwargs))
    user, password = couch_server.admin
    client = CouchClient("http://couch.example.org:5984", db_name, username=user, password=password)
    saved = client.save({"_id": "via-socks", "value": 1})
    assert client.get("via-socks") == saved
    assert proxy.targets == [(expected_host, 5984)], "one connection, kept alive"


def test_a_socks_proxy_without_pysocks_is_one_clear_error(proxy_env, monkeypatch):
    proxy_env("all_proxy", "socks5://127.0.0.1:1080")
    monkeypatch.setitem(sys.modules, "socks", None)  # as if PySocks were not installed
    monkeypatch.delitem(sys.modules, "urllib3.contrib.socks", raising=False)
    with pytest.raises(ConfigError) as caught:
        CouchClient("http://couch.example.org:5984", "db")
    assert "SOCKS" in str(caught.value) and "pip install 'picas[socks]'" in str(caught.value)


def test_an_unknown_proxy_scheme_is_one_clear_error(proxy_env):
    proxy_env("http_proxy", "ftp://proxy.example.org:21")
    with pytest.raises(ConfigError) as caught:
        CouchClient("http://couch.example.org:5984", "db")
    assert "ftp://proxy.example.org:21" in str(caught.value)
