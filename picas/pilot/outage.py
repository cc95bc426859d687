"""Waiting out a server outage, without losing a finished result meanwhile."""
from __future__ import annotations

from typing import Callable, TypeVar

from picas.core.retry import Backoff
from picas.core.states import PilotEvent
from picas.errors import PilotError, ServerUnavailable
from picas.pilot.parts import ResultJournal
from picas.pilot.signals import StopFlags

__all__ = ["OutageGuard"]

T = TypeVar("T")


class OutageGuard:
    """Runs a server action again and again while the server is unreachable, up to ``timeout`` seconds.

    The client's own retries are short (a pilot must notice an outage soon).
    Here the pilot waits out a long one, with backoff and jitter.  Results
    that wait on the server go into the local journal at the first failure,
    so that a pilot killed during the outage leaves them for the next pilot
    on this host.  A forced stop (a second signal) gives up at once.
    """

    def __init__(self, timeout: float, journal: ResultJournal, flags: StopFlags,
                 on_event: Callable[[str, dict, dict], None]) -> None:
        self.timeout = timeout
        self.journal = journal
        self.flags = flags
        self.on_event = on_event

    def __call__(self, action: Callable[[], T], what: str, pending: list[dict] | None = None) -> T:
        """``action()``, retried through ServerUnavailable; PilotError once the outage lasts too long."""
        backoff = Backoff(base=1.0, cap=30.0, attempts=None, deadline=self.timeout).start()
        journaled = False
        while True:
            try:
                return action()
            except ServerUnavailable as exc:
                if pending and not journaled:
                    for body in pending:
                        self.journal.add(body)
                    journaled = True
                delay = backoff.next_delay()
                if delay is None or self.flags.forced.is_set():
                    where = f"; unsaved results are kept in {self.journal.path}" if self.journal.pending() else ""
                    raise PilotError(f"gave up {what} after the server stayed unreachable for "
                                     f"{self.timeout:g} s: {exc}{where}") from exc
                self.on_event(PilotEvent.OUTAGE, (pending or [{}])[0], {"error": str(exc), "retry_in": delay})
                self.flags.forced.wait(delay)
