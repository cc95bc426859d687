"""The registry of submitted pilot jobs, kept in the token database itself.

``picas submit slurm`` and ``picas autopilot`` record every job they submit in
one document of the pool's database (``_id: "picas-pilot-jobs"``).  Keeping it
there, and not in a file on the login node, is what lets ``picas status``,
``picas pilots cancel`` and the next autopilot round (from cron, on any login
node, by any member of the project) see the same pilots.  Its ``type`` is
``"pilot_jobs"``, not ``"token"``, so every token view ignores it.

The document looks like::

    {"_id": "picas-pilot-jobs", "type": "pilot_jobs",
     "jobs": [{"job_id": "123", "scheduler": "slurm", "design": "Monitor", "view": "todo",
               "class": "Monitor", "array": 4, "submitted": 1700000000, "cpus_per_task": 4, ...}]}

The functions that decide what the list becomes (:func:`merge_entries`,
:func:`without`, :func:`stale_ids`, :func:`active_per_job`,
:func:`active_per_class`, :func:`summarize`) are pure; :func:`record`,
:func:`forget`, :func:`prune` and :func:`pilot_summary` add the reads and
writes around them.  Only Slurm is filled in today; the ``scheduler`` field
keeps room for others.
"""
from __future__ import annotations

import random
import socket
import time
from typing import Any, Callable, Iterable, Mapping

from picas.schedulers import slurm
from picas.core.client import CouchClient
from picas.errors import Conflict, SchedulerError

