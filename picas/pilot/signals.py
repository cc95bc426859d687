"""Signal handling for pilots: the handlers only set flags; the pilot loop acts on them.

SIGTERM, SIGINT and SIGUSR1 (what Slurm sends ahead of the walltime when asked
with ``--signal``) ask the pilot to stop: it stops the running payload (TERM,
grace period, KILL), gives its tokens back and exits 0.  A second signal asks
for an immediate stop: the payload gets no grace period.
"""
from __future__ import annotations

import signal
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
#: Seconds within which a repeated signal counts as the same request (see StopFlags.handle).
DEBOUNCE = 1.0


class StopFlags:
    """What the signals asked for; read by the pilot loop and the executor's poll."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.forced = threading.Event()
        self.signal_name: str | None = None
        self._first = 0.0
        self._previous: dict[int, object] = {}

    def handle(self, signum: int, frame: object = None) -> None:
        now = time.monotonic()
        if self.requested.is_set():
            # scancel signals the batch shell and every process of the job at once, so one
            # cancellation can reach a pilot twice within a moment: only a later signal forces.
            if now - self._first > DEBOUNCE:
                self.forced.set()
        else:
            self._first = now
            self.signal_name = signal.Signals(signum).name
            self.requested.set()

    def install(self) -> "StopFlags":
        """Install the handlers (main thread only; elsewhere this is a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def __bool__(self) -> bool:
        return self.requested.is_set()
