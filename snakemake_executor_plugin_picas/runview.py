"""The run view: every token of a Snakemake run in one query, and what its state means to Snakemake (pure).

``_design/picas_snakemake`` holds one view, ``by_run``, keyed by the run id
(the token field ``snakemake_run``), whose value is the token's state as the
classic views derive it (todo, locked, done, error).  The executor asks it
once per status round with ``key=<run id>``: one request for all the run's
jobs, however many there are, where the seed's profile started one process
and one connection per job.

What a state means to Snakemake (:func:`outcome`):

* todo and locked are *running*: a token that a scrub put back to todo (its
  pilot died) will run again, so the job is not lost;
* done is *success*, error is *failure* (Snakemake's ``--retries`` then
  decides whether the job runs again, as a new token);
* a token that is gone from the run (deleted by hand) or in no state a
  classic view knows is a failure too, with a message that says so.

The design document is its own, not the pilots': pilots never read it, and
its index holds only Snakemake tokens.
"""
from __future__ import annotations

import enum
from pathlib import Path

from picas.core.states import State

__all__ = ["DESIGN", "VIEW", "Outcome", "design_body", "outcome"]

DESIGN = "picas_snakemake"
VIEW = "by_run"
_SOURCE = Path(__file__).with_name("by_run.js")


class Outcome(enum.Enum):
    """What Snakemake is told about a job after a status round."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    MISSING = "missing"


def _strip_comments(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//")).strip()


def design_body() -> dict:
    """The body of ``_design/picas_snakemake`` (without ``_id``/``_rev``)."""
    return {"language": "javascript", "views": {VIEW: {"map": _strip_comments(_SOURCE.read_text())}}}


def outcome(state: str | None) -> Outcome:
    """What the state a run view row reports (None: no row) means for the job."""
    if state is None:
        return Outcome.MISSING
    if state in (State.TODO, State.LOCKED):
        return Outcome.RUNNING
    if state == State.DONE:
        return Outcome.SUCCESS
    return Outcome.FAILED
