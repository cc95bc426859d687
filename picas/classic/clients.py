"""The classic ``picas.classic.clients.CouchDB`` interface, on top of :class:`picas.core.client.CouchClient`.

Scripts written for picas 1.x connect with ``CouchDB(url=..., db=...,
username=..., password=...)`` and then push tokens, make views and read them
back through it; they run unchanged on this module.  Everything goes through
one :class:`~picas.core.client.CouchClient` (``.client``), so these scripts get the
new client's connection pooling, retries and error messages.

Differences from 1.1.2 (which used the ``couchdb`` package):

* errors are :class:`picas.errors.PicasError` subclasses: a 409 on ``save``
  raises :class:`picas.errors.Conflict` (also importable as
  ``ResourceConflict`` from here and from :mod:`picas.errors`), a missing
  document or database :class:`picas.errors.NotFound`;
* ``.db`` is no longer a ``couchdb.Database`` but a :class:`Database` facade
  with the part of that API scripts used (``db[id]``, ``get``, ``save``,
  ``update``, ``delete``, ``view("design/view")``, ``info``, ``name``);
* ``create=True`` on a database that exists already uses it (1.1.2 failed);
* ``save_documents``, ``get_from_view``, ``delete_documents`` and
  ``delete_from_view`` each make one bulk request instead of one per document.
"""
from __future__ import annotations

import random
import textwrap
from typing import Any, Iterable, Iterator

from picas import defaults
from picas.core import token as tok
from picas.core.client import BulkResult, CouchClient, ViewResult, ViewRow
from picas.classic.documents import Document
from picas.errors import Conflict, DatabaseNotFound, NotFound, ViewNotFound

#: couchdb-python's exception names, for ``except`` clauses in classic scripts.
ResourceConflict = Conflict
ResourceNotFound = NotFound

__all__ = ["CouchDB", "Database", "CompatRow", "CompatViewResult", "ResourceConflict", "ResourceNotFound"]


class CompatRow:
    """One view row, readable as attributes (``row.id``) or items (``row["id"]``), as couchdb-python's."""

    __slots__ = ("id", "key", "value", "doc")

    def __init__(self, row: ViewRow) -> None:
        self.id = row.id
        self.key = row.key
        self.value = row.value
        self.doc = row.doc

    def __getitem__(self, name: str) -> Any:
        if name not in self.__slots__:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default) if name in self.__slots__ else default

    def __repr__(self) -> str:
        return f"<Row id={self.id!r}, key={self.key!r}, value={self.value!r}>"


