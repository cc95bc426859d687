"""Leases: a pilot renews a heartbeat on the tokens it holds while their payloads run.

The keeper runs in its own thread with its own HTTP session, so a slow server
never slows the payload, and renews every held token in one ``_bulk_docs``
request per interval.  The pilot's main thread and the keeper share the held
bodies under one lock: whoever writes a token updates its ``_rev`` there, so
the other always writes against the newest revision it knows.

A 409 on renewal means the stored token changed.  The keeper re-reads it:

* still ours (same pilot id, still locked): it changed under us for a benign
  reason (e.g. a user annotation); renew on top of the current body — the
  current body wins for every field but the lease;
* not ours any more (scrubbed after an expired lease, reset by an operator, or
  finished elsewhere): the new owner wins.  The keeper drops the token and
  marks it *lost*, and the pilot stops that payload and never writes over the
  new owner's state.

On a cluster the token is re-read with its conflicts settled first
(:func:`picas.core.replicas.current`): a leaf of a later attempt, or one that
ends ours (a scrub's or an operator's reset), outranks our lock, and then we
have lost it; a stale leaf of an earlier attempt never makes us give up a token
we hold.  A renewal answered 202 (stored by fewer copies than the write
quorum) counts as renewed: only this pilot writes a token it holds, apart from
a scrub after the lease ran out or an operator, and whichever of those wins is
found out at the next renewal, as above.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.core.replicas import current as stored
from picas.errors import PicasError


class LeaseKeeper:
    """Renews the leases of the tokens a pilot holds; one per pilot."""

    def __init__(self, client: CouchClient, who: tok.PilotIdentity, interval: float, lease_seconds: float,
                 clock: Callable[[], float] = time.time, on_lost: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.who = who
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.on_lost = on_lost
        self.lock = threading.Lock()
        self.held: dict[str, dict] = {}
        self.lost: set[str] = set()
        self.renewals = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ shared state
    def hold(self, docs: list[dict]) -> None:
        with self.lock:
            for doc in docs:
                self.held[doc["_id"]] = doc
                self.lost.discard(doc["_id"])  # claimed anew after it was lost once

    def release(self, token_id: str) -> dict | None:
        """Stop renewing a token and hand back its newest known body (None if it was lost)."""
        with self.lock:
            doc = self.held.pop(token_id, None)
            return None if token_id in self.lost else doc

    def is_lost(self, token_id: str) -> bool:
        return token_id in self.lost

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="picas-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout + 5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.interval)
            if self._stopped.is_set():
                return
            try:
                self.renew()
            except PicasError:
                pass  # an outage: the lease is longer than the interval, try again next time

    def renew(self) -> None:
        """Renew every held token in one request; resolve conflicts one by one."""
        with self.lock:
            if not self.held:
                return
            now = self.clock()
            bodies = [tok.heartbeat(doc, now, self.lease_seconds) for doc in self.held.values()]
            results = self.client.bulk_save(bodies)
            for body, result in zip(bodies, results):
                if result.ok:
                    self.held[body["_id"]] = body
                elif result.conflict:
                    self._resolve(body["_id"], now)
            self.renewals += 1

    def _resolve(self, token_id: str, now: float) -> None:
        current = stored(self.client, token_id, self.who)
        if current is not None and tok.owned_by(current, self.who.pilot_id):
            renewed = tok.heartbeat(current, now, self.lease_seconds)
            try:
                self.held[token_id] = self.client.save(renewed)
                return
            except PicasError:
                self.held[token_id] = current  # try again at the next interval, from this body
                return
        self.lost.add(token_id)
        if self.on_lost is not None:
            self.on_lost(token_id)