__all__ = [
    "DOC_ID",
    "DOC_TYPE",
    "PRUNE_AFTER",
    "active_per_class",
    "active_per_job",
    "class_name",
    "entry_for",
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

#: Seconds after submission before a job that squeue no longer lists is dropped.  A day keeps
#: recent pilots visible in ``picas pilots list --all``, and the age guard keeps jobs of another
#: cluster (sharing the database, unknown to this squeue) from being dropped at once.
PRUNE_AFTER = 24 * 3600.0

#: Attempts of a read-merge-write cycle before a registry update gives up; between attempts a
#: random pause that doubles each time keeps writers that collided from colliding again in step.
ATTEMPTS = 20

QueueFn = Callable[[list[str]], Mapping[str, str]]


def class_name(design: str, view: str = "todo") -> str:
    """The pilot class a (design, view) pair is known by: the design alone for the todo view."""
    return design if view == "todo" else f"{design}/{view}"


# --- pure ---------------------------------------------------------------------------


def entry_for(job_id: str, opts: slurm.SbatchOptions, design: str, view: str, *,
              submitted: float | None = None, via: str = "submit") -> dict:
    """The registry entry for one submitted pilot array.

    The resources are kept with the job so that ``picas pilots list`` can
    show what each pilot asked for, and ``via`` tells a user's own
    submissions from the autopilot's.
    """
    entry: dict[str, Any] = {
        "job_id": str(job_id), "scheduler": "slurm", "design": design, "view": view,
        "class": class_name(design, view), "array": opts.array,
        "submitted": int(time.time() if submitted is None else submitted),
        "host": socket.gethostname(), "via": via,
    }
    for name in ("cpus_per_task", "mem", "time", "partition", "account", "qos", "job_name"):
        value = getattr(opts, name)
        if value is not None:
            entry[name] = value
    return entry


def merge_entries(existing: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict]:
    """``existing`` plus ``new``, one entry per job id, in submission order (pure).

    A job id already in ``existing`` is replaced by the entry in ``new``: the
    caller has just submitted (or looked at) that job and knows it best.
    Entries of other writers are never dropped, which is what makes the
    re-read-and-merge after a 409 safe.
    """
    merged: dict[str, dict] = {}
    for entry in list(existing) + list(new):
        job_id = str(entry.get("job_id", ""))
        if not job_id:
            continue
        merged.pop(job_id, None)
        merged[job_id] = dict(entry)
    return sorted(merged.values(), key=lambda e: (float(e.get("submitted") or 0), str(e["job_id"])))


def without(entries: Iterable[Mapping[str, Any]], job_ids: Iterable[str]) -> list[dict]:
    """The entries whose job id is not in ``job_ids`` (pure)."""
    drop = {str(j) for j in job_ids}
    return [dict(e) for e in entries if str(e.get("job_id")) not in drop]


def _base_id(squeue_id: str) -> str:
    """``123``, ``123_4`` and ``123_[5-9]`` all belong to job ``123``."""
    return squeue_id.split("_", 1)[0]


def active_per_job(states: Mapping[str, str]) -> dict[str, int]:
    """Pending plus running tasks per array job id in a squeue answer (pure)."""
    counts: dict[str, int] = {}
    for squeue_id, state in states.items():
        if state in slurm.ACTIVE_STATES:
            base = _base_id(squeue_id)
            counts[base] = counts.get(base, 0) + slurm.array_task_count(squeue_id)
    return counts


def active_per_class(entries: Iterable[Mapping[str, Any]], states: Mapping[str, str]) -> dict[str, int]:
    """Pending plus running pilots per class, for the autopilot's plan (pure)."""
    per_job = active_per_job(states)
    counts: dict[str, int] = {}
    for entry in entries:
        name = entry.get("class") or class_name(entry.get("design", "Monitor"), entry.get("view", "todo"))
        counts[name] = counts.get(name, 0) + per_job.get(str(entry.get("job_id")), 0)
    return counts


def split_running(states: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """squeue ids of running tasks, and of those still pending or otherwise waiting (pure).

    A signal can only reach a pilot that runs: ``scancel --batch --signal`` on
    a pending job does not fail but waits, so the two are told apart first.
    """
    running = sorted(i for i, state in states.items() if state == "RUNNING")
    waiting = sorted(i for i, state in states.items() if state in slurm.ACTIVE_STATES and state != "RUNNING")
    return running, waiting


def stale_ids(entries: Iterable[Mapping[str, Any]], states: Mapping[str, str], now: float,
              older_than: float = PRUNE_AFTER) -> list[str]:
    """Job ids to drop: squeue lists none of their tasks and they are older than ``older_than`` (pure)."""
    listed = {_base_id(squeue_id) for squeue_id in states}
    return [str(e["job_id"]) for e in entries
            if str(e.get("job_id")) not in listed and now - float(e.get("submitted") or 0) >= older_than]


def summarize(entries: Iterable[Mapping[str, Any]], states: Mapping[str, str] | None) -> list[dict]:
    """One row per job for ``picas status`` and ``picas pilots list`` (pure).

    Each row is the registry entry plus ``pending``, ``running`` and
    ``active`` task counts and a ``state``: ``queued`` (tasks pending, none
    running), ``running``, ``finished`` (squeue no longer lists an active
    task), or ``unknown`` when ``states`` is None because squeue could not be
    asked.
    """
    rows = []
    for entry in entries:
        job_id = str(entry.get("job_id"))
        row = dict(entry)
        if states is None:
            row.update(pending=None, running=None, active=None, state="unknown")
            rows.append(row)
            continue
        pending = running = 0
        for squeue_id, state in states.items():
            if _base_id(squeue_id) != job_id or state not in slurm.ACTIVE_STATES:
                continue
            if state == "RUNNING":
                running += slurm.array_task_count(squeue_id)
            else:
                pending += slurm.array_task_count(squeue_id)
        row.update(pending=pending, running=running, active=pending + running,
                   state="running" if running else "queued" if pending else "finished")
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
    loses its jobs.  For the same job id, the entry being recorded now wins.
    """
    new = [dict(e) for e in entries]
    for entry in new:
        entry["job_id"] = str(entry["job_id"])
        entry.setdefault("scheduler", "slurm")
        entry.setdefault("submitted", int(time.time()))
    if not new:
        return jobs(client)
    return _update(client, lambda current: merge_entries(current, new), attempts)


def jobs(client: CouchClient, scheduler: str | None = None) -> list[dict]:
    """The recorded jobs, oldest first; only those of ``scheduler`` when given."""
    entries = list(_load(client).get("jobs") or [])
    return [e for e in entries if scheduler is None or e.get("scheduler", "slurm") == scheduler]


def forget(client: CouchClient, job_ids: Iterable[str], attempts: int = ATTEMPTS) -> list[dict]:
    """Remove jobs from the registry (re-read and retried on a 409); returns the stored list."""
    ids = [str(j) for j in job_ids]
    if not ids:
        return jobs(client)
    return _update(client, lambda current: without(current, ids), attempts)


def prune(client: CouchClient, older_than: float = PRUNE_AFTER, *, states: Mapping[str, str] | None = None,
          queued: QueueFn = slurm.queued_jobs, now: float | None = None) -> list[str]:
    """Forget Slurm jobs that squeue no longer lists and that are older than ``older_than``.

    ``states`` is a squeue answer for the registry's jobs when the caller
    already has one (the autopilot asks squeue once per round).  Returns the
    ids dropped.
    """
    entries = jobs(client, "slurm")
    if not entries:
        return []
    if states is None:
        states = queued([str(e["job_id"]) for e in entries])
    stale = stale_ids(entries, states, time.time() if now is None else now, older_than)
    if stale:
        forget(client, stale)
    return stale


def pilot_summary(client: CouchClient, *, include_finished: bool = False,
                  queued: QueueFn = slurm.queued_jobs) -> list[dict]:
    """The recorded pilot jobs with their squeue state, for ``picas status``.

    Rows are those of :func:`summarize`.  Finished jobs are left out unless
    ``include_finished``.  Status must work where Slurm is not installed (a
    laptop, a login node of another cluster): if squeue fails, the rows come
    back with state ``unknown`` and an ``error`` field instead of raising.
    """
    entries = jobs(client, "slurm")
    if not entries:
        return []
    error = None
    try:
        states: Mapping[str, str] | None = queued([str(e["job_id"]) for e in entries])
    except SchedulerError as exc:
        states, error = None, str(exc)
    rows = summarize(entries, states)
    if error is not None:
        for row in rows:
            row["error"] = error
    return [row for row in rows if include_finished or row["state"] != "finished"]
