"""The CouchDB client: the only module in picas that talks to CouchDB (the wire is :mod:`picas.core.http`).

One :class:`CouchClient` wraps one :class:`picas.core.http.Transport`
(keep-alive connections) for one server and, optionally, one database.  It maps HTTP
failures onto the :mod:`picas.errors` tree and retries what is safe to retry:

* connection errors, timeouts and 5xx answers are retried with bounded
  exponential backoff and jitter;
* a write whose response was lost (the connection broke after the request was
  sent) is ambiguous: it may or may not have been applied.  The client re-reads
  the document and decides: if the stored body is the one it wrote, the write
  happened and its revision is adopted; if the stored revision is still the one
  it wrote against, the write did not happen and is sent again; anything else
  means another client won, and that is reported as a :class:`Conflict`.

It works against CouchDB 3.x and pouchdb-server, which both speak this API.

Clusters.  ``url`` may name several nodes of one CouchDB cluster, separated by
commas (``http://n1:5984,http://n2:5984``): requests go to one node, and when
it cannot be reached (or answers 5xx) the client moves on to the next one at
once, and comes back round after a backoff once every node failed.  A pilot
given every node thus keeps working while one is down.  A write on a cluster
is *accepted* (HTTP 202) when fewer copies than the write quorum ``w`` took
it: :class:`BulkResult` and :class:`Written` say so (``accepted``), and
:mod:`picas.core.replicas` says what picas makes of it.
"""
from __future__ import annotations

import json
import random
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from picas.errors import (BadRequest, Conflict, DatabaseNotFound, Forbidden, NotFound, PicasError,
                          ServerUnavailable, Unauthorized, ViewNotFound)
from picas.core.retry import Backoff
from picas.core.http import Response, Transport, TransportError, basic_auth
from picas.support.credentials import split_credentials as _split_credentials

#: View query parameters whose values CouchDB expects as JSON.
_JSON_PARAMS = {"key", "keys", "startkey", "endkey", "start_key", "end_key"}
_RETRY_STATUS = {500, 502, 503, 504}


@dataclass
class BulkResult:
    """The outcome of one document in a ``_bulk_docs`` request."""

    id: str
    ok: bool
    rev: str | None = None
    error: str | None = None
    reason: str | None = None
    #: Stored, but by fewer copies than the write quorum (a cluster's 202): not proof that it won.
    accepted: bool = False
    #: The answer was lost and the outcome read back from the stored document: a write the reader did not
    #: see may still have landed on a copy it could not reach.
    lost: bool = False

    @property
    def conflict(self) -> bool:
        return self.error == "conflict"

    @property
    def committed(self) -> bool:
        """Stored by at least ``w`` copies: on a cluster with w > n/2, no sibling revision can say the same."""
        return self.ok and not self.accepted


#: What a single-document write returns when its caller needs to know more than the new revision.
Written = BulkResult


@dataclass
class ViewRow:
    """One row of a view answer; ``doc`` is the current body when include_docs was asked."""

    id: str | None
    key: Any
    value: Any
    doc: dict | None = None


