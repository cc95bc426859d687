"""The claim protocol: how a pilot takes a token so that no token is ever held twice.

One copy of the database (pouchdb-server, a CouchDB single node)
-----------------------------------------------------------------
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

A CouchDB cluster (n > 1 copies of every document)
---------------------------------------------------
Why the above is not enough.  Each copy takes a write if the revision it names
is a leaf *there*; the node that coordinates the request answers 201 when ``w``
copies took it, 202 ("accepted") when fewer did, 409 when none that answered
did; the copies exchange what they took afterwards (:mod:`picas.core.replicas`).
Two pilots that read the same todo revision can thus both be taken, by
different copies: one may get 201 and the other 202, and the token ends with
two claims as conflicting leaves, of which CouchDB shows the one with the
longer history, then the larger revision id, not the one answered 201.  Once a
token has two todo leaves, a claim can even be written on each, and both be
answered 201.  Reading cannot settle it: a read with ``r`` = all copies returns
the union of what the copies that answered hold, cannot say which copy holds
what, cannot see a write still in flight to a copy, and reads only the copies
that are up.

What does settle it (fact W): with ``w`` a majority of the ``n`` copies, of
several writes that start from one revision, or that create one new document,
at most one is answered 201 (*committed*), whatever else happens.  A copy
takes at most one of them (after it took one, that revision is no longer a
leaf there, or the document exists there: a copy takes a creation only where
the document has no live leaf), and two majorities share a copy.  The answer
reports what the copies took, so a committed write needs no read to prove it.

The protocol (:mod:`picas.core.locks` does steps 2 and 3):

1. Read candidates as above (the view: a cluster's ``_all_docs`` is read from
   one copy per shard, see :mod:`picas.core.scanner`); a body read with its
   conflicts is settled first (step 5).  Say it is todo with ``attempts == a``.
2. Create the lock document ``picas-claim:<a+1>:<token>``, with ``w`` a
   majority.  Only a 201 wins attempt ``a+1``.  A 202, or an answer lost and
   read back, proves nothing: the pilot deletes its own lock revision at once
   (deleting its own leaf cannot touch another's), so it blocks no one, and
   the token is not its own.  A 409: another pilot has that attempt.  A lock
   is never deleted once won.
3. With the lock, write the claim (``attempts = a + 1``) onto the body read,
   with ``w`` a majority.  A 201: the token is ours; run it.  Anything else
   (202, 409, no answer) leaves the claim *unsettled*, and the token as it is
   then stored decides: our claim, stored somewhere, counts once a renewal on
   top of it is committed (it is then on a majority) while the lock's lease
   lasts, and is given back (todo again, ``attempts = a + 1``) after that;
   the todo body still there is claimed again while the lock's lease lasts.
4. Only the holder writes a token it holds: renewals, its result, a give-back,
   each onto its own newest revision.  There an answer 202 is accepted: no
   other claim exists to compete with it, and the copies pass it on.
5. Conflicting leaves are settled by the token's history
   (:func:`picas.core.replicas.rank`): a later attempt outranks an earlier
   one, an ending of an attempt (a result, a give-back, a reset) outranks its
   lock, a result outranks a reset of the same attempt; CouchDB's order breaks
   ties.  The losers are deleted (each deletion has the same revision id
   whoever writes it, so settlers never conflict).  Every path that changes a
   token reads it settled first; pilots that find no work left settle the lock
   documents; ``picas scrub`` settles every document.

The guarantee: while leases are honoured (a pilot renews its lease before it
runs out; a scrub, an operator's reset or a skip acts on a lease only after
it ran out; clocks agree within :data:`picas.core.locks.SKEW`), no two pilots
run the same attempt of a token, and attempt ``a+1`` starts only after
attempt ``a`` ended.  No token is ever run twice unless someone gave it back
to todo (a failure with retries left, a stopped pilot, a scrub, an operator).

Proof.

(a) At most one pilot ever holds attempt ``a+1``: holding means a committed
    creation of its lock; by fact W at most one creation is committed, and
    since the won lock keeps a live leaf on a majority (it is never deleted,
    and settling a lock keeps one live leaf) no creation can be committed
    later either.
(b) Only the holder writes a claim with ``attempts = a + 1`` (step 3 runs only
    under a won lock), and a pilot runs a token only on its own committed or
    confirmed claim.  Every way of reaching attempt ``a+1``, whatever the
    token's leaves look like (two todo leaves, a stale view row, a conflicting
    claim), leads to the same lock, so (a) decides it.  Two different
    attempts are never run at once either: by (c).
(c) A todo body with ``attempts == a`` exists only once attempt ``a`` ended:
    it is written by attempt ``a``'s holder giving the token back (a retry, a
    stop, an unsettled claim), or by a scrub, an operator or a skipper after
    its lease ran out; or it is the pushed token (``a == 0``).  A body read
    late, with ``attempts`` below the current attempt, names a lock that
    exists already: 409, nothing is written.
(d) A copy still has a write in flight when the claimer checks: nothing above
    checks by reading.  The only evidence is the 201 of a write, which counts
    copies that took it.  A lock creation still on its way to a copy is taken
    there only if that copy has no live leaf of the lock; it can never make a
    second creation committed, because the first is live on a majority.  A
    claim in flight is the holder's own (b).  A read in step 3 that misses a
    copy (in flight, or down) may show the todo body while our claim is stored
    elsewhere: we then claim it again, and both claims are ours, of the same
    attempt; settling keeps one, and no one else can run it (a).
(e) Two nodes of three down: every write answers 202.  No lock is committed,
    so no attempt is won, and each lock written is deleted again by its
    writer: pilots find no token they may run, back off and wait (in-flight
    claims of step 3 stay unsettled until the copies are back).  Results and
    renewals of tokens already held are answered 202 and kept: their holders
    are their only writers, and the copies pass them on when the nodes return.
    Nothing runs twice and nothing is lost; the pool moves on when a majority
    of copies is back.
(f) No result is lost to a losing revision: only the holder writes its
    result, onto its own revision; if a scrub's or operator's reset raced it,
    the result outranks the reset (step 5).  A result outranked by a later
    attempt (its lease had run out, and another pilot ran the token) is noted
    in the token's history by the settling, as on one server.
(g) A burned attempt (its lock's winner died before its claim): the token
    stays todo with ``attempts == a`` and lock ``a+1`` exists.  Once that
    lock's lease is over (plus SKEW), a pilot that finds it reads the token
    from every copy and, if it is still that todo, takes lock ``a+2`` and
    claims with ``attempts = a + 2``; that claim counts only if committed.
    The late winner writes its claim only before its lease is over (minus
    SKEW), and both write onto the same revision, so by fact W at most one of
    them is committed.

Cost: on a cluster a claim is two writes (lock, then claim) instead of one.
Lock documents stay, one per attempt, of type ``picas-claim``; views skip them.

Why it is fast:

* While most of the pool is todo, candidates come from ``_all_docs`` (the
  primary index), not from the view, and the last tokens are found by a lap
  of ``_all_docs`` or by the view, whichever costs the server less; a lap
  that finds nothing proves that no work is left (:mod:`picas.core.scanner`).
  This is done only for the standard ``todo`` view, whose condition the
  scanner repeats exactly.
* The view is queried once per window, not once per token; a window is used
  until it runs out or turns out to be contested.
* Windows are first read from the index as it stands (``stale=ok`` on
  pouchdb-server, ``update=false`` on CouchDB), which
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
from picas.core.locks import ClusterClaims, settle_locks
from picas.core.replicas import Replicas, replicas_of, settle_body
from picas.errors import Conflict, PicasError
from picas.core.retry import Backoff
from picas.core.scanner import NONE_LEFT, Scanner, scannable, wrapped_window
from picas.core.siblings import Siblings

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
    #: Candidates dropped without a request because a sibling slot was claiming or had won them.
    sibling_skips: int = 0


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
                 scan: bool | None = None, siblings: Siblings | None = None) -> None:
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
        #: Shared by the claimers of one pilot process's slots (:mod:`picas.core.siblings`); None: alone.
        self.siblings = siblings
        # Siblings share what is learned of the pool, and use it only while refilling (under their lock).
        self.keys: KeySpace = siblings.memo("keys", KeySpace) if siblings is not None else KeySpace()
        self.stats = ClaimStats()
        # The slots of one process draw from one stream of candidates: a window one of them read serves all.
        self._candidates: deque[dict] = siblings.candidates if siblings is not None else deque()
        #: None until the design document has been checked (see :func:`~picas.core.scanner.scannable`);
        #: False reads the view (forced, or once the scanner found it cheaper).
        self.scan = scan

        def scanner() -> Scanner:
            return Scanner(client, who, self.stats, design=design, view=view, window=window,
                           random_key=lambda: self.keys.random_key(self.rng), rng=self.rng, clock=clock)

        # One sweep of the pool serves every slot: a scanner of each would sweep where its siblings just took all.
        self.scanner = siblings.memo("scanner", scanner) if siblings is not None else scanner()
        self._replicas: Replicas | None = None
        self._cluster: ClusterClaims | None = None
        self._tidied = float("-inf")

    # ------------------------------------------------------------------ candidates
    def _query(self, startkey: str | None, stale: bool, docs: bool = True, limit: int | None = None,
               descending: bool = False) -> list[ViewRow]:
        params = dict(self.view_params)
        params.update(include_docs=docs, limit=limit or self.window)
        if docs:
            params["conflicts"] = True  # a body with conflicting leaves is settled before it is claimed
        if descending:
            params["descending"] = not params.get("descending", False)
        if stale and "stale" not in params and "update" not in params:
            params.update(self.replicas.stale)  # update=false on CouchDB, stale=ok on pouchdb-server
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

    @property
    def replicas(self) -> Replicas:
        """How many copies the database keeps; more than one means the cluster protocol (module docstring)."""
        if self._replicas is None:
            self._replicas = (self.siblings.memo("replicas", lambda: replicas_of(self.client))
                              if self.siblings is not None else replicas_of(self.client))
        return self._replicas

    def _scanning(self) -> bool:
        if self.scan is None:
            # Only pouchdb-server's indexer is slow enough for the scanner to pay (see picas.core.scanner).
            # Apache CouchDB indexes fast and serves _all_docs with bodies slowly: 16 pilots lapping a
            # single node at the end of a pool of 1,000 spent 4 s there (benchmarks/real_pilots.py).  On a
            # cluster, moreover, _all_docs reads each shard from one copy, which may lag behind the
            # sequence a lap's proof rests on.
            def decide() -> bool:
                return (self.view == "todo" and not self.view_params and not self.replicas.couchdb
                        and scannable(self.client.get_or_none(f"_design/{self.design}")))

            self.scan = self.siblings.memo("scan", decide) if self.siblings is not None else decide()
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
                self._candidates.extend(bodies)
                return True
            if bodies is NONE_LEFT:
                return False
            self.scan = False  # the view is cheaper from here on, for good
        start = self.keys.random_key(self.rng)
        fresh_only = not self.stale_first or "stale" in self.view_params or "update" in self.view_params
        for stale in ((False,) if fresh_only else (True, False)):
            rows = self._window(start, stale)
            self.keys.learn([row.key for row in rows])
            bodies = [body for body in (settle_body(self.client, row.doc, self.who) for row in rows
                                        if tok.is_claimable(row.doc)) if tok.is_claimable(body)]
            self.stats.stale_rows += len(rows) - len(bodies)
            if stale and not bodies:
                continue
            if not rows and not stale:
                rows = self._ask_other_nodes(start)
                bodies = [body for body in (settle_body(self.client, row.doc, self.who) for row in rows
                                            if tok.is_claimable(row.doc)) if tok.is_claimable(body)]
            if not rows:
                return False
            self.rng.shuffle(bodies)
            self._candidates.extend(bodies)
            return True
        return False

    def _refill_shared(self) -> bool:
        """Refill; with siblings, one slot at a time, and not at all when a sibling's look answers for us.

        Slots that find the stream empty together would each read a window
        of their own; the window the first one reads serves the others.  At
        the end of the pool they would each, one after the other, prove that
        no work is left (a lap of the pool, on pouchdb-server): a sibling's
        proof that *began after this slot asked* also holds for this slot,
        since every write this slot made (a token it gave back for a retry is
        saved before it claims again) came before it.
        """
        if self.siblings is None:
            return self._refill()
        asked = time.monotonic()
        with self.siblings.refilling:
            if self._candidates:
                return True
            if self.siblings.none_left_since >= asked:
                return False
            began = time.monotonic()
            found = self._refill()
            if not found:
                self.siblings.none_left_since = began
            return found

    def _ask_other_nodes(self, start: str | None) -> list[ViewRow]:
        """Before "no work is left" on a cluster: the same fresh window read through every other node given.

        A view is read from one copy of each shard, and the node that answers a
        query mostly takes its own.  A node just back from a crash is still
        catching up: its copies may show as locked a token that was given back
        meanwhile.  The pilot would then stop with work left; asking the other
        nodes, whose own copies are current, prevents that.
        """
        rows: list[ViewRow] = []
        nodes = len(self.client.urls) if self.replicas.clustered else 1
        params = dict(self.view_params, include_docs=True, conflicts=True)
        for offset in range(1, nodes):
            other = self.client.copy(node=self.client.node + offset)
            try:
                rows = wrapped_window(lambda key, limit: other.view(
                    self.design, self.view, limit=limit, **params, **({} if key is None else {"startkey": key})).rows,
                    start, self.window)
            except PicasError:
                rows = []
            finally:
                other.close()
            if rows:
                break
        return rows

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
            if not self._candidates and not self._refill_shared():
                # On a cluster a claim whose write was not committed may still come to count, or must be
                # given back: no work is left only once none is pending (picas.core.locks).
                settled = self._cluster.settle_pending() if self._cluster is not None else []
                if settled:
                    self.stats.claimed += len(settled)
                    return settled
                if self._cluster is None or not self._cluster.unsettled:
                    self._tidy()
                    return []
            if self._candidates:
                picked = self._pick(k)
                if picked:
                    won = self._write_picked(picked, pending)
                    pending = None  # sent once, with the first claim
                    if won:
                        self.stats.claimed += len(won)
                        return won
                    # A lost race costs one write, a new window a view query: try the rest of the
                    # window first.  Losing again and again means this region is contested.
                    lost_rounds += 1
                    if lost_rounds < 3 and self._candidates:
                        continue
                elif self._candidates:
                    continue  # siblings hold these; the rest of the window may not be theirs
                lost_rounds = 0
                self._candidates.clear()
            delay = backoff.next_delay()
            if delay is None or self.stop.wait(delay):
                return []

    def _pick(self, k: int) -> list[dict]:
        """Up to ``k`` candidates from the window, less those a sibling slot is claiming or has won."""
        picked: list[dict] = []
        while len(picked) < k:
            try:
                picked.append(self._candidates.popleft())  # atomic: siblings may empty a shared stream meanwhile
            except IndexError:
                break
        if self.siblings is None:
            return picked
        picked, dropped = self.siblings.take(picked)
        self.stats.sibling_skips += len(dropped)
        return picked

    def _write_picked(self, picked: list[dict], carry: Carried | None) -> list[dict]:
        """Write the claims, and tell the siblings which candidates are no longer theirs to try."""
        if self.siblings is None:
            return self._write_claims(picked, carry)
        won: list[dict] = []
        try:
            won = self._write_claims(picked, carry)
        finally:
            won_ids = {body["_id"] for body in won}
            self.siblings.release(picked, [body for body in picked if body["_id"] in won_ids])
        return won

    def _write_claims(self, bodies: list[dict], carry: Carried | None) -> list[dict]:
        if self.replicas.clustered:
            return self._write_cluster_claims(bodies, carry)
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

    def _tidy(self) -> None:
        """When no work is left on a cluster, settle the claim locks left with conflicting leaves (once a minute).

        A pilot normally deletes its own losing lock leaves; one whose answer
        was lost with a dying node may not find them, and a node that stored
        a lock and died before passing it on brings it back when it returns.
        The pilots that find the pool empty clean those up, so a run leaves
        no ``_conflicts`` behind; a lock keeps one live leaf, so it stays taken.
        """
        if not self.replicas.clustered or self.clock() < self._tidied + 60.0:
            return
        self._tidied = self.clock()
        try:
            settle_locks(self.client, self.who)
        except PicasError:
            pass  # the next pilot to find the pool empty, or 'picas scrub', settles them

    def _write_cluster_claims(self, bodies: list[dict], carry: Carried | None) -> list[dict]:
        """Lock, then claim (:class:`~picas.core.locks.ClusterClaims`); a body not won counts as a conflict."""
        if self._cluster is None:
            self._cluster = ClusterClaims(self.client, self.who, self.lease_seconds, clock=self.clock,
                                          replicas=self.replicas)
        carried = carry.bodies if carry is not None else []
        won, results = self._cluster.write_claims(bodies, carried)
        if carry is not None:
            carry.results = list(zip(carried, results))
        lost = len(bodies) - len(won)
        self.stats.conflicts += lost
        if lost:
            self.scanner.forget_region()
        return won
