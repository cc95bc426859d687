"""Laying a pilot's changes over the current stored token, after a write met a 409.

A pilot (or a classic ``process_task``) works on the body it claimed.  While
it works, the stored token moves on: the lease keeper renews the lease, a
user annotates it.  Its write then meets a 409.  Whoever meets it first
decides whether it still owns the token (:func:`picas.core.token.owned_by`);
only then is :func:`merge` called, and it answers *what* wins:

* every field the pilot changed, added or removed wins (its result);
* every other field keeps its current value (someone else's annotation);
* ``_id``, ``_rev`` and the other ``_`` fields are current's, so the write
  goes to the current revision;
* the histories are merged: each entry once, in time order;
* attachments: current's, plus the ones the pilot added inline.

"Changed" is measured against ``base``, the body the pilot's changes were
made on.  Without a base nothing tells a removal from a field added
meanwhile, so fields are only set, never removed, except the holder's
fields (``pilot``, ``heartbeat``, ``lease_until``): the pilot's body lacking
one means its state change ended the lease, and one it has keeps the current
value, which the lease keeper renewed meanwhile.

All functions here are pure: they take bodies and return a new one.
"""
from __future__ import annotations

import copy
from typing import Iterable

from picas.core.token import HISTORY_LIMIT, copy_body

__all__ = ["RESULT_FIELDS", "HOLDER_FIELDS", "merge", "merge_result", "merge_history"]

#: The fields a pilot's result sets; without a base these are what a result carries over.
RESULT_FIELDS = ("exit_code", "done", "output", "started", "finished", "duration", "hostname", "timed_out",
                 "log_truncated", "uploads", "error", "lock", "scrub_count", "attempts")
#: Who holds the token and until when: the lease keeper's, not the payload's.
HOLDER_FIELDS = ("pilot", "heartbeat", "lease_until")


def _own(name: str) -> bool:
    """A field a pilot may change: not CouchDB's (``_id``, ``_rev``, ...) and not the history (merged)."""
    return not name.startswith("_") and name != "history"


def merge(current: dict, mine: dict, base: dict | None = None, *, fields: Iterable[str] | None = None) -> dict:
    """The body to write: what ``mine`` changed (since ``base``) laid over ``current``.

    ``fields`` limits what is taken from ``mine`` when there is no base
    (default: every field of ``mine``).  See the module docstring for the
    rules and why.
    """
    body = copy_body(current)
    if base is not None:
        changed = [name for name, value in mine.items() if _own(name) and base.get(name) != value]
        removed = [name for name in base if _own(name) and name not in mine]
    else:
        names = mine if fields is None else [name for name in fields if name in mine]
        changed = [name for name in names if _own(name) and name not in HOLDER_FIELDS]
        removed = [name for name in HOLDER_FIELDS if name not in mine]
    for name in changed:
        body[name] = copy.deepcopy(mine[name])
    for name in removed:
        body.pop(name, None)
    if "history" in current or "history" in mine:
        body["history"] = merge_history(current.get("history"), mine.get("history"))
    added = {name: value for name, value in (mine.get("_attachments") or {}).items() if "data" in value}
    if added:
        body["_attachments"] = {**(body.get("_attachments") or {}), **added}
    return body


def merge_result(current: dict, mine: dict, base: dict | None = None) -> dict:
    """A pilot's finished (or retried) token over the current one; without a base, the result fields win."""
    return merge(current, mine, base, fields=None if base is not None else RESULT_FIELDS)


def merge_history(ours: list | None, theirs: list | None) -> list:
    """Both histories, each entry once, in time order, cut to the newest :data:`~picas.core.token.HISTORY_LIMIT`."""
    seen, merged = set(), []
    for entry in list(ours or []) + list(theirs or []):
        key = repr(sorted(entry.items())) if isinstance(entry, dict) else repr(entry)
        if key not in seen:
            seen.add(key)
            merged.append(entry)
    merged.sort(key=lambda e: e.get("time", 0) if isinstance(e, dict) else 0)
    return merged[-HISTORY_LIMIT:]
