"""How requests reach a CouchDB server: retries, lost answers, several nodes, sessions, errors.

:class:`Session` wraps one :class:`picas.core.http.Transport` (keep-alive
connections) per node and maps HTTP failures onto the :mod:`picas.errors`
tree; :class:`picas.core.client.CouchClient` builds the CouchDB API on it.
It retries what is safe to retry:

* connection errors, timeouts and 5xx answers are retried with bounded
  exponential backoff and jitter;
* a write whose response was lost (the connection broke after the request was
  sent) is ambiguous: it may or may not have been applied.  It is not sent
  again blindly: :class:`LostResponse` tells the client, which re-reads the
  document and decides (see :meth:`picas.core.client.CouchClient.save`).

Clusters.  ``url`` may name several nodes of one CouchDB cluster, separated by
commas (``http://n1:5984,http://n2:5984``): requests go to one node, and when
it cannot be reached (or answers 5xx) the session moves on to the next one at
once, and comes back round after a backoff once every node failed.  A pilot
given every node thus keeps working while one is down.  Clients of many
pilots start on a random node, so that they spread over the nodes.  A cookie
session is per node: a node switch logs in on the new node.
"""
from __future__ import annotations

import json
import random
import time
import urllib.parse
from typing import Any

from picas.errors import (BadRequest, Conflict, DatabaseNotFound, Forbidden, NotFound, PicasError,
                          ServerUnavailable, Unauthorized, ViewNotFound)
from picas.core.retry import Backoff
from picas.core.http import Response, Transport, TransportError, basic_auth
from picas.support.credentials import split_credentials as _split_credentials

_RETRY_STATUS = {500, 502, 503, 504}


def split_urls(url: str) -> list[str]:
    """The node URLs in a comma-separated ``url`` (one URL gives a list of one)."""
    return [part.strip() for part in (url or "").split(",") if part.strip()]


