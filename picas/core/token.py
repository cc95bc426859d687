"""Token documents and their state changes, as pure functions.

A token is a CouchDB document with ``type: "token"`` and the classic picas
fields (``lock``, ``done``, ``hostname``, ``scrub_count``, ``input``,
``output``, ``exit_code``, ``error``), so databases and views made by older
clients keep working.  Its state is derived from those fields exactly as the
classic views derive it:

=======  ==============================================================
todo     ``lock == 0 and done == 0``
locked   ``lock > 0 and done == 0``
done     ``lock > 0 and done > 0 and parseInt(exit_code) == 0``
error    ``lock > 0 and done > 0 and parseInt(exit_code) != 0``
=======  ==============================================================

On top of that a token records who holds it (``pilot``, a unique pilot id),
until when (``lease_until``, renewed by ``heartbeat``), how often it was handed
out (``attempts``) and a short ``history`` of state changes with host and time.
Tokens without these fields (written by older clients) are read as if the
fields were empty.

Every function here takes a body and returns a *new* body; none of them talks
to the server.  The pilot writes the returned body with the revision of the
body it read, which is what makes the state changes safe under contention.
"""
from __future__ import annotations

import copy
import os
import re
import socket
from dataclasses import dataclass, field

from picas.core.states import HistoryEvent, State

#: How many history entries a token keeps; older ones are dropped first.
HISTORY_LIMIT = 30

#: Environment variables of batch systems, in order of precedence, and the token field each fills.
JOB_ID_FIELDS = (
    ("DIRACJOBID", "dirac_job_id"),
    ("GLITE_WMS_JOBID", "wms_job_id"),
    ("CREAM_JOBID", "cream_job_id"),
    ("PBS_JOBID", "pbs_job_id"),
    ("SLURM_JOB_ID", "slurm_job_id"),
)
_BATCH_FIELDS = tuple(name for _, name in JOB_ID_FIELDS) + ("slurm_array_job_id", "slurm_array_task_id")
_INT_PREFIX = re.compile(r"^\s*[+-]?\d+")


@dataclass(frozen=True)
class PilotIdentity:
    """Who is acting on a token: written into every lock and history entry."""

    pilot_id: str
    hostname: str = field(default_factory=socket.gethostname)
    job_ids: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_environment(cls, pilot_id: str, environ: dict | None = None) -> "PilotIdentity":
        """Pick up the batch job ids (Slurm, DIRAC, PBS, ...) the pilot runs under."""
        env = os.environ if environ is None else environ
        ids = {name: env[var] for var, name in JOB_ID_FIELDS if env.get(var)}
        if env.get("SLURM_ARRAY_JOB_ID"):
            # An array task is known to users as <array job>_<task>, as squeue shows it.
            task = env.get("SLURM_ARRAY_TASK_ID", "")
            ids["slurm_job_id"] = f"{env['SLURM_ARRAY_JOB_ID']}_{task}"
            ids["slurm_array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
            ids["slurm_array_task_id"] = task
        return cls(pilot_id=pilot_id, job_ids=tuple(ids.items()))


def new_token(input_: object, token_id: str, **fields: object) -> dict:
    """A fresh token in the todo state, with every classic field present."""
    doc = {
        "_id": token_id,
        "type": "token",
        "lock": 0,
        "done": 0,
        "hostname": "",
        "scrub_count": 0,
        "input": input_,
        "output": {},
        "uploads": {},
        "exit_code": "",
        "error": [],
    }
    doc.update(fields)
    return doc


def parse_exit_code(value: object) -> int | None:
    """JavaScript's ``parseInt`` as the classic views apply it: None stands for NaN."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if value != value else int(value)
    if isinstance(value, str):
        match = _INT_PREFIX.match(value)
        return int(match.group()) if match else None
    return None


def _num(value: object) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def state(doc: dict) -> State:
    """todo, locked, done or error, derived as the classic views derive it (:attr:`State.OTHER` otherwise)."""
    lock, done = _num(doc.get("lock")), _num(doc.get("done"))
    if lock == 0 and done == 0:
        return State.TODO
    if lock > 0 and done == 0:
        return State.LOCKED
    if lock > 0 and done > 0:
        return State.DONE if parse_exit_code(doc.get("exit_code")) == 0 else State.ERROR
    return State.OTHER


def is_claimable(doc: dict | None) -> bool:
    """A body that a pilot may lock: a live token in the todo state."""
    return bool(doc) and not doc.get("_deleted") and doc.get("type", "token") == "token" and state(doc) is State.TODO


def owned_by(doc: dict | None, pilot_id: str) -> bool:
    """Whether ``pilot_id`` still holds the lock on this body."""
    return bool(doc) and state(doc) is State.LOCKED and doc.get("pilot") == pilot_id


def _event(doc: dict, event: str, who: PilotIdentity | None, now: float, **extra: object) -> dict:
    entry = {"event": str(event), "time": int(now)}  # the plain string: a body read back compares equal
    if who is not None:
        entry["host"] = who.hostname
        entry["pilot"] = who.pilot_id
    entry.update({k: v for k, v in extra.items() if v is not None})
    history = list(doc.get("history") or [])
    history.append(entry)
    doc["history"] = history[-HISTORY_LIMIT:]
    return doc


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_json(value: object) -> object:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); anything else goes through copy.deepcopy.

    Token bodies come from JSON, so their containers are dicts and lists and
    their leaves immutable; ``copy.deepcopy`` spends most of its time on
    bookkeeping for shared and cyclic references that JSON cannot have, and
    it was the largest cost of a state change (two per token).
    """
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}  # type: ignore[union-attr]
    if kind is list:
        return [_copy_json(item) for item in value]  # type: ignore[union-attr]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def copy_body(doc: dict) -> dict:
    """A copy to change: deep, except the attachments, which may hold large inline data no change touches."""
    body = {key: _copy_json(value) for key, value in doc.items() if key != "_attachments"}
    attachments = doc.get("_attachments")
    if attachments is not None:
        body["_attachments"] = dict(attachments)
    return body


