"""Reading a pool for a report: every token and pilot record, in bulk pages, kept slim.

A report needs every token (a sample would miss the rare failure an operator
looks for), so the pool is read in pages of ``_all_docs?include_docs=true``
(keyed by id, no index to build: the cheapest full read a CouchDB server
offers), or, for one design document, of its state views.  Each body is cut
down at once to the fields the report uses (:func:`slim`): the inputs,
outputs and user fields of 10^5 tokens would cost gigabytes of memory and are
never drawn.

:class:`Mirror` keeps such a copy up to date from the changes feed, for the
live dashboard: after the first full read only what changed is fetched.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from picas import defaults
from picas.core.client import CouchClient
from picas.pilot.record import DOC_TYPE as PILOT_TYPE, ID_PREFIX as PILOT_PREFIX
from picas.pool.tokens import STATE_VIEWS, tail, token_log
from picas.core import token as tok
from picas.errors import PicasError
from picas.report.attempts import Attempt, attempts

__all__ = ["DEFAULT_PAGE", "Mirror", "Pool", "fetch_log_tails", "read_pool", "slim"]

DEFAULT_PAGE = 5000
#: Fields of a token the report reads; everything else (input, output, user fields) is dropped on reading.
KEEP = ("_id", "type", "lock", "done", "exit_code", "hostname", "pilot", "attempts", "scrub_count", "created_at",
        "started", "finished", "duration", "heartbeat", "lease_until", "timed_out") + \
    tuple(name for _, name in tok.JOB_ID_FIELDS)
HISTORY_KEEP = frozenset(("event", "time", "host", "pilot", "exit_code", "reason", "duration", "seconds", "started",
                          "finished", "start", "end"))
MESSAGE_LIMIT = 300

Progress = Callable[[int, "int | None"], None]


@dataclass
class Pool:
    """What a report is made from: slim token bodies, pilot records, and where the changes feed stood."""

    tokens: list[dict] = field(default_factory=list)
    pilots: list[dict] = field(default_factory=list)
    update_seq: object = None
    #: Each token's attempts by ``id()`` of its body, read while the next page was on its way.
    tries_of: dict[int, list[Attempt]] = field(default_factory=dict)

    def add_token(self, doc: dict) -> None:
        body = slim(doc)
        self.tokens.append(body)
        self.tries_of[id(body)] = attempts(body)


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MESSAGE_LIMIT:
        return value[:MESSAGE_LIMIT] + "..."
    return value


def _entry(entry: dict) -> dict:
    out = {k: v for k, v in entry.items() if k in HISTORY_KEEP}
    if "reason" in out:
        out["reason"] = _short(out["reason"])
    return out


def slim(doc: dict) -> dict:
    """The fields of a token that a report reads, long messages shortened (pure)."""
    out = {name: doc[name] for name in KEEP if name in doc}
    history = doc.get("history")
    if isinstance(history, list):
        out["history"] = [_entry(entry) for entry in history if isinstance(entry, dict)]
    errors = doc.get("error")
    last = errors[-1] if isinstance(errors, list) and errors else errors
    if last:
        out["error"] = [{"message": _short(last.get("message", ""))} if isinstance(last, dict) else _short(str(last))]
    if doc.get("_attachments"):
        out["_attachments"] = {name: {} for name in doc["_attachments"]}
    return out


def _is_token(doc: dict) -> bool:
    return doc.get("type") == "token"


def _is_pilot(doc: dict) -> bool:
    return doc.get("type") == PILOT_TYPE and str(doc.get("_id", "")).startswith(PILOT_PREFIX)


def _pages_all_docs(client: CouchClient, page_size: int, start: str | None = None,
                    end: str | None = None) -> Iterator[list[dict]]:
    """``_all_docs`` with bodies, page after page: each page starts after the last id of the one before."""
    cursor, first = start, True
    while True:
        params: dict = {"include_docs": True, "limit": page_size}
        if cursor is not None:
            params["startkey"] = cursor
        if end is not None:
            params["endkey"] = end
        if not first:
            params["skip"] = 1
        rows = client.all_docs(**params).rows
        if rows:
            yield [row.doc for row in rows if row.doc]
        if len(rows) < page_size:
            return
        cursor, first = rows[-1].id, False


def _prefetched(pages: Iterator[list[dict]], depth: int = 2) -> Iterator[list[dict]]:
    """The same pages, the next one fetched while the caller works on this one.

    The server takes about as long to produce a page as this process takes
    to slim it; overlapping the two nearly halves a report's reading time.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        box.put(page, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            box.put(exc)

    thread = threading.Thread(target=fetch, name="picas-report-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _pages_view(client: CouchClient, design: str, view: str, page_size: int) -> Iterator[list[dict]]:
    page: list[dict] = []
    for row in client.iter_view(design, view, page_size=page_size, include_docs=True):
        if row.doc:
            page.append(row.doc)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


def read_pool(client: CouchClient, *, design: str | None = None, view: str | None = None,
              page_size: int = DEFAULT_PAGE, progress: Progress | None = None) -> Pool:
    """Every token (of one design document or view, if given) and the pilot records, slimmed.

    ``progress(read, total)`` is called after each page; ``total`` is the
    database's document count (or the view's rows), which the read may
    exceed slightly while pilots work.
    """
    info = client.db_info()
    pool = Pool(update_seq=info.get("update_seq"))
    read = 0
    if design is None and view is None:
        total = int(info.get("doc_count") or 0)
        for page in _prefetched(_pages_all_docs(client.copy(), page_size)):
            _add(pool, page)
            read += len(page)
            if progress:
                progress(read, total)
        return pool
    design = design or defaults.DESIGN
    views = [view] if view else list(STATE_VIEWS)
    totals = [client.view(design, name, limit=1).total_rows or 0 for name in views]
    seen: set[str] = set()
    for name in views:
        for page in _prefetched(_pages_view(client.copy(), design, name, page_size)):
            fresh = [doc for doc in page if doc.get("_id") not in seen]
            seen.update(doc["_id"] for doc in fresh)
            for doc in fresh:
                if _is_token(doc):
                    pool.add_token(doc)
            read += len(page)
            if progress:
                progress(read, sum(totals))
    records = [doc for page in _pages_all_docs(client, page_size, PILOT_PREFIX, PILOT_PREFIX + "\ufff0")
               for doc in page if _is_pilot(doc)]
    pool.pilots = [r for r in records if r.get("design") == design and (view is None or r.get("view") == view)]
    return pool


def _add(pool: Pool, docs: Iterable[dict]) -> None:
    for doc in docs:
        if _is_token(doc):
            pool.add_token(doc)
        elif _is_pilot(doc):
            pool.pilots.append(doc)


def fetch_log_tails(client: CouchClient, docs: Iterable[dict], ids: Iterable[str], lines: int = 20) -> dict[str, str]:
    """The last ``lines`` of the stderr log (stdout when stderr is empty) of each token in ``ids``.

    One request per log, so callers bound ``ids`` (the report fetches the
    most recent failures only).  A log that cannot be read is left out.
    """
    by_id = {str(d.get("_id")): d for d in docs}
    out: dict[str, str] = {}
    for token_id in ids:
        doc = by_id.get(token_id)
        if not doc or not doc.get("_attachments"):
            continue
        try:
            text = token_log(client, doc, err=True) or ""
            if not text.strip():
                text = token_log(client, doc) or ""
        except PicasError:
            continue
        if text.strip():
            out[token_id] = "\n".join(line[:200] for line in tail(text, lines).splitlines())
    return out


class Mirror:
    """A slim copy of a whole pool, brought up to date from the changes feed (for the dashboard)."""

    def __init__(self, client: CouchClient, page_size: int = DEFAULT_PAGE) -> None:
        self.client = client
        self.page_size = page_size
        self.tokens: dict[str, dict] = {}
        self.tries: dict[str, list[Attempt]] = {}
        self.pilots: dict[str, dict] = {}
        self.seq: object = 0

    def refresh(self, progress: Progress | None = None) -> bool:
        """Apply every change since the last call; True when anything changed.

        The first call reads the whole pool as :func:`read_pool` does (pages
        of ``_all_docs``, much cheaper than the changes feed from zero) and
        then takes the changes since the update sequence it saw before that
        read: whatever changed during the read is applied again, and the
        latest body wins.
        """
        changed = False
        if self.seq == 0:
            pool = read_pool(self.client, page_size=self.page_size, progress=progress)
            self.tokens = {doc["_id"]: doc for doc in pool.tokens}
            self.tries = {doc["_id"]: pool.tries_of[id(doc)] for doc in pool.tokens}
            self.pilots = {doc["_id"]: doc for doc in pool.pilots}
            self.seq = pool.update_seq if pool.update_seq is not None else 0
            changed = True
        while True:
            answer = self.client.changes(since=self.seq, include_docs=True, limit=self.page_size)
            results = answer.get("results") or []
            for change in results:
                changed = True
                self._apply(change)
            self.seq = answer.get("last_seq", self.seq)
            if len(results) < self.page_size:
                return changed

    def _apply(self, change: dict) -> None:
        doc_id = str(change.get("id"))
        doc = change.get("doc") or {}
        self.tokens.pop(doc_id, None)
        self.tries.pop(doc_id, None)
        self.pilots.pop(doc_id, None)
        if change.get("deleted") or doc.get("_deleted"):
            return
        if _is_token(doc):
            self.tokens[doc_id] = slim(doc)
            self.tries[doc_id] = attempts(self.tokens[doc_id])
        elif _is_pilot(doc):
            self.pilots[doc_id] = doc

    def pool(self) -> Pool:
        return Pool(tokens=list(self.tokens.values()), pilots=list(self.pilots.values()), update_seq=self.seq,
                    tries_of={id(doc): self.tries[doc_id] for doc_id, doc in self.tokens.items()})
