"""Classic picas actors: subclass ``RunActor``, write ``process_task(task)``, call ``run(...)``.

Scripts written for picas 1.x run unchanged: the hooks (``prepare_env``,
``prepare_run``, ``process_task``, ``cleanup_run``, ``cleanup_env``), the
attributes (``db``, ``iterator``, ``current_task``, ``subprocess``,
``tasks_processed``) and the arguments of ``run`` are the classic ones.  What
runs underneath is the new pilot loop (:class:`picas.pilot.loop.Pilot`), with
``process_task`` in place of the pilot's bash executor.  That buys classic
scripts what 1.1.2 got wrong:

* **exactly-once claims** — tasks come from ``self.iterator``, whose
  iterators use the claim protocol of :mod:`picas.core.claim`;
* **signals only set flags** — SIGTERM, SIGINT (and SIGUSR1, Slurm's
  warning before the walltime) are noted by the handler; the actor then stops
  the running payload (TERM to its process group, a grace period, KILL),
  puts the current task back to ``token_reset_values`` (todo by default,
  without counting a scrub) and returns from ``run`` normally, so the script
  ends with exit status 0 after ``cleanup_env``.  A second signal skips the
  grace period;
* **leases** — a heartbeat thread renews the task's lease while
  ``process_task`` runs, so a long task is never mistaken for a dead pilot,
  and a task whose lock was taken away (scrubbed and handed to another
  pilot) is stopped and not written back over the new owner;
* **results survive a 409** — the finished task is saved with
  :func:`picas.pilot.loop.save_result`; the changes ``process_task`` made (its
  copy of the token against the body as claimed) are first laid over the
  stored body, re-read just before the write, so a heartbeat or a user's
  edit in between costs nothing;
* **max_token_time is enforced** — when it runs out the payload processes
  are stopped and the task goes to error with a timeout message (1.1.2 only
  logged it);
* **an exception in process_task** puts the task in error with the
  traceback; the actor goes on with the next task.

``process_task`` runs in the main thread, as before, so code that must run
there (signal-related calls, thread-bound objects made in ``prepare_env``)
keeps working; a watchdog thread enforces the timeout and the stop request.
Payloads started with :func:`picas.classic.executers.execute` or kept in
``self.subprocess`` are stopped with their whole process group; other child
processes started during the task are stopped too.  Pure Python code in
``process_task`` is interrupted by an exception raised into it (as 1.1.2's
``stopit`` timeout did), which cannot break a blocking C call such as a long
``time.sleep``: that returns first.

Differences from 1.1.2, on purpose: a stop does not count as a scrub;
``cleanup_run`` runs after the task is saved; ``stop_function`` is asked
after each task (as before) and never before the first; ``max_total_time``
also ends an ``EndlessViewIterator``'s wait without replacing its own
``stop_callback``; a failed task is scrubbed in the same write that records
its failure, not in a second one.
"""
from __future__ import annotations

import copy
import ctypes
import logging
import subprocess
import threading
import time
from typing import Any, Callable

from picas.classic import clients
from picas.classic import executers
from picas.core import token as tok
from picas.classic.documents import Document, Task
from picas.errors import PicasError
from picas.classic.iterators import EndlessViewIterator, TaskViewIterator, ViewIterator, client_of
from picas.pilot.loop import Pilot, PilotConfig, PilotReport
from picas.pilot.signals import StopFlags

log = logging.getLogger("picas")

#: Fields the actor's own machinery changes while a task runs; never taken from the task copy.
_LEASE_FIELDS = ("heartbeat", "lease_until")


class TaskInterrupted(BaseException):
    """Raised inside ``process_task`` when the actor must abandon the task (timeout, stop, lost lock).

    It derives from BaseException so that ``except Exception`` in user code
    does not swallow it.
    """


# ---------------------------------------------------------------------- helpers
def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Schedule ``exc_type`` in another thread (None clears a scheduled one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type) if exc_type else None)


