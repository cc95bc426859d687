"""How a classic actor runs on a duck-typed database: the picas 1.x algorithm, through the object's own methods.

picas 1.x accepted any object with ``get_single_from_view``, ``get`` and
``save`` as the actor's database, and users test their actors against such
mock databases.  When ``RunActor`` is given one (anything that is not a
:class:`picas.classic.clients.CouchDB` or :class:`picas.core.client.CouchClient`),
it runs this loop: take a task from the iterator (which locks it through
``save``), call ``process_task`` under the watchdog of
:mod:`picas.classic.supervise`, save the task, go on.  There are no leases
and no heartbeats: the object is not a server this package knows how to talk to.

What differs from 1.1.2, because it is what the real-client loop does too:

* a 409 on the final save does not drop the result: the task's changes are
  laid over the stored body (re-read with ``get``) and saved again, up to
  :data:`SAVE_ATTEMPTS` times; the result wins over concurrent edits of the
  same fields because it is the one thing that cannot be recomputed cheaply;
* signals only set flags: a SIGTERM stops the payload (TERM, grace, KILL),
  puts the current task back to ``token_reset_values`` and ``run`` returns;
* a timeout or an exception in ``process_task`` puts the task in error; a
  failed task that may be retried is scrubbed in the same save.
"""
from __future__ import annotations

import copy
import logging
import os
import socket
import ssl
import time
from typing import Any, Callable

from picas.classic.actor_pilot import failed
from picas.classic.documents import Document, Task
from picas.classic.supervise import supervise
from picas.core.merge import merge
from picas.classic.conflicts import conflict_types
from picas.pilot.loop import PilotReport

log = logging.getLogger("picas")

__all__ = ["run_classic", "run_one", "save_task", "release_task"]

#: How many times a result that met a conflict is merged onto the stored body and saved again.
SAVE_ATTEMPTS = 3


def _body(task: Any) -> dict:
    return task.value if isinstance(task, Document) else task


def save_task(actor: Any, task: Task, base: dict | None = None) -> bool:
    """Save ``task`` through ``actor.db``; True when it was stored.

    On a conflict the changes the task made since ``base`` (the body as it
    was claimed) are laid over the stored body and saved again; after
    :data:`SAVE_ATTEMPTS` conflicts the result is given up, logged, and the
    actor goes on (as 1.1.2 did, which gave it up at once).  A broken TLS
    connection is reconnected once; any other error is raised.
    """
    for attempt in range(SAVE_ATTEMPTS + 1):
        try:
            actor.db.save(task)
            return True
        except conflict_types() as exc:
            log.info("Warning: %s while saving task %s (the document changed since it was read); "
                     "merging the result onto the stored document", type(exc), task.get("_id"))
            if attempt == SAVE_ATTEMPTS or not _merge_stored(actor, task, base):
                break
        except (ssl.SSLEOFError, ssl.SSLError) as exc:
            log.info("Warning: %s while saving task %s: reconnecting to the database", type(exc), task.get("_id"))
            actor.reconnect()
            try:
                actor.db.save(task)
                return True
            except Exception as again:
                log.info("Error: %s while saving task %s: not able to reconnect to the database",
                         type(again), task.get("_id"))
                raise
        except Exception as exc:
            log.info("Error: %s occurred while saving task %s: %s", type(exc), task.get("_id"), exc)
            raise
    log.warning("Task %s could not be saved after %d conflicts; its result is lost", task.get("_id"),
                SAVE_ATTEMPTS + 1)
    return False


def _merge_stored(actor: Any, task: Task, base: dict | None) -> bool:
    """Replace ``task``'s body by its changes laid over the stored body; False if that cannot be read."""
    try:
        stored = actor.db.get(task.id)
    except Exception as exc:  # noqa: BLE001 - a mock's KeyError, a client's NotFound or ValueError
        log.info("Task %s cannot be read back (%s): its result is not saved", task.get("_id"), exc)
        return False
    stored_body = copy.deepcopy(_body(stored))
    merged = merge(stored_body, task.value, base)
    task.value.clear()
    task.value.update(merged)
    return True


def release_task(actor: Any, task: Task, base: dict | None = None) -> bool:
    """Put a task the actor was stopped on back to ``token_reset_values`` (not counted as a scrub)."""
    if actor.token_reset_values is None:
        return False
    lock, done = actor.token_reset_values
    task["lock"] = lock
    task["done"] = done
    task.value.pop("lease_until", None)
    return save_task(actor, task, base)


def run_one(actor: Any, task: Task, timeout: float | None, max_scrub: int = 0) -> str | None:
    """Process one task and save it; the classic ``_run``.  Returns why it was interrupted, or None.

    On a stop request the task is put back (see :func:`release_task`) and
    'stop' is returned; ``cleanup_run`` and the count of processed tasks are
    left alone then, since the task was not processed.
    """
    base = copy.deepcopy(task.value)
    actor.prepare_run()
    actor.current_task = task
    reason = supervise(actor, task, timeout, actor._picas_flags, grace=actor.picas_grace)
    if reason == "stop":
        log.info("Task %s stopped before it finished: putting it back", task.get("_id"))
        release_task(actor, task, base)
        return reason
    if task.get("lock") == 99 and not failed(task.value):
        task["exit_code"] = -1  # an error must not look done in the views
    scrubs = int(task.get("scrub_count") or 0)
    if failed(task.value) and scrubs < max_scrub:
        log.info("Scrubbing token %s", task.get("_id"))
        task.scrub()
    save_task(actor, task, base)
    actor.cleanup_run()
    actor.tasks_processed += 1
    return reason


def run_classic(actor: Any, max_token_time: float | None = None, max_total_time: float | None = None,
                max_tasks: int | None = None, max_scrub: int = 0, stop_function: Callable[..., bool] | None = None,
                stop_function_args: dict | None = None) -> PilotReport:
    """The classic loop over ``actor.iterator`` (see the module docstring); returns what it did."""
    started = time.monotonic()
    report = PilotReport(pilot_id=f"{socket.gethostname()}-{os.getpid()}-classic")
    flags = actor._picas_flags
    stop_args = dict(stop_function_args or {})

    def out_of_time() -> bool:
        return max_total_time is not None and time.monotonic() - started > max_total_time

    iterator = actor.iterator
    bindable = hasattr(iterator, "bind")
    if bindable:
        iterator.bind(None, None, stop_event=flags.requested, should_stop=out_of_time)
    count = 0
    try:
        for task in iterator:
            if not isinstance(task, Task):
                task = Task(task)
            if flags:
                release_task(actor, task)
                report.released += 1
                break
            reason = run_one(actor, task, max_token_time, max_scrub)
            if reason == "stop":
                report.released += 1
                actor.current_task = None
                break
            count += 1
            report.processed += 1
            if failed(task.value):
                report.failed += 1
            else:
                report.done += 1
            if stop_function is not None and stop_function(**stop_args):
                report.reason = "the stop function said so"
                break
            if max_tasks and count >= max_tasks:
                report.reason = f"max_tasks ({max_tasks}) reached"
                break
            if out_of_time():
                report.reason = f"max_total_time ({max_total_time:g} s) reached"
                break
            if flags:
                break
            actor.current_task = None  # between tasks a signal leaves the tokens alone
        if not report.reason:
            report.reason = f"stopped by {flags.signal_name or 'request'}" if flags else "no more tasks"
    finally:
        if bindable:
            iterator.bind()
        report.finished = time.time()
    log.info("Actor stopped: %s (%d task(s) processed)", report.reason, report.processed)
    return report
