"""HTTP/1.1 with keep-alive for the CouchDB client, on urllib3.

urllib3 is the connection layer ``requests`` itself stands on: pooled
keep-alive connections that are checked for a server-side close with
``poll`` (so they keep working when the process holds 1,024 or more open
files), TLS with a CA file or a hashed CA directory, ``http``, ``https``
and (with PySocks) ``socks`` proxies, and IPv6 literals.  ``requests`` on
top of it would cost a pilot of short tokens about three times the client
CPU per request (see ``benchmarks/transport_cpu.py``), for features the
CouchDB API does not need.

This module knows HTTP, not CouchDB: :class:`picas.core.client.CouchClient`
builds the requests and maps the answers onto the error tree.  What it
must tell the client precisely is whether a failed request may have
reached the server (:attr:`TransportError.sent`), because a write whose
answer was lost has to be resolved by re-reading, never by blind resending.
urllib3 signals that only through the type of its exceptions, which differs
between its versions, so the connections used here record it themselves.

Redirects are never followed: a CouchDB client that re-sent a write to
another address, or silently moved its password from ``http`` to
``https``, would hide a wrong URL.  A redirect is reported as one
:class:`~picas.errors.ConfigError` that names the address to use instead.
"""
from __future__ import annotations

import base64
import functools
import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
import urllib.request
import warnings
from typing import Any, Mapping

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (ConnectTimeoutError, InsecureRequestWarning, NewConnectionError,
                                ReadTimeoutError)
from urllib3.util.ssl_ import create_urllib3_context

from picas import __version__
from picas.errors import ConfigError

#: Status codes that send the client elsewhere (304 Not Modified is an answer, not a redirect).
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SOCKS_SCHEMES = ("socks5", "socks5h", "socks4", "socks4a")
_USER_AGENT = f"picas/{__version__}"


