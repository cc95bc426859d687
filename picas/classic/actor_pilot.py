"""How a classic actor runs when it has a real client: the pilot loop, with ``process_task`` as its executor.

This is what a ``RunActor`` on a :class:`picas.classic.clients.CouchDB` (or
a :class:`picas.core.client.CouchClient`) does, and it buys classic scripts
what picas 1.1.2 got wrong:

* **exactly-once claims** — tasks come from ``actor.iterator``, whose
  iterators use the claim protocol of :mod:`picas.core.claim`;
* **leases** — a heartbeat thread renews the task's lease while
  ``process_task`` runs, so a long task is never mistaken for a dead pilot,
  and a task whose lock was taken away (scrubbed and handed to another
  pilot) is stopped and not written back over the new owner;
* **results survive a 409** — the changes ``process_task`` made (its copy
  of the token against the body as claimed) are laid over the stored body,
  re-read just before the write (:func:`picas.core.merge.merge`), and saved
  with :func:`picas.pilot.results.save_result`;
* **max_token_time is enforced** and **an exception in process_task** puts
  the task in error (see :mod:`picas.classic.supervise`).
"""
from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable

from picas.classic import clients
from picas.classic.documents import Document, Task
from picas.classic.supervise import supervise
from picas.core import token as tok
from picas.core.merge import merge
from picas.core.states import PilotEvent, RunOutcome
from picas.core.client import CouchClient
from picas.errors import PicasError
from picas.pilot.config import PilotConfig
from picas.pilot.loop import Pilot, PilotReport

log = logging.getLogger("picas")

__all__ = ["failed", "run_with_pilot"]


def failed(body: dict) -> bool:
    """A task counts as failed when its exit code is not 0, as the classic error view decides."""
    return tok.parse_exit_code(body.get("exit_code")) != 0


class _IteratorSource:
    """The pilot's claim source (:class:`picas.pilot.parts.ClaimSource`): the tasks of the actor's iterator."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def claim_batch(self, k: int, *, carry: Any = None) -> list[dict]:
        # An iterator cannot write results on the way: it leaves ``carry`` alone, and the pilot saves them itself.
        self.actor._picas_cleanup_previous()
        try:
            task = next(self.actor.iterator)
        except StopIteration:
            return []
        return [task.value if isinstance(task, Document) else task]


class _ActorPilot(Pilot):
    """The pilot loop with the actor's ``process_task`` as its executor."""

    #: Classic actors expect ``cleanup_run`` after a task is saved and before the next is taken.
    carry_results = False

    def __init__(self, actor: Any, max_scrub: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, claimer=_IteratorSource(actor), **kwargs)
        # The actor's flags, which its signal handler sets (the setter hands them to the outage guard too).
        # Set here rather than as flags=: Pilot takes ``flags or StopFlags()``, and flags not set yet are falsy.
        self.flags = actor._picas_flags
        self.actor = actor
        self.max_scrub = max_scrub

    def execute(self, doc: dict) -> tuple[dict, RunOutcome]:
        return _execute(self.actor, doc, self)


def run_with_pilot(actor: Any, client: CouchClient, max_token_time: float | None = None,
                   max_total_time: float | None = None, max_tasks: int | None = None, max_scrub: int = 0,
                   stop_function: Callable[..., bool] | None = None,
                   stop_function_args: dict | None = None) -> PilotReport:
    """Run ``actor`` until its iterator runs dry, a limit is reached or a stop signal comes."""
    started = time.monotonic()
    actor._picas_run_count = 0
    reset = actor.token_reset_values
    config = PilotConfig(max_tasks=max_tasks or None, max_time=max_total_time, token_timeout=max_token_time,
                         heartbeat=actor.picas_heartbeat, lease_factor=actor.picas_lease_factor,
                         grace=actor.picas_grace, prefetch=1, attach_logs=False,
                         release_state=(int(reset[0]), int(reset[1])) if reset is not None else (0, 0))
    stop_args = dict(stop_function_args or {})

    def user_says_stop() -> bool:
        # Classic actors asked the stop function after each task, never before the first.
        return actor._picas_run_count > 0 and bool(stop_function(**stop_args))

    def out_of_time() -> bool:
        return max_total_time is not None and time.monotonic() - started >= max_total_time

    pilot = _ActorPilot(actor, max_scrub or 0, client, config, install_signals=False,
                        stop_callback=user_says_stop if stop_function is not None else None,
                        on_event=_event)
    iterator = actor.iterator
    bindable = hasattr(iterator, "bind")
    if bindable:
        iterator.bind(pilot.who, config.lease_seconds, stop_event=pilot.flags.requested, should_stop=out_of_time)
    finished = False
    try:
        report = pilot.run()
        finished = True
        actor._picas_cleanup_previous()
        log.info("Actor %s stopped: %s (%d task(s) processed)", pilot.who.pilot_id, report.reason,
                 report.processed)
        return report
    finally:
        if not finished:
            actor._picas_cleanup_due = False
        actor.current_task = None
        if bindable:
            # Used on its own again, the iterator must not claim with our short, heartbeat-backed lease.
            iterator.bind()


