"""Classic picas iterators: ``for task in TaskViewIterator(client, "todo")`` hands out locked tokens.

The classic API is kept (``ViewIterator``, ``TaskViewIterator``,
``PrioritizedViewIterator``, ``EndlessViewIterator``), but claiming is the
new exactly-once protocol of :class:`picas.core.claim.Claimer`: a token is locked
by writing the locked body against the revision at which it was seen in the
todo state, so two processes can never both get it.  Picas 1.1.2 locked
whatever a view row pointed at, and under contention the same token could be
handed to two pilots and run twice.

Each task comes back as a :class:`picas.classic.documents.Task` wrapping the locked
body (with its new ``_rev``), ready to be changed and saved by the caller.

Leases: a claimed token carries ``pilot`` and ``lease_until``.  Inside a
:class:`picas.classic.actors.RunActor` the lease is renewed by heartbeats while the
task runs.  A script that iterates on its own sends no heartbeats, so its
tokens get a long lease (:data:`STANDALONE_LEASE`, one day, the classic
``TokenModifier`` timeout) instead of one that would run out mid-task and
let a scrub hand the token out again.

Duck-typed databases: given any other object with the classic methods
(``get_single_from_view`` and ``save``), such as the mock databases of
users' unit tests, an iterator claims the picas 1.x way through them
(:func:`classic_claim`): read a task from the view, lock it, save it; a
conflict on the save means someone else was faster, so it tries another.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from picas import defaults
from picas.core import token as tok
from picas.core.claim import Claimer
from picas.core.client import CouchClient
from picas.classic.conflicts import conflict_types
from picas.classic.documents import Document, Task
from picas.pilot.loop import new_pilot_id

log = logging.getLogger("picas")

#: Lease (seconds) of tokens claimed by an iterator that nobody heartbeats.
STANDALONE_LEASE = 86400.0


def real_client(database: Any) -> CouchClient | None:
    """The CouchClient behind a classic ``CouchDB`` wrapper (or the client itself); None for anything else."""
    if isinstance(database, CouchClient):
        return database
    client = getattr(database, "client", None)
    return client if isinstance(client, CouchClient) else None


def client_of(database: Any) -> CouchClient:
    """The CouchClient behind a classic ``CouchDB`` wrapper (or the client itself); TypeError otherwise."""
    client = real_client(database)
    if client is None:
        raise TypeError(f"expected a picas.clients.CouchDB or a picas.core.client.CouchClient, "
                        f"not {type(database).__name__}")
    return client


def _taken(body: dict) -> bool:
    """Whether a token read from a view is locked and unfinished: someone else runs it (the row was stale)."""
    try:
        return int(body.get("lock") or 0) > 0 and not int(body.get("done") or 0)
    except (TypeError, ValueError):
        return False


def classic_claim(database: Any, view: str, allowed_failures: int = 10, **view_params: Any) -> Task:
    """Claim a task through a duck-typed database the picas 1.x way; IndexError when the view is empty.

    Reads one of the first 100 rows of ``view`` (``get_single_from_view``),
    locks it and saves it; a conflict on the save (or a token that turns out
    to be locked by someone else already) means another worker was faster,
    so it tries again, up to ``allowed_failures`` times.
    """
    for _ in range(allowed_failures):
        doc = database.get_single_from_view(view, window_size=100, **view_params)
        task = Task(doc)
        if _taken(task.value):
            continue
        try:
            saved = database.save(task.lock())
        except conflict_types():
            continue
        if isinstance(saved, Task):
            return saved
        return Task(saved) if isinstance(saved, Document) else task
    raise EnvironmentError(f"Unable to claim a task from view '{view}': {allowed_failures} attempts met a "
                           "conflict or a token locked already (too many workers on too few tokens?)")


class ViewIterator:
    """Base class: iterating calls :meth:`claim_task` until it raises IndexError (no more work).

    Subclasses implement :meth:`claim_task`.  An actor calls :meth:`bind` to
    make the iterator claim under the actor's pilot identity and lease, and to
    let it see the actor's stop request while it waits.
    """

    def __init__(self) -> None:
        self._stop = False
        self.who: tok.PilotIdentity | None = None
        self.lease_seconds: float = STANDALONE_LEASE
        self.stop_event: threading.Event | None = None
        self.should_stop: Callable[[], bool] | None = None

    def __iter__(self) -> "ViewIterator":
        return self

    def reset(self) -> None:
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def is_stopped(self) -> bool:
        return getattr(self, "_stop", False)

    def __next__(self) -> Task:
        if self.is_stopped():
            raise StopIteration
        try:
            return self.claim_task()
        except IndexError as exc:
            self.stop()
            raise StopIteration from exc

    def claim_task(self) -> Task:
        """Lock and return the next task; raise IndexError when there is none."""
        raise NotImplementedError("claim_task function not implemented.")

    def reconnect(self, database: Any) -> None:
        """Use another connection (e.g. a fresh copy after a broken one) from now on."""
        self.database = database
        self._forget_claimers()

    def bind(self, who: tok.PilotIdentity | None = None, lease_seconds: float | None = None,
             stop_event: threading.Event | None = None, should_stop: Callable[[], bool] | None = None) -> None:
        """Claim as ``who`` with ``lease_seconds`` leases; stop waiting when ``stop_event`` is set.

        ``bind()`` with no arguments unbinds: a fresh identity on the next
        claim, and the long standalone lease.
        """
        self.who = who
        self.lease_seconds = lease_seconds if lease_seconds is not None else STANDALONE_LEASE
        self.stop_event = stop_event
        self.should_stop = should_stop
        self._forget_claimers()

    def identity(self) -> tok.PilotIdentity:
        """Who claims: the bound pilot, or one identity for this iterator made on first use."""
        if getattr(self, "who", None) is None:
            self.who = tok.PilotIdentity.from_environment(new_pilot_id())
        return self.who

    def _forget_claimers(self) -> None:
        """Subclasses drop their claimers here, so that the next claim uses the new settings."""

    def _claimer(self, database: Any, view: str, view_params: dict) -> Claimer:
        params = dict(view_params)
        design = params.pop("design_doc", defaults.DESIGN)
        return Claimer(client_of(database), self.identity(), design=design, view=view,
                       lease_seconds=getattr(self, "lease_seconds", STANDALONE_LEASE), view_params=params)


class TaskViewIterator(ViewIterator):
    """Claims tokens from one view (``design_doc`` in ``view_params`` picks the design document)."""

    def __init__(self, database: Any, view: str, **view_params: Any) -> None:
        super().__init__()
        self.database = database
        self.view = view
        self.view_params = view_params
        self._claim: Claimer | None = None

    def _forget_claimers(self) -> None:
        self._claim = None

    def claim_task(self) -> Task:
        if real_client(self.database) is None:
            return classic_claim(self.database, self.view, **self.view_params)
        if self._claim is None:
            self._claim = self._claimer(self.database, self.view, self.view_params)
        body = self._claim.claim()
        if body is None:
            raise IndexError(f"no claimable tokens in view '{self.view}'")
        return Task(body)


class PrioritizedViewIterator(ViewIterator):
    """Claims from ``high_priority_view`` while it has work, then from ``low_priority_view``."""

    def __init__(self, database: Any, high_priority_view: str, low_priority_view: str, **view_params: Any) -> None:
        super().__init__()
        self.database = database
        self.high_priority_view = high_priority_view
        self.low_priority_view = low_priority_view
        self.view_params = view_params
        self._claims: dict[str, Claimer] = {}

    def _forget_claimers(self) -> None:
        self._claims = {}

    def _claim_from(self, view: str) -> dict | None:
        if view not in self._claims:
            self._claims[view] = self._claimer(self.database, view, self.view_params)
        return self._claims[view].claim()

    def claim_task(self) -> Task:
        if real_client(self.database) is None:
            try:
                return classic_claim(self.database, self.high_priority_view, **self.view_params)
            except IndexError:
                return classic_claim(self.database, self.low_priority_view, **self.view_params)
        body = self._claim_from(self.high_priority_view) or self._claim_from(self.low_priority_view)
        if body is None:
            raise IndexError("no claimable tokens in either view")
        return Task(body)


class EndlessViewIterator(ViewIterator):
    """Keeps asking ``view_iterator`` for work, sleeping ``sleep_sec`` between empty rounds.

    It ends when ``stop_callback(**stop_callback_args)`` returns True (checked
    before every round), when :meth:`stop` is called, or — inside an actor —
    when the actor is asked to stop or reaches its ``max_total_time``; the
    sleep is cut short for the latter two, so a SIGTERM is acted on at once.
    """

    def __init__(self, view_iterator: ViewIterator, sleep_sec: float = 10, stop_callback: Callable | None = None,
                 **stop_callback_args: Any) -> None:
        super().__init__()
        self.iterator = view_iterator
        self.sleep_sec = sleep_sec
        self.stop_callback = stop_callback
        self.stop_callback_args = stop_callback_args

    def bind(self, who: tok.PilotIdentity | None = None, lease_seconds: float | None = None,
             stop_event: threading.Event | None = None, should_stop: Callable[[], bool] | None = None) -> None:
        super().bind(who, lease_seconds, stop_event, should_stop)
        if hasattr(self.iterator, "bind"):
            self.iterator.bind(who, lease_seconds, stop_event, should_stop)

    def reconnect(self, database: Any) -> None:
        self.iterator.reconnect(database)

    def _interrupted(self) -> bool:
        event, check = getattr(self, "stop_event", None), getattr(self, "should_stop", None)
        return (event is not None and event.is_set()) or (check is not None and bool(check()))

    def is_cancelled(self) -> bool:
        return (self.is_stopped() or self._interrupted()
                or (self.stop_callback is not None and bool(self.stop_callback(**self.stop_callback_args))))

    def _sleep(self) -> None:
        deadline = time.monotonic() + max(float(self.sleep_sec), 0.0)
        while not self._interrupted():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            event = getattr(self, "stop_event", None)
            if event is not None:
                event.wait(min(remaining, 0.5))
            else:
                time.sleep(min(remaining, 0.5))

    def __next__(self) -> Task:
        while not self.is_cancelled():
            try:
                return next(self.iterator)
            except StopIteration:
                self.iterator.reset()
                log.info("Iterator is waiting for work...")
                self._sleep()
        self.iterator.stop()
        self.stop()
        log.info("Iterator is finishing.")
        raise StopIteration
