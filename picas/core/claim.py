"""The claim protocol: how a pilot takes a token so that no token is ever held twice.

Protocol
--------
1. Query the pilot's view (``todo`` by default) with ``include_docs=true`` for a
   small window of rows.  The view row only says that the token *was* todo when
   the index was last brought up to date; the ``doc`` that comes with it is the
   document's *current* body with its current ``_rev``.
2. Skip every row whose body is not claimable (already locked, done, deleted):
   a stale row costs nothing, because nothing is written for it.
3. For a claimable body, compute the locked body (:func:`picas.core.token.claim`)
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
  primary index), not from the view, and the last tokens are found by a lap
  of ``_all_docs`` or by the view, whichever costs the server less; a lap
  that finds nothing proves that no work is left (:mod:`picas.core.scanner`).
  This is done only for the standard ``todo`` view, whose condition the
  scanner repeats exactly.
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

from picas.core import token as tok
from picas.core.client import BulkResult, CouchClient, ViewRow
from picas.errors import Conflict
from picas.core.retry import Backoff
from picas.core.scanner import NONE_LEFT, Scanner, scannable, wrapped_window

#: Rows (ids only) read once to learn the shape of the view's keys.
LEARN_ROWS = 50


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


@dataclass
class Carried:
    """Finished tokens to save in the same ``_bulk_docs`` request as the next claim, and what became of each.

    The caller builds it and keeps it: once :meth:`Claimer.claim_batch` has
    returned, or raised, ``results`` pairs each body that was sent with its
    :class:`~picas.core.client.BulkResult`.  A body without a result was not
    sent, and its caller saves it on its own.
    """

    bodies: list[dict]
    results: list[tuple[dict, BulkResult]] = field(default_factory=list)


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
        #: None until the design document has been checked (see :func:`~picas.core.scanner.scannable`);
        #: False reads the view (forced, or once the scanner found it cheaper).
        self.scan = scan
        self.scanner = Scanner(client, who, self.stats, design=design, view=view, window=window,
                               random_key=lambda: self.keys.random_key(self.rng), rng=self.rng, clock=clock)

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

    def _window(self, start: str | None, stale: bool) -> list[ViewRow]:
        return wrapped_window(lambda key, limit: self._query(key, stale, limit=limit), start, self.window)

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

    def _refill(self) -> bool:
        """Fetch a fresh window of claimable bodies; False when no work is left.

        For the standard ``todo`` view, candidates come from ``_all_docs``
        until the view is found cheaper (:mod:`picas.core.scanner`).  From the
        view, the first try reads the index as it stands (``stale=ok``):
        keeping a view index current costs the server
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
            bodies = self.scanner.next_bodies()
            if bodies:
                self._candidates = deque(bodies)
                return True
            if bodies is NONE_LEFT:
                return False
            self.scan = False  # the view is cheaper from here on, for good
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

    def claim_batch(self, k: int, max_rounds: int = 50, carry: Carried | None = None) -> list[dict]:
        """Lock up to ``k`` tokens (one bulk request per round); empty list when there is no work.

        Returns as soon as at least one token is locked, so a pilot never waits
        for a full batch while work is there.  ``carry`` are finished tokens
        to save in the same ``_bulk_docs`` request as the first claim: every
        document in it succeeds or fails on its own revision, exactly as if
        written alone, and pouchdb-server spends about as much on one request
        of two documents as on one PUT.  Their outcomes are recorded in
        ``carry.results`` (see :class:`Carried`).
        """
        pending = carry
        backoff = Backoff(base=0.05, cap=2.0, attempts=max_rounds).start()
        lost_rounds = 0
        while True:
            if not self._candidates and not self._refill():
                return []
            if self._candidates:
                picked = [self._candidates.popleft() for _ in range(min(k, len(self._candidates)))]
                won = self._write_claims(picked, pending)
                pending = None  # sent once, with the first claim
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

    def _write_claims(self, bodies: list[dict], carry: Carried | None) -> list[dict]:
        now = self.clock()
        locked = [tok.claim(body, self.who, now, self.lease_seconds) for body in bodies]
        carried = carry.bodies if carry is not None else []
        if len(locked) == 1 and not carried:
            try:
                return [self.client.save(locked[0])]
            except Conflict:
                self.stats.conflicts += 1
                self.scanner.forget_region()  # another pilot works here: sweep elsewhere
                return []
        results = self.client.bulk_save(locked + carried)
        if carry is not None:
            carry.results = list(zip(carried, results[len(locked):]))
        won = []
        for body, result in zip(locked, results):
            if result.ok:
                won.append(body)
            elif result.conflict:
                self.stats.conflicts += 1
                self.scanner.forget_region()
        return won
