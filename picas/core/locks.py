"""Claim locks: on a cluster, each attempt at a token is won by creating one document, which one pilot can do.

The proof that this gives exactly-once, and why a lock is needed at all, is in
the docstring of :mod:`picas.core.claim`; this module is the mechanism.

The lock of attempt ``a`` of token ``t`` is the document
``picas-claim:<a>:<t>`` (:func:`lock_id`).  A pilot that read ``t`` as todo
with ``attempts == a - 1`` creates it, with ``w`` a majority of the copies.
Creating a document that exists already is a conflict on every copy that has
a live revision of it, so of all creators at most one gets a 201: that pilot,
and only that pilot, writes the claim into the token.  The lock is never
deleted once it was won, so a token read late (the body of a view row that is
out of date) can never win an attempt twice.

A lock that is not proof (answered 202, or whose answer was lost) is deleted
again at once by the pilot that wrote it, so that it blocks nobody; deleting
its own revision cannot touch another pilot's.  A creator answered 409 may
still have stored its revision on the one copy it reached first; that leaf
may even be the one a plain read of the lock shows.  Nothing decides from the
lock's body alone: skipping a burned attempt reads the token from every copy
first, so such a leaf costs at most a wasted look.

If the winner of a lock dies before it wrote its claim, the token stays todo
with the old attempt count, and its next lock exists: the attempt is *burned*.
Once the lock's lease has run out (plus :data:`SKEW` for the clocks), another
pilot may skip the burned attempt: it reads the token from every copy, and if
it is still the same todo, takes the lock of the attempt after, and writes its
claim with the attempt count raised past the burned one.  That claim counts
only if it is committed (201): the late winner of the burned attempt and the
skipper both write onto the same revision, and at most one such write is
committed.  The late winner also checks that its lock's lease has not run out
(minus :data:`SKEW`) before it writes its claim.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from picas.core import token as tok
from picas.core.client import BulkResult, CouchClient
from picas.core.replicas import Replicas, attempt, current, replicas_of, settle
from picas.errors import PicasError

#: The type of a lock document (views that list tokens skip it).
LOCK_TYPE = "picas-claim"
#: Seconds by which two hosts' clocks may disagree: a burned attempt is skipped this long after its lease ended,
#: and a lock's winner stops writing its claim this long before.
SKEW = 2.0


def lock_id(token_id: str, attempt_number: int) -> str:
    return f"picas-claim:{attempt_number}:{token_id}"


class ClusterClaims:
    """Claims for one pilot on a clustered database: lock first, then the claim (see the module docstring)."""

    def __init__(self, client: CouchClient, who: tok.PilotIdentity, lease_seconds: float,
                 clock: Callable[[], float] = time.time, replicas: Replicas | None = None) -> None:
        self.client = client
        self.who = who
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.replicas = replicas or replicas_of(client)
        #: Counters a benchmark or a test may read.
        self.stats = {"locks_won": 0, "locks_lost": 0, "locks_dropped": 0, "skipped": 0, "confirmed": 0,
                      "released": 0}
        #: Claims written under a lock we hold whose writes were not committed yet (see :meth:`write_claims`).
        self.unsettled: list[_Unsettled] = []

    # ------------------------------------------------------------------ locks
    def _lock_doc(self, body: dict, now: float) -> dict:
        number = attempt(body) + 1
        return {"_id": lock_id(body["_id"], number), "type": LOCK_TYPE, "token": body["_id"], "attempt": number,
                "pilot": self.who.pilot_id, "hostname": self.who.hostname, "time": now,
                "lease_until": now + self.lease_seconds}

    def _drop(self, lock: dict, lost: bool = False) -> None:
        """Delete our own lock revision (a 202, a lost answer): it is no proof, and must block no one.

        After a lost answer the revision may be stored without our knowing
        its id (another pilot's lock won the read-back), so every live leaf
        of the lock that carries our pilot id and time is deleted.
        """
        revs = [lock["_rev"]] if lock.get("_rev") else []
        try:
            if lost:
                revs = [leaf["_rev"] for leaf in self.client.leaves(lock["_id"], r=self.replicas.n)
                        if not leaf.get("_deleted") and leaf.get("pilot") == self.who.pilot_id
                        and leaf.get("time") == lock["time"]]
            if revs:
                self.stats["locks_dropped"] += 1
                self.client.bulk_save([{"_id": lock["_id"], "_rev": rev, "_deleted": True} for rev in revs])
        except PicasError:
            pass  # it stays a losing leaf of the lock; settling the lock documents later removes it

    def take_locks(self, bodies: list[dict], now: float) -> list[tuple[dict, dict, bool]]:
        """``(body, lock, skipping)`` for each body whose next attempt this pilot now holds.

        ``skipping`` marks a body whose attempt count was raised past a
        burned attempt: its claim must be committed to count.
        """
        locks = [self._lock_doc(body, now) for body in bodies]
        results = self.client.bulk_save(locks, w=self.replicas.w)
        held = []
        for body, lock, result in zip(bodies, locks, results):
            if result.committed:
                self.stats["locks_won"] += 1
                held.append((body, lock, False))
            elif result.ok:  # accepted by too few copies: someone else may hold it, so nobody does
                self.stats["locks_lost"] += 1
                self._drop(lock, result.lost)
            elif result.conflict:
                self.stats["locks_lost"] += 1
                if result.lost:
                    self._drop(lock, lost=True)
                skipped = self._skip_burned(body, now)
                if skipped is not None:
                    held.append(skipped)
        return held

    def _skip_burned(self, body: dict, now: float) -> tuple[dict, dict, bool] | None:
        """The next attempt's lock, when the one we met is burned (see the module docstring); else None."""
        try:
            lock = self.client.get_or_none(lock_id(body["_id"], attempt(body) + 1))
            if lock is None or lock.get("pilot") == self.who.pilot_id:
                return None
            if float(lock.get("lease_until") or 0) + SKEW > now:
                return None  # its winner may still write its claim
            token = self.client.get(body["_id"], r=self.replicas.n, conflicts=True)
            if token.get("_conflicts"):
                token = current(self.client, body["_id"], self.who) or {}
            if not tok.is_claimable(token) or attempt(token) != attempt(body):
                return None  # the claim of that attempt was written after all, or the token moved on
            bumped = dict(token, attempts=attempt(token) + 1)
            next_lock = self._lock_doc(bumped, now)
            if self.client.write(next_lock, w=self.replicas.w).committed:
                self.stats["skipped"] += 1
                return bumped, next_lock, True
        except PicasError:
            pass
        return None

    # ------------------------------------------------------------------ claims
    def write_claims(self, bodies: list[dict], carry: list[dict]) -> tuple[list[dict], list[BulkResult]]:
        """Lock, then claim: the bodies now held, and the results of the ``carry`` bodies sent along.

        A claim whose write was not committed (202, a conflict, no answer at
        all) is kept in :attr:`unsettled` and settled from what the token
        shows, at the next call or by :meth:`settle_pending`: confirmed while
        its lock's lease lasts, else given back (see :meth:`_settle_one`).
        """
        won = self.settle_pending()
        now = self.clock()
        held = self.take_locks(bodies, now) if bodies else []
        # A lock's winner that stalled past its lease must not write: a skipper may have taken over.
        held = [item for item in held if self.clock() < item[1]["lease_until"] - SKEW]
        claims = [tok.claim(body, self.who, now, self.lease_seconds) for body, _, _ in held]
        if not claims and not carry:
            return won, []
        pending = [_Unsettled(body["_id"], attempt(claim), lock["lease_until"], skipping)
                   for (body, lock, skipping), claim in zip(held, claims)]
        self.unsettled.extend(pending)  # until the answer says otherwise (if it never comes, they stay)
        results = self.client.bulk_save(claims + carry, w=self.replicas.w)
        for entry, claim, result in zip(pending, claims, results):
            if result.committed:
                self.unsettled.remove(entry)
                won.append(claim)
        return won + self.settle_pending(), results[len(claims):]

    def settle_pending(self) -> list[dict]:
        """Settle the claims whose writes were not committed; returns those that now count (the server answered).

        One that cannot be settled now (the server is away) stays for the next
        call; one that cannot count any more is given back, so the token is
        never left locked by a pilot that does not run it.
        """
        won = []
        for entry in list(self.unsettled):
            try:
                outcome = self._settle_one(entry)
                if isinstance(outcome, dict):
                    # Both of our writes may be stored (a claim written twice, see _settle_one): keep one leaf.
                    kept = settle(self.client, entry.token_id, who=self.who)
                    if kept is not None and tok.owned_by(kept, self.who.pilot_id) \
                            and attempt(kept) == entry.attempt:
                        outcome = kept
            except PicasError:
                continue  # the server is still away: next time
            if outcome is not None:
                self.unsettled.remove(entry)
                if isinstance(outcome, dict):
                    won.append(outcome)
        return won

    def _settle_one(self, entry: "_Unsettled") -> dict | bool | None:
        """What an uncommitted claim comes to: the claimed body, True (settled, not ours), None (not yet).

        * Our claim is stored (on some copies): while our lock's lease lasts, a
          renewal on top of it that is committed puts it on a majority, and it
          counts; a skipper's claim must be committed itself, so it and a
          claim whose lock ran out are given back instead (the attempt ends,
          todo again, and the next attempt is open to all).
        * The token is still the todo we locked: while the lease lasts, claim
          it again; after that the attempt is burned, and a pilot skips it.
        * Anything else: nothing of ours is left to settle.
        """
        latest = current(self.client, entry.token_id, self.who)
        if latest is None:
            return True
        fresh = self.clock() < entry.lock_lease - SKEW
        if tok.owned_by(latest, self.who.pilot_id) and attempt(latest) == entry.attempt:
            if fresh and not entry.skipping:
                renewed = tok.heartbeat(latest, self.clock(), self.lease_seconds)
                if self.client.write(renewed, w=self.replicas.w).committed:
                    self.stats["confirmed"] += 1
                    return renewed
                return None
            given_back = tok.reset(latest, self.who, self.clock(), "the claim reached too few copies of the "
                                   "database to count", count_scrub=False)
            if self.client.write(given_back, w=self.replicas.w).ok:
                self.stats["released"] += 1
                return True
            return None
        if tok.is_claimable(latest) and attempt(latest) == entry.attempt - 1 and not entry.skipping:
            if not fresh:
                return True  # the attempt is burned: another pilot skips it once the lock's lease is over
            again = tok.claim(latest, self.who, self.clock(), self.lease_seconds)
            result = self.client.write(again, w=self.replicas.w)
            return again if result.committed else None
        return True


@dataclass
class _Unsettled:
    """A claim written under a lock we hold whose write was not committed (yet)."""

    token_id: str
    attempt: int
    lock_lease: float
    skipping: bool


def settle_locks(client: CouchClient, who: tok.PilotIdentity | None = None, page: int = 1000) -> int:
    """Settle every lock document with conflicting leaves; returns how many there were.

    Leaves of a lock that lost are left behind when a pilot could not delete
    its own (an answer lost with the node that coordinated it, a node that
    stored a lock and died before passing it on).  Keeping any one live leaf
    keeps the attempt taken, so settling a lock never reopens it
    (:func:`picas.core.replicas.rank` keeps CouchDB's winner).
    """
    found = 0
    start = "picas-claim:"
    while True:
        rows = client.all_docs(startkey=start, endkey="picas-claim:\ufff0", include_docs=True, conflicts=True,
                               limit=page + 1).rows
        for row in rows[:page]:
            if row.doc and row.doc.get("_conflicts"):
                found += 1
                settle(client, row.id, who=who)
        if len(rows) <= page:
            return found
        start = rows[page].id
