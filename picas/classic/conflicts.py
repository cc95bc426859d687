"""Which exceptions mean "409 Conflict" when a duck-typed database raises them."""
from __future__ import annotations

import sys

from picas.errors import Conflict

__all__ = ["conflict_types"]


def conflict_types() -> tuple[type[BaseException], ...]:
    """picas' :class:`~picas.errors.Conflict`, and couchdb-python's ``ResourceConflict`` when that is loaded.

    Mock databases in users' tests raise couchdb-python's class; once it is
    loaded, picas' Conflict derives from it as well (see :mod:`picas.errors`),
    so catching it catches both.
    """
    couchdb_http = sys.modules.get("couchdb.http")
    theirs = getattr(couchdb_http, "ResourceConflict", None)
    return (Conflict, theirs) if isinstance(theirs, type) else (Conflict,)
