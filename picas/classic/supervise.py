"""Run one ``process_task`` call under a watchdog: timeout, stop request, lost lock.

Both ways a classic actor runs (the pilot loop with a real client, the
classic loop with a duck-typed database) call :func:`supervise`.  The task
runs in the main thread, as in picas 1.x; a watchdog thread watches it and,
when it must end early, stops its payload processes (TERM to their groups,
a grace period, KILL), gives ``process_task`` a moment to return by itself,
and only then raises :class:`TaskInterrupted` inside it.  That exception
cannot break a blocking C call (a long ``time.sleep``): that returns first.
"""
from __future__ import annotations

import ctypes
import logging
import subprocess
import threading
import time
from typing import Any, Callable

from picas import defaults
from picas.classic import executers
from picas.classic.documents import Task
from picas.pilot.signals import StopFlags

log = logging.getLogger("picas")

__all__ = ["TaskInterrupted", "Watchdog", "supervise"]


class TaskInterrupted(BaseException):
    """Raised inside ``process_task`` when the actor must abandon the task (timeout, stop, lost lock).

    It derives from BaseException so that ``except Exception`` in user code
    does not swallow it.
    """


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Schedule ``exc_type`` in another thread (None clears a scheduled one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type) if exc_type else None)


class Watchdog(threading.Thread):
    """Watches one ``process_task`` call; interrupts it when a timeout, a stop or a lost lock comes.

    ``reason`` says what happened ('timeout', 'stop', 'lost'), or stays None
    when the task ended on its own.
    """

    def __init__(self, actor: Any, timeout: float | None, flags: StopFlags,
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
        while True:
            wait = 0.1 if deadline is None else min(0.1, max(deadline - time.monotonic(), 0.0))
            if self.done.wait(wait):
                return
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


def supervise(actor: Any, task: Task, timeout: float | None, flags: StopFlags,
              is_lost: Callable[[], bool] = lambda: False, grace: float = defaults.GRACE,
              before: Callable[[], None] | None = None, after: Callable[[], None] | None = None) -> str | None:
    """Call ``actor.process_task(task)`` under a :class:`Watchdog`; returns why it was interrupted, or None.

    An exception from ``process_task`` is recorded in the task (error state,
    with the traceback) and not raised further: the task failed, not the
    actor.  A timeout puts the task in error too, with ``timed_out`` set
    (picas 1.1.2 only logged it).  ``before``/``after`` run around the call
    (the pilot loop uses them to let the task save its own token meanwhile).
    """
    watchdog = Watchdog(actor, timeout, flags, is_lost, grace)
    watchdog.start()
    if before is not None:
        before()
    try:
        try:
            actor.process_task(task)
        finally:
            watchdog.finish()
            if after is not None:
                after()
    except TaskInterrupted:
        pass
    except Exception as exc:  # noqa: BLE001 - the task failed, not the actor: record it and go on
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
