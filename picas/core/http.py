"""HTTP/1.1 with keep-alive for the CouchDB client, on the standard library alone.

Why not ``requests``: a pilot of short tokens spends more CPU in its HTTP
client than in anything else it does, and on two cores that CPU is taken
from the server.  Measured here against pouchdb-server on loopback, a GET
of one document cost the client 0.84 ms of CPU through a ``requests``
session and 0.25 ms through ``http.client``; importing ``requests`` adds
about 0.09 s of CPU to the start of every pilot process.  The CouchDB API
needs little of what ``requests`` offers: one host, JSON bodies, basic or
cookie auth, TLS, and an optional proxy taken from the environment.

This module knows HTTP, not CouchDB: :class:`picas.core.client.CouchClient`
builds the requests and maps the answers onto the error tree.  What it
must tell the client precisely is whether a failed request may have
reached the server (:attr:`TransportError.sent`), because a write whose
answer was lost has to be resolved by re-reading, never by blind resending.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from typing import Any


class TransportError(Exception):
    """A request got no HTTP answer.

    ``sent`` is False only when the connection could not be made, so the
    server cannot have seen the request; ``timed_out`` tells a slow server
    from a broken connection; ``tls`` marks a failed certificate check.
    """

    def __init__(self, message: str, *, sent: bool, timed_out: bool = False, tls: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.timed_out = timed_out
        self.tls = tls


class Response:
    """A complete HTTP answer: status, headers (case-insensitive) and the whole body."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth (UTF-8, as CouchDB decodes it)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """System CAs (True), a CA bundle file or directory (a path), or no verification (False)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if urllib.parse.urlsplit(verify).scheme:
            raise ValueError(f"CA bundle must be a file path, not {verify!r}")
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


def _environment_proxy(scheme: str, host: str) -> urllib.parse.SplitResult | None:
    """The proxy the environment (http_proxy, https_proxy, no_proxy) sets for this host, if any."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return urllib.parse.urlsplit(proxy)


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket was closed by the server (readable while idle means EOF).

    Servers close idle connections (Node after 5 s); sending on such a socket
    would fail *after* the request left, which looks like a lost answer.
    Checking first costs one poll and spares the lost-write resolution.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Transport:
    """Keep-alive connections to one server; safe to share between threads.

    Each request takes an idle connection (or opens one) and gives it back
    when the answer is read completely, so threads never share a socket.
    """

    def __init__(self, url: str, *, verify: bool | str = True, timeout: float = 30.0, pool_size: int = 4,
                 environment_proxy: bool = True) -> None:
        parts = urllib.parse.urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.timeout = timeout
        self.pool_size = pool_size
        self._ssl = _ssl_context(verify) if self.scheme == "https" else None
        # Looked up once: reading the environment on every request costs more than a local request.
        self.proxy = _environment_proxy(self.scheme, self.host) if environment_proxy else None
        self._proxy_auth = None
        if self.proxy is not None and self.proxy.username:
            self._proxy_auth = basic_auth(urllib.parse.unquote(self.proxy.username),
                                          urllib.parse.unquote(self.proxy.password or ""))
        #: Cookies the server set (CouchDB's AuthSession), sent back with every request.
        self.cookies: dict[str, str] = {}
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connections
    def _new_connection(self) -> http.client.HTTPConnection:
        if self.proxy is None:
            if self._ssl is not None:
                return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._ssl)
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        proxy_host, proxy_port = self.proxy.hostname, self.proxy.port or 8080
        if self._ssl is None:
            return http.client.HTTPConnection(proxy_host, proxy_port, timeout=self.timeout)
        conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=self.timeout, context=self._ssl)
        tunnel_headers = {"Proxy-Authorization": self._proxy_auth} if self._proxy_auth else None
        conn.set_tunnel(self.host, self.port, headers=tunnel_headers)
        return conn

    def _take(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not _dropped(conn.sock):
                    return conn
                conn.close()
        return self._new_connection()

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ------------------------------------------------------------------ requests
    def request(self, method: str, path: str, *, query: str = "", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send one request and read the whole answer; raise :class:`TransportError` if none came."""
        target = self.base_path + path + (f"?{query}" if query else "")
        hdrs = dict(headers or {})
        if self.proxy is not None and self._ssl is None:
            target = f"http://{self.host}:{self.port}{target}"  # a plain-HTTP proxy takes the absolute URL
            if self._proxy_auth:
                hdrs["Proxy-Authorization"] = self._proxy_auth
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = self._take()
        if conn.sock is None:
            try:
                conn.connect()
            except ssl.SSLError as exc:
                conn.close()
                raise TransportError(f"TLS handshake failed: {exc}", sent=False, tls=True) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TransportError(f"cannot connect: {exc}", sent=False,
                                     timed_out=isinstance(exc, TimeoutError)) from exc
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn.request(method, target, body=body, headers=hdrs)
            answer = conn.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            # From here on the request may have reached the server, whatever broke.
            conn.close()
            raise TransportError(f"connection broke: {type(exc).__name__}: {exc}", sent=True,
                                 timed_out=isinstance(exc, TimeoutError)) from exc
        for cookie in answer.headers.get_all("Set-Cookie") or ():
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0].strip()
        if answer.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return Response(answer.status, answer.headers, content)
