"""The claim protocol: how a pilot takes a token so that no token is ever held twice.

Protocol
--------
1. Query the pilot's view (``todo`` by default) with ``include_docs=true`` for a
   small window of rows.  The view row only says that the token *was* todo when
   the index was last brought up to date; the ``doc`` that comes with it is the
   document's *current* body with its current ``_rev``.
2. Skip every row whose body is not claimable (already locked, done, deleted):
   a stale row costs nothing, because nothing is written for it.
3. For a claimable body, compute the locked body (:func:`picas.token.claim`)
   and write it **with the revision of the body just checked**.  CouchDB
   accepts a write only if that revision is still the document's current one
   (multi-version concurrency control).  So a successful write proves that
   nobody changed the token between our check and our write: we moved it from
   todo to locked ourselves, and every other pilot that read the same revision
   gets a 409.
4. On a 409 the token is simply dropped from the candidates: another pilot won
   it, fairly, and it is theirs.  We never retry a write on a 409 with a
   refreshed revision, since the refreshed body is locked by the winner.

Why it is safe: the only write that makes a token locked is a write whose
revision matched a body that was todo.  Two pilots cannot both win the same
revision, and after the first win the token's revision is a locked one.  A
pilot that loses its lock later (a scrub after its lease ran out) finds out at
its next write, which fails for the same reason.

Why it is fast:

* While most of the pool is todo, candidates come from ``_all_docs`` (the
  primary index), not from the view.  pouchdb-server runs a view's map
  function in a fresh JavaScript context for every changed document, which
  costs it more than the write that changed the document (measured: about
  1 ms per document, against 0.02 ms per row read from ``_all_docs`` in
  windows of 1,000), so a claimer that reads the view keeps the server busy
  indexing.  Read from ``_all_docs``, a window of a fresh pool is almost all
  claimable, and the body decides as in step 2.  This is done only for the
  standard ``todo`` view (:func:`scannable`), whose condition
  :func:`scan_claimable` repeats exactly.
* Once fewer than :data:`SCAN_MIN_HIT` of the rows read are claimable, the
  claimer weighs two ways to find the last tokens (:func:`lap_is_cheaper`):
  reading the database whole, in windows that grow as work gets rare (a
  lap, which proves that no work is left when it finds none), or one fresh
  view query that indexes every document changed so far, once, after which
  the view finds the few remaining tokens without reading the taken ones.
  It counts the pilots it has seen (each pays for its own lap) and the
  changes the index has not seen (``update_seq`` of the database against
  the view's).  Small pools drained by a few pilots lap; large pools, or
  crowds of pilots, use the view.
* The view is queried once per window, not once per token; a window is used
  until it runs out or turns out to be contested.
* Windows are first read from the index as it stands (``stale=ok``), which
  spares the server the index update that a fresh query forces; the index is
  refreshed only when a stale window holds nothing claimable any more
  (step 2 makes stale rows harmless).
* Pilots spread out.  Each window starts at a random key, drawn from the shape
  of the keys seen so far (their common prefix and the characters that follow
  it), and the rows of a window are tried in random order.  Pilots therefore
  rarely reach for the same token, and a 409 (one wasted request) is rare.
  The random start is a ``startkey``, which the view index seeks to directly;
  nothing is skipped or scanned.
* After a run of conflicts the claimer backs off with jitter, so a crowd of
  pilots spreads out in time as well.
* Batch claims (``claim_batch``) lock up to k tokens in one ``_bulk_docs``
  request; each document succeeds or fails on its own revision, with the same
  guarantee.
"""
from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from picas import token as tok
from picas.couch import CouchClient, ViewRow
from picas.errors import Conflict, PicasError
from picas.retry import Backoff
from picas.views import design_document

#: Rows (ids only) read once to learn the shape of the view's keys.
LEARN_ROWS = 50
#: A scanning claimer decides how to find the last tokens (see :func:`lap_is_cheaper`) once fewer than
#: this share of the rows it reads are claimable.
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


