"""Operations on many tokens at once: list, inspect, reset and delete them.

An operator picks tokens either by view (``error``, ``locked``, ...) or by id,
optionally only those older than some duration, and every change is written
in ``_bulk_docs`` batches.  The selection rules are pure functions
(:func:`qualifies`, :func:`token_row`); only the
functions that take a client read or write.

Changes race with pilots: between reading a token and writing it back, a
pilot may lock it, finish it or renew its lease.  Every write carries the
revision that was read, so such a race shows up as a per-document 409 and
never overwrites the pilot's work.  On a 409 the token is read again and
changed only if it *still* qualifies (same state, still old enough); a token
that moved on is left alone and counted as skipped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from picas import defaults
from picas.core import token as tok
from picas.core.replicas import settle_body
from picas.core.client import CouchClient, chunks
from picas.core.states import STATES, State
from picas.errors import InvalidInput, NotFound, TokenNotFound
from picas.support.durations import parse_duration  # noqa: F401 - re-exported for older callers

#: The views that select tokens by state; their names are the states.
STATE_VIEWS = tuple(state.value for state in STATES)
DEFAULT_BATCH = 500


def changed_at(doc: dict) -> float | None:
    """When the token entered its current state: its finish time if finished, else its lock time."""
    for name in ("done", "lock"):
        try:
            value = float(doc.get(name) or 0)
        except (TypeError, ValueError):
            value = 0.0
        if value > 0:
            return value
    return None


def token_age(doc: dict, now: float) -> float | None:
    """Seconds since the token entered its state; None for todo tokens (they carry no time)."""
    since = changed_at(doc)
    return None if since is None else now - since


def job_id(doc: dict) -> str:
    """The batch job that holds or held the token (Slurm, DIRAC, ...), or ''."""
    for _, name in tok.JOB_ID_FIELDS:
        if doc.get(name):
            return str(doc[name])
    return ""


def token_row(doc: dict, now: float) -> dict:
    """The summary of one token that ``picas tokens list`` shows: id, state, host, job id, age, exit code."""
    return {"id": doc.get("_id"), "state": tok.state(doc), "host": doc.get("hostname") or "",
            "job_id": job_id(doc), "age": token_age(doc, now), "exit_code": doc.get("exit_code", "")}


def is_token(doc: dict | None) -> bool:
    """A live token body, not a design document: bulk operations must never touch the views."""
    return bool(doc) and not doc.get("_deleted") and not str(doc.get("_id", "")).startswith("_design/")


def qualifies(doc: dict | None, view: str | None, older_than: float | None, now: float) -> bool:
    """Whether a token is (still) selected: in the view's state, if a state view is given, and old enough.

    A todo token carries no time; ``older_than`` therefore never selects it.
    """
    if not is_token(doc):
        return False
    if view is not None and tok.state(doc) != view:
        return False
    if older_than is not None:
        age = token_age(doc, now)
        if age is None or age < older_than:
            return False
    return True


# --------------------------------------------------------------------------- reading


def _check_view(view: str | None, allowed: Iterable[str] = STATE_VIEWS) -> None:
    if view is not None and view not in allowed:
        raise InvalidInput(f"'{view}' is not one of the views {', '.join(allowed)}")


def get_token(client: CouchClient, token_id: str) -> dict:
    """The current body of one token, or TokenNotFound."""
    try:
        return client.get(token_id)
    except NotFound as exc:
        if type(exc) is not NotFound:
            raise  # the database (or a view) is missing, not the token
        raise TokenNotFound(f"no token '{token_id}' in database '{client.database}'") from None


def list_tokens(client: CouchClient, view: str = "todo", limit: int | None = 50, design: str = defaults.DESIGN,
                startkey: object = None) -> list[dict]:
    """The current bodies of the first ``limit`` tokens of a view (all of them when ``limit`` is None).

    A view row only says the token was in that state when the index was last
    updated; the body returned is the current one, so callers should derive
    the state from it (:func:`token_row` does).
    """
    params: dict = {"include_docs": True}
    if startkey is not None:
        params["startkey"] = startkey
    if limit is None:
        rows: Iterable = client.iter_view(design, view, **params)
    else:
        if limit < 1:
            return []
        rows = client.view(design, view, limit=limit, **params).rows
    return [row.doc for row in rows if row.doc]


def _by_ids(client: CouchClient, ids: list[str], batch: int) -> Iterator[list[dict]]:
    """Batches of current bodies for the ids; all ids are checked first, so a typo changes nothing."""
    ids = list(dict.fromkeys(ids))  # drop repeats, keep order
    for token_id in ids:
        if token_id.startswith("_design/"):
            raise InvalidInput(f"'{token_id}' is a design document, not a token")
    bodies: dict[str, dict] = {}
    for group in chunks(ids, batch):
        bodies.update(client.bulk_get(group, conflicts=True))
    missing = [token_id for token_id in ids if token_id not in bodies]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise TokenNotFound(f"no token {shown} in database '{client.database}'; nothing was changed")
    for group in chunks(ids, batch):
        yield [bodies[token_id] for token_id in group]


def select(client: CouchClient, view: str | None = None, ids: list[str] | None = None, design: str = defaults.DESIGN,
           batch: int = DEFAULT_BATCH) -> Iterator[list[dict]]:
    """Batches of the current bodies of the chosen tokens: by id, or every token of a view.

    The view is read page by page (by start key, never by skip), so a view
    of 10^6 rows costs 10^3 requests and constant memory.
    """
    if ids:
        yield from _by_ids(client, ids, batch)
        return
    if view is None:
        raise InvalidInput("choose tokens with a view or with ids", hint="e.g. --view error, or --ids ID1,ID2")
    rows = client.iter_view(design, view, page_size=batch, include_docs=True, conflicts=True)
    for group in chunks(rows, batch):
        yield [row.doc for row in group if row.doc]


# --------------------------------------------------------------------------- changing


@dataclass
class ChangeReport:
    """What a reset or delete did (or, with ``dry_run``, would do)."""

    changed: int = 0
    skipped: int = 0
    ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"changed": self.changed, "skipped": self.skipped, "ids": list(self.ids),
                "failed": dict(self.failed), "dry_run": self.dry_run}


def _apply(client: CouchClient, docs: list[dict], change: Callable[[dict], dict],
           still: Callable[[dict], bool], report: ChangeReport, rounds: int = 5) -> None:
    """Write ``change(doc)`` for each doc; on a 409, re-read and retry only tokens that ``still`` qualify.

    A token with conflicting leaves (a cluster's) is settled first and changed as settled
    (:func:`picas.core.replicas.settle_body`), so that no losing leaf survives the change.  A write
    answered 202 counts as changed: it reached fewer copies than the write quorum, and if the
    token's pilot wrote a result at the same moment, that result outranks the reset when the copies
    meet (a finished run is not thrown away by a reset that raced it).
    """
    for _ in range(rounds):
        settled = [doc for doc in (settle_body(client, doc) for doc in docs) if doc and still(doc)]
        report.skipped += len(docs) - len(settled)
        docs = settled
        if not docs:
            return
        bodies = [change(doc) for doc in docs]
        conflicted = []
        for body, result in zip(bodies, client.bulk_save(bodies)):
            if result.ok:
                report.changed += 1
                report.ids.append(body["_id"])
            elif result.conflict:
                conflicted.append(body["_id"])
            else:
                report.failed[body["_id"]] = f"{result.error}: {result.reason}"
        current = client.bulk_get(conflicted, conflicts=True) if conflicted else {}
        docs = [current[i] for i in conflicted if i in current and still(current[i])]
        report.skipped += len(conflicted) - len(docs)
    for doc in docs:
        report.failed[doc["_id"]] = "kept changing during the operation"


def _change_tokens(client: CouchClient, change: Callable[[dict], dict], extra: Callable[[dict], bool], *,
                   view: str | None, ids: list[str] | None, older_than: float | None, dry_run: bool, design: str,
                   batch: int, now: float) -> ChangeReport:
    """Select (by ids if given, else by view), filter with :func:`qualifies` and ``extra``, and write ``change``."""
    report = ChangeReport(dry_run=dry_run)

    def still(doc: dict) -> bool:
        return qualifies(doc, view, older_than, now) and extra(doc)

    for docs in select(client, view, ids, design, batch):
        chosen = [doc for doc in docs if still(doc)]
        report.skipped += len(docs) - len(chosen)
        if dry_run:
            report.changed += len(chosen)
            report.ids.extend(doc["_id"] for doc in chosen)
        else:
            _apply(client, chosen, change, still, report)
    return report


def reset_tokens(client: CouchClient, *, view: str | None = None, ids: list[str] | None = None,
                 older_than: float | None = None, dry_run: bool = False, design: str = defaults.DESIGN,
                 batch: int = DEFAULT_BATCH, now: float | None = None,
                 reason: str = "reset by operator") -> ChangeReport:
    """Put the chosen tokens back to todo, incrementing their ``scrub_count``; returns what changed.

    Tokens are chosen by ``view`` (a state: error, locked or done), by
    ``ids`` (any state; with a view too, only those in that state), and with
    ``older_than`` (seconds) only those that entered their state at least
    that long ago (locked: since the lock; error, done: since they
    finished).  Todo tokens are never touched, so a reset cannot count a
    scrub twice.  A token that changes while we write it (a 409) is read
    again and reset only if it still qualifies: a pilot that finished or
    re-locked it in the meantime wins.  Unknown ids raise TokenNotFound
    before anything is written.
    """
    _check_view(view, (State.LOCKED, State.DONE, State.ERROR))
    now = time.time() if now is None else now

    def change(doc: dict) -> dict:
        return tok.reset(doc, None, now, f"{reason} (was {tok.state(doc)})")

    return _change_tokens(client, change, lambda doc: tok.state(doc) is not State.TODO, view=view, ids=ids,
                          older_than=older_than, dry_run=dry_run, design=design, batch=batch, now=now)


def delete_tokens(client: CouchClient, *, view: str | None = None, ids: list[str] | None = None,
                  older_than: float | None = None, dry_run: bool = False, design: str = defaults.DESIGN,
                  batch: int = DEFAULT_BATCH, now: float | None = None) -> ChangeReport:
    """Delete the chosen tokens (by state view and/or ids, optionally only older ones); returns what changed.

    A delete is a write with the revision read, like any other: a token that
    a pilot changes meanwhile (409) is read again and deleted only if it
    still qualifies.  Unknown ids raise TokenNotFound before anything is deleted.
    """
    _check_view(view)
    now = time.time() if now is None else now

    def change(doc: dict) -> dict:
        return {"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}

    return _change_tokens(client, change, lambda doc: True, view=view, ids=ids, older_than=older_than,
                          dry_run=dry_run, design=design, batch=batch, now=now)


# --------------------------------------------------------------------------- logs


def log_attachment_name(doc: dict, err: bool = False) -> str | None:
    """The attachment that holds a token's stdout (or stderr) log, as the pilot names it, or None."""
    suffix = ".err" if err else ".out"
    names = sorted(name for name in (doc.get("_attachments") or {}) if name.endswith(suffix))
    for name in names:
        if name.startswith("logs_"):
            return name
    return names[0] if names else None


def token_log(client: CouchClient, doc: dict, err: bool = False) -> str | None:
    """The text of a token's stdout (or stderr) log, or None when it has none attached."""
    name = log_attachment_name(doc, err)
    if name is None:
        return None
    return client.get_attachment(doc["_id"], name).decode("utf-8", errors="replace")


def tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of a text."""
    if lines <= 0:
        return ""
    return "\n".join(text.splitlines()[-lines:])
