"""Small helpers that classic picas scripts import from ``picas.classic.util``.

They are kept with their classic names and behaviour so that scripts written
for picas 1.x run unchanged; new code has no need for them.
"""
from __future__ import annotations

import copy
import time


def seconds() -> int:
    """The current time as whole seconds since the epoch, the unit of ``lock`` and ``done``."""
    return int(time.time())


def merge_dicts(dict1: dict, dict2: dict) -> dict:
    """A new dict: a deep copy of ``dict1`` updated with ``dict2``.

    The copy keeps a shared template (such as a document's default fields)
    from being changed through the result.
    """
    merged = copy.deepcopy(dict1)
    merged.update(dict2)
    return merged


class Timer:
    """Wall-clock seconds since creation (or since the last :meth:`reset`)."""

    def __init__(self) -> None:
        self.t = time.time()

    def elapsed(self) -> float:
        return time.time() - self.t

    def reset(self) -> float:
        """Restart the timer; returns the seconds that had elapsed."""
        now = time.time()
        elapsed, self.t = now - self.t, now
        return elapsed


def time_elapsed(timer: Timer, max: float = 30.0) -> bool:  # noqa: A002 - classic keyword name
    """Whether ``timer`` has run for more than ``max`` seconds (a ready-made stop callback)."""
    return timer.elapsed() > max