#: The todo map function of classic picas databases, as the picas 1.x example scripts wrote it.
CLASSIC_TODO_MAP = ('function(doc) { if(doc.type == "token") { if(doc.lock == 0 && doc.done == 0) '
                    '{ emit(doc._id, doc._id); } } }')


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
    claimable one.  Either every pilot reads the database whole (a *lap*,
    which also proves, when it finds nothing, that no work is left), or one
    view query first brings the index up to date with every document changed
    since it was last read (``backlog`` changes; a document changed twice is
    indexed once, hence the bound by ``total_rows``) and all pilots share it.
    ``crowd`` is how many pilots will each pay for a lap.  An unknown backlog
    or a database above :data:`LAP_MAX_ROWS` leaves the choice to the view.
    """
    if backlog is None or total_rows > LAP_MAX_ROWS:
        return False
    lap = total_rows * ROW_MS + -(-total_rows // SCAN_MAX_WINDOW) * REQUEST_MS
    index = min(backlog, total_rows) * INDEX_MS
    return max(1, crowd) * lap < index


@dataclass
class KeySpace:
    """What the claimer has learned about the view's keys, to draw random start keys from."""

    prefix: str | None = None
    alphabet: set = field(default_factory=set)
    suffix_length: int = 0

    def learn(self, keys: list) -> None:
        strings = [k for k in keys if isinstance(k, str)]
        if not strings:
            return
        prefix = strings[0] if self.prefix is None else self.prefix
        for key in strings:
            while not key.startswith(prefix):
                prefix = prefix[:-1]
        self.prefix = prefix
        for key in strings:
            suffix = key[len(prefix):]
            self.alphabet.update(suffix[:8])
            self.suffix_length = max(self.suffix_length, min(len(suffix), 8))

    def random_key(self, rng: random.Random) -> str | None:
        if self.prefix is None or not self.alphabet:
            return None
        chars = sorted(self.alphabet)
        return self.prefix + "".join(rng.choice(chars) for _ in range(max(1, self.suffix_length)))


@dataclass
class ClaimStats:
    claimed: int = 0
    conflicts: int = 0
    view_queries: int = 0
    stale_rows: int = 0
    scan_queries: int = 0
    scanned_rows: int = 0
    laps: int = 0