class CompatViewResult:
    """A view answer: iterable over its rows, with ``.rows``, ``.total_rows``, ``.offset`` and ``len()``."""

    def __init__(self, result: ViewResult) -> None:
        self.rows = [CompatRow(row) for row in result.rows]
        self.total_rows = result.total_rows
        self.offset = result.offset

    def __iter__(self) -> Iterator[CompatRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class StoredDocument(dict):
    """A document body as read from the database: a dict with ``id`` and ``rev``, as couchdb-python's."""

    @property
    def id(self) -> str | None:
        return self.get("_id")

    @property
    def rev(self) -> str | None:
        return self.get("_rev")


def _body(doc: dict | Document) -> dict:
    return doc.value if isinstance(doc, Document) else doc


#: Tokens an actor in this process is working on, by id, with the actor's pilot id (see _save_held).
_held_tokens: dict[str, str] = {}


def hold_token(token_id: str, pilot_id: str) -> None:
    """Note that this process's actor works on ``token_id`` (its saves may then meet heartbeats)."""
    _held_tokens[token_id] = pilot_id


def release_token(token_id: str) -> None:
    _held_tokens.pop(token_id, None)


def _save_held(client: CouchClient, body: dict) -> None:
    """Save a body; a 409 on a token this process's actor holds is resolved instead of raised.

    Classic ``process_task`` code may save its token mid-task (to record
    progress).  Meanwhile the actor's heartbeats move the token's revision on,
    which 1.1.2 (no heartbeats) never did, so that save would fail.  While the
    actor still holds the token, the only other writer is expected to be the
    heartbeat: the task's body wins, with the current revision and lease.
    """
    for _ in range(5):
        try:
            client.save(body)
            return
        except Conflict:
            pilot_id = _held_tokens.get(body.get("_id", ""))
            current = client.get_or_none(body["_id"]) if pilot_id else None
            if current is None or not tok.owned_by(current, pilot_id):
                raise
            body["_rev"] = current["_rev"]
            for name in ("heartbeat", "lease_until"):
                if name in current:
                    body[name] = current[name]
    client.save(body)


class CouchDB:
    """A connection to one picas database (see the module docstring).

    ``ssl_verification`` is True (system CAs), False, or the path of a CA
    bundle.  The database must exist unless ``create`` is set; this is
    checked here, so a wrong URL, password or name fails at once.
    """

    def __init__(self, url: str = "http://localhost:5984", db: str = "test", username: str | None = None,
                 password: str = "", ssl_verification: bool | str = True, create: bool = False) -> None:
        self.client = CouchClient(url, db, username=username, password=password if username is not None else None,
                                  verify=ssl_verification)
        if create:
            self.client.create_db(exist_ok=True)
        elif not self.client.db_exists():
            raise DatabaseNotFound(f"database '{db}' does not exist on {self.client.url}")
        #: couchdb-python's ``Database`` API as far as classic scripts used it (see :class:`Database`).
        self.db = Database(self)

    @classmethod
    def from_client(cls, client: CouchClient) -> "CouchDB":
        """Wrap an existing client (no existence check): for code that has a CouchClient already."""
        self = cls.__new__(cls)
        self.client = client
        self.db = Database(self)
        return self

    @property
    def name(self) -> str:
        return self.client.database or ""

    def copy(self) -> "CouchDB":
        """A new connection with the same settings and its own HTTP session (one per thread or process)."""
        return CouchDB.from_client(self.client.copy())

    # ------------------------------------------------------------------ documents
    def __getitem__(self, doc_id: str) -> StoredDocument:
        """The stored body of ``doc_id``; raises :class:`picas.errors.NotFound` if there is none."""
        return StoredDocument(self.client.get(doc_id))

    def __contains__(self, doc_id: str) -> bool:
        return self.client.get_or_none(doc_id) is not None

    def get(self, id: str) -> Document:  # noqa: A002 - classic keyword name
        """The document ``id``; raises ValueError if it does not exist (as 1.1.2 did)."""
        data = self.client.get_or_none(id)
        if data is None:
            raise ValueError(f"{id} is not a document ID in the database")
        return Document(data)

    def save(self, doc: dict | Document) -> dict | Document:
        """Create or update ``doc``; sets its new ``_rev`` (and ``_id``) in place and returns it.

        Raises :class:`picas.errors.Conflict` when the stored document has
        another revision (someone else changed it since it was read).
        """
        _save_held(self.client, _body(doc))
        return doc

    def save_documents(self, docs: list[dict | Document]) -> list[bool]:
        """Save many documents in one request; one bool per document, True where it was saved.

        A document fails on its own (a new one whose id exists, an update with
        a stale revision) without affecting the others; saved ones get their
        new ``_rev`` in place.
        """
        if not docs:
            return []
        results: list[BulkResult] = []
        bodies = [_body(doc) for doc in docs]
        for start in range(0, len(bodies), 1000):
            results.extend(self.client.bulk_save(bodies[start:start + 1000]))
        return [result.ok for result in results]

    def delete(self, doc: dict | Document) -> None:
        """Delete ``doc`` at its ``_rev``; raises :class:`picas.errors.Conflict` if it changed since."""
        self.client.delete(_body(doc))

    def delete_documents(self, docs: list[dict | Document]) -> list[bool]:
        """Delete many documents in one request; True where the document was deleted."""
        stubs, index = [], []
        outcome = [False] * len(docs)
        for i, doc in enumerate(docs):
            body = _body(doc)
            if body.get("_id") and body.get("_rev"):
                stubs.append({"_id": body["_id"], "_rev": body["_rev"], "_deleted": True})
                index.append(i)
        for start in range(0, len(stubs), 1000):
            for i, result in zip(index[start:start + 1000], self.client.bulk_save(stubs[start:start + 1000])):
                outcome[i] = result.ok
        return outcome

    def doc_count(self) -> int:
        return int(self.client.db_info()["doc_count"])

    # ------------------------------------------------------------------ views
    def view(self, view: str, design_doc: str = defaults.DESIGN, **view_params: Any) -> CompatViewResult:
        """Query ``_design/<design_doc>/_view/<view>`` with CouchDB's parameters (``limit``, ``key``, ...)."""
        return CompatViewResult(self.client.view(design_doc, view, **view_params))

    def get_from_view(self, view: str, **view_params: Any) -> list[Document]:
        """The current documents of a view's rows (rows of since-deleted documents are left out)."""
        ids: list[str] = []
        for row in self.view(view, **view_params):
            if row.id is not None and row.id not in ids:
                ids.append(row.id)
        bodies = self.client.bulk_get(ids)
        return [Document(bodies[doc_id]) for doc_id in ids if doc_id in bodies]

    def get_single_from_view(self, view: str, window_size: int = 1, **view_params: Any) -> Document:
        """A random document from the first ``window_size`` rows of a view; IndexError if it has none.

        Picking at random spreads concurrent readers over the rows.  Use the
        iterators in :mod:`picas.classic.iterators` to *claim* a token: reading one
        here does not lock it.
        """
        rows = self.view(view, limit=window_size, **view_params).rows
        while rows:
            row = rows.pop(random.randrange(len(rows)))
            try:
                return self.get(row.id)
            except ValueError:
                continue  # deleted since the view was read
        raise IndexError(f"view '{view}' has no rows")

    def is_view_nonempty(self, view: str, **view_params: Any) -> bool:
        """Whether a view has at least one row (False also for a view that does not exist)."""
        design = view_params.pop("design_doc", defaults.DESIGN)
        try:
            return bool(self.client.view(design, view, limit=1, **view_params).rows)
        except ViewNotFound:
            return False

    def add_view(self, view: str, map_fun: str, reduce_fun: str | None = None, design_doc: str = defaults.DESIGN,
                 language: str = "javascript", options: dict | None = None) -> bool:
        """Add or replace one view in ``_design/<design_doc>``; returns True if anything was written.

        Idempotent: a view that is stored with the same code is not written
        again (so many pilots may call this at start-up), and other views in
        the same design document are kept.  Concurrent writers are resolved
        by re-reading on a conflict.
        """
        wanted: dict[str, Any] = {"map": textwrap.dedent(map_fun.lstrip("\n"))}
        if reduce_fun:
            wanted["reduce"] = textwrap.dedent(reduce_fun.lstrip("\n"))
        if options:
            wanted["options"] = options
        for _ in range(10):
            current = self.client.get_or_none(f"_design/{design_doc}") or {"_id": f"_design/{design_doc}"}
            views = dict(current.get("views") or {})
            if views.get(view) == wanted and current.get("language", "javascript") == language:
                return False
            views[view] = wanted
            body = {**current, "language": language, "views": views}
            try:
                self.client.save(body)
                return True
            except Conflict:
                continue
        raise Conflict(f"could not add view '{view}' to _design/{design_doc}: it kept changing")

    def delete_from_view(self, view: str, design_doc: str = defaults.DESIGN) -> list[bool]:
        """Delete every document that has a row in the view; one bool per document."""
        return self.delete_documents(self.get_from_view(view, design_doc=design_doc))

    # ------------------------------------------------------------------ security
    def set_users(self, admins: list[str] | None = None, members: list[str] | None = None,
                  admin_roles: list[str] | None = None, member_roles: list[str] | None = None) -> None:
        """Set who may use the database; lists left at None keep their current value."""
        security = self.client.get_security() or {}
        for value, section, field in ((admins, "admins", "names"), (members, "members", "names"),
                                      (admin_roles, "admins", "roles"), (member_roles, "members", "roles")):
            if value is not None:
                security.setdefault(section, {})[field] = list(value)
        self.client.set_security(security)


class Database:
    """The part of couchdb-python's ``Database`` that classic scripts reached through ``client.db``.

    It exists so that lines such as ``client.db[token_id]``,
    ``client.db.update(tokens)`` or ``client.db.view("Monitor/todo")`` keep
    working; new code uses :class:`CouchDB` or :class:`~picas.core.client.CouchClient`.
    """

    def __init__(self, owner: CouchDB) -> None:
        self._owner = owner

    @property
    def client(self) -> CouchClient:
        return self._owner.client

    @property
    def name(self) -> str:
        return self._owner.name

    def __getitem__(self, doc_id: str) -> StoredDocument:
        return self._owner[doc_id]

    def __setitem__(self, doc_id: str, doc: dict | Document) -> None:
        body = _body(doc)
        body["_id"] = doc_id
        _save_held(self.client, body)

    def __delitem__(self, doc_id: str) -> None:
        self.client.delete(self.client.get(doc_id))

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._owner

    def __len__(self) -> int:
        return self._owner.doc_count()

    def get(self, doc_id: str, default: Any = None) -> StoredDocument | Any:
        body = self.client.get_or_none(doc_id)
        return default if body is None else StoredDocument(body)

    def save(self, doc: dict | Document) -> tuple[str, str]:
        body = _body(doc)
        _save_held(self.client, body)
        return body["_id"], body["_rev"]

    def update(self, documents: Iterable[dict | Document]) -> list[tuple[bool, str, Any]]:
        """Bulk save: ``(saved, id, new rev or the error)`` per document, as couchdb-python returned."""
        bodies = [_body(doc) for doc in documents]
        out: list[tuple[bool, str, Any]] = []
        for start in range(0, len(bodies), 1000):
            for result in self.client.bulk_save(bodies[start:start + 1000]):
                if result.ok:
                    out.append((True, result.id, result.rev))
                else:
                    error = Conflict if result.conflict else NotFound if result.error == "not_found" else Exception
                    out.append((False, result.id, error(result.reason or result.error or "")))
        return out

    def delete(self, doc: dict | Document) -> None:
        self.client.delete(_body(doc))

    def info(self) -> dict:
        return self.client.db_info()

    def view(self, name: str, **params: Any) -> CompatViewResult:
        """Query a view named ``"design/view"`` (or ``"_design/design/_view/view"``)."""
        parts = [part for part in name.split("/") if part not in ("_design", "_view")]
        if len(parts) != 2:
            raise ValueError(f"a view name looks like 'Monitor/todo', not {name!r}")
        return CompatViewResult(self.client.view(parts[0], parts[1], **params))

    def get_attachment(self, doc: str | dict | Document, filename: str, default: Any = None) -> bytes | Any:
        doc_id = doc if isinstance(doc, str) else _body(doc)["_id"]
        try:
            return self.client.get_attachment(doc_id, filename)
        except NotFound:
            return default

    def put_attachment(self, doc: dict | Document, content: bytes | str, filename: str,
                       content_type: str = "application/octet-stream") -> None:
        body = _body(doc)
        data = content.encode() if isinstance(content, str) else content
        body["_rev"] = self.client.put_attachment(body["_id"], body["_rev"], filename, data, content_type)
