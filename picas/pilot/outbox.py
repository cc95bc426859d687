"""Finished results on their way to the server: when each is written, and with what.

A result is written in the cheapest request that is safe:

* when the pilot has nothing else queued it claims next, and the result
  rides in that claim's ``_bulk_docs`` request (:meth:`Outbox.claim_with`):
  one request instead of two;
* a token going back to todo (a retry) is written at once, so that the next
  claim can find it;
* with a batch still queued, results wait until the batch is done, or until
  half a heartbeat has passed: a finished token's lease is no longer renewed,
  so it must not wait long enough for a scrub to take it.

What the server answered decides the outcome (:mod:`picas.pilot.results`);
each outcome is counted in the pilot's report and announced as an event.
"""
from __future__ import annotations

import socket
import time
from typing import Callable

from picas import defaults
from picas.core import token as tok
from picas.core.claim import Carried
from picas.core.client import CouchClient
from picas.core.states import PilotEvent, SaveOutcome, State
from picas.pilot.outage import OutageGuard
from picas.pilot.parts import ResultJournal
from picas.pilot.report import PilotReport
from picas.pilot.results import save_result, save_results

__all__ = ["Outbox"]


class Outbox:
    """The results a pilot finished and has not yet seen saved."""

    def __init__(self, client: CouchClient, who: tok.PilotIdentity, journal: ResultJournal, guard: OutageGuard,
                 report: PilotReport, on_event: Callable[[str, dict, dict], None], *, carry: bool = True,
                 batch: int = defaults.PREFETCH, heartbeat: float = defaults.HEARTBEAT) -> None:
        self.client = client
        self.who = who
        self.journal = journal
        self.guard = guard
        self.report = report
        self.on_event = on_event
        self.carry = carry
        self.batch = batch
        self.heartbeat = heartbeat
        self._waiting: list[dict] = []
        self._since = 0.0
        #: The body each result was computed on, so a 409 can tell what the pilot changed.
        self._bases: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, body: dict, base: dict | None, *, queued: int, stopping: bool) -> None:
        """Take a finished token; write it now, or leave it for the next claim or the rest of the batch.

        ``queued`` is how many claimed tokens still wait to run; ``stopping``
        says the pilot will claim no more.
        """
        if not self._waiting:
            self._since = time.monotonic()
        self._waiting.append(body)
        if base is not None:
            self._bases[body["_id"]] = base
        if self.carry and not queued and not stopping and tok.state(body) is not State.TODO:
            return  # it goes with the next claim
        if self.batch <= 1 or not queued or len(self._waiting) >= self.batch \
                or time.monotonic() - self._since > self.heartbeat / 2:
            self.flush()

    def claim_with(self, claim: Callable[[Carried], list[dict]]) -> list[dict]:
        """``claim(carried)`` with the waiting results in its request; what that did not save is saved after it.

        A carried result that met a 409 (a heartbeat renewed the lease in
        between, or the lock was lost) is saved again by :func:`save_results`,
        which lets the stored token decide, as for any result.  When the claim
        is tried again through an outage, only the results not yet saved go
        with it.  The claim's own outcome (tokens, or an exception) passes
        through unchanged.
        """
        remaining, self._waiting = self._waiting, []
        saved: list[dict] = []

        def attempt() -> list[dict]:
            nonlocal remaining
            carried = Carried(remaining)
            try:
                return claim(carried)
            finally:
                ok = {id(body) for body, result in carried.results if result.ok}
                saved.extend(body for body in remaining if id(body) in ok)
                remaining = [body for body in remaining if id(body) not in ok]

        try:
            return self.guard(attempt, "claiming", pending=remaining)
        finally:
            self._waiting = remaining + self._waiting
            for body in saved:
                self._bases.pop(body["_id"], None)
            self._record(saved, [SaveOutcome.SAVED] * len(saved))
            self.flush()

    def flush(self) -> None:
        """Write every waiting result now, in one request."""
        bodies, self._waiting = self._waiting, []
        if not bodies:
            return
        bases = {body["_id"]: self._bases.pop(body["_id"], None) for body in bodies}
        outcomes = self.guard(lambda: save_results(self.client, bodies, self.who, bases), "saving results",
                              pending=bodies)
        self._record(bodies, outcomes)

    def flush_journal(self) -> None:
        """Save results left in this host's journals by pilots that are gone, then our own."""
        self.journal.adopt_orphans(f"journal-{socket.gethostname()}-")
        for body in self.journal.pending():
            self.guard(lambda: save_result(self.client, body, self.who), "saving a journaled result")
            self.journal.done(body["_id"])

    def _record(self, bodies: list[dict], outcomes: list[SaveOutcome]) -> None:
        for body in bodies:
            self.journal.done(body["_id"])
        for body, outcome in zip(bodies, outcomes):
            self.report.processed += 1
            if outcome == SaveOutcome.LOST:
                self.report.lost += 1
                self.on_event(PilotEvent.LOST, body, {})
                continue
            state = tok.state(body)
            if state is State.TODO:
                self.report.retried += 1
                self.on_event(PilotEvent.RETRY, body, {})
            elif state is State.DONE:
                self.report.done += 1
                self.on_event(PilotEvent.DONE, body, {})
            else:
                self.report.failed += 1
                self.on_event(PilotEvent.ERROR, body, {})