def claim(doc: dict, who: PilotIdentity, now: float, lease_seconds: float) -> dict:
    """Lock a todo token for ``who`` with a lease that ends ``lease_seconds`` from ``now``."""
    body = copy_body(doc)
    for name in _BATCH_FIELDS:
        body.pop(name, None)
    body.update({
        "lock": int(now),
        "done": 0,
        "hostname": who.hostname,
        "pilot": who.pilot_id,
        "heartbeat": int(now),
        "lease_until": int(now + lease_seconds),
        "attempts": int(body.get("attempts") or 0) + 1,
    })
    body.setdefault("scrub_count", 0)
    body.update(dict(who.job_ids))
    return _event(body, HistoryEvent.LOCKED, who, now)


def heartbeat(doc: dict, now: float, lease_seconds: float) -> dict:
    """Renew the lease; not recorded in history (it happens every few seconds)."""
    body = copy_body(doc)
    body["heartbeat"] = int(now)
    body["lease_until"] = int(now + lease_seconds)
    return body


def finish(doc: dict, who: PilotIdentity, now: float, exit_code: int, **result: object) -> dict:
    """Close the token with the payload's exit code; done or error follows from it."""
    body = copy_body(doc)
    body.update(result)
    body["exit_code"] = exit_code
    body["done"] = int(now) if int(now) > 0 else 1
    if _num(body.get("lock")) <= 0:
        body["lock"] = body["done"]
    body.pop("lease_until", None)
    return _event(body, HistoryEvent.DONE if exit_code == 0 else HistoryEvent.FAILED, who, now, exit_code=exit_code)


def fail(doc: dict, who: PilotIdentity | None, now: float, message: str, exit_code: int | None = None,
         **result: object) -> dict:
    """Put the token in the error state with a message that says what went wrong."""
    body = copy_body(doc)
    body.update(result)
    if exit_code is not None:
        body["exit_code"] = exit_code
    if parse_exit_code(body.get("exit_code")) in (0, None) and exit_code is None:
        body["exit_code"] = -1
    if _num(body.get("lock")) <= 0:
        body["lock"] = int(now)
    body["done"] = int(now)
    body.pop("lease_until", None)
    errors = list(body.get("error") or []) if isinstance(body.get("error"), list) else [body.get("error")]
    errors.append({"time": int(now), "message": message, **({"host": who.hostname} if who else {})})
    body["error"] = errors
    return _event(body, HistoryEvent.ERROR, who, now, reason=message, exit_code=body.get("exit_code"))


def reset(doc: dict, who: PilotIdentity | None, now: float, reason: str, count_scrub: bool = True,
          lock: int = 0, done: int = 0) -> dict:
    """Put a token back (to todo by default), forgetting its holder and lease.

    ``count_scrub`` increments ``scrub_count``, as the classic scrub did; a
    pilot that gives a token back because it was told to stop does not count
    against the token.
    """
    body = copy_body(doc)
    for name in _BATCH_FIELDS + ("pilot", "heartbeat", "lease_until"):
        body.pop(name, None)
    body["lock"], body["done"] = lock, done
    if count_scrub:
        body["scrub_count"] = int(body.get("scrub_count") or 0) + 1
    return _event(body, HistoryEvent.RESET if count_scrub else HistoryEvent.RELEASED, who, now, reason=reason)


def lease_expired(doc: dict, now: float, older_than: float | None = None) -> bool:
    """A locked token whose lease has run out; tokens without a lease count by lock age."""
    if state(doc) is not State.LOCKED:
        return False
    lease = doc.get("lease_until")
    if lease is not None:
        return _num(lease) < now
    return older_than is not None and _num(doc.get("lock")) < now - older_than


def note(doc: dict, who: PilotIdentity | None, now: float, event: str, **extra: object) -> dict:
    """Add a history entry without changing the token's state."""
    return _event(copy_body(doc), event, who, now, **extra)
