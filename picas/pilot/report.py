"""Who a pilot is and what it did: its id, and the report ``picas run`` prints at the end."""
from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field

__all__ = ["PilotReport", "new_pilot_id"]


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
