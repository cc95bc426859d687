"""The registry of submitted pilot jobs, kept in the token database itself.

``picas submit`` and ``picas autopilot`` record every job they submit in one
document of the pool's database (``_id: "picas-pilot-jobs"``).  Keeping it
there, and not in a file on the login node, is what lets ``picas status``,
``picas pilots cancel`` and the next autopilot round (from cron, on any login
node, by any member of the project) see the same pilots.  Its ``type`` is
``"pilot_jobs"``, not ``"token"``, so every token view ignores it.

The document looks like::

    {"_id": "picas-pilot-jobs", "type": "pilot_jobs",
     "jobs": [{"job_id": "123", "scheduler": "NAME", "design": "Monitor", "view": "todo",
               "class": "Monitor", "array": 4, "submitted": 1700000000, "host": "login1",
               "via": "submit", "resources": {"cpus_per_task": 4, "time": "1:00:00"}}]}

Each entry names the scheduler that runs it, and everything that asks about
a job asks that scheduler, found by name (:func:`picas.schedulers.get`):
this module knows no batch system.  ``array`` is how many pilots the job
stands for (an array job of 4 is one job id; a grid's parametric job gives
one id per pilot, each recorded with ``array`` 1).

The functions that decide what the list becomes (:func:`merge_entries`,
:func:`without`, :func:`stale_ids`, :func:`active_per_job`,
:func:`active_per_class`, :func:`split_running`, :func:`summarize`) are
pure; :func:`record`, :func:`forget`, :func:`prune` and
:func:`pilot_summary` add the reads, writes and scheduler queries.
"""
from __future__ import annotations

import enum
import random
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from picas import defaults
from picas.core.client import CouchClient
from picas.errors import Conflict, PicasError

if TYPE_CHECKING:  # status must not load the schedulers: they are imported only to ask one
    from picas.schedulers.base import JobStatus, Scheduler

__all__ = [
    "DOC_ID",
    "DOC_TYPE",
    "PRUNE_AFTER",
    "RowState",
    "active_per_class",
    "active_per_job",
    "by_scheduler",
    "class_name",
    "entries_for",
    "forget",
    "jobs",
    "merge_entries",
    "pilot_summary",
    "prune",
    "record",
    "split_running",
    "stale_ids",
    "summarize",
    "without",
]

DOC_ID = "picas-pilot-jobs"
DOC_TYPE = "pilot_jobs"

#: Seconds after submission before a job its scheduler no longer lists as active is dropped.  A day
#: keeps recent pilots visible in ``picas pilots list --all``, and the age guard keeps jobs of
#: another cluster (sharing the database, unknown to this one's scheduler) from being dropped at once.
PRUNE_AFTER = defaults.PRUNE_AFTER

#: Attempts of a read-merge-write cycle before a registry update gives up; between attempts a
#: random pause that doubles each time keeps writers that collided from colliding again in step.
ATTEMPTS = 20

#: How :func:`pilot_summary` finds the scheduler of an entry: a name → an instance.
Lookup = Callable[[str], "Scheduler"]


class RowState(str, enum.Enum):
    """What one recorded job is doing, summed over its pilots (``picas pilots list``)."""

    QUEUED = "queued"        # pilots pending, none running
    RUNNING = "running"      # at least one pilot running
    FINISHED = "finished"    # the scheduler lists no active pilot of it
    UNKNOWN = "unknown"      # the scheduler could not be asked

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def class_name(design: str, view: str = defaults.VIEW) -> str:
    """The pilot class a (design, view) pair is known by: the design alone for the todo view."""
    return design if view == defaults.VIEW else f"{design}/{view}"


def _scheduler_of(entry: Mapping[str, Any]) -> str:
    return str(entry.get("scheduler") or defaults.SCHEDULER)


def _lookup(name: str) -> Scheduler:
    from picas.schedulers import create

    return create(name)


# --- pure ---------------------------------------------------------------------------


def entries_for(job_ids: Sequence[str], scheduler: str, design: str, view: str, *, count: int,
                resources: Mapping[str, Any] | None = None, submitted: float | None = None,
                via: str = "submit") -> list[dict]:
    """The registry entries of one submission of ``count`` pilots that got ``job_ids`` back.

    One id (an array job) stands for all ``count`` pilots; several ids (a
    grid's parametric job) stand for one pilot each.  The resources are kept
    with the job so that ``picas pilots list`` can show what each pilot
    asked for, and ``via`` tells a user's own submissions from the
    autopilot's.
    """
    stamp = int(time.time() if submitted is None else submitted)
    host = socket.gethostname()
    array = count if len(job_ids) == 1 else 1
    return [{"job_id": str(job_id), "scheduler": scheduler, "design": design, "view": view,
             "class": class_name(design, view), "array": array, "submitted": stamp, "host": host, "via": via,
             "resources": dict(resources or {})} for job_id in job_ids]


