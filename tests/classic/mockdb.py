"""A duck-typed database with revisions, the way users write one to unit-test their actors.

It has the classic methods (``get_single_from_view``, ``get``, ``save``,
``copy``) and nothing of picas' client.  Unlike the simplest mocks it keeps
revisions, so a save with a stale ``_rev`` raises a conflict, as CouchDB
would: which exception class it raises is a parameter (picas' own
``Conflict`` or couchdb-python's ``ResourceConflict``).
"""
from __future__ import annotations

import copy
import threading
from typing import Callable

from picas.documents import Document
from picas.errors import Conflict


class RevisionDB:
    """Documents by id; the view ``todo`` lists the tokens with ``lock == 0`` and ``done == 0``."""

    def __init__(self, docs: list[dict], conflict: type[Exception] = Conflict) -> None:
        self.docs: dict[str, dict] = {}
        self.conflict = conflict
        self.saves: list[dict] = []
        self.lock = threading.Lock()
        #: Called with the body just before each save is checked (tests use it to interfere).
        self.before_save: Callable[[dict], None] | None = None
        #: Ids the view answers with even when the token is no longer todo (a stale index).
        self.stale_rows: list[str] = []
        self.reads = 0
        for doc in docs:
            self.docs[doc["_id"]] = dict(copy.deepcopy(doc), _rev="1-a")

    def view_ids(self, view: str) -> list[str]:
        if view == "todo":
            ids = [i for i, d in self.docs.items() if d.get("lock", 0) == 0 and d.get("done", 0) == 0]
        elif view == "high":
            ids = [i for i, d in self.docs.items() if d.get("lock", 0) == 0 and d.get("priority") == "high"]
        else:
            ids = []
        return self.stale_rows + [i for i in sorted(ids) if i not in self.stale_rows]

    def get_single_from_view(self, view: str, window_size: int = 1, **view_params) -> Document:
        """The rows of the window in turn (a real client picks one at random), so tests are repeatable."""
        ids = self.view_ids(view)[:window_size]
        if not ids:
            raise IndexError(f"view {view} is empty")
        self.reads += 1
        return Document(copy.deepcopy(self.docs[ids[(self.reads - 1) % len(ids)]]))

    def get(self, doc_id: str) -> Document:
        if doc_id not in self.docs:
            raise KeyError(doc_id)
        return Document(copy.deepcopy(self.docs[doc_id]))

    def save(self, doc: Document) -> Document:
        body = doc.value
        if self.before_save is not None:
            self.before_save(body)
        with self.lock:
            stored = self.docs.get(body["_id"])
            if stored is not None and stored["_rev"] != body.get("_rev"):
                raise self.conflict(f"{body['_id']}: stale revision {body.get('_rev')}")
            number = int(stored["_rev"].split("-")[0]) + 1 if stored else 1
            body["_rev"] = f"{number}-x"
            self.docs[body["_id"]] = copy.deepcopy(body)
            self.saves.append(copy.deepcopy(body))
        return doc

    def edit(self, doc_id: str, **fields) -> None:
        """Another writer changes a stored document (its revision moves on)."""
        with self.lock:
            stored = self.docs[doc_id]
            stored.update(fields)
            stored["_rev"] = f"{int(stored['_rev'].split('-')[0]) + 1}-other"

    def copy(self) -> "RevisionDB":
        return self


def require(module: str):
    """A test dependency (couchdb-python, cryptography): skipped without it locally, failed in CI."""
    import importlib
    import os

    import pytest

    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{module} is not installed; scripts/test.sh installs it with the test extra")
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


def require_couchdb_http():
    """couchdb-python's ``couchdb.http``."""
    return require("couchdb.http")
