"""Classic picas actors: subclass ``RunActor``, write ``process_task(task)``, call ``run(...)``.

Scripts written for picas 1.x run unchanged: the hooks (``prepare_env``,
``prepare_run``, ``process_task``, ``cleanup_run``, ``cleanup_env``), the
attributes (``db``, ``iterator``, ``current_task``, ``subprocess``,
``tasks_processed``), the signal ``handler`` and the arguments of ``run``
are the classic ones.  What runs underneath depends on the database given:

* a real client (:class:`picas.classic.clients.CouchDB` or
  :class:`picas.core.client.CouchClient`): the new pilot loop with
  exactly-once claims, leases renewed by heartbeats, results merged and
  saved safely after a 409 (:mod:`picas.classic.actor_pilot`);
* any other object with the classic methods (``get_single_from_view``,
  ``get``, ``save``), such as the mock databases of users' unit tests: the
  picas 1.x algorithm through those methods (:mod:`picas.classic.actor_classic`).

Both call ``process_task`` in the main thread, as before, under a watchdog
that enforces ``max_token_time`` and the stop request
(:mod:`picas.classic.supervise`).

Signals only set flags while ``run`` is going: SIGTERM, SIGINT (and
SIGUSR1, Slurm's warning before the walltime) stop the running payload
(TERM to its process group, a grace period, KILL), put the current task
back to ``token_reset_values`` (todo by default, without counting a scrub)
and ``run`` returns normally, after ``cleanup_env``.  A second signal skips
the grace period.  Outside ``run`` nothing would act on a flag, so there
the handler does what 1.1.x's did: stop ``self.subprocess``, put
``current_task`` back, ``cleanup_env`` and exit with status 0.

Differences from 1.1.2, on purpose: a stop does not count as a scrub;
``cleanup_run`` runs after the task is saved; ``stop_function`` is asked
after each task (as before) and never before the first; ``max_total_time``
also ends an ``EndlessViewIterator``'s wait without replacing its own
``stop_callback``; a failed task is scrubbed in the same write that records
its failure, not in a second one; a timeout puts the task in error.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from typing import Any, Callable

from picas import defaults
from picas.classic import executers
from picas.classic.actor_classic import release_task, run_classic, run_one
from picas.classic.actor_pilot import run_with_pilot
from picas.classic.documents import Task
from picas.classic.iterators import EndlessViewIterator, TaskViewIterator, ViewIterator, real_client
from picas.classic.supervise import TaskInterrupted
from picas.pilot.loop import PilotReport
from picas.pilot.signals import STOP_SIGNALS, StopFlags

log = logging.getLogger("picas")

__all__ = ["AbstractRunActor", "RunActor", "TaskInterrupted", "EndlessViewIterator", "TaskViewIterator"]


class AbstractRunActor:
    """Base class of classic actors: override :meth:`process_task` (and any other hook).

    ``db`` is a :class:`picas.classic.clients.CouchDB` (or any object with
    the classic methods, see the module docstring); tasks come from
    ``iterator`` (default: a :class:`TaskViewIterator` on ``view``, with
    ``view_params`` such as ``design_doc``).  ``token_reset_values`` is the
    ``[lock, done]`` a task gets when the actor is stopped while working on
    it (None leaves it locked; its lease then runs out and a scrub returns it).

    Tuning, as class attributes a subclass may override: ``picas_heartbeat``
    (seconds between lease renewals), ``picas_lease_factor`` (a lease lasts
    that many heartbeats) and ``picas_grace`` (seconds a stopped payload gets
    between TERM and KILL).
    """

    picas_heartbeat: float = defaults.HEARTBEAT
    picas_lease_factor: float = defaults.LEASE_FACTOR
    picas_grace: float = defaults.GRACE

    def __init__(self, db: Any, iterator: ViewIterator | None = None, view: str = defaults.VIEW,
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
        self._picas_active = False
        self._picas_previous_handlers: dict[int, Any] = {}
        self._picas_cleanup_due = False
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
        """The signal handler :meth:`setup_handler` installs.

        While ``run`` is going it only notes the request; the running loop
        acts on it.  Outside ``run`` nothing would, so it stops at once the
        way picas 1.x did (see the module docstring).
        """
        if self._picas_active:
            self._picas_flags.handle(signum, frame)
            return
        log.info("PiCaS shutting down, called with signal %s", signum)
        sub = self.subprocess
        if isinstance(sub, subprocess.Popen) and sub.poll() is None:
            log.info("Terminating execution of token")
            executers.terminate(sub, grace=self.picas_grace)
        if self.current_task is not None:
            release_task(self, self.current_task)
        self.cleanup_env()
        sys.exit(0)

    def setup_handler(self) -> None:
        """Install :meth:`handler` for SIGTERM, SIGINT and SIGUSR1 (``run`` does this itself).

        Only the main thread can install signal handlers; elsewhere this does nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        log.info("Setting up signal handlers")
        for sig in STOP_SIGNALS:
            previous = signal.signal(sig, self.handler)
            self._picas_previous_handlers.setdefault(sig, previous)

    def _picas_restore_handlers(self) -> None:
        for sig, previous in self._picas_previous_handlers.items():
            signal.signal(sig, previous)
        self._picas_previous_handlers.clear()

    def _run(self, task: Task, timeout: float | None) -> None:
        """Process one task and save it (the classic per-task step; also used by users' tests)."""
        run_one(self, task, timeout)

    def run(self, max_token_time: float | None = None) -> PilotReport:
        """Process tasks until the iterator runs dry or a stop signal comes."""
        return self._picas_run(max_token_time=max_token_time)

    # -------------------------------------------------------------- the engine
    def _picas_run(self, max_token_time: float | None = None, max_total_time: float | None = None,
                   max_tasks: int | None = None, max_scrub: int = 0, stop_function: Callable | None = None,
                   stop_function_args: dict | None = None) -> PilotReport:
        limits = dict(max_token_time=max_token_time, max_total_time=max_total_time, max_tasks=max_tasks,
                      max_scrub=max_scrub or 0, stop_function=stop_function,
                      stop_function_args=stop_function_args)
        if hasattr(self.iterator, "reset"):
            self.iterator.reset()  # a second run() looks for work again instead of ending at once
        self._picas_flags = StopFlags()
        self.prepare_env()
        self._picas_active = True
        self.setup_handler()
        try:
            client = real_client(self.db)
            if client is not None:
                return run_with_pilot(self, client, **limits)
            return run_classic(self, **limits)
        finally:
            self._picas_active = False
            self._picas_restore_handlers()
            self.cleanup_env()

    def _picas_cleanup_previous(self) -> None:
        """Run ``cleanup_run`` for the task saved last (deferred so that it runs after the save)."""
        if self._picas_cleanup_due:
            self._picas_cleanup_due = False
            try:
                self.cleanup_run()
            finally:
                self.current_task = None


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
        is asked after every task; True stops the actor.  Returns a report of
        what was done.
        """
        return self._picas_run(max_token_time=max_token_time, max_total_time=max_total_time, max_tasks=max_tasks,
                               max_scrub=max_scrub, stop_function=stop_function,
                               stop_function_args=stop_function_args)