@dataclass
class ViewResult:
    rows: list[ViewRow] = field(default_factory=list)
    total_rows: int | None = None
    offset: int | None = None
    #: Where the index stands in the database's changes; only when asked for with ``update_seq=true``.
    update_seq: Any = None

    def __iter__(self) -> Iterator[ViewRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _doc_path(doc_id: str) -> str:
    # Design and local documents keep their slash; everything else is quoted whole.
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + _quote(doc_id[len(prefix):])
    return _quote(doc_id)


def _same_body(stored: dict, written: dict) -> bool:
    """True when ``stored`` carries the user fields of ``written`` (revisions and attachments aside)."""
    def strip(doc: dict) -> dict:
        return {k: v for k, v in doc.items() if not k.startswith("_")}
    return strip(stored) == strip(written)


def split_urls(url: str) -> list[str]:
    """The node URLs in a comma-separated ``url`` (one URL gives a list of one)."""
    return [part.strip() for part in (url or "").split(",") if part.strip()]


class CouchClient:
    """A connection to one CouchDB server (or the nodes of one cluster) and, optionally, one database in it.

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
             node: int | None = None) -> "CouchClient":
        """A new client with the same settings and its own session (one per thread), on the same node or ``node``."""
        other = CouchClient(self.url_list, database if database is not None else self.database,
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

    # ------------------------------------------------------------------ server and databases
    def server_info(self) -> dict:
        return self.request("GET", "/").json()

    def all_dbs(self) -> list[str]:
        return self.request("GET", "/_all_dbs").json()

    def db_exists(self, database: str | None = None) -> bool:
        try:
            self.request("HEAD", "/" + _quote(self._db(database)))
            return True
        except NotFound:
            return False

    def create_db(self, database: str | None = None, exist_ok: bool = False, *, q: int | None = None,
                  n: int | None = None) -> bool:
        """Create the database; returns False if it existed and ``exist_ok``.

        ``q`` (shards) and ``n`` (copies of each) are a CouchDB cluster's; the server's defaults apply without them.
        """
        name = self._db(database)
        params = {key: value for key, value in (("q", q), ("n", n)) if value}
        try:
            self.request("PUT", "/" + _quote(name), params=params or None, context=f"creating database '{name}'")
            return True
        except Conflict:
            if exist_ok:
                return False
            raise Conflict(f"database '{name}' exists already", hint="use it, or delete it first")

    def delete_db(self, database: str | None = None) -> None:
        name = self._db(database)
        self.request("DELETE", "/" + _quote(name), context=f"deleting database '{name}'")

    def db_info(self, database: str | None = None) -> dict:
        name = self._db(database)
        return self.request("GET", "/" + _quote(name), context=f"database '{name}'").json()

    def get_security(self) -> dict:
        return self.request("GET", f"/{_quote(self._db())}/_security").json()

    def set_security(self, security: dict) -> None:
        self.request("PUT", f"/{_quote(self._db())}/_security", json_body=security)

    # ------------------------------------------------------------------ documents
    def _doc_url(self, doc_id: str) -> str:
        return f"/{_quote(self._db())}/{_doc_path(doc_id)}"

    def get(self, doc_id: str, *, attachments: bool = False, rev: str | None = None, conflicts: bool = False,
            r: int | None = None) -> dict:
        """The document's winning revision; ``conflicts`` adds ``_conflicts``, ``r`` asks that many copies."""
        params: dict[str, Any] = {}
        if attachments:
            params["attachments"] = "true"
        if rev:
            params["rev"] = rev
        if conflicts:
            params["conflicts"] = "true"
        if r:
            params["r"] = r
        return self.request("GET", self._doc_url(doc_id), params=params or None,
                            context=f"document '{doc_id}'").json()

    def leaves(self, doc_id: str, r: int | None = None) -> list[dict]:
        """Every leaf revision of a document (the winner, its conflicts, deleted leaves), read from ``r`` copies.

        On a cluster the answer is the union of the leaves the copies that
        answered hold; an empty list means the document does not exist.
        """
        params: dict[str, Any] = {"open_revs": "all", "revs": "true"}
        if r:
            params["r"] = r
        try:
            answer = self.request("GET", self._doc_url(doc_id), params=params, context=f"document '{doc_id}'").json()
        except NotFound as exc:
            if isinstance(exc, DatabaseNotFound):
                raise
            return []
        return [item["ok"] for item in answer if isinstance(item, dict) and isinstance(item.get("ok"), dict)]

    def get_or_none(self, doc_id: str) -> dict | None:
        try:
            return self.get(doc_id)
        except NotFound as exc:
            if isinstance(exc, DatabaseNotFound):
                raise
            return None

    def save(self, doc: dict) -> dict:
        """Create or update ``doc`` (its ``_rev`` decides which); sets the new ``_rev`` in place.

        A document without ``_id`` gets a random one first, so that a retried
        create can never make two documents.  On a lost response the stored
        document decides (see the module docstring).
        """
        if "_id" not in doc:
            doc["_id"] = uuid.uuid4().hex
        try:
            response = self.request("PUT", self._doc_url(doc["_id"]), json_body=doc, retry_ok=False,
                                    context=f"saving '{doc['_id']}'")
        except LostResponse:
            return self._resolve_lost_write(doc)
        doc["_rev"] = response.json()["rev"]
        return doc

    def _resolve_lost_write(self, doc: dict) -> dict:
        stored = self.get_or_none(doc["_id"])
        if stored is not None and _same_body(stored, doc) and stored.get("_rev") != doc.get("_rev"):
            doc["_rev"] = stored["_rev"]  # our write landed; only its answer was lost
            return doc
        if (stored is None and "_rev" not in doc) or (stored is not None and stored.get("_rev") == doc.get("_rev")):
            return self.save(doc)  # our write did not land: send it again
        self.stats["conflicts"] += 1
        raise Conflict(f"saving '{doc['_id']}': another client changed it while our answer was lost")

    def write(self, doc: dict, w: int | None = None) -> Written:
        """Create or update ``doc`` and say how far it got, instead of raising on a conflict.

        ``ok`` with ``accepted`` is a cluster's 202: stored by fewer than ``w``
        copies.  A write whose answer was lost and that the stored document
        shows to have landed is reported ``accepted`` too: how many copies
        took it is unknown.  The new ``_rev`` is set in place when stored.
        """
        if "_id" not in doc:
            doc["_id"] = uuid.uuid4().hex
        try:
            response = self.request("PUT", self._doc_url(doc["_id"]), json_body=doc, retry_ok=False,
                                    params={"w": w} if w else None, context=f"saving '{doc['_id']}'")
        except LostResponse:
            result = self._resolve_one(doc)
            result.accepted, result.lost = result.ok, True
            return result
        except Conflict:
            return BulkResult(id=doc["_id"], ok=False, error="conflict", reason="Document update conflict.")
        doc["_rev"] = response.json()["rev"]
        return BulkResult(id=doc["_id"], ok=True, rev=doc["_rev"], accepted=response.status_code == 202)

    def delete(self, doc: dict) -> None:
        self.request("DELETE", self._doc_url(doc["_id"]), params={"rev": doc["_rev"]},
                     context=f"deleting '{doc['_id']}'")

    def bulk_save(self, docs: list[dict], *, new_edits: bool = True, w: int | None = None) -> list[BulkResult]:
        """Save many documents in one request; each gets its own result, conflicts included.

        Successful documents get their new ``_rev`` in place.  If the answer
        is lost the request is not repeated blindly: every document is checked
        against what is stored, as for :meth:`save`, and one found stored is
        reported ``accepted`` (how many copies took it is unknown).  ``w`` is
        the write quorum a cluster must meet for a document not to be
        ``accepted``.
        """
        if not docs:
            return []
        for doc in docs:
            doc.setdefault("_id", uuid.uuid4().hex)
        body: dict[str, Any] = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        try:
            answer = self.request("POST", f"/{_quote(self._db())}/_bulk_docs", json_body=body, retry_ok=False,
                                  params={"w": w} if w else None, context="bulk save").json()
        except LostResponse:
            resolved = [self._resolve_one(doc) for doc in docs]
            for result in resolved:
                result.accepted, result.lost = result.ok, True
            return resolved
        # Matched by id, not by position: pouchdb-server on disk answers conflicts out of order, and a claim
        # that took another document's success for its own would run a token it does not hold.
        answers: dict[str, list[dict]] = {}
        for item in answer:
            answers.setdefault(item.get("id"), []).append(item)
        results = []
        for doc in docs:
            mine = answers.get(doc["_id"])
            item = mine.pop(0) if mine else {"error": "unknown", "reason": "the server did not answer for it"}
            result = BulkResult(id=doc["_id"], ok="error" not in item, rev=item.get("rev"),
                                error=item.get("error"), reason=item.get("reason"), accepted=bool(item.get("accepted")))
            if result.ok and result.rev:
                doc["_rev"] = result.rev
            elif result.conflict:
                self.stats["conflicts"] += 1
            results.append(result)
        return results

    def _resolve_one(self, doc: dict) -> BulkResult:
        try:
            self._resolve_lost_write(doc)
            return BulkResult(id=doc["_id"], ok=True, rev=doc["_rev"])
        except Conflict:
            return BulkResult(id=doc["_id"], ok=False, error="conflict", reason="changed while the answer was lost")

    def bulk_get(self, ids: list[str], conflicts: bool = False) -> dict[str, dict]:
        """Current bodies of many documents by id, in one request; missing ids are left out.

        ``conflicts`` adds ``_conflicts`` to the bodies that have conflicting leaves.
        """
        if not ids:
            return {}
        params = {"include_docs": "true", **({"conflicts": "true"} if conflicts else {})}
        answer = self.request("POST", f"/{_quote(self._db())}/_all_docs", params=params,
                              json_body={"keys": list(ids)}).json()
        return {row["id"]: row["doc"] for row in answer.get("rows", []) if row.get("doc")}

    def changes(self, **params: Any) -> dict:
        """One answer of the changes feed (``since``, ``limit``, ``include_docs``...), not a continuous feed."""
        return self.request("GET", f"/{_quote(self._db())}/_changes", params=_encode_params(params)).json()

    def all_docs(self, **params: Any) -> ViewResult:
        return self._rows(self.request("GET", f"/{_quote(self._db())}/_all_docs",
                                       params=_encode_params(params)).json())

    # ------------------------------------------------------------------ views
    def view(self, design: str, view: str, **params: Any) -> ViewResult:
        """Query ``_design/<design>/_view/<view>``.

        Parameters are CouchDB's (``key``, ``keys``, ``startkey``, ``endkey``,
        ``include_docs``, ``limit``, ``skip``, ``reduce``, ``group``,
        ``descending``, ``stale``, ``update``...); JSON-valued ones are encoded
        here.  ``keys`` goes in a POST body so long key lists fit.
        """
        path = f"/{_quote(self._db())}/_design/{_quote(design)}/_view/{_quote(view)}"
        keys = params.pop("keys", None)
        context = f"view '{view}' of design document '{design}'"
        try:
            if keys is not None:
                response = self.request("POST", path, params=_encode_params(params), json_body={"keys": keys},
                                        context=context)
            else:
                response = self.request("GET", path, params=_encode_params(params), context=context)
        except ViewNotFound:
            raise ViewNotFound(f"{context} does not exist in database '{self._db()}'") from None
        return self._rows(response.json())

    def iter_view(self, design: str, view: str, page_size: int = 1000, **params: Any) -> Iterator[ViewRow]:
        """All rows of a view, fetched page by page with startkey/startkey_docid (no skip scans)."""
        params = dict(params)
        params.pop("limit", None)
        while True:
            page = self.view(design, view, limit=page_size + 1, **params)
            rows = page.rows
            yield from rows[:page_size]
            if len(rows) <= page_size:
                return
            last = rows[page_size]
            params["startkey"] = last.key
            params["startkey_docid"] = last.id

    @staticmethod
    def _rows(answer: dict) -> ViewResult:
        rows = [ViewRow(id=r.get("id"), key=r.get("key"), value=r.get("value"), doc=r.get("doc"))
                for r in answer.get("rows", [])]
        return ViewResult(rows=rows, total_rows=answer.get("total_rows"), offset=answer.get("offset"),
                          update_seq=answer.get("update_seq"))

    # ------------------------------------------------------------------ attachments
    def put_attachment(self, doc_id: str, rev: str, name: str, data: bytes,
                       content_type: str = "application/octet-stream") -> str:
        """Store an attachment; returns the document's new revision."""
        path = self._doc_url(doc_id) + "/" + _quote(name)
        response = self.request("PUT", path, params={"rev": rev}, data=data,
                                headers={"Content-Type": content_type}, retry_ok=False,
                                context=f"attachment '{name}' of '{doc_id}'")
        return response.json()["rev"]

    def get_attachment(self, doc_id: str, name: str) -> bytes:
        path = self._doc_url(doc_id) + "/" + _quote(name)
        response = self.request("GET", path, headers={"Accept": "*/*"},
                                context=f"attachment '{name}' of '{doc_id}'")
        return response.content


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


def _encode_params(params: dict) -> dict:
    out = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in _JSON_PARAMS or name == "startkey_docid" and not isinstance(value, str):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = value
    return out


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Split an iterable into lists of at most ``size`` (for bulk requests)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
