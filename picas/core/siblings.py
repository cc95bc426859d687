"""What the claimers of one process tell each other, so that they never race each other for a token.

A pilot process with several slots (``picas run --slots N``) runs one
:class:`~picas.core.claim.Claimer` per slot.  Each reads its own windows of
candidates, and near the end of a pool those windows hold the same few
tokens: without a word between them, the slots write claims for the same
revision, and all but one get a 409.  Measured with 16 slots on 1,000 tokens
(pouchdb-server), about 200 of some 1,900 requests were such lost races, three
quarters of them in the last 300 tokens.

Two facts, shared through one :class:`Siblings` object, remove the races
inside the process:

* *in flight*: a token id a sibling is writing a claim for right now;
* *won*: a ``(token id, revision)`` a sibling has already claimed.  That
  revision is no longer the token's current one, so a claim on it can only
  fail.  A claim that was lost is not remembered: on a cluster a lost lock
  may leave the same todo revision claimable later (an attempt whose winner
  died, :mod:`picas.core.claim` (g)), and a write whose answer never came may
  not have reached the server at all.

The slots also draw their candidates from one stream (:attr:`Siblings.candidates`):
a window one slot read serves them all, instead of each slot reading windows
of its own that mostly hold tokens its siblings just took.

A candidate matching either is dropped without a request.  Skipping a
candidate never makes a claim unsafe: safety comes from the revision check on
the server (:mod:`picas.core.claim`); this only saves requests that would lose.
Pilots in other processes still race as before, and win or lose on the server.

``won`` keeps the most recent :data:`REMEMBERED` entries only: a stale
candidate comes from a window read moments ago, and a pool of ten million
tokens must not grow the pilot's memory.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

__all__ = ["REMEMBERED", "Siblings"]

#: How many won revisions are remembered (about 100 bytes each).
REMEMBERED = 10_000


class Siblings:
    """The claims the slots of one pilot process are writing, or have written; safe to share between threads."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._won: OrderedDict[tuple[str, str], None] = OrderedDict()
        #: The candidates of every slot's claimer (bodies read as claimable); ``popleft`` is atomic.
        self.candidates: deque[dict] = deque()
        self._memo: dict[str, Any] = {}
        #: Held by the slot that reads the next window (the others wait for it rather than read their own).
        self.refilling = threading.Lock()
        #: When (``time.monotonic()``) the latest look that found no work left began; read under ``refilling``.
        self.none_left_since = float("-inf")

    def take(self, bodies: Iterable[dict]) -> tuple[list[dict], list[dict]]:
        """Split candidates into (ours to write now, dropped); the ones returned first are now in flight.

        A body is dropped when a sibling is writing a claim for the same
        token, or has won the token at that revision.  Each body returned
        must be handed back to :meth:`release` once its claim was written.
        """
        mine: list[dict] = []
        dropped: list[dict] = []
        with self._lock:
            for body in bodies:
                token_id = body.get("_id")
                if token_id in self._in_flight or (token_id, body.get("_rev")) in self._won:
                    dropped.append(body)
                else:
                    self._in_flight.add(token_id)
                    mine.append(body)
        return mine, dropped

    def release(self, picked: Iterable[dict], won: Iterable[dict] = ()) -> None:
        """The claims for ``picked`` were written (or failed); ``won`` are the candidates (as read) that were won."""
        with self._lock:
            for body in picked:
                self._in_flight.discard(body.get("_id"))
            for body in won:
                self._won[(body.get("_id"), body.get("_rev"))] = None
            while len(self._won) > self.remembered:
                self._won.popitem(last=False)

    def memo(self, name: str, make: Callable[[], T]) -> T:
        """The one shared ``name`` (what the slots learned of the pool: its keys, its copies), made once by ``make``."""
        with self._lock:
            if name not in self._memo:
                self._memo[name] = make()
            return self._memo[name]

    def __len__(self) -> int:
        """How many won revisions are remembered."""
        with self._lock:
            return len(self._won)