class Session:
    """The plumbing of :class:`picas.core.client.CouchClient`: nodes, transports, retries, login, errors.

    ``url`` may carry ``user:password@``; explicit ``username``/``password``
    win.  Several comma-separated node URLs make a cluster client (see the
    module docstring).  ``verify`` is True (system CAs), False, or the path of a CA bundle.
    With ``cookie_auth`` the client logs in once via ``POST /_session`` and
    sends the session cookie instead of the password on every request; it logs
    in again when the cookie expires.
    """

    def __init__(self, url: str, database: str | None = None, *, username: str | None = None,
                 password: str | None = None, verify: bool | str = True, timeout: float = 30.0,
                 retry: Backoff | None = None, cookie_auth: bool = False, pool_size: int = 4,
                 node: int | None = None) -> None:
        if not split_urls(url):
            raise PicasError("no server URL given", hint="pass --url, set PICAS_HOST_URL, or run 'picas init'")
        url_user = url_password = None
        self.urls: list[str] = []
        for part in split_urls(url):
            clean, part_user, part_password = _split_credentials(part)
            if not urllib.parse.urlsplit(clean).scheme.startswith("http"):
                raise PicasError(f"'{clean}' is not an http(s) URL", hint="use e.g. http://127.0.0.1:5984")
            self.urls.append(clean)
            if url_user is None and part_user is not None:
                url_user, url_password = part_user, part_password
        self.database = database
        self.username = username if username is not None else url_user
        self.password = password if password is not None else url_password
        self.verify = verify
        self.timeout = timeout
        self.retry = retry or Backoff(base=0.2, cap=5.0, attempts=6)
        self.cookie_auth = cookie_auth
        self.pool_size = pool_size
        self._transports: list[Transport | None] = [None] * len(self.urls)
        #: The node requests go to; clients of many pilots start on different nodes, so that they spread out.
        self._node = random.randrange(len(self.urls)) if node is None else node % len(self.urls)
        self.transport  # noqa: B018 - fail here, not at the first request, on an unusable CA bundle
        self._headers = {"Accept": "application/json"}
        if self.username is not None and not cookie_auth:
            self._headers["Authorization"] = basic_auth(self.username, self.password or "")
        self._logged_in = False
        #: How many requests and conflicts this client has seen; benchmarks read these.
        self.stats = {"requests": 0, "conflicts": 0, "retries": 0}
        #: What was learned about the database once (its copy count: :func:`picas.core.replicas.replicas_of`).
        self.facts: dict[str, Any] = {}

    # ------------------------------------------------------------------ plumbing
    @property
    def url(self) -> str:
        """The node requests go to now, without credentials (the only one, unless several were given)."""
        return self.urls[self._node]

    @property
    def url_list(self) -> str:
        """Every node, comma-separated: what to hand on to another process (a payload, a sub-command)."""
        return ",".join(self.urls)

    @property
    def transport(self) -> Transport:
        current = self._transports[self._node]
        if current is None:
            try:
                current = Transport(self.url, verify=self.verify, timeout=self.timeout, pool_size=self.pool_size)
            except (ValueError, OSError) as exc:
                raise PicasError(f"cannot use the CA bundle {self.verify!r}: {exc}",
                                 hint="give --ca-bundle the path of a PEM file") from None
            self._transports[self._node] = current
        return current

    def _next_node(self) -> None:
        """Move on to the next node (a no-op with one URL); the cookie session is per node, so log in again."""
        if len(self.urls) > 1:
            self._node = (self._node + 1) % len(self.urls)
            self._logged_in = False

    @property
    def node(self) -> int:
        """The index in :attr:`urls` of the node requests go to now."""
        return self._node

    def copy(self, database: str | None = None, retry: Backoff | None = None,
             node: int | None = None) -> Any:
        """A new client with the same settings and its own session (one per thread), on the same node or ``node``."""
        other = type(self)(self.url_list, database if database is not None else self.database,
                           username=self.username, password=self.password, verify=self.verify,
                           timeout=self.timeout, retry=retry or self.retry, cookie_auth=self.cookie_auth,
                           node=self._node if node is None else node)
        if other.database == self.database:
            other.facts = dict(self.facts)
        return other

    def close(self) -> None:
        for transport in self._transports:
            if transport is not None:
                transport.close()

    def _db(self, database: str | None = None) -> str:
        name = database or self.database
        if not name:
            raise PicasError("no database given", hint="pass --db, set PICAS_DATABASE, or run 'picas init'")
        return name

    def login(self) -> None:
        """Start a cookie session; later requests carry the cookie, not the password."""
        self._send("POST", "/_session", json_body={"name": self.username, "password": self.password or ""},
                   retry_ok=True, auth_retry=False)
        self._logged_in = True

    def request(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
                data: bytes | None = None, headers: dict | None = None, retry_ok: bool = True,
                context: str = "") -> Response:
        """Send one request and return the 2xx response, or raise the mapped PicasError.

        ``retry_ok`` says the request may be sent again blindly after a lost
        response (reads, and writes that are idempotent by construction).
        """
        if self.cookie_auth and self.username is not None and not self._logged_in:
            self.login()
        return self._send(method, path, params=params, json_body=json_body, data=data, headers=headers,
                          retry_ok=retry_ok, context=context)

    def _send(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
              data: bytes | None = None, headers: dict | None = None, retry_ok: bool = True,
              context: str = "", auth_retry: bool = True) -> Response:
        hdrs = dict(self._headers)
        hdrs.update(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        query = urllib.parse.urlencode(params) if params else ""
        run = self.retry.start()
        # With several nodes, a failing one is left at once for the next; only a full round of failures backs off.
        untried = len(self.urls) - 1
        while True:
            if self.cookie_auth and self.username is not None and auth_retry and not self._logged_in:
                self.login()  # a session is per node: a node switch needs a login on the new one
            self.stats["requests"] += 1
            try:
                response = self.transport.request(method, path, query=query, body=data, headers=hdrs)
            except TransportError as exc:
                if exc.tls:
                    raise ServerUnavailable(f"TLS verification of {self.url} failed: {exc}",
                                            hint="pass --ca-bundle PATH, or --insecure if you trust the network")
                self._next_node()
                if exc.sent and not retry_ok:
                    raise LostResponse(f"the response to {method} {path} was lost: {exc}") from exc
                if untried > 0:
                    untried -= 1
                    self.stats["retries"] += 1
                    continue
                untried = len(self.urls) - 1
                delay = run.next_delay()
                if delay is None and exc.timed_out and exc.sent:
                    raise ServerUnavailable(
                        f"the CouchDB server at {self.url} did not answer {context or method + ' ' + path} "
                        f"within {self.timeout:g} s",
                        hint="it may be building a view index over many documents: try again in a while") from exc
                if delay is None:
                    raise ServerUnavailable(f"cannot reach the CouchDB server at {self.url} ({exc})") from exc
                self.stats["retries"] += 1
                time.sleep(delay)
                continue
            if response.status_code in _RETRY_STATUS:
                self._next_node()
                if untried > 0:
                    untried -= 1
                    self.stats["retries"] += 1
                    continue
                untried = len(self.urls) - 1
                delay = run.next_delay()
                if delay is None:
                    raise ServerUnavailable(f"the CouchDB server at {self.url} keeps answering "
                                            f"{response.status_code} to {method} {path}: {_reason(response)}")
                self.stats["retries"] += 1
                time.sleep(delay)
                continue
            if response.status_code == 401 and self.cookie_auth and auth_retry and self._logged_in:
                self._logged_in = False  # the cookie expired: log in again, once
                self.login()
                return self._send(method, path, params=params, data=data, headers=hdrs, retry_ok=retry_ok,
                                  context=context, auth_retry=False)
            if response.status_code >= 400:
                raise self._error(response, method, path, context)
            if "Set-Cookie" in response.headers and self.cookie_auth:
                self._logged_in = True
            return response

    def _error(self, response: Response, method: str, path: str, context: str) -> PicasError:
        status, reason = response.status_code, _reason(response)
        what = context or f"{method} {path}"
        if status == 401:
            if not self.username:
                return Unauthorized(f"{self.url} requires a login for {what}",
                                    hint="give --username/--password, set PICAS_USERNAME/PICAS_PASSWORD, "
                                         "or run 'picas init'")
            # CouchDB and pouchdb-server both answer 401 to a wrong password and to a valid user
            # who is not a member of the database; the message names both causes.
            detail = f": {reason}" if reason else ""
            return Unauthorized(f"{self.url} rejected user '{self.username}' for {what}{detail}",
                                hint="check the password, and that the user is a member of the database")
        if status == 403:
            return Forbidden(f"{what} is forbidden: {reason}")
        if status == 404:
            body = _json(response)
            err = f"{body.get('error', '')} {body.get('reason', '')}".lower()
            if "no_db_file" in err or "database does not exist" in err:
                return DatabaseNotFound(f"database '{path.strip('/').split('/')[0]}' does not exist on {self.url}")
            if "/_view/" in path or "/_design/" in path:
                return ViewNotFound(f"{what}: not found ({reason})")
            return NotFound(f"{what}: not found ({reason})")
        if status == 409:
            self.stats["conflicts"] += 1
            return Conflict(f"{what}: document update conflict")
        if status == 412:
            return Conflict(f"{what}: {reason}", hint="it exists already")
        if status in (400, 415):
            return BadRequest(f"{what}: the server refused the request: {reason}")
        return PicasError(f"{what}: HTTP {status}: {reason}")


class LostResponse(PicasError):
    """Internal: a non-idempotent request went out but its answer never came back."""


def _reason(response: Response) -> str:
    body = _json(response)
    if body:
        return str(body.get("reason") or body.get("error") or "")
    return (response.text or "").strip()[:200]


def _json(response: Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