def _key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return _scheduler_of(entry), str(entry.get("job_id", ""))


def merge_entries(existing: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict]:
    """``existing`` plus ``new``, one entry per (scheduler, job id), in submission order (pure).

    A job already in ``existing`` is replaced by the entry in ``new``: the
    caller has just submitted (or looked at) that job and knows it best.
    Entries of other writers are never dropped, which is what makes the
    re-read-and-merge after a 409 safe.
    """
    merged: dict[tuple[str, str], dict] = {}
    for entry in list(existing) + list(new):
        key = _key(entry)
        if not key[1]:
            continue
        merged.pop(key, None)
        merged[key] = dict(entry)
    return sorted(merged.values(), key=lambda e: (float(e.get("submitted") or 0), str(e["job_id"])))


def without(entries: Iterable[Mapping[str, Any]], job_ids: Iterable[str], scheduler: str | None = None) -> list[dict]:
    """The entries whose job id is not in ``job_ids`` (only those of ``scheduler`` are dropped, if given) (pure)."""
    drop = {str(j) for j in job_ids}
    return [dict(e) for e in entries
            if str(e.get("job_id")) not in drop or (scheduler is not None and _scheduler_of(e) != scheduler)]


def by_scheduler(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """The entries grouped by the scheduler that runs them, in their order (pure)."""
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(_scheduler_of(entry), []).append(dict(entry))
    return groups


def active_per_job(statuses: Iterable[JobStatus]) -> dict[str, int]:
    """Pending plus running pilots per submitted job id in one scheduler's answer (pure)."""
    counts: dict[str, int] = {}
    for status in statuses:
        if status.state.active:
            counts[status.job_id] = counts.get(status.job_id, 0) + status.count
    return counts


def active_per_class(entries: Iterable[Mapping[str, Any]], statuses: Iterable[JobStatus]) -> dict[str, int]:
    """Pending plus running pilots per class, for the autopilot's plan (pure).

    ``entries`` and ``statuses`` are those of one scheduler.
    """
    per_job = active_per_job(statuses)
    counts: dict[str, int] = {}
    for entry in entries:
        name = entry.get("class") or class_name(entry.get("design", defaults.DESIGN), entry.get("view", defaults.VIEW))
        counts[name] = counts.get(name, 0) + per_job.get(str(entry.get("job_id")), 0)
    return counts


def split_running(statuses: Iterable[JobStatus]) -> tuple[list[str], list[str]]:
    """Task ids of running pilots, and of those still pending (pure).

    A signal can only reach a pilot that runs (a batch system may wait,
    not fail, when asked to signal a pending job), so the two are told
    apart first.
    """
    statuses = list(statuses)
    running = sorted(s.task_id for s in statuses if s.state == "running")
    waiting = sorted(s.task_id for s in statuses if s.state.active and s.state != "running")
    return running, waiting


def stale_ids(entries: Iterable[Mapping[str, Any]], statuses: Iterable[JobStatus], now: float,
              older_than: float = PRUNE_AFTER) -> list[str]:
    """Job ids to drop: no pilot of theirs is listed unfinished, and they are older than ``older_than`` (pure).

    A job listed in a state picas does not know is kept: it may still run.
    """
    alive = {s.job_id for s in statuses if not s.state.finished}
    return [str(e["job_id"]) for e in entries
            if str(e.get("job_id")) not in alive and now - float(e.get("submitted") or 0) >= older_than]


def summarize(entries: Iterable[Mapping[str, Any]], statuses: Iterable[JobStatus] | None) -> list[dict]:
    """One row per job for ``picas status`` and ``picas pilots list`` (pure).

    Each row is the registry entry plus ``pending``, ``running`` and
    ``active`` pilot counts and a ``state`` (:class:`RowState`), which is
    ``unknown`` with counts of None when ``statuses`` is None because the
    scheduler could not be asked.  ``entries`` and ``statuses`` are those of
    one scheduler.
    """
    listed: dict[str, list] = {}
    for status in statuses or ():
        listed.setdefault(status.job_id, []).append(status)
    rows = []
    for entry in entries:
        row = dict(entry)
        if statuses is None:
            row.update(pending=None, running=None, active=None, state=RowState.UNKNOWN)
            rows.append(row)
            continue
        mine = listed.get(str(entry.get("job_id")), [])
        running = sum(s.count for s in mine if s.state == "running")
        pending = sum(s.count for s in mine if s.state.active) - running
        state = RowState.RUNNING if running else RowState.QUEUED if pending else RowState.FINISHED
        row.update(pending=pending, running=running, active=pending + running, state=state)
        rows.append(row)
    return rows


# --- the document ---------------------------------------------------------------------


def _load(client: CouchClient) -> dict:
    return client.get_or_none(DOC_ID) or {"_id": DOC_ID, "type": DOC_TYPE, "jobs": []}


def _update(client: CouchClient, change: Callable[[list[dict]], list[dict]], attempts: int = ATTEMPTS) -> list[dict]:
    """Read the registry, apply ``change`` to its job list, write it; on a 409 start over.

    ``change`` is applied to the freshly read list every time, so what another
    writer stored in between is kept.
    """
    for attempt in range(attempts):
        if attempt:
            time.sleep(random.uniform(0, min(0.02 * 2 ** attempt, 1.0)))
        doc = _load(client)
        before = list(doc.get("jobs") or [])
        after = change(before)
        if after == before and ("_rev" in doc or not after):
            return after  # nothing to change: no write, no new revision
        doc["type"] = DOC_TYPE
        doc["jobs"] = after
        doc["updated"] = int(time.time())
        try:
            client.save(doc)
            return after
        except Conflict:
            continue
    raise Conflict(f"could not update the pilot job registry '{DOC_ID}': it kept changing ({attempts} tries)")


def record(client: CouchClient, entries: Iterable[Mapping[str, Any]], attempts: int = ATTEMPTS) -> list[dict]:
    """Add submitted jobs to the registry; returns the stored list.

    Two submitters at once (cron and a user) both win: on a 409 the registry
    is read again and our entries are merged into what is stored, so neither
    loses its jobs.  For the same job, the entry being recorded now wins.
    """
    new = [dict(e) for e in entries]
    for entry in new:
        entry["job_id"] = str(entry["job_id"])
        entry["scheduler"] = _scheduler_of(entry)
        entry.setdefault("submitted", int(time.time()))
    if not new:
        return jobs(client)
    return _update(client, lambda current: merge_entries(current, new), attempts)


def jobs(client: CouchClient, scheduler: str | None = None) -> list[dict]:
    """The recorded jobs, oldest first; only those of ``scheduler`` when given."""
    entries = list(_load(client).get("jobs") or [])
    return [e for e in entries if scheduler is None or _scheduler_of(e) == scheduler]


def forget(client: CouchClient, job_ids: Iterable[str], scheduler: str | None = None,
           attempts: int = ATTEMPTS) -> list[dict]:
    """Remove jobs (of ``scheduler`` only, if given) from the registry, re-read and retried on a 409."""
    ids = [str(j) for j in job_ids]
    if not ids:
        return jobs(client)
    return _update(client, lambda current: without(current, ids, scheduler), attempts)


def prune(client: CouchClient, older_than: float = PRUNE_AFTER, *, scheduler: str | None = None,
          statuses: Sequence[JobStatus] | None = None, lookup: Lookup = _lookup,
          now: float | None = None) -> list[str]:
    """Forget jobs that their scheduler no longer lists as active and that are older than ``older_than``.

    Every scheduler in the registry is asked about its own jobs, or only
    ``scheduler``.  ``statuses`` is that scheduler's answer when the caller
    already has one (the autopilot asks once per round).  A scheduler that
    cannot be asked raises :class:`~picas.errors.SchedulerError`: without
    its answer nothing of its jobs can safely be dropped.  Returns the ids
    dropped.
    """
    now = time.time() if now is None else now
    dropped: list[str] = []
    for name, entries in by_scheduler(jobs(client, scheduler)).items():
        answer = statuses if statuses is not None and scheduler == name else \
            lookup(name).query([str(e["job_id"]) for e in entries])
        stale = stale_ids(entries, answer, now, older_than)
        if stale:
            forget(client, stale, name)
            dropped.extend(stale)
    return dropped


def pilot_summary(client: CouchClient, *, include_finished: bool = False, lookup: Lookup = _lookup) -> list[dict]:
    """The recorded pilot jobs with what their schedulers say of them, for ``picas status``.

    Rows are those of :func:`summarize`, oldest first.  Finished jobs are
    left out unless ``include_finished``.  Status must work where a
    scheduler is not installed (a laptop, a login node of another cluster):
    if it cannot be asked, its rows come back with state ``unknown`` and an
    ``error`` field instead of raising.
    """
    rows: list[dict] = []
    for name, entries in by_scheduler(jobs(client)).items():
        error = None
        try:
            answer: list[JobStatus] | None = lookup(name).query([str(e["job_id"]) for e in entries])
        except PicasError as exc:
            answer, error = None, str(exc)
        for row in summarize(entries, answer):
            if error is not None:
                row["error"] = error
            rows.append(row)
    rows.sort(key=lambda r: (float(r.get("submitted") or 0), str(r["job_id"])))
    return [row for row in rows if include_finished or row["state"] != RowState.FINISHED]