def merge_changes(base: dict, mine: dict, current: dict) -> dict:
    """Lay the changes ``mine`` made to ``base`` over ``current`` (the newest stored body).

    ``process_task`` works on a copy of the body as it was claimed; while it
    ran, heartbeats (and maybe a user) changed the stored token.  Every field
    the task changed, added or removed wins; every other field keeps its
    current value, and the current revision is used for the write.
    """
    body = copy.deepcopy({k: v for k, v in current.items() if k != "_attachments"})
    if "_attachments" in current:
        body["_attachments"] = dict(current["_attachments"])
    for key in set(base) | set(mine):
        if key in ("_id", "_rev") or key in _LEASE_FIELDS:
            continue
        if key not in mine:
            body.pop(key, None)
        elif key not in base or mine[key] != base[key]:
            body[key] = mine[key]
    return body


def _failed(body: dict) -> bool:
    """A task counts as failed when its exit code is not 0, as the classic error view decides."""
    return tok.parse_exit_code(body.get("exit_code")) != 0


class _Watchdog(threading.Thread):
    """Watches one ``process_task`` call: timeout, stop request, lost lock; interrupts it when one comes.

    Interrupting means: stop the payload processes (TERM to their groups,
    grace, KILL), give ``process_task`` a moment to return by itself, then
    raise :class:`TaskInterrupted` inside it.  ``reason`` says what happened
    ('timeout', 'stop', 'lost'), or stays None when the task ended on its own.
    """

    def __init__(self, actor: "AbstractRunActor", timeout: float | None, flags: StopFlags,
                 is_lost: Callable[[], bool], grace: float) -> None:
        super().__init__(name="picas-actor-watchdog", daemon=True)
        self.actor = actor
        self.timeout = timeout
        self.flags = flags
        self.is_lost = is_lost
        self.grace = grace
        self.worker = threading.get_ident()
        self.children_before = executers.child_pids()
        self.reason: str | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._injected = False

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while not self.done.wait(0.1):
            if self.flags:
                reason = "stop"
            elif deadline is not None and time.monotonic() >= deadline:
                reason = "timeout"
            elif self.is_lost():
                reason = "lost"
            else:
                continue
            with self._lock:
                if self.done.is_set():
                    return
                self.reason = reason
            self._interrupt()
            return

    def _targets(self) -> list:
        procs: list[Any] = [p for p in executers.running() if p.poll() is None]
        sub = getattr(self.actor, "subprocess", None)
        if isinstance(sub, subprocess.Popen) and sub.poll() is None and sub not in procs:
            procs.append(sub)
        known = {p.pid for p in procs}
        procs.extend(pid for pid in executers.child_pids() - self.children_before if pid not in known)
        return procs

    def _interrupt(self) -> None:
        targets = self._targets()
        if targets:
            log.info("Stopping %d payload process(es) (%s)", len(targets), self.reason)
            executers.terminate(*targets, grace=0.0 if self.flags.forced.is_set() else self.grace,
                                hurry=self.flags.forced)
            if self.done.wait(2.0):
                return
        with self._lock:
            if not self.done.is_set():
                _raise_in_thread(self.worker, TaskInterrupted)
                self._injected = True

    def finish(self) -> None:
        """Called by the worker when ``process_task`` is over; withdraws an interrupt not yet delivered."""
        with self._lock:
            self.done.set()
            if self._injected:
                _raise_in_thread(self.worker, None)