class TransportError(Exception):
    """A request got no HTTP answer.

    ``sent`` is False only when no byte of the request left this process
    (no connection, a failed TLS handshake, a proxy that refused the
    tunnel), so the server cannot have seen it; ``timed_out`` tells a slow
    server from a broken connection; ``tls`` marks a failed TLS handshake,
    most often a certificate that does not verify.
    """

    def __init__(self, message: str, *, sent: bool, timed_out: bool = False, tls: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.timed_out = timed_out
        self.tls = tls


class Response:
    """A complete HTTP answer: status, headers (case-insensitive) and the whole body."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
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


# ---------------------------------------------------------------------- "was the request sent?"

#: Per thread: whether the request being sent by this thread has begun to leave.  A thread sends
#: one request at a time, and urllib3 runs the whole request in the calling thread.
_progress = threading.local()


class _SentTracking:
    """Mixin for urllib3's connection classes: connect first, then record that the request is leaving.

    Connecting (TCP, a proxy's CONNECT tunnel, SOCKS, the TLS handshake)
    sends nothing of the request, so a failure up to that point lets the
    client send a write again blindly; from the first byte on it may not.
    """

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is None:  # type: ignore[attr-defined]
            self.connect()  # type: ignore[attr-defined]
        _progress.sent = True
        return super().request(*args, **kwargs)  # type: ignore[misc]


@functools.lru_cache(maxsize=None)
def _tracked(pool_class: type) -> type:
    """A subclass of a urllib3 pool class whose connections record when a request starts to leave."""
    connection_class = type(f"Tracked{pool_class.ConnectionCls.__name__}",
                            (_SentTracking, pool_class.ConnectionCls), {})
    return type(f"Tracked{pool_class.__name__}", (pool_class,), {"ConnectionCls": connection_class})


_POOL_CLASSES = {"http": _tracked(HTTPConnectionPool), "https": _tracked(HTTPSConnectionPool)}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and every exception it wraps (urllib3 nests them in args and attributes)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 20:
        item = todo.pop(0)
        if item in found:
            continue
        found.append(item)
        inner = [item.__cause__, item.__context__, getattr(item, "reason", None),
                 getattr(item, "original_error", None), *item.args]
        todo.extend(e for e in inner if isinstance(e, BaseException))
    return found


def _failure(exc: BaseException, sent: bool) -> TransportError:
    chain = _chain(exc)
    timed_out = any(isinstance(e, (ReadTimeoutError, socket.timeout, TimeoutError))
                    or isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError)
                    for e in chain)
    tls = not sent and any(isinstance(e, (ssl.SSLError, ssl.CertificateError, urllib3.exceptions.SSLError))
                           for e in chain)
    # The innermost operating-system error says it best ("[Errno 111] Connection refused").
    causes = [e for e in chain if isinstance(e, (OSError, http.client.HTTPException))
              and not isinstance(e, urllib3.exceptions.HTTPError)]
    detail = str(causes[-1]) if causes and str(causes[-1]) else str(exc)
    if tls:
        return TransportError(f"TLS handshake failed: {detail}", sent=False, tls=True)
    if not sent:
        return TransportError(f"cannot connect: {detail}", sent=False, timed_out=timed_out)
    what = type(causes[-1] if causes else exc).__name__
    return TransportError(f"connection broke: {what}: {detail}", sent=True, timed_out=timed_out)


# ---------------------------------------------------------------------- TLS and proxies

def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """System CAs (True), a CA bundle file or a hashed CA directory (a path), or no verification (False).

    A directory is what grid sites keep their CAs in (``/etc/grid-security/certificates``):
    one PEM file per CA named by its subject hash, looked up when a certificate is checked.
    The context is urllib3's own, so that each urllib3 version checks host names its way.
    """
    if verify is False:
        return create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if isinstance(verify, str):
        if urllib.parse.urlsplit(verify).scheme:
            raise ValueError(f"CA bundle must be a file or directory path, not {verify!r}")
        path = os.path.expanduser(verify)
        if os.path.isdir(path):
            context.load_verify_locations(capath=path)
        else:
            context.load_verify_locations(cafile=path)
    else:
        context.load_default_certs()
    return context


def _environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy URL the environment (http_proxy, https_proxy, all_proxy, no_proxy) sets for this host, if any."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    names = [host, f"[{host}]"] if ":" in host else [host]  # no_proxy may write an IPv6 literal either way
    if any(urllib.request.proxy_bypass_environment(name, proxies) for name in names):
        return None
    return proxy if "://" in proxy else "http://" + proxy


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _proxy_manager(proxy: str, **pool_kw: Any) -> urllib3.PoolManager:
    """A urllib3 manager that sends everything through ``proxy`` (http, https or socks)."""
    parts = urllib.parse.urlsplit(proxy)
    scheme = parts.scheme.lower()
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password or "") if parts.username else None
    shown = _without_credentials(proxy)
    if scheme in ("http", "https"):
        headers = {"Proxy-Authorization": basic_auth(username, password or "")} if username else None
        manager: urllib3.PoolManager = urllib3.ProxyManager(shown, proxy_headers=headers,
                                                            proxy_ssl_context=pool_kw.get("ssl_context"),
                                                            **pool_kw)
        manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager
    if scheme in _SOCKS_SCHEMES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # urllib3 warns before it raises the ImportError
                from urllib3.contrib.socks import (SOCKSHTTPConnectionPool, SOCKSHTTPSConnectionPool,
                                                   SOCKSProxyManager)
        except ImportError:
            raise ConfigError(f"the proxy {shown} set in the environment is a SOCKS proxy, which needs PySocks",
                              hint="install it with: pip install 'picas[socks]'") from None
        manager = SOCKSProxyManager(shown, username=username, password=password, **pool_kw)
        manager.pool_classes_by_scheme = {"http": _tracked(SOCKSHTTPConnectionPool),
                                          "https": _tracked(SOCKSHTTPSConnectionPool)}
        return manager
    raise ConfigError(f"the proxy {shown} set in the environment has the unknown scheme '{parts.scheme}'",
                      hint="use an http://, https:// or socks5:// proxy, or add the server to no_proxy")


# ---------------------------------------------------------------------- the transport

class Transport:
    """Keep-alive connections to one server; safe to share between threads.

    Each request takes an idle connection from the pool (or opens one) and
    gives it back when the answer is read completely, so threads never share
    a socket.  At most ``pool_size`` idle connections are kept; more threads
    than that still get connections of their own, closed after use.
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
        #: Where requests go, IPv6 literals in brackets: ``http://[::1]:5984``.
        self.origin = f"{self.scheme}://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"
        if self.scheme not in _POOL_CLASSES:
            raise ValueError(f"not an http(s) URL: {url!r}")
        # Looked up once: reading the environment on every request costs more than a local request.
        proxy = _environment_proxy(self.scheme, self.host) if environment_proxy else None
        #: The proxy in use (without its credentials), or None.
        self.proxy = _without_credentials(proxy) if proxy else None
        pool_kw: dict[str, Any] = {"maxsize": pool_size, "block": False, "retries": False,
                                   "timeout": urllib3.Timeout(connect=timeout, read=timeout)}
        if self.scheme == "https" or (proxy or "").lower().startswith("https:"):
            # Built once: loading the system CAs costs milliseconds, too much for every connection.
            # The same verification applies to the server and to an https proxy.
            context = _ssl_context(verify)
            pool_kw["ssl_context"] = context
            if context.verify_mode == ssl.CERT_NONE:
                # The user chose --insecure; urllib3 would repeat a warning about it on every request.
                warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        self._manager: urllib3.PoolManager | None = None
        self._pool: HTTPConnectionPool | None = None
        if proxy is not None:
            self._manager = _proxy_manager(proxy, **pool_kw)
        else:
            self._pool = _POOL_CLASSES[self.scheme](self.host, self.port, **pool_kw)
        self._cookies: dict[str, str] = {}
        self._cookie_header: str | None = None
        self._cookie_lock = threading.Lock()

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies the server set (CouchDB's AuthSession), sent back with every request; a copy."""
        with self._cookie_lock:
            return dict(self._cookies)

    def _keep_cookies(self, values: list[str]) -> None:
        with self._cookie_lock:
            for cookie in values:
                name, _, rest = cookie.partition("=")
                self._cookies[name.strip()] = rest.split(";", 1)[0].strip()
            # One string, replaced whole: a thread that reads it meanwhile gets the old one or the new one.
            self._cookie_header = "; ".join(f"{k}={v}" for k, v in self._cookies.items())

    def close(self) -> None:
        if self._manager is not None:
            self._manager.clear()
        if self._pool is not None:
            self._pool.close()

    def request(self, method: str, path: str, *, query: str = "", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send one request and read the whole answer; raise :class:`TransportError` if none came.

        A redirect raises :class:`~picas.errors.ConfigError` (see the module docstring).
        """
        target = self.base_path + path + (f"?{query}" if query else "")
        hdrs = {"User-Agent": _USER_AGENT}
        hdrs.update(headers or {})
        cookie = self._cookie_header
        if cookie:
            hdrs["Cookie"] = cookie
        _progress.sent = False
        try:
            if self._pool is not None:
                answer = self._pool.urlopen(method, target, body=body, headers=hdrs, redirect=False)
            else:
                answer = self._manager.urlopen(method, self.origin + target, body=body,  # type: ignore[union-attr]
                                               headers=hdrs, redirect=False)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            raise _failure(exc, sent=_progress.sent) from exc
        set_cookies = answer.headers.getlist("Set-Cookie")
        if set_cookies:
            self._keep_cookies(set_cookies)
        if answer.status in _REDIRECTS:
            raise self._redirected(method, target, answer.status, answer.headers.get("Location", ""))
        return Response(answer.status, answer.headers, answer.data)

    def _redirected(self, method: str, target: str, status: int, location: str) -> ConfigError:
        """One line that says where the server sends us, and which URL to configure instead."""
        where = urllib.parse.urljoin(self.origin + target, location) if location else "another address"
        suggestion = where
        suffix = target[len(self.base_path):].split("?", 1)[0]
        if location and suffix and where.split("?", 1)[0].endswith(suffix):
            suggestion = where.split("?", 1)[0][:-len(suffix)] or where  # the base URL the redirect implies
        return ConfigError(f"{self.origin}{self.base_path} redirects {method} {target.split('?', 1)[0]} "
                           f"to {where} (HTTP {status}); picas does not follow redirects",
                           hint=f"use {suggestion.rstrip('/')} as the server URL (--url, PICAS_HOST_URL "
                                f"or 'picas init')")
