"""The CouchDB client: the only module in picas that talks to CouchDB (the wire is :mod:`picas.core.http`).

One :class:`CouchClient` speaks the CouchDB API for one server and, optionally,
one database: documents, ``_bulk_docs``, views, attachments.  How requests get
there (retries, several nodes of a cluster, cookie sessions, errors) is
:mod:`picas.core.session`.  A write whose answer was lost is not repeated
blindly: the client re-reads the document and decides.  If the stored body is
the one it wrote, the write happened and its revision is adopted; if the
stored revision is still the one it wrote against, the write did not happen
and is sent again; anything else means another client won, and that is
reported as a :class:`~picas.errors.Conflict`.

It works against CouchDB 3.x and pouchdb-server, which both speak this API.
A write on a cluster is *accepted* (HTTP 202) when fewer copies than the
write quorum ``w`` took it: :class:`BulkResult` says so (``accepted``), and
:mod:`picas.core.replicas` says what picas makes of it.
"""
from __future__ import annotations

import json
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from picas.errors import Conflict, DatabaseNotFound, NotFound, ViewNotFound
from picas.core.session import LostResponse, Session, split_urls  # noqa: F401 - split_urls re-exported

#: View query parameters whose values CouchDB expects as JSON.
_JSON_PARAMS = {"key", "keys", "startkey", "endkey", "start_key", "end_key"}


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


class CouchClient(Session):
    """A connection to one CouchDB server (or the nodes of one cluster) and, optionally, one database in it.

    ``url`` may carry ``user:password@``; explicit ``username``/``password``
    win.  Several comma-separated node URLs make a cluster client (see
    :mod:`picas.core.session`).  ``verify`` is True (system CAs), False, or the
    path of a CA bundle.  With ``cookie_auth`` the client logs in once via
    ``POST /_session`` and sends the session cookie instead of the password on
    every request; it logs in again when the cookie expires.
    """

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
        A cluster answers 202 when some of its nodes are down: the database exists, and the nodes that were
        away create their copies of its shards when they are back, so that counts as created.
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
