"""The pilot record: one small document per pilot run, written when it starts and when it ends.

Tokens tell what was run, but not when a pilot lived, how long it sat idle,
or why it stopped; the report (:mod:`picas.report`) needs all three.  So a
pilot writes ``picas-pilot:<pilot id>`` (``type: "pilot"``, which every token
view ignores) twice: at start (host, batch job, the design document and view
it drains, its lease) and at the end (the time, its counts, and how it ended,
as a :class:`PilotEnd`).  A pilot that never wrote its end was killed or lost
its node: the report calls it lost once nothing was heard from it for longer
than its lease.

The builders (:func:`start_record`, :func:`end_record`, :func:`end_kind`) are
pure.  :func:`write_start` and :func:`write_end` add the two writes; they are
best effort by design: a pilot never stops working, or fails, because its
record could not be saved (the report then says the pilot's record is missing).
"""
from __future__ import annotations

import enum
import os
from typing import Any

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.errors import Conflict, PicasError

__all__ = ["DOC_TYPE", "ID_PREFIX", "PilotEnd", "Recorder", "end_kind", "end_record", "record_id", "start_record",
           "write_end", "write_start"]

DOC_TYPE = "pilot"
#: Pilot records sort together in ``_all_docs`` (and after the registry's ``picas-pilot-jobs``).
ID_PREFIX = "picas-pilot:"


class PilotEnd(str, enum.Enum):
    """How a pilot run ended."""

    NO_WORK = "no work"
    WALLTIME = "walltime"
    MAX_TASKS = "max tasks"
    SIGNAL = "signal"
    STOPPED = "stopped"
    CRASHED = "crashed"
    LOST = "lost"
    RUNNING = "running"


def record_id(pilot_id: str) -> str:
    return ID_PREFIX + pilot_id


def start_record(who: tok.PilotIdentity, now: float, *, design: str, view: str, lease_seconds: float,
                 extra: dict[str, Any] | None = None) -> dict:
    """The record a pilot writes before it claims anything."""
    doc = {"_id": record_id(who.pilot_id), "type": DOC_TYPE, "pilot": who.pilot_id, "host": who.hostname,
           "pid": os.getpid(), "started": round(now, 3), "design": design, "view": view,
           "lease_seconds": lease_seconds, "job_ids": dict(who.job_ids)}
    doc.update(extra or {})
    return doc


def end_kind(reason: str, crashed: bool = False) -> PilotEnd:
    """Classify the pilot loop's stop reason (see ``Pilot._should_stop``) into a :class:`PilotEnd`.

    A Slurm pilot is warned of its time limit by a signal; the record keeps
    the signal's name in ``reason`` so a reader can tell USR1 (walltime
    warning) from TERM (cancelled).
    """
    text = (reason or "").lower()
    if crashed:
        return PilotEnd.CRASHED
    if "no more work" in text:
        return PilotEnd.NO_WORK
    if "max-time" in text or "walltime" in text or "time limit" in text:
        return PilotEnd.WALLTIME
    if "max-tasks" in text:
        return PilotEnd.MAX_TASKS
    if "stopped by sig" in text:
        return PilotEnd.SIGNAL
    return PilotEnd.STOPPED


def end_record(start: dict, now: float, reason: str, counts: dict[str, int] | None = None,
               crashed: bool = False) -> dict:
    """The start record completed with the end time, how the pilot ended, and what it did."""
    doc = dict(start)
    doc.update({"ended": round(now, 3), "end": end_kind(reason, crashed).value, "reason": reason,
                "counts": dict(counts or {})})
    return doc


def write_start(client: CouchClient, record: dict) -> dict | None:
    """Save a start record; returns it with its ``_rev``, or None when it could not be saved."""
    body = dict(record)
    try:
        client.save(body)
    except (PicasError, OSError):
        return None
    return body


def write_end(client: CouchClient, record: dict) -> bool:
    """Save an end record over the start record; False when it could not be saved.

    Only this pilot writes its record, so a 409 means the start's answer was
    lost after the write landed: the stored revision is taken and the end
    written once more; the end record wins, as it holds everything the start had.
    """
    body = dict(record)
    for _ in range(2):
        try:
            client.save(body)
            return True
        except Conflict:
            try:
                current = client.get_or_none(body["_id"])
            except (PicasError, OSError):
                return False
            if current is None:
                body.pop("_rev", None)
            else:
                body["_rev"] = current["_rev"]
        except (PicasError, OSError):
            return False
    return False


class Recorder:
    """What the pilot loop calls: :meth:`start` before its first claim, :meth:`end` when it stops.

    Two calls, no other coupling: the loop passes its identity and config
    once, and its report (``processed``, ``done``, ``failed``... and
    ``reason``) at the end.  Both writes are best effort (see the module docstring).
    """

    def __init__(self, client: CouchClient, who: tok.PilotIdentity, *, design: str, view: str,
                 lease_seconds: float) -> None:
        self.client, self.who = client, who
        self.design, self.view, self.lease_seconds = design, view, lease_seconds
        self.record: dict | None = None

    def start(self, now: float) -> None:
        self.record = write_start(self.client, start_record(self.who, now, design=self.design, view=self.view,
                                                            lease_seconds=self.lease_seconds))

    def end(self, now: float, reason: str, report: object = None, crashed: bool = False) -> None:
        if self.record is None:
            return
        counts = {name: getattr(report, name) for name in ("processed", "done", "failed", "retried", "released",
                                                           "lost") if isinstance(getattr(report, name, None), int)}
        write_end(self.client, end_record(self.record, now, reason, counts, crashed))