class Claimer:
    """Claims tokens from one view of one design document for one pilot."""

    def __init__(self, client: CouchClient, who: tok.PilotIdentity, *, design: str = "Monitor",
                 view: str = "todo", window: int = 25, lease_seconds: float = 600.0,
                 view_params: dict | None = None, rng: random.Random | None = None,
                 clock=time.time, stale_first: bool = True, stop: threading.Event | None = None,
                 scan: bool | None = None) -> None:
        self.client = client
        self.who = who
        self.design = design
        self.view = view
        self.window = window
        self.lease_seconds = lease_seconds
        self.view_params = dict(view_params or {})
        self.rng = rng or random.Random()
        self.clock = clock
        self.stale_first = stale_first
        #: Set by the pilot's signal handler: a backoff between rounds ends at once.
        self.stop = stop or threading.Event()
        self.keys = KeySpace()
        self.stats = ClaimStats()
        self._candidates: deque[dict] = deque()
        #: None until the design document has been checked (see :func:`scannable`); False forces the view.
        self.scan = scan
        self._hit = 1.0
        self._cursor: str | None = None
        #: True once the last tokens are looked for by reading ``_all_docs`` whole (see :func:`lap_is_cheaper`).
        self._lapping = False
        #: Rows read in a row, window after window, without a claimable body; and the database's size.
        self._dry = 0
        self._total_rows = 0
        #: Pilots seen holding or having held tokens: every one of them will pay for its own lap.
        self._holders: set = set()

    # ------------------------------------------------------------------ candidates
    def _query(self, startkey: str | None, stale: bool, docs: bool = True, limit: int | None = None,
               descending: bool = False) -> list[ViewRow]:
        params = dict(self.view_params)
        params.update(include_docs=docs, limit=limit or self.window)
        if descending:
            params["descending"] = not params.get("descending", False)
        if stale:
            params.setdefault("stale", "ok")
        if startkey is not None:
            params["startkey"] = startkey
        self.stats.view_queries += 1
        return self.client.view(self.design, self.view, **params).rows

    def _wrapped(self, fetch, start: str | None) -> list[ViewRow]:
        """``fetch(start)``; if a random start fell near the end, topped up from the beginning, without repeats."""
        rows = fetch(start)
        if start is not None and len(rows) < self.window:
            seen = {row.id for row in rows}
            rows += [row for row in fetch(None) if row.id not in seen]
        return rows

    def _window(self, start: str | None, stale: bool) -> list[ViewRow]:
        return self._wrapped(lambda key: self._query(key, stale), start)

    def _learn_keys(self) -> None:
        """Read a few keys from both ends of the view: the first and last key bound the common prefix.

        The first rows alone would not do: in a pool of 1,000 random hex ids
        the first 50 all start with ``token_0``, and random keys drawn from
        that shape would keep every pilot within the first sixteenth.
        """
        half = max(1, LEARN_ROWS // 2)
        keys = [row.key for row in self._query(None, stale=True, docs=False, limit=half)]
        keys += [row.key for row in self._query(None, stale=True, docs=False, limit=half, descending=True)]
        self.keys.learn(keys)

    def _scanning(self) -> bool:
        if self.scan is None:
            self.scan = (self.view == "todo" and not self.view_params
                         and scannable(self.client.get_or_none(f"_design/{self.design}")))
        return self.scan

    def _scan(self, size: int) -> list[ViewRow]:
        """The next ``size`` rows of ``_all_docs`` with bodies, wrapping from the end to the beginning.

        It continues from where the last window ended while that region is
        rich (a sweep), and jumps to a random key otherwise.  Jumping every
        time would not do: pilots take whole windows, so the taken tokens lie
        in runs, and a random window lands in a run of taken ones far more
        often than the pool's todo share suggests, while the region right
        after a rich window is most likely untouched.  Windows are not held to
        the keys' common prefix: a lap must see every document.
        """
        def fetch(start: str | None, skip: int, limit: int) -> list[ViewRow]:
            self.stats.scan_queries += 1
            answer = self.client.all_docs(startkey=start, skip=skip or None, include_docs=True, limit=limit)
            if answer.total_rows is not None:
                self._total_rows = answer.total_rows
            return answer.rows

        start = self._cursor if self._cursor is not None else self.keys.random_key(self.rng)
        rows = fetch(start, 1 if self._cursor is not None else 0, size)
        if start is not None and len(rows) < size:
            seen = {row.id for row in rows}
            rows += [row for row in fetch(None, 0, size - len(rows)) if row.id not in seen]
        return rows

    def _scan_size(self) -> int:
        """A window that should hold about half a default window of claimable rows, bounded.

        While lapping it also grows with the dry rows already read, so a lap
        of a poor database takes a few large reads, not many small ones.
        """
        size = -(-self.window * SWEEP_MIN_HIT // max(self._hit, 1e-3))
        if self._lapping:
            size = max(-(-self.window * TAIL_SHARE // max(self._hit, 1e-3)), self._dry)
        return int(min(SCAN_MAX_WINDOW, max(self.window, size)))

    def _scan_window(self) -> bool:
        """Candidates from ``_all_docs``; False if this window had none (see :meth:`_refill`)."""
        size = self._scan_size()
        rows = self._scan(size)
        self.stats.scanned_rows += len(rows)
        bodies = [row.doc for row in rows if scan_claimable(row.doc)]
        if len(self._holders) < 10000:
            self._holders.update(row.doc["pilot"] for row in rows if row.doc and isinstance(row.doc.get("pilot"), str))
        share = len(bodies) / len(rows) if rows else 0.0
        self._hit = (1 - SCAN_WEIGHT) * self._hit + SCAN_WEIGHT * share
        self._dry = 0 if bodies else self._dry + len(rows)
        if self._lapping:
            # Dry windows follow one another, so that the dry rows counted are all different rows (a lap);
            # after a window with work the claimer jumps, since the other pilots have read around it too.
            self._cursor = rows[-1].id if rows and not bodies else None
        else:
            rich = len(rows) >= size and share >= SWEEP_MIN_HIT
            self._cursor = rows[-1].id if rich else None
            if self._hit < SCAN_MIN_HIT:
                self._choose_tail()
        if not bodies:
            return False
        self.rng.shuffle(bodies)
        self._candidates = deque(bodies)
        return True

    def _choose_tail(self) -> None:
        """Claimable rows got rare: go on reading ``_all_docs`` whole (lap), or turn to the view for good."""
        crowd = len(self._holders | {self.who.pilot_id})
        self._lapping = lap_is_cheaper(self._total_rows, self._index_backlog(), crowd)
        if self._lapping:
            self.stats.laps += 1
            self._cursor = None
        else:
            self.scan = False

    def _index_backlog(self) -> int | None:
        """How many changes the view's index has not seen yet: what the next fresh query makes the server index."""
        try:
            db_seq = seq_number(self.client.db_info().get("update_seq"))
            view_seq = seq_number(self.client.view(self.design, self.view, stale="ok", limit=0,
                                                   update_seq=True).update_seq)
        except PicasError:
            return None
        if db_seq is None or view_seq is None:
            return None
        return max(0, db_seq - view_seq)

    def _refill(self) -> bool:
        """Fetch a fresh window of claimable bodies; False when no work is left.

        While the pool is rich, candidates come from ``_all_docs`` (see the
        module docstring); when it is poor, from a lap of ``_all_docs`` or the
        view, whichever costs the server less.  From the view, the first try reads the index as it
        stands (``stale=ok``): keeping a view index current costs the server
        more per changed document than the write itself, and a stale row is
        harmless because the body decides.  Only when a stale window holds no
        claimable body is the index brought up to date, once, for everyone; a
        token that changed twice in between (locked, then done) is then
        indexed once, not twice.
        """
        if self.keys.prefix is None:
            # Before anything is known about the keys, every pilot would start at the top of the view
            # and they would all reach for the same few tokens: learn the keys' shape first, cheaply.
            self._learn_keys()
        if self._scanning():
            tries = 0
            while True:
                if self._scan_window():
                    return True
                if not self.scan:
                    break
                if self._lapping:
                    if self._dry >= self._total_rows or not self._dry:
                        # The whole database read without work (or nothing to read): none is left.
                        self._dry = 0  # a later call laps anew
                        return False
                    continue
                tries += 1
                if tries >= SCAN_TRIES:
                    self._choose_tail()  # window after window without work: the pool is poor
                    if not self.scan:
                        break
        start = self.keys.random_key(self.rng)
        for stale in ((True, False) if self.stale_first and "stale" not in self.view_params else (False,)):
            rows = self._window(start, stale)
            self.keys.learn([row.key for row in rows])
            bodies = [row.doc for row in rows if tok.is_claimable(row.doc)]
            self.stats.stale_rows += len(rows) - len(bodies)
            if stale and not bodies:
                continue
            if not rows:
                return False
            self.rng.shuffle(bodies)
            self._candidates = deque(bodies)
            return True
        return False

    def pending(self) -> int:
        return len(self._candidates)

    # ------------------------------------------------------------------ claiming
    def claim(self) -> dict | None:
        """Lock one token and return its locked body, or None when the view has no work."""
        got = self.claim_batch(1)
        return got[0] if got else None

    def claim_batch(self, k: int, max_rounds: int = 50) -> list[dict]:
        """Lock up to ``k`` tokens (one bulk request per round); empty list when there is no work.

        Returns as soon as at least one token is locked, so a pilot never waits
        for a full batch while work is there.
        """
        backoff = Backoff(base=0.05, cap=2.0, attempts=max_rounds).start()
        lost_rounds = 0
        while True:
            if not self._candidates and not self._refill():
                return []
            if self._candidates:
                picked = [self._candidates.popleft() for _ in range(min(k, len(self._candidates)))]
                won = self._write_claims(picked)
                if won:
                    self.stats.claimed += len(won)
                    return won
                # A lost race costs one write, a new window a view query: try the rest of the
                # window first.  Losing again and again means this region is contested.
                lost_rounds += 1
                if lost_rounds < 3 and self._candidates:
                    continue
                lost_rounds = 0
                self._candidates.clear()
            delay = backoff.next_delay()
            if delay is None or self.stop.wait(delay):
                return []

    def _write_claims(self, bodies: list[dict]) -> list[dict]:
        now = self.clock()
        locked = [tok.claim(body, self.who, now, self.lease_seconds) for body in bodies]
        if len(locked) == 1:
            try:
                return [self.client.save(locked[0])]
            except Conflict:
                self.stats.conflicts += 1
                self._cursor = None  # another pilot works here: sweep elsewhere
                return []
        won = []
        for body, result in zip(locked, self.client.bulk_save(locked)):
            if result.ok:
                won.append(body)
            elif result.conflict:
                self.stats.conflicts += 1
                self._cursor = None
        return won
