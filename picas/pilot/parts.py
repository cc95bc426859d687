"""What the pilot loop needs of its collaborators, so that each can be replaced.

:class:`~picas.pilot.loop.Pilot` builds a claimer, a lease keeper, a journal
and an executor from its configuration, unless it is given its own.  A test
gives it one that misbehaves on cue; the classic ``RunActor`` gives it a
claim source that reads the actor's iterator and an executor that calls
``process_task``; a Snakemake or container executor plugs in the same way.
Each protocol lists only what the loop calls.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Protocol

from picas.core.claim import Carried
from picas.pilot.payload import ExecResult

__all__ = ["ClaimSource", "Holder", "ResultJournal", "Executor"]


class ClaimSource(Protocol):
    """Hands out locked tokens (:class:`picas.core.claim.Claimer`)."""

    def claim_batch(self, k: int, *, carry: Carried | None = None) -> list[dict]:
        """Up to ``k`` locked bodies, empty when there is no work.

        ``carry`` holds finished results the source may write in the same
        request; it records in ``carry.results`` the ones it sent.  A source
        that sends none leaves it empty and the pilot saves them itself.
        """


class Holder(Protocol):
    """Keeps the leases of the tokens a pilot holds (:class:`picas.pilot.lease.LeaseKeeper`)."""

    held: Iterable[str]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def hold(self, docs: list[dict]) -> None: ...

    def release(self, token_id: str) -> dict | None:
        """Stop renewing the token; its newest body, or None when it was not held."""

    def is_lost(self, token_id: str) -> bool:
        """Whether someone else owns the token now (the payload must stop, nothing is written)."""


class ResultJournal(Protocol):
    """Keeps finished results on local disk until the server has them (:class:`picas.pilot.journal.Journal`)."""

    path: Path

    def add(self, body: dict) -> None: ...

    def done(self, token_id: str) -> None: ...

    def pending(self) -> list[dict]: ...

    def adopt_orphans(self, prefix: str) -> int: ...


class Executor(Protocol):
    """Runs a token's payload (:class:`picas.pilot.payload.BashExecutor`)."""

    def run(self, doc: dict, *, timeout: float | None = None, should_stop: Callable[[], bool] = ...,
            should_force: Callable[[], bool] = ...) -> ExecResult: ...

    def cleanup_logs(self, result: ExecResult) -> None: ...