class _IteratorSource:
    """Stands in for the pilot's claimer: hands out the tasks of the actor's (classic) iterator."""

    def __init__(self, actor: "AbstractRunActor") -> None:
        self.actor = actor
        #: An iterator cannot save results on the way: the pilot saves what it would carry on its own.
        self.carried: list = []

    def claim_batch(self, k: int, carry: list[dict] | None = None) -> list[dict]:
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

    def __init__(self, actor: "AbstractRunActor", *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.claimer = _IteratorSource(actor)

    def execute(self, doc: dict) -> tuple[dict, str]:
        return self.actor._picas_execute(doc, self)


# ---------------------------------------------------------------------- actors
class AbstractRunActor:
    """Base class of classic actors: override :meth:`process_task` (and any other hook).

    ``db`` is a :class:`picas.classic.clients.CouchDB`; tasks come from
    ``iterator`` (default: a :class:`TaskViewIterator` on ``view``, with
    ``view_params`` such as ``design_doc``).  ``token_reset_values`` is the
    ``[lock, done]`` a task gets when the actor is stopped while working on it
    (None leaves it locked; its lease then runs out and a scrub returns it).

    Tuning, as class attributes a subclass may override: ``picas_heartbeat``
    (seconds between lease renewals), ``picas_lease_factor`` (a lease lasts
    that many heartbeats) and ``picas_grace`` (seconds a stopped payload gets
    between TERM and KILL).
    """

    picas_heartbeat: float = 60.0
    picas_lease_factor: float = 5.0
    picas_grace: float = 10.0

    def __init__(self, db: Any, iterator: ViewIterator | None = None, view: str = "todo",
                 token_reset_values: list[int] | None = [0, 0], **view_params: Any) -> None:
        if db is None:
            raise ValueError("Database must be initialized")
        self.db = db
        self.token_reset_values = list(token_reset_values) if token_reset_values is not None else None
        #: The task being processed (None between tasks).
        self.current_task: Task | None = None
        #: A Popen the user's process_task may keep here, so that a stop or timeout can end it.
        self.subprocess: subprocess.Popen | None = None
        self.tasks_processed = 0
        self.iterator = iterator if iterator is not None else TaskViewIterator(self.db, view, **view_params)
        self._picas_flags = StopFlags()
        self._picas_cleanup_due = False
        self._picas_max_scrub = 0
        self._picas_run_count = 0

    # -------------------------------------------------------------- user hooks
    def prepare_env(self, *args: Any, **kwargs: Any) -> None:
        """Called once before the first task (set up software, scratch space...)."""

    def prepare_run(self, *args: Any, **kwargs: Any) -> None:
        """Called before each task (fetch its inputs...)."""

    def process_task(self, task: Task) -> None:
        """Do the work of one task; set ``task['exit_code']`` and close it (e.g. ``BasicTokenModifier().close``)."""
        raise NotImplementedError

    def cleanup_run(self, *args: Any, **kwargs: Any) -> None:
        """Called after each task has been saved."""

    def cleanup_env(self, *args: Any, **kwargs: Any) -> None:
        """Called once at the end of ``run``, however it ends (once ``prepare_env`` has succeeded)."""

    # -------------------------------------------------------------- classic plumbing
    def reconnect(self) -> None:
        """Use a fresh connection from now on (classic: after a broken SSL connection)."""
        self.db = self.db.copy()
        self.iterator.reconnect(self.db)

    def handler(self, signum: int, frame: Any = None) -> None:
        """Signal handler: only notes the request; the running loop acts on it."""
        self._picas_flags.handle(signum, frame)

    def setup_handler(self) -> None:
        """Install :meth:`handler` for SIGTERM, SIGINT and SIGUSR1 (``run`` does this itself)."""
        self._picas_flags.install()

    def run(self, max_token_time: float | None = None) -> PilotReport:
        """Process tasks until the iterator runs dry or a stop signal comes."""
        return self._picas_run(max_token_time=max_token_time)

    # -------------------------------------------------------------- the engine
    def _picas_run(self, max_token_time: float | None = None, max_total_time: float | None = None,
                   max_tasks: int | None = None, max_scrub: int = 0, stop_function: Callable | None = None,
                   stop_function_args: dict | None = None) -> PilotReport:
        started = time.monotonic()
        self._picas_max_scrub = max_scrub or 0
        self._picas_run_count = 0
        reset = self.token_reset_values
        config = PilotConfig(max_tasks=max_tasks or None, max_time=max_total_time, token_timeout=max_token_time,
                             heartbeat=self.picas_heartbeat, lease_factor=self.picas_lease_factor,
                             grace=self.picas_grace, prefetch=1, attach_logs=False,
                             release_state=(int(reset[0]), int(reset[1])) if reset is not None else (0, 0))
        stop_args = dict(stop_function_args or {})
        if hasattr(self.iterator, "reset"):
            self.iterator.reset()  # a second run() looks for work again instead of ending at once

        def user_says_stop() -> bool:
            # Classic actors asked the stop function after each task, never before the first.
            return self._picas_run_count > 0 and bool(stop_function(**stop_args))

        def out_of_time() -> bool:
            return max_total_time is not None and time.monotonic() - started >= max_total_time

        pilot = _ActorPilot(self, client_of(self.db), config, install_signals=False,
                            stop_callback=user_says_stop if stop_function is not None else None,
                            on_event=self._picas_event)
        flags = StopFlags()
        self._picas_flags = pilot.flags = flags
        self.prepare_env()
        flags.install()
        bindable = hasattr(self.iterator, "bind")
        if bindable:
            self.iterator.bind(pilot.who, config.lease_seconds, stop_event=flags.requested, should_stop=out_of_time)
        finished = False
        try:
            report = pilot.run()
            finished = True
            self._picas_cleanup_previous()
            log.info("Actor %s stopped: %s (%d task(s) processed)", pilot.who.pilot_id, report.reason,
                     report.processed)
            return report
        finally:
            if not finished:
                self._picas_cleanup_due = False
            self.current_task = None
            flags.restore()
            if bindable:
                # Used on its own again, the iterator must not claim with our short, heartbeat-backed lease.
                self.iterator.bind()
            self.cleanup_env()

    def _picas_event(self, kind: str, doc: dict, info: dict) -> None:
        if kind in ("start", "outage", "released", "lost"):
            log.info("Token %s: %s", doc.get("_id", "?"), kind if kind != "outage" else info.get("error"))

    def _picas_cleanup_previous(self) -> None:
        """Run ``cleanup_run`` for the task saved last (deferred so that it runs after the save)."""
        if self._picas_cleanup_due:
            self._picas_cleanup_due = False
            try:
                self.cleanup_run()
            finally:
                self.current_task = None

    def _picas_execute(self, doc: dict, pilot: Pilot) -> tuple[dict, str]:
        """Run ``process_task`` on one claimed token; returns the body to save and the pilot's outcome."""
        token_id = doc["_id"]
        if pilot.flags:
            return doc, "interrupted"
        # The task works on its own copy: the heartbeat thread reads and rewrites the claimed body meanwhile.
        base = copy.deepcopy(doc)
        task = Task(copy.deepcopy(doc))
        self.prepare_run()
        self.current_task = task
        reason = self._picas_supervise(task, pilot.config.token_timeout, pilot.flags,
                                       lambda: pilot.keeper.is_lost(token_id), pilot.config.grace)
        if reason == "lost" or pilot.keeper.is_lost(token_id):
            log.info("Token %s was taken away from this actor; its result is dropped", token_id)
            self.current_task = None
            return doc, "lost"
        if reason == "stop":
            self.current_task = None
            if self.token_reset_values is None:
                # Leave it locked, as asked: the pilot forgets it without writing (its lease runs out).
                return doc, "lost"
            return doc, "interrupted"
        current = pilot.keeper.release(token_id)
        if current is None:
            return doc, "lost"
        current = self._picas_fresh(pilot, token_id, base) or current
        body = self._picas_finalize(merge_changes(base, task.value, current), pilot.who, reason)
        self.tasks_processed += 1
        self._picas_run_count += 1
        self._picas_cleanup_due = True
        return body, "finished"

    @staticmethod
    def _picas_fresh(pilot: Pilot, token_id: str, base: dict) -> dict | None:
        """The stored token, re-read just before the result is written, if this actor still holds it.

        Merging onto the newest body makes a 409 on the save unlikely; that
        matters because after a 409 :func:`picas.pilot.loop.save_result` carries
        over only the standard result fields, not the custom fields a classic
        ``process_task`` may have set.  If the token is no longer ours, None:
        the save then meets the 409 and ``save_result`` records the loss.
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

    def _picas_supervise(self, task: Task, timeout: float | None, flags: StopFlags,
                         is_lost: Callable[[], bool], grace: float) -> str | None:
        """Call ``process_task`` under a watchdog; returns why it was interrupted, or None.

        An exception from ``process_task`` is recorded in the task (error
        state, with the traceback) and not raised further.
        """
        watchdog = _Watchdog(self, timeout, flags, is_lost, grace)
        watchdog.start()
        pilot_id = task.get("pilot")
        if pilot_id:
            clients.hold_token(task.id, pilot_id)  # lets process_task save its token between heartbeats
        try:
            try:
                self.process_task(task)
            finally:
                watchdog.finish()
                clients.release_token(task.id)
        except TaskInterrupted:
            pass
        except Exception as exc:  # the task failed, not the actor: record it and go on
            if watchdog.reason is None:
                msg = f"Exception {type(exc)} occurred during processing: {exc}"
                log.info(msg)
                task.error(msg, exception=exc)
        watchdog.finish()
        watchdog.join()
        if watchdog.reason == "timeout":
            msg = f"Token execution exceeded timeout limit of {timeout:g} seconds"
            log.info("%s: %s", task.get("_id"), msg)
            task.error(msg)
            task["timed_out"] = True
        return watchdog.reason

    def _picas_finalize(self, body: dict, who: tok.PilotIdentity, reason: str | None) -> dict:
        """The body to save: lease fields dropped, a history entry, scrubbed back to todo if it may retry."""
        now = time.time()
        body.pop("lease_until", None)  # nobody renews it any more; ``heartbeat`` stays as the last sign of life
        if body.get("lock") == 99 and tok.parse_exit_code(body.get("exit_code")) == 0:
            body["exit_code"] = -1  # an error must not look done in the views
        state = tok.state(body)
        event = {"done": "done", "error": "failed", "locked": "unfinished"}.get(state, state)
        body = tok.note(body, who, now, event, exit_code=body.get("exit_code"), reason=reason)
        scrubs = int(body.get("scrub_count") or 0)
        if _failed(body) and scrubs < self._picas_max_scrub:
            log.info("Scrubbing token %s", body["_id"])
            body = tok.reset(body, who, now, f"scrub {scrubs + 1} of {self._picas_max_scrub} after a failure")
        return body


class RunActor(AbstractRunActor):
    """The actor classic scripts subclass; :meth:`run` adds the classic stop conditions."""

    def run(self, max_token_time: float | None = None, max_total_time: float | None = None,
            max_tasks: int | None = None, max_scrub: int = 0, stop_function: Callable[..., bool] | None = None,
            **stop_function_args: Any) -> PilotReport:
        """Process tasks until there are none left or a limit is reached.

        ``max_token_time``: seconds one task may take before it is stopped
        and marked as an error.  ``max_total_time``: no new task is started
        after this many seconds (an ``EndlessViewIterator`` stops waiting
        too).  ``max_tasks``: stop after this many tasks.  ``max_scrub``: a
        failed task (exit code not 0) goes back to todo while it has been
        scrubbed fewer times than this.  ``stop_function(**stop_function_args)``
        is asked after every task; True stops the actor.  Returns the pilot's
        report of what was done.
        """
        return self._picas_run(max_token_time=max_token_time, max_total_time=max_total_time, max_tasks=max_tasks,
                               max_scrub=max_scrub, stop_function=stop_function,
                               stop_function_args=stop_function_args)


__all__ = ["AbstractRunActor", "RunActor", "TaskInterrupted", "EndlessViewIterator", "TaskViewIterator",
           "merge_changes"]
