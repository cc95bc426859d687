"""A token's attempts, read back from its history: who ran it, when, and how each try ended.

Every plot of the report is drawn from attempts, so this is the one place
that reads token histories.  A token carries a short ``history`` of events
(``locked``, ``done``, ``failed``, ``error``, ``reset``, ``released``,
``result_discarded``, and the staging events), each with a time, a host and
the pilot id (see :mod:`picas.core.token`).  One attempt runs from a
``locked`` event to the event that ends it:

=================  ============================================================
``done``           the payload exited 0: DONE
``failed/error``   it failed: ERROR, or RETRIED when a ``reset`` put it back
``reset``          while still locked: SCRUBBED (an expired lease, a reset)
``released``       the pilot was told to stop and gave the token back
``result_discarded``  the pilot finished after losing its lock: LOST
=================  ============================================================

The last attempt also has the payload's own start and end (the token's
``started`` and ``finished`` fields), which tell waiting (claimed, not yet
running: a prefetched token, a stage-in) from running.  Earlier attempts only
have their claim and end times.

Tokens written by older clients carry no history: they get at most one
attempt, from their ``lock`` and ``done`` times, and :func:`has_history` lets
the report say how many such tokens there are.  Everything here is pure.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from picas.core import token as tok
from picas.core.states import STATES, HistoryEvent, State
from picas.pool.tokens import job_id

__all__ = ["Attempt", "Outcome", "attempts", "created_at", "has_history", "is_scrub", "is_scrub_reason", "number",
           "transitions"]

# The history events and states as plain strings (from picas.core.states, named once there): these are
# compared per history entry of every token a report reads, and a str compares several times faster than
# an enum member does.
_LOCKED, _DONE, _RESET, _RELEASED, _DISCARDED = (e.value for e in (
    HistoryEvent.LOCKED, HistoryEvent.DONE, HistoryEvent.RESET, HistoryEvent.RELEASED, HistoryEvent.RESULT_DISCARDED))
_FAILED = (HistoryEvent.FAILED.value, HistoryEvent.ERROR.value)
_TODO, _IN_LOCKED = State.TODO.value, State.LOCKED.value
_STATES = tuple(state.value for state in STATES)


class Outcome(str, enum.Enum):
    """How one attempt at a token ended."""

    DONE = "done"
    ERROR = "error"
    RETRIED = "retried"
    SCRUBBED = "scrubbed"
    RELEASED = "released"
    LOST = "lost"
    RUNNING = "running"


#: The state an ended attempt left its token in (any other ending puts it back to todo).
_FINAL = {Outcome.DONE: State.DONE.value, Outcome.ERROR: State.ERROR.value}


@dataclass
class Attempt:
    """One claim of a token by a pilot, up to the event that ended it (None while it runs)."""

    token: str
    pilot: str
    host: str
    job: str
    claimed: float
    ended: float | None = None
    outcome: Outcome = Outcome.RUNNING
    started: float | None = None
    finished: float | None = None
    exit_code: object = None
    message: str = ""
    staging: list[tuple[str, float, float]] = field(default_factory=list)
    #: The payload's run time as the pilot measured it (sub-second), for the latest attempt only.
    duration: float | None = None

    @property
    def run_seconds(self) -> float | None:
        """The payload's run time when known, else claim to end; None while running."""
        if self.duration is not None:
            return self.duration
        if self.started is not None and self.finished is not None:
            return max(0.0, self.finished - self.started)
        if self.ended is None:
            return None
        return max(0.0, self.ended - self.claimed)

    def end_or(self, now: float) -> float:
        return self.ended if self.ended is not None else max(now, self.claimed)


