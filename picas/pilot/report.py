"""Who a pilot is and what it did: its id, and the report ``picas run`` prints at the end."""
from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field

__all__ = ["PilotReport", "combine", "new_pilot_id"]

#: The counts that add up across pilots.
COUNTS = ("processed", "done", "failed", "retried", "released", "lost", "conflicts", "requests")


def new_pilot_id() -> str:
    """Unique per pilot process: host, pid and a random part (pids repeat across hosts and time)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class PilotReport:
    """What a pilot did; printed by ``picas run`` at the end."""

    pilot_id: str
    processed: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    lost: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    reason: str = ""
    conflicts: int = 0
    requests: int = 0

    @property
    def duration(self) -> float:
        return (self.finished or time.time()) - self.started


def combine(reports: list[dict], pilots: int) -> dict:
    """One summary of several pilots' reports (``-j`` processes, or ``--slots`` threads): counts add up.

    The duration is the longest (they ran side by side) and the reasons are
    listed once each; ``pilots`` is how many were started, which may exceed
    the reports when a pilot died without one.
    """
    total: dict = {key: sum(report[key] for report in reports) for key in COUNTS}
    total["duration"] = max((report["duration"] for report in reports), default=0.0)
    total["reason"] = "; ".join(sorted({report["reason"] for report in reports})) or "no pilot reported"
    total["pilots"] = pilots
    return total
