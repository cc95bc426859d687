"""Copies of a database, what a write quorum proves, and how a token with conflicting revisions is made whole.

A CouchDB cluster keeps ``n`` copies of every document (``q`` shards, each
on ``n`` nodes).  A write goes to all copies; each copy takes it only if the
revision it names is a leaf there, exactly as a single server would, and the
node that coordinates the request answers 201 once ``w`` copies took it, 202
("accepted") if fewer did, 409 if none did.  Copies exchange what they took
afterwards.  Two writers that both start from one revision can therefore both
be taken, by different copies, and the document ends with two leaf revisions:
a *conflict*.  CouchDB shows one of them, the winner, chosen the same way on
every node (not deleted first, then the longest history, then the larger
revision id), and lists the others in ``_conflicts``.

Two facts carry everything picas builds on a cluster (:mod:`picas.core.claim`):

* with ``w`` a majority of ``n``, at most one of several writes that start
  from the same revision (or that create the same new document) is
  *committed*, i.e. answered 201: each copy takes at most one of them, and
  two majorities share a copy;
* a 202 proves nothing either way: the write is stored somewhere and will
  spread, but another one may have been committed instead.

A token's conflicting leaves are put in order by :func:`rank`, and
:func:`settle` deletes every leaf but the first.  The order follows the
token's own history, not the accident of revision ids: the later attempt
(``attempts``) wins; within one attempt an ending (done, error, or back to
todo) wins over the lock it ends, and a result (done or error) over a reset
that raced with it, so a result is never hidden under a losing revision;
CouchDB's own order breaks the remaining ties.  A leaf deleted this way keeps
its history (deleted leaves stay in the revision tree), and a result that had
to give way is noted in the kept token's history.  Deleting a leaf writes a
revision whose id depends only on the leaf, so two clients that settle the
same token at once write the same revisions and make no new conflict.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.errors import DatabaseNotFound, NotFound, PicasError

#: How a token's state ranks among leaves of the same attempt: endings above the lock, results above resets.
_STATE_RANK = {"done": 3, "error": 3, "todo": 2, "locked": 1, "other": 0}


@dataclass(frozen=True)
class Replicas:
    """How many copies the database keeps (1 on pouchdb-server and on a single node), and on what server."""

    n: int = 1
    #: Apache CouchDB 2 or later (its database info has a ``cluster`` section); else pouchdb-server.
    couchdb: bool = False

    @property
    def stale(self) -> dict:
        """View parameters that read an index as it stands, without bringing it up to date first.

        CouchDB 3 deprecates ``stale=ok``, which also pins every shard to one
        copy (``stable=true``) and so fails over slowly when a node is down:
        ``update=false`` it is.  pouchdb-server 4.2 ignores ``update=false``
        and updates the index anyway (measured), but honours ``stale=ok``.
        """
        return {"update": False} if self.couchdb else {"stale": "ok"}

    @property
    def majority(self) -> int:
        """The smallest write quorum with which two committed writes always share a copy."""
        return self.n // 2 + 1

    @property
    def clustered(self) -> bool:
        return self.n > 1

    @property
    def w(self) -> int | None:
        """The ``w`` to send with writes whose outcome decides who holds a token (None: nothing to ask)."""
        return self.majority if self.clustered else None


def replicas_of(client: CouchClient) -> Replicas:
    """The copy count of the client's database, asked once per client (``GET /db`` says ``cluster.n``)."""
    known = client.facts.get("replicas")
    if known is None:
        try:
            info = client.db_info()
            cluster = info.get("cluster") or {}
            known = Replicas(n=max(1, int(cluster.get("n") or 1)), couchdb="cluster" in info)
        except (PicasError, TypeError, ValueError):
            return Replicas()  # not cached: the next call asks again
        client.facts["replicas"] = known
    return known


def attempt(doc: dict) -> int:
    """The token's attempt number: how many claims its history counts (0 before the first)."""
    try:
        return int(doc.get("attempts") or 0)
    except (TypeError, ValueError):
        return 0


def _revision(doc: dict) -> tuple[int, str]:
    number, _, rev_id = str(doc.get("_rev", "0-")).partition("-")
    return (int(number) if number.isdigit() else 0, rev_id)


