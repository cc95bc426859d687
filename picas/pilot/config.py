"""How a pilot behaves: :class:`PilotConfig`, every field defaulting to :mod:`picas.defaults`.

Kept apart from the loop so that what builds a configuration (``picas run``,
the classic ``RunActor``, :func:`picas.pilot.options.pilot_config`) does not
have to import the loop, and so that the defaults are read from one place:
the command-line options of :mod:`picas.pilot.options` show the same values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from picas import defaults

__all__ = ["PilotConfig"]


@dataclass
class PilotConfig:
    """How a pilot behaves; every field has a sensible default for a laptop.

    Durations are seconds.  ``None`` for a limit means "no limit"; for
    ``scrub_every`` it means the pilot does not scrub expired leases.
    """

    design: str = defaults.DESIGN
    view: str = defaults.VIEW
    max_tasks: int | None = None
    max_time: float | None = None
    token_timeout: float | None = None
    wait: bool = False
    poll_max: float = defaults.POLL_MAX
    heartbeat: float = defaults.HEARTBEAT
    lease_factor: float = defaults.LEASE_FACTOR
    grace: float = defaults.GRACE
    prefetch: int = defaults.PREFETCH
    retries: int = defaults.RETRIES
    release_state: tuple[int, int] = (0, 0)
    workdir: Path | None = None
    log_cap: int = defaults.LOG_CAP
    keep_workdirs: bool = False
    attach_logs: bool = True
    outage_timeout: float = defaults.OUTAGE_TIMEOUT
    window: int = defaults.CLAIM_WINDOW
    view_params: dict = field(default_factory=dict)
    scrub_every: float | None = None
    max_attempts: int | None = None
    #: A token whose recorded outputs are all at their destinations with their checksums is done without running.
    skip_done_outputs: bool = False

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds without renewal: a few heartbeats, so one late renewal loses nothing."""
        return max(self.heartbeat * self.lease_factor, 1.0)
