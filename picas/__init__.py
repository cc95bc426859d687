"""picas: turn a CouchDB database into a pool of work tokens, and run pilots that drain it.

The classic names (``picas.CouchDB``, ``picas.Task``, ``picas.RunActor``,
the iterators) are available here as they were in picas 1.x, loaded on first
use so that the ``picas`` command starts fast.
"""
from __future__ import annotations

import importlib

__version__ = "2.0.0.dev0"

_CLASSIC = {
    "CouchDB": "picas.classic.clients",
    "Document": "picas.classic.documents",
    "Task": "picas.classic.documents",
    "Job": "picas.classic.documents",
    "User": "picas.classic.documents",
    "RunActor": "picas.classic.actors",
    "ViewIterator": "picas.classic.iterators",
    "TaskViewIterator": "picas.classic.iterators",
    "EndlessViewIterator": "picas.classic.iterators",
    "PrioritizedViewIterator": "picas.classic.iterators",
}

__all__ = sorted(_CLASSIC)


def __getattr__(name: str):
    module = _CLASSIC.get(name)
    if module is None:
        raise AttributeError(f"module 'picas' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