def rank(doc: dict) -> tuple:
    """Sort key of a leaf: the highest is kept (see the module docstring)."""
    if doc.get("type", "token") != "token":
        return (not doc.get("_deleted"), _revision(doc))
    return (not doc.get("_deleted"), attempt(doc), _STATE_RANK[tok.state(doc)], _revision(doc))


def has_result(doc: dict) -> bool:
    return doc.get("type", "token") == "token" and tok.state(doc) in ("done", "error")


def settle(client: CouchClient, doc_id: str, leaves: list[dict] | None = None,
           who: tok.PilotIdentity | None = None) -> dict | None:
    """Delete every live leaf of ``doc_id`` but the one :func:`rank` puts first; return that one.

    ``leaves`` may be passed when the caller read them already.  Returns
    None when no live leaf is left (the document is deleted).  If a deletion
    meets a conflict, the leaf changed meanwhile; the document is read again
    and settled anew on the next call, so the caller gets the best body
    known now.
    """
    if leaves is None:
        leaves = client.leaves(doc_id, r=replicas_of(client).n)
    live = [leaf for leaf in leaves if not leaf.get("_deleted")]
    if not live:
        return None
    live.sort(key=rank, reverse=True)
    keep, losers = live[0], live[1:]
    if not losers:
        return _clean(keep)
    writes: list[dict] = [{"_id": doc_id, "_rev": leaf["_rev"], "_deleted": True} for leaf in losers]
    discarded = [leaf for leaf in losers if has_result(leaf)]
    if discarded and keep.get("type", "token") == "token":
        now = time.time()
        noted = _clean(keep)
        for leaf in discarded:
            noted = tok.note(noted, who, now, "result_discarded",
                             reason=f"a conflicting revision of attempt {attempt(leaf)} by pilot "
                                    f"{leaf.get('pilot') or leaf.get('hostname') or '?'} lost to attempt "
                                    f"{attempt(keep)} ({tok.state(keep)})",
                             exit_code=leaf.get("exit_code"))
        writes.append(noted)
    results = client.bulk_save(writes, w=replicas_of(client).w)
    kept = writes[-1] if len(writes) > len(losers) and results[-1].ok else keep
    return _clean(kept)


def _clean(doc: dict) -> dict:
    """The body without the read-only fields a conflict-aware read adds."""
    return {k: v for k, v in doc.items() if k not in ("_conflicts", "_revisions", "_deleted_conflicts")}


def current(client: CouchClient, doc_id: str, who: tok.PilotIdentity | None = None) -> dict | None:
    """The token as it stands, conflicts settled first; None if it does not exist.

    Costs one read when the token has no conflicts (always on one server),
    which is how most calls go.
    """
    try:
        doc = client.get(doc_id, conflicts=True)
    except NotFound as exc:
        if isinstance(exc, DatabaseNotFound):
            raise
        return None
    if not doc.get("_conflicts"):
        return _clean(doc)
    return settle(client, doc_id, who=who)


def settle_body(client: CouchClient, body: dict | None, who: tok.PilotIdentity | None = None) -> dict | None:
    """A body read with ``conflicts=true`` (a view row's, an ``_all_docs`` row's), settled if it needs it."""
    if not body or not body.get("_conflicts"):
        return _clean(body) if body else body
    return settle(client, body["_id"], who=who)


def conflicted_ids(client: CouchClient, page: int = 1000) -> list[str]:
    """Ids of every document of the database with conflicting leaves (one pass over ``_all_docs``)."""
    found: list[str] = []
    start: Any = None
    while True:
        params: dict[str, Any] = {"include_docs": True, "conflicts": True, "limit": page + 1}
        if start is not None:
            params["startkey"] = start
        rows = client.all_docs(**params).rows
        found += [row.id for row in rows[:page] if row.doc and row.doc.get("_conflicts")]
        if len(rows) <= page:
            return found
        start = rows[page].id


def settle_all(client: CouchClient, who: tok.PilotIdentity | None = None) -> int:
    """Settle every conflicted document; returns how many there were."""
    ids = conflicted_ids(client)
    for doc_id in ids:
        settle(client, doc_id, who=who)
    return len(ids)