def _event(kind: PilotEvent, doc: dict, info: dict) -> None:
    if kind in (PilotEvent.START, PilotEvent.OUTAGE, PilotEvent.RELEASED, PilotEvent.LOST):
        log.info("Token %s: %s", doc.get("_id", "?"), info.get("error") if kind == PilotEvent.OUTAGE else kind)


def _execute(actor: Any, doc: dict, pilot: _ActorPilot) -> tuple[dict, RunOutcome]:
    """Run ``process_task`` on one claimed token; returns the body to save and the pilot's outcome."""
    token_id = doc["_id"]
    if pilot.flags:
        return doc, RunOutcome.INTERRUPTED
    # The task works on its own copy: the heartbeat thread reads and rewrites the claimed body meanwhile.
    base = copy.deepcopy(doc)
    task = Task(copy.deepcopy(doc))
    actor.prepare_run()
    actor.current_task = task
    pilot_id = task.get("pilot")
    reason = supervise(actor, task, pilot.config.token_timeout, pilot.flags,
                       is_lost=lambda: pilot.keeper.is_lost(token_id), grace=pilot.config.grace,
                       # lets process_task save its own token between heartbeats
                       before=(lambda: clients.hold_token(task.id, pilot_id)) if pilot_id else None,
                       after=lambda: clients.release_token(task.id))
    if reason == "lost" or pilot.keeper.is_lost(token_id):
        log.info("Token %s was taken away from this actor; its result is dropped", token_id)
        actor.current_task = None
        return doc, RunOutcome.LOST
    if reason == "stop":
        actor.current_task = None
        if actor.token_reset_values is None:
            # Leave it locked, as asked: the pilot forgets it without writing (its lease runs out).
            return doc, RunOutcome.LOST
        return doc, RunOutcome.INTERRUPTED
    current = pilot.keeper.release(token_id)
    if current is None:
        return doc, RunOutcome.LOST
    current = _fresh(pilot, token_id, base) or current
    body = _finalize(merge(current, task.value, base), pilot.who, reason, pilot.max_scrub)
    # Should the write still meet a 409, the result is merged again against this body: every field the
    # task changed (custom ones too) wins, as here.
    pilot.set_base(token_id, current)
    actor.tasks_processed += 1
    actor._picas_run_count += 1
    actor._picas_cleanup_due = True
    return body, RunOutcome.FINISHED


def _fresh(pilot: Pilot, token_id: str, base: dict) -> dict | None:
    """The stored token, re-read just before the result is written, if this actor still holds it.

    Merging onto the newest body makes a 409 on the save unlikely (the
    heartbeats move the revision on all the time).  If the token is no
    longer ours, None: the save then meets the 409 and the pilot records
    the loss, since the new owner wins.
    """
    try:
        fresh = pilot.client.get_or_none(token_id)
    except PicasError:
        return None  # an outage: save against what we know; the pilot's outage guard takes it from there
    if fresh is None:
        return None
    if base.get("pilot") == pilot.who.pilot_id and not tok.owned_by(fresh, pilot.who.pilot_id):
        return None
    return fresh


def _finalize(body: dict, who: tok.PilotIdentity, reason: str | None, max_scrub: int) -> dict:
    """The body to save: lease fields dropped, a history entry, scrubbed back to todo if it may retry."""
    now = time.time()
    body.pop("lease_until", None)  # nobody renews it any more; ``heartbeat`` stays as the last sign of life
    if body.get("lock") == 99 and tok.parse_exit_code(body.get("exit_code")) == 0:
        body["exit_code"] = -1  # an error must not look done in the views
    state = tok.state(body)
    event = {"done": "done", "error": "failed", "locked": "unfinished"}.get(state, state)
    body = tok.note(body, who, now, event, exit_code=body.get("exit_code"), reason=reason)
    scrubs = int(body.get("scrub_count") or 0)
    if failed(body) and scrubs < max_scrub:
        log.info("Scrubbing token %s", body["_id"])
        body = tok.reset(body, who, now, f"scrub {scrubs + 1} of {max_scrub} after a failure")
    return body
