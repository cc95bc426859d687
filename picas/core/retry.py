"""Bounded retries with exponential backoff and full jitter.

Pure policy objects: they compute delays and decide whether another attempt is
allowed; the caller does the sleeping.  Jitter keeps many pilots that failed at
the same moment (a server restart) from coming back in lock step.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


#: Shared by default: seeding a generator per retry loop costs more than the loop itself on a hot path.
_RNG = random.Random()


@dataclass
class Backoff:
    """Delays of ``base * factor**n``, capped at ``cap``, drawn uniformly below that.

    ``attempts`` bounds the number of tries; ``deadline`` (seconds) bounds the
    total time spent.  Either may be None for "no bound on this axis", but
    not both: every retry loop in picas is bounded.
    """

    base: float = 0.2
    factor: float = 2.0
    cap: float = 10.0
    attempts: int | None = 5
    deadline: float | None = None
    rng: random.Random = field(default_factory=lambda: _RNG, repr=False)

    def __post_init__(self) -> None:
        if self.attempts is None and self.deadline is None:
            raise ValueError("a Backoff needs an attempt bound or a deadline")

    def delay(self, attempt: int) -> float:
        """The sleep before retry number ``attempt`` (0-based), with full jitter."""
        ceiling = min(self.cap, self.base * (self.factor ** attempt))
        return self.rng.uniform(ceiling / 2, ceiling)

    def start(self) -> "BackoffRun":
        return BackoffRun(self, time.monotonic())


@dataclass
class BackoffRun:
    """One retry loop's progress against its policy."""

    policy: Backoff
    started: float
    attempt: int = 0

    def next_delay(self) -> float | None:
        """The delay before the next try, or None when the budget is spent."""
        policy = self.policy
        if policy.attempts is not None and self.attempt + 1 >= policy.attempts:
            return None
        delay = policy.delay(self.attempt)
        if policy.deadline is not None:
            remaining = policy.deadline - (time.monotonic() - self.started)
            if remaining <= 0:
                return None
            delay = min(delay, remaining)
        self.attempt += 1
        return delay
