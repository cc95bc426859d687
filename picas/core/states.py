"""The names picas gives to token states, to what became of a token, and to what happened to it.

Each is a ``str`` enum: a member *is* its string (``State.TODO == "todo"``,
same hash, ``json.dumps`` writes ``"todo"``), so token documents, JSON
output and older callers comparing with plain strings see exactly what they
saw before, while code inside picas names a state once and a typo fails at
import time instead of silently matching nothing.  ``str()`` and f-strings
give the bare value on every Python picas supports (3.9 and later).

What is written into a token document is always the plain value
(``.value``), never the member, so a body read back from the server and
one built in memory compare and hash alike.
"""
from __future__ import annotations

import enum

__all__ = ["Name", "State", "STATES", "RunOutcome", "SaveOutcome", "PilotEvent", "HistoryEvent"]


class Name(str, enum.Enum):
    """A string enum that prints, formats and serialises as its bare value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class State(Name):
    """A token's state, derived from its ``lock``/``done``/``exit_code`` fields as the classic views derive it."""

    TODO = "todo"
    LOCKED = "locked"
    DONE = "done"
    ERROR = "error"
    #: Fields no classic view accepts (e.g. ``done`` set without ``lock``): listed by none of the views.
    OTHER = "other"


#: The four states that have a view of their own, in the order a token passes them.
STATES = (State.TODO, State.LOCKED, State.DONE, State.ERROR)


class RunOutcome(Name):
    """How one run of a claimed token ended, seen from the pilot."""

    #: The payload ran to its end (whatever its exit code): there is a result to save.
    FINISHED = "finished"
    #: A stop signal ended it: the token goes back without counting as a failure.
    INTERRUPTED = "interrupted"
    #: The lease was lost (a scrub gave the token to another pilot): nothing is written, the new owner wins.
    LOST = "lost"


class SaveOutcome(Name):
    """What became of a result a pilot tried to write."""

    SAVED = "saved"
    #: Another pilot owns the token now, or it was reset or deleted: the result was discarded (and noted).
    LOST = "lost"
    #: The server could not be reached: the lease will run out and a scrub returns the token.
    UNSAVED = "unsaved"


class PilotEvent(Name):
    """What a running pilot reports to its ``on_event`` callback (``picas run`` prints these)."""

    START = "start"
    DONE = "done"
    ERROR = "error"
    RETRY = "retry"
    LOST = "lost"
    RELEASED = "released"
    SCRUBBED = "scrubbed"
    OUTAGE = "outage"


class HistoryEvent(Name):
    """The ``event`` of an entry in a token's ``history``."""

    LOCKED = "locked"
    DONE = "done"
    FAILED = "failed"
    ERROR = "error"
    RESET = "reset"
    RELEASED = "released"
    RESULT_DISCARDED = "result_discarded"
