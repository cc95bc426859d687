"""picas: turn a CouchDB database into a pool of work tokens, and run pilots that drain it.

The classic names (``picas.CouchDB``, ``picas.Task``, ``picas.RunActor``,
the iterators) are available here as they were in picas 1.x, loaded on first
use so that the ``picas`` command starts fast.
"""
from __future__ import annotations

import importlib

__version__ = "2.0.0.dev0"

_CLASSIC = {
    "CouchDB": "picas.clients",
    "Document": "picas.documents",
    "Task": "picas.documents",
    "Job": "picas.documents",
    "User": "picas.documents",
    "RunActor": "picas.actors",
    "ViewIterator": "picas.iterators",
    "TaskViewIterator": "picas.iterators",
    "EndlessViewIterator": "picas.iterators",
    "PrioritizedViewIterator": "picas.iterators",
}

__all__ = sorted(_CLASSIC)


def __getattr__(name: str):
    module = _CLASSIC.get(name)
    if module is None:
        raise AttributeError(f"module 'picas' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