def number(value: object) -> float | None:
    """A positive timestamp or duration from a token field, or None (0, '', junk)."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if out > 0 and out == out else None


def created_at(doc: dict) -> float | None:
    """When the token was pushed; None for tokens of older clients that did not record it."""
    return number(doc.get("created_at"))


def has_history(doc: dict) -> bool:
    history = doc.get("history")
    return isinstance(history, list) and any(isinstance(e, dict) and "event" in e for e in history)


def is_scrub_reason(reason: str) -> bool:
    """The reason :func:`picas.pool.scrub.scrub_decision` gives: a lease ran out (not a retry, not an operator)."""
    return "lease of" in reason or "without a lease" in reason


def is_scrub(entry: dict) -> bool:
    """A reset that took a token from a pilot whose lease ran out (by a scrub, not a retry or an operator)."""
    return entry.get("event") == _RESET and is_scrub_reason(str(entry.get("reason") or ""))


def _events(doc: dict) -> list[dict]:
    history = [e for e in doc.get("history") or [] if isinstance(e, dict) and number(e.get("time"))]
    times = [float(e["time"]) for e in history]
    if all(a <= b for a, b in zip(times, times[1:])):
        return history  # the usual case: entries are appended in time order
    return sorted(history, key=lambda e: float(e["time"]))


def _close(current: Attempt, when: float, outcome: Outcome, entry: dict) -> None:
    current.ended = when
    current.outcome = outcome
    if entry.get("exit_code") is not None:
        current.exit_code = entry.get("exit_code")
    if entry.get("reason"):
        current.message = str(entry["reason"])


def _stage(entry: dict, current: Attempt | None) -> None:
    """A staging event (see :mod:`picas.staging.stager`): ``stage_in_start`` opens a stage-in segment and
    ``stage_in_success``/``stage_in_fail`` close it; a lone end with ``seconds`` (or ``duration``) or
    ``started`` also makes one.  Likewise for stage-out."""
    if current is None:
        return
    name = str(entry.get("event"))
    kind = "stage-out" if name.startswith("stage_out") or "out" in name else "stage-in"
    when = float(entry["time"])
    if name.endswith(("_start", "_started", "-start")):
        current.staging.append((kind, when, when))
        return
    last = current.staging[-1] if current.staging else None
    if last is not None and last[0] == kind and last[1] == last[2]:
        current.staging[-1] = (kind, last[1], max(last[1], when))  # the end of the stage opened before
        return
    duration = number(entry.get("duration") or entry.get("seconds"))
    start = number(entry.get("started") or entry.get("start"))
    if start is not None:
        current.staging.append((kind, start, number(entry.get("finished") or entry.get("end")) or when))
    elif duration is not None:
        current.staging.append((kind, when - duration, when))


def _from_history(doc: dict, token_id: str) -> list[Attempt]:
    out: list[Attempt] = []
    current: Attempt | None = None
    for entry in _events(doc):
        event, when = entry.get("event"), float(entry["time"])
        pilot, host = str(entry.get("pilot") or ""), str(entry.get("host") or "")
        if event == _LOCKED:
            if current is not None:
                _close(current, when, Outcome.LOST, {})  # re-locked with no end recorded (trimmed or lost)
            current = Attempt(token_id, pilot or host, host, "", when)
            out.append(current)
        elif event == _DONE and current is not None:
            _close(current, when, Outcome.DONE, entry)
            current = None
        elif event in _FAILED:
            if current is not None:
                _close(current, when, Outcome.ERROR, entry)
                current = None
            elif out and out[-1].ended is not None and out[-1].outcome == Outcome.ERROR and entry.get("reason"):
                out[-1].message = str(entry["reason"])  # a failed exit followed by its error message
        elif event == _RESET:
            if current is not None:
                _close(current, when, Outcome.SCRUBBED, entry)
                current = None
            elif out and out[-1].outcome == Outcome.ERROR:
                out[-1].outcome = Outcome.RETRIED
        elif event == _RELEASED and current is not None:
            _close(current, when, Outcome.RELEASED, entry)
            current = None
        elif event == _DISCARDED:
            # The pilot finished after its claim was taken away (scrubbed): its work was lost.
            mine = [a for a in out if a.pilot == pilot and a.outcome == Outcome.SCRUBBED]
            if mine:
                mine[-1].outcome = Outcome.LOST
        elif str(event).startswith("stage"):
            _stage(entry, current if current is not None else (out[-1] if out else None))
    return out


def _without_history(doc: dict, token_id: str) -> list[Attempt]:
    lock = number(doc.get("lock"))
    if lock is None:
        return []
    state = tok.state(doc)
    host = str(doc.get("hostname") or "")
    attempt = Attempt(token_id, str(doc.get("pilot") or host), host, job_id(doc), lock)
    if state in (State.DONE, State.ERROR):
        attempt.ended = number(doc.get("done")) or lock
        attempt.outcome = Outcome.DONE if state == State.DONE else Outcome.ERROR
        attempt.exit_code = doc.get("exit_code")
    return [attempt]


def attempts(doc: dict) -> list[Attempt]:
    """Every attempt of one token, oldest first (see the module docstring)."""
    token_id = str(doc.get("_id", ""))
    found = _from_history(doc, token_id) if has_history(doc) else _without_history(doc, token_id)
    if not found:
        return found
    last = found[-1]
    state = tok.state(doc)
    # The token's own fields describe its latest attempt: the payload's times, the job, the exit code.
    if last.ended is None and state in (State.DONE, State.ERROR):
        last.ended = number(doc.get("done")) or last.claimed
        last.outcome = Outcome.DONE if state == State.DONE else Outcome.ERROR
    if last.ended is not None and last.outcome == Outcome.RUNNING:
        last.outcome = Outcome.LOST
    if state == State.LOCKED and last.ended is not None and str(doc.get("pilot") or "") == last.pilot:
        last.ended, last.outcome = None, Outcome.RUNNING
    same = not doc.get("pilot") or str(doc.get("pilot")) == last.pilot
    if same:
        last.job = last.job or job_id(doc)
        last.host = last.host or str(doc.get("hostname") or "")
        started, finished = number(doc.get("started")), number(doc.get("finished"))
        if started is not None and started >= last.claimed - 1 and (last.ended is None or started <= last.ended + 1):
            last.started = started
            last.finished = finished if finished is not None and finished >= started else None
            last.duration = number(doc.get("duration"))
        if last.outcome in (Outcome.DONE, Outcome.ERROR, Outcome.RETRIED) and last.exit_code is None:
            last.exit_code = doc.get("exit_code")
    if last.outcome in (Outcome.ERROR, Outcome.RETRIED) and not last.message:
        last.message = last_error(doc)
    return found


def last_error(doc: dict) -> str:
    """The latest error message of a token, on one line (the pilot's or an older client's)."""
    errors = doc.get("error")
    entry = errors[-1] if isinstance(errors, list) and errors else errors
    text = entry.get("message", "") if isinstance(entry, dict) else str(entry or "")
    return " ".join(text.split())


def transitions(doc: dict, start: float, tries: list[Attempt] | None = None) -> list[tuple[float, str]]:
    """The states a token went through, as (time, state) from its push on; ``start`` stands for unknown times.

    A token without a creation time is taken to be todo from ``start``.  The
    last entry is always the token's current state, so that a trimmed or
    missing history never leaves a token counted in a state it has left.
    """
    created = created_at(doc)
    out = [(created if created is not None else start, _TODO)]
    for attempt in attempts(doc) if tries is None else tries:
        out.append((attempt.claimed, _IN_LOCKED))
        if attempt.ended is not None:
            final = _FINAL.get(attempt.outcome, _TODO)
            out.append((attempt.ended, final))
    current = tok.state(doc)
    if current != out[-1][1] and current in _STATES:
        out.append((max(out[-1][0], number(doc.get("done")) or number(doc.get("lock")) or out[-1][0]), current))
    return out
