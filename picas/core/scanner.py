"""Finding claimable tokens in ``_all_docs`` instead of the ``todo`` view, and proving that none are left.

Why: pouchdb-server runs a view's map function in a new JavaScript ``vm``
context for every changed document, 1 to 1.4 ms of its single thread per
document, about as much as the write that changed it.  A row read from
``_all_docs`` with its body costs 0.02 to 0.03 ms in windows of 1,000
(``benchmarks/server_costs.py`` measures both).  A claimer that reads
the view keeps the server busy indexing; one that reads ``_all_docs`` does not.
This is allowed only where the design's ``todo`` view is the standard one
(:func:`scannable`), whose condition :func:`scan_claimable` repeats exactly.

How, in three phases:

1. **Rich pool.**  Windows of consecutive ids from a random start.  A window
   that is rich is followed by the next one (a sweep); a poor one makes the
   scanner jump.  Jumping every time would not do: pilots take whole windows,
   so taken tokens lie in runs, and the region right after a rich window is
   most likely untouched.
2. **Tail.**  Once fewer than :data:`SCAN_MIN_HIT` of the rows read are
   claimable, the scanner weighs two ways to find the last tokens
   (:func:`lap_is_cheaper`): reading the database whole, or one fresh view
   query that indexes every document changed so far, after which the view
   finds the remaining tokens without reading the taken ones.  If the view
   wins, the claimer turns to it for good.  Otherwise windows keep jumping,
   and grow as claimable rows get rare.
3. **Lap.**  After a window without work, the scanner reads the database
   whole, as one unbroken circle of ids from where it stands (a *lap*).  The
   database's ``update_seq`` is read before the lap's first row.  A lap that
   finds nothing proves that every token claimable later has changed after
   that sequence: a token unchanged since then had the same body when the lap
   read it.  The proof is left in a local document
   (``_local/picas-drained-<design>``), so that other pilots need not lap:
   they read the changes since its sequence instead, which at the end of a
   run are few.

On Apache CouchDB the update sequence is an opaque string (``"<count>-<opaque>"``;
:func:`seq_number` reads the count, and ``since=`` takes the string whole), and
an index is read as it stands with ``update=false`` (``stale=ok`` is deprecated;
pouchdb-server only honours ``stale=ok``: :attr:`picas.core.replicas.Replicas.stale`).
On a single node the proof holds as above: ``_all_docs``, ``GET /db`` and
``_changes`` all read the one copy.  On a cluster it does not: ``_all_docs``
reads each shard from one copy, which may lag behind the copy ``GET /db`` took
its sequence from, so a lap could read a token's old body after the sequence
that was meant to cover its change.  The claimer therefore never uses this
module on a cluster; nor on a single CouchDB node, where it would be sound but
slow: CouchDB indexes fast (the reason for scanning is pouchdb-server's slow
indexer) and serves ``_all_docs`` with bodies slowly, so the claimer reads the
view there (see :mod:`picas.core.claim`).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from picas.core import token as tok
from picas.core.client import CouchClient, ViewRow
from picas.core.replicas import replicas_of
from picas.errors import Conflict, PicasError
from picas.core.views import design_document

#: A scanner decides how to find the last tokens (see :func:`lap_is_cheaper`) once fewer than this share
#: of the rows it reads are claimable.
SCAN_MIN_HIT = 0.35
#: How strongly the newest window weighs in the running share of claimable rows.
SCAN_WEIGHT = 0.25
#: Windows without a claimable row read in a row before that decision is taken anyway.
SCAN_TRIES = 3
#: A sweep goes on past a window with at least this share of claimable rows, and jumps elsewhere otherwise.
SWEEP_MIN_HIT = 0.5
#: Claimable rows a window should hold once they are rare, as a share of a default window (which grows with
#: the batch size): the other pilots read the same few, so a window is soon out of date, and only its first
#: candidates are likely still todo when their turn comes.
TAIL_SHARE = 0.4
#: The most rows one ``_all_docs`` window reads; windows grow towards it as claimable rows get rare.
SCAN_MAX_WINDOW = 1000
#: The largest database a claimer reads whole (a lap) to find the last tokens, whatever the costs below say:
#: it bounds what one pilot can cost the server, for servers whose indexer is cheaper than pouchdb-server's.
LAP_MAX_ROWS = 20000
#: Server time, in milliseconds, measured on pouchdb-server (in memory, 2 cores): one row of ``_all_docs``
#: with its body in a window of 1,000 rows; one request whatever it asks; one changed document brought into
#: a JavaScript view's index (pouchdb-server runs the map function in a new ``vm`` context per document).
ROW_MS = 0.022
REQUEST_MS = 2.0
INDEX_MS = 1.0
#: Windows a lap reads, or the share of the database (one in this many rows), before it asks for another
#: pilot's proof and reads the sequence for its own: most laps of the tail find work sooner, and would pay
#: two requests for nothing.
LAP_PROOF_WINDOWS = 3
LAP_PROOF_SHARE = 4
#: Changes read after another pilot's empty lap: at least this many, and up to one in this many rows of the
#: database (at most a window's worth).  A change is read with its body, as a row of a lap is, so reading the
#: changes costs less than a lap of one's own as long as they are a fraction of the database.  At the end of a
#: pool of 10,000 tokens, 16 batch-mode pilots leave some 300 changes after the first proof; with a fixed 200
#: each would lap the pool itself.
MARKER_CHANGES = 200
MARKER_SHARE = 4

#: The todo map function of classic picas databases, as the picas 1.x example scripts wrote it.
CLASSIC_TODO_MAP = ('function(doc) { if(doc.type == "token") { if(doc.lock == 0 && doc.done == 0) '
                    '{ emit(doc._id, doc._id); } } }')

#: What :meth:`Scanner.next_bodies` returns when a lap proved that no work is left.
NONE_LEFT: tuple = ()


def _squeeze(source: str) -> str:
    return "".join(source.split())


def scannable(design_doc: dict | None) -> bool:
    """Whether the design document's ``todo`` view selects exactly the bodies :func:`scan_claimable` accepts.

    Only then may a claimer find its candidates in ``_all_docs`` instead of
    the view: a design document with an extra condition, or a ``todo`` view
    the user wrote differently, must be obeyed, so it is read through the view.
    """
    if not design_doc or design_doc.get("picas_condition") is not None:
        return False
    source = ((design_doc.get("views") or {}).get("todo") or {}).get("map")
    if not isinstance(source, str):
        return False
    standard = design_document()["views"]["todo"]["map"]
    return _squeeze(source) in (_squeeze(standard), _squeeze(CLASSIC_TODO_MAP))


def scan_claimable(doc: dict | None) -> bool:
    """A body the standard ``todo`` view lists: a token (typed as such) in the todo state."""
    return bool(doc) and doc.get("type") == "token" and tok.is_claimable(doc)


def wrapped_window(fetch: Callable[[str | None, int], list[ViewRow]], start: str | None,
                   size: int) -> list[ViewRow]:
    """``size`` rows from ``start`` by ``fetch(start, limit)``; a start near the end is topped up from the beginning.

    Random starts fall near the end of an index as often as anywhere else;
    without the top-up their windows would be short.  Rows read twice (a
    small index) are kept once.
    """
    rows = fetch(start, size)
    if start is not None and len(rows) < size:
        seen = {row.id for row in rows}
        rows += [row for row in fetch(None, size - len(rows)) if row.id not in seen]
    return rows


def seq_number(seq: object) -> int | None:
    """The count in an update sequence: pouchdb-server gives a number, CouchDB 2+ ``"<count>-<opaque>"``."""
    if isinstance(seq, int) and not isinstance(seq, bool):
        return seq
    if isinstance(seq, str):
        head = seq.split("-", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def lap_is_cheaper(total_rows: int, backlog: int | None, crowd: int) -> bool:
    """Whether the last tokens are cheaper to find by reading ``_all_docs`` whole than through the view.

    Once most tokens are taken, a window of ``_all_docs`` rarely holds a
    claimable one.  Either pilots read the database whole (laps), or one view
    query first brings the index up to date with every document changed since
    it was last read (``backlog`` changes; a document changed twice is indexed
    once, hence the bound by ``total_rows``) and all pilots share it.
    ``crowd`` is how many pilots may each pay for a lap (the proof a lap
    leaves spares most of them, but not those already lapping).  An unknown
    backlog or a database above :data:`LAP_MAX_ROWS` leaves it to the view.
    """
    if backlog is None or total_rows > LAP_MAX_ROWS:
        return False
    lap = total_rows * ROW_MS + -(-total_rows // SCAN_MAX_WINDOW) * REQUEST_MS
    index = min(backlog, total_rows) * INDEX_MS
    return max(1, crowd) * lap < index


@dataclass
class _Lap:
    """One circle through ``_all_docs``: from just after ``origin`` to the end, then from the start to ``origin``."""

    #: The database's ``update_seq`` read before the circle's first row (None until the second window).
    seq: Any
    origin: str
    cursor: str
    wrapped: bool = False
    windows: int = 0
    rows: int = 0


class Scanner:
    """Claimable bodies from ``_all_docs`` for one claimer (see the module docstring)."""

    def __init__(self, client: CouchClient, who: tok.PilotIdentity, stats: Any, *, design: str, view: str,
                 window: int, random_key: Callable[[], str | None], rng: random.Random,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.who = who
        self.stats = stats
        self.design = design
        self.view = view
        self.window = window
        self.random_key = random_key
        self.rng = rng
        self.clock = clock
        self._hit = 1.0
        self._cursor: str | None = None
        #: True once claimable rows got rare and laps were found cheaper than the view (see :func:`lap_is_cheaper`).
        self.tail = False
        #: True once the view was found cheaper: the claimer reads it from then on.
        self._use_view = False
        #: Rows read in a row, window after window, without a claimable body; sizes the windows of a lap.
        self._dry = 0
        self._total_rows = 0
        self._lap: _Lap | None = None
        #: The sequence of the last proof found unusable (too much changed since), so it is not read twice.
        self._stale_marker: Any = None
        #: Pilots seen holding or having held tokens: each may pay for a lap of its own.
        self._holders: set = set()

    @property
    def marker_id(self) -> str:
        return f"_local/picas-drained-{self.design}"

    # ------------------------------------------------------------------ the one entry point
    def next_bodies(self) -> list[dict] | tuple | None:
        """Claimable bodies, shuffled; :data:`NONE_LEFT` when a lap proved none are left; None: use the view."""
        tries = 0
        while not self._use_view:
            if self._lap is not None:
                bodies = self._lap_step()
                if bodies is None:
                    continue
                return self._shuffled(bodies) if bodies else NONE_LEFT
            bodies, rows = self._free_window()
            if not self.tail and self._hit < SCAN_MIN_HIT and not self._choose_tail():
                self._use_view = True  # these bodies first, the view from the next call on
            if bodies:
                return self._shuffled(bodies)
            if self._use_view:
                break
            if self.tail:
                if not rows:
                    return NONE_LEFT  # an empty database
                self._start_lap(rows[-1].id)
                continue
            tries += 1
            if tries >= SCAN_TRIES and not self._choose_tail():
                self._use_view = True  # window after window without work: the pool is poor, and the view knows
        return None

    def _shuffled(self, bodies: list[dict]) -> list[dict]:
        self.rng.shuffle(bodies)
        return bodies

    # ------------------------------------------------------------------ reading
    def _fetch(self, start: str | None, limit: int, end: str | None = None) -> list[ViewRow]:
        """Rows of ``_all_docs`` with bodies from ``start`` (exclusive) or the beginning, to ``end`` (inclusive)."""
        params: dict = {"include_docs": True, "limit": limit + (start is not None)}
        if start is not None:
            params["startkey"] = start
        if end is not None:
            params["endkey"] = end
        self.stats.scan_queries += 1
        answer = self.client.all_docs(**params)
        if answer.total_rows is not None:
            self._total_rows = answer.total_rows
        # ``start`` itself is dropped by id rather than skipped by count: if it was deleted meanwhile,
        # skip=1 would pass over another document, and a lap must not miss one.
        rows = [row for row in answer.rows if row.id != start][:limit]
        self.stats.scanned_rows += len(rows)
        if len(self._holders) < 10000:
            self._holders.update(row.doc["pilot"] for row in rows if row.doc and isinstance(row.doc.get("pilot"), str))
        return rows

    def _size(self) -> int:
        """About half a default window of claimable rows, fewer in the tail; a lap grows with the rows it read."""
        share = TAIL_SHARE if self.tail else SWEEP_MIN_HIT
        size = -(-self.window * share // max(self._hit, 1e-3))
        if self._lap is not None:
            size = max(size, self._dry)
        return int(min(SCAN_MAX_WINDOW, max(self.window, size)))

    def _note(self, rows: list[ViewRow]) -> list[dict]:
        """The claimable bodies among ``rows``, with the running share of claimable rows brought up to date."""
        bodies = [row.doc for row in rows if scan_claimable(row.doc)]
        share = len(bodies) / len(rows) if rows else 0.0
        self._hit = (1 - SCAN_WEIGHT) * self._hit + SCAN_WEIGHT * share
        self._dry = 0 if bodies else self._dry + len(rows)
        return bodies

    def _free_window(self) -> tuple[list[dict], list[ViewRow]]:
        """A window that sweeps on from the last one while the region is rich, and jumps otherwise."""
        size = self._size()
        start = self._cursor if self._cursor is not None else self.random_key()
        rows = wrapped_window(self._fetch, start, size)
        bodies = self._note(rows)
        rich = not self.tail and len(rows) >= size and len(bodies) >= SWEEP_MIN_HIT * len(rows)
        self._cursor = rows[-1].id if rich else None
        return bodies, rows

    def forget_region(self) -> None:
        """Another pilot works where this one sweeps (a conflict): the next window jumps."""
        self._cursor = None

    # ------------------------------------------------------------------ the tail
    def _choose_tail(self) -> bool:
        """Claimable rows got rare: True to go on with laps, False to turn to the view for good."""
        crowd = len(self._holders | {self.who.pilot_id})
        self.tail = lap_is_cheaper(self._total_rows, self._index_backlog(), crowd)
        return self.tail

    def _index_backlog(self) -> int | None:
        """How many changes the view's index has not seen yet: what the next fresh query makes the server index."""
        try:
            db_seq = seq_number(self.client.db_info().get("update_seq"))
            view_seq = seq_number(self.client.view(self.design, self.view, **replicas_of(self.client).stale, limit=0,
                                                   update_seq=True).update_seq)
        except PicasError:
            return None
        if db_seq is None or view_seq is None:
            return None
        return max(0, db_seq - view_seq)

    # ------------------------------------------------------------------ laps and their proofs
    def _start_lap(self, origin: str) -> None:
        self._lap = _Lap(seq=None, origin=origin, cursor=origin)
        self.stats.laps += 1

    def _lap_step(self) -> list[dict] | None:
        """One window of the lap: bodies found (lap over), [] (lap over, none left), or None (lap goes on)."""
        lap = self._lap
        # A lap first looks for another pilot's proof (one small read; none when there is no proof): at the
        # end of a pool, one pilot's empty lap then spares the pilots that come after it theirs.  Most laps
        # of the tail end within a few windows, with work found; only a lap that goes on past them, as all
        # do when the pool is empty, asks for a proof once more, and reads the sequence that makes its own
        # lap a proof.  That sequence must come before the circle's first row, so the circle starts again
        # from here, and the windows read so far are read once more at its end.
        if lap.windows == 0 or lap.windows >= LAP_PROOF_WINDOWS or lap.rows * LAP_PROOF_SHARE >= self._total_rows:
            proven = self._read_proof()
            if proven is not None:
                self._lap = None
                return proven
            if lap.seq is None:
                lap.seq = self.client.db_info().get("update_seq")
                lap.origin, lap.wrapped = lap.cursor, False
        lap.windows += 1
        size = self._size()
        if lap.wrapped:
            rows = self._fetch(lap.cursor, size, end=lap.origin)
            complete = len(rows) < size
        else:
            rows = self._fetch(lap.cursor, size)
            complete = False
            if len(rows) < size:
                lap.wrapped = True
                rest = self._fetch(None, size - len(rows), end=lap.origin)
                complete = len(rest) < size - len(rows)
                rows += rest
        bodies = self._note(rows)
        lap.rows += len(rows)
        if rows:
            lap.cursor = rows[-1].id
        if bodies or (complete and lap.seq is not None):
            self._lap = None
            if not bodies:
                self._leave_proof(lap.seq)
            return bodies
        if complete:  # a circle in one window, read before any sequence: start it again, now with one
            lap.wrapped = False
        return None

    def _read_proof(self) -> list[dict] | None:
        """Another pilot's empty lap, brought up to date: claimable bodies changed since, [], or None (no proof)."""
        try:
            marker = self.client.get_or_none(self.marker_id)
            if not marker or "seq" not in marker or marker["seq"] == self._stale_marker:
                return None
            limit = max(MARKER_CHANGES, min(self._total_rows // MARKER_SHARE, SCAN_MAX_WINDOW))
            answer = self.client.changes(since=marker["seq"], include_docs=True, limit=limit)
        except PicasError:
            return None
        results = answer.get("results") or []
        if len(results) >= limit:
            self._stale_marker = marker["seq"]
            return None
        return [r["doc"] for r in results if scan_claimable(r.get("doc"))]

    def _leave_proof(self, seq: Any) -> None:
        """Record an empty lap for the other pilots; a newer proof already there is kept."""
        try:
            current = self.client.get_or_none(self.marker_id)
            if current is not None:
                theirs, ours = seq_number(current.get("seq")), seq_number(seq)
                if theirs is not None and ours is not None and theirs >= ours:
                    return
            body = {"_id": self.marker_id, "seq": seq, "pilot": self.who.pilot_id, "time": int(self.clock())}
            if current is not None:
                body["_rev"] = current["_rev"]
            self.client.save(body)
        except (Conflict, PicasError):
            pass  # another pilot left its proof at the same moment: it serves as well
