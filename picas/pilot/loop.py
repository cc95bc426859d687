"""The pilot loop: claim, run, save the result, repeat.

The loop composes the pure token functions, the claim protocol, the executor,
the lease keeper and the result saver; it is the only place that decides what
happens to a token:

* the payload exits 0 → done; non-zero → error, or back to todo while the
  token has retries left (every attempt stays in the token's history);
* bad input, a missing command, an unusable working directory → error with a
  message that says what was wrong, and the pilot goes on;
* the per-token timeout → the payload's process group is stopped and the token
  goes to error with the reason;
* a stop signal → the payload is stopped and every token the pilot holds goes
  back to todo (or the configured state) without counting as a failure;
* the lease was lost (the token was scrubbed and given to someone else) → the
  payload is stopped and nothing is written: the new owner wins.

Saving a result never loses it: on a 409 the saver re-reads the token; if this
pilot still owns it the result is merged onto the current body and saved
again, and if it does not, the loss is recorded in the token's history without
touching its state.  While the server is unreachable, results wait in memory
and in a local journal, and are saved when it is back.
"""
from __future__ import annotations

import base64
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from picas.core import token as tok
from picas.core.claim import Claimer
from picas.core.client import CouchClient
from picas.errors import PilotError, ServerUnavailable
from picas.pilot.config import PilotConfig
from picas.pilot.payload import BashExecutor, ExecResult, safe_name
from picas.pilot.results import save_result, save_results
from picas.pilot.journal import Journal
from picas.pilot.lease import LeaseKeeper
from picas.core.retry import Backoff
from picas.pool.scrub import scrub_expired
from picas.pilot.signals import StopFlags


def new_pilot_id() -> str:
    """Unique per pilot process: host, pid and a random part (pids repeat across hosts and time)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class PilotReport:
    """What a pilot did; printed by ``picas run`` at the end."""

    pilot_id: str
    processed: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    lost: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    reason: str = ""
    conflicts: int = 0
    requests: int = 0

    @property
    def duration(self) -> float:
        return (self.finished or time.time()) - self.started


class Pilot:
    """Drains one view of a pool; subclasses may replace :meth:`execute` (see RunActor)."""

    #: Whether a finished token is saved in the same request as the next claim (see :meth:`_complete`).
    carry_results = True

    def __init__(self, client: CouchClient, config: PilotConfig | None = None, *,
                 executor: BashExecutor | None = None, pilot_id: str | None = None,
                 stop_callback: Callable[[], bool] | None = None,
                 on_event: Callable[[str, dict, dict], None] | None = None,
                 install_signals: bool = True) -> None:
        # Short client-level retries: long outages are waited out by _outage_guard, which also
        # journals a finished result at once instead of holding it only in memory meanwhile.
        self.client = client.copy(retry=Backoff(base=0.2, cap=1.0, attempts=3))
        self.config = config or PilotConfig()
        self.who = tok.PilotIdentity.from_environment(pilot_id or new_pilot_id())
        root = self.config.workdir or Path(tempfile.gettempdir()) / f"picas-{os.getuid()}"
        self.workroot = Path(root)
        env = {"PICAS_HOST_URL": client.url, "PICAS_DATABASE": client.database or "",
               "PICAS_PILOT_ID": self.who.pilot_id}
        self.executor = executor or BashExecutor(self.workroot / safe_name(self.who.pilot_id),
                                                 log_cap=self.config.log_cap, grace=self.config.grace,
                                                 keep_workdirs=self.config.keep_workdirs, env=env)
        self.stop_callback = stop_callback
        self.on_event = on_event or (lambda kind, doc, info: None)
        self.flags = StopFlags()
        self.install_signals = install_signals
        self.claimer = Claimer(self.client, self.who, design=self.config.design, view=self.config.view,
                               window=max(self.config.window, self.config.prefetch * 3),
                               lease_seconds=self.config.lease_seconds, view_params=self.config.view_params,
                               stop=self.flags.requested)
        self.keeper = LeaseKeeper(self.client.copy(), self.who, self.config.heartbeat, self.config.lease_seconds)
        self.journal = Journal(self.workroot / f"journal-{self.who.pilot_id}.jsonl")
        self.report = PilotReport(pilot_id=self.who.pilot_id)
        self._queue: list[dict] = []
        self._next_scrub = 0.0
        self._finished: list[dict] = []
        self._finished_since = 0.0
        self._bases: dict[str, dict] = {}

    # ------------------------------------------------------------------ the loop
    def run(self) -> PilotReport:
        if self.install_signals:
            self.flags.install()
        self.keeper.start()
        started = time.monotonic()
        try:
            self._flush_journal()
            self.report.reason = self._loop(started)
        finally:
            try:
                self._flush_results()
            finally:
                self._give_back_all("the pilot stopped")
            self.keeper.stop()
            self._tidy_workroot()
            if self.install_signals:
                self.flags.restore()
            self.report.finished = time.time()
            self.report.conflicts = self.client.stats["conflicts"]
            self.report.requests = self.client.stats["requests"] + self.keeper.client.stats["requests"]
        return self.report

    def _loop(self, started: float) -> str:
        idle = Backoff(base=1.0, cap=self.config.poll_max, attempts=None, deadline=float("inf")).start()
        while True:
            reason = self._should_stop(started)
            if reason:
                return reason
            if not self._queue:
                self._maybe_scrub()
                claimed = self._claim_carrying_results()
                if not claimed:
                    if not self.config.wait:
                        return "no more work"
                    self._sleep(idle.next_delay())
                    continue
                idle = Backoff(base=1.0, cap=self.config.poll_max, attempts=None, deadline=float("inf")).start()
                self.keeper.hold(claimed)
                self._queue.extend(claimed)
            doc = self._queue.pop(0)
            self.on_event("start", doc, {})
            body, outcome = self.execute(doc)
            if outcome == "interrupted":
                self._flush_results()
                self._give_back(doc["_id"], f"stopped by {self.flags.signal_name or 'request'}")
                return f"stopped by {self.flags.signal_name or 'request'}"
            if outcome == "lost":
                self.keeper.release(doc["_id"])
                self.report.lost += 1
                self.on_event("lost", doc, {})
                continue
            self._complete(body)

    def _tidy_workroot(self) -> None:
        """Remove this pilot's empty directories, so thousands of pilot runs leave no litter behind."""
        root = getattr(self.executor, "workdir_root", None)
        for path in ((root / ".logs", root) if root else ()):
            try:
                path.rmdir()
            except OSError:
                pass  # not empty (kept workdirs, logs) or already gone

    def _should_stop(self, started: float) -> str:
        cfg = self.config
        if self.flags:
            return f"stopped by {self.flags.signal_name or 'request'}"
        if cfg.max_tasks is not None and self.report.processed + len(self._finished) >= cfg.max_tasks:
            return f"reached --max-tasks {cfg.max_tasks}"
        if cfg.max_time is not None and time.monotonic() - started >= cfg.max_time:
            return f"reached --max-time {cfg.max_time:g} s"
        if self.stop_callback is not None and self.stop_callback():
            return "the stop function said so"
        return ""

    def _maybe_scrub(self) -> None:
        """With ``scrub_every``, pilots heal the pool themselves: no operator needs to run 'picas scrub'."""
        every = self.config.scrub_every
        if not every or time.monotonic() < self._next_scrub:
            return
        self._next_scrub = time.monotonic() + every
        scrubbed = self._outage_guard(lambda: scrub_expired(self.client, design=self.config.design,
                                                            max_attempts=self.config.max_attempts,
                                                            who=self.who, limit=1000), "scrubbing")
        if scrubbed.total:
            self.on_event("scrubbed", {}, {"reset": len(scrubbed.reset), "errored": len(scrubbed.errored)})

    def _sleep(self, seconds: float | None) -> None:
        self.flags.requested.wait(seconds or 1.0)

    # ------------------------------------------------------------------ one token
    def execute(self, doc: dict) -> tuple[dict, str]:
        """Run one claimed token; returns the body to save and 'finished', 'interrupted' or 'lost'."""
        token_id = doc["_id"]

        def should_stop() -> bool:
            return bool(self.flags) or self.keeper.is_lost(token_id)

        result = self.executor.run(doc, timeout=self.config.token_timeout, should_stop=should_stop,
                                   should_force=self.flags.forced.is_set)
        if self.keeper.is_lost(token_id):
            return doc, "lost"
        if result.interrupted:
            return doc, "interrupted"
        return self._result_body(doc, result), "finished"

    def _result_body(self, doc: dict, result: ExecResult) -> dict:
        """The finished token: exit code, times, host, logs; retried if it failed and has retries left."""
        current = self.keeper.release(doc["_id"]) or doc
        self._bases[doc["_id"]] = current
        fields = {"started": int(result.started), "finished": int(result.finished),
                  "duration": round(result.duration, 3), "hostname": self.who.hostname}
        if result.truncated:
            fields["log_truncated"] = result.truncated
        if result.timed_out:
            fields["timed_out"] = True
        if self.config.attach_logs:
            fields["_attachments"] = {**(current.get("_attachments") or {}), **self._log_attachments(doc, result)}
        now = time.time()
        if result.error:
            body = tok.fail(current, self.who, now, result.error, exit_code=result.exit_code, **fields)
        else:
            body = tok.finish(current, self.who, now, result.exit_code, **fields)
        self.executor.cleanup_logs(result)
        # Only a plain non-zero exit is worth another try; bad input or a timeout would fail the same way.
        if result.exit_code != 0 and result.error is None and int(body.get("scrub_count") or 0) < self.config.retries:
            body = tok.reset(body, self.who, now, f"retry after exit code {result.exit_code}")
        return body

    def _log_attachments(self, doc: dict, result: ExecResult) -> dict:
        name = safe_name(doc["_id"])
        attachments = {}
        for suffix, path in (("out", result.stdout), ("err", result.stderr)):
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            attachments[f"logs_{name}.{suffix}"] = {"content_type": "text/plain",
                                                    "data": base64.b64encode(data).decode()}
        return attachments

    def _complete(self, body: dict) -> None:
        """Queue a finished token for saving; results go back with the next claim, or in one request.

        When nothing is queued the pilot claims next, and the result rides in
        that claim's ``_bulk_docs`` request (:meth:`_claim_carrying_results`):
        one request instead of two.  A token going back to todo (a retry) is
        saved at once, so that the next claim can find it.  With a batch still
        queued, the results wait until the batch is done, or until half a
        heartbeat has passed (a finished token's lease is no longer renewed,
        so it must not wait long enough for a scrub to take it).
        """
        if not self._finished:
            self._finished_since = time.monotonic()
        self._finished.append(body)
        if self.carry_results and not self._queue and not self.flags and tok.state(body) != "todo":
            return
        if self.config.prefetch <= 1 or not self._queue or len(self._finished) >= self.config.prefetch \
                or time.monotonic() - self._finished_since > self.config.heartbeat / 2:
            self._flush_results()

    def _claim_carrying_results(self) -> list[dict]:
        """Claim the next tokens; the finished ones go in the same request, and what was not saved so, after it.

        A carried result that met a 409 (a heartbeat renewed the lease in
        between, or the lock was lost) is saved again by :func:`save_results`,
        which lets the stored token decide, as for any result.
        """
        carry, self._finished = self._finished, []
        try:
            return self._outage_guard(lambda: self.claimer.claim_batch(self.config.prefetch, carry=carry),
                                      "claiming", pending=carry)
        finally:
            saved_ids = {id(body) for body, result in self.claimer.carried if result.ok}
            saved = [body for body in carry if id(body) in saved_ids]
            self._finished = [body for body in carry if id(body) not in saved_ids] + self._finished
            for body in saved:
                self._bases.pop(body["_id"], None)
            self._record_results(saved, ["saved"] * len(saved))
            self._flush_results()

    def _flush_results(self) -> None:
        bodies, self._finished = self._finished, []
        if not bodies:
            return
        bases = {body["_id"]: self._bases.pop(body["_id"], None) for body in bodies}
        outcomes = self._outage_guard(lambda: save_results(self.client, bodies, self.who, bases),
                                      "saving results", pending=bodies)
        self._record_results(bodies, outcomes)

    def _record_results(self, bodies: list[dict], outcomes: list[str]) -> None:
        for body in bodies:
            self.journal.done(body["_id"])
        for body, outcome in zip(bodies, outcomes):
            self.report.processed += 1
            if outcome == "lost":
                self.report.lost += 1
                self.on_event("lost", body, {})
                continue
            state = tok.state(body)
            if state == "todo":
                self.report.retried += 1
            elif state == "done":
                self.report.done += 1
            else:
                self.report.failed += 1
            self.on_event("retry" if state == "todo" else state, body, {})

    def _flush_journal(self) -> None:
        """Save results left in this host's journals by pilots that are gone, then our own."""
        self.journal.adopt_orphans(f"journal-{socket.gethostname()}-")
        for body in self.journal.pending():
            self._outage_guard(lambda: save_result(self.client, body, self.who), "saving a journaled result")
            self.journal.done(body["_id"])

    def _outage_guard(self, action: Callable, what: str, pending: list[dict] | None = None):
        """Run ``action``, waiting out a server outage for up to ``outage_timeout`` seconds."""
        backoff = Backoff(base=1.0, cap=30.0, attempts=None, deadline=self.config.outage_timeout).start()
        journaled = False
        while True:
            try:
                return action()
            except ServerUnavailable as exc:
                if pending and not journaled:
                    for body in pending:
                        self.journal.add(body)
                    journaled = True
                delay = backoff.next_delay()
                if delay is None or self.flags.forced.is_set():
                    where = f"; unsaved results are kept in {self.journal.path}" if self.journal.pending() else ""
                    raise PilotError(f"gave up {what} after the server stayed unreachable for "
                                     f"{self.config.outage_timeout:g} s: {exc}{where}") from exc
                self.on_event("outage", (pending or [{}])[0], {"error": str(exc), "retry_in": delay})
                time.sleep(delay)

    def _give_back(self, token_id: str, reason: str) -> None:
        body = self.keeper.release(token_id)
        if body is None:
            return
        lock, done = self.config.release_state
        released = tok.reset(body, self.who, time.time(), reason, count_scrub=False, lock=lock, done=done)
        try:
            outcome = save_result(self.client, released, self.who)
        except (ServerUnavailable, PilotError):
            outcome = "unsaved"  # the lease runs out and a scrub returns the token
        if outcome == "saved":
            self.report.released += 1
        self.on_event("released", released, {"outcome": outcome})

    def _give_back_all(self, reason: str) -> None:
        for doc in list(self._queue):
            self._give_back(doc["_id"], reason)
        self._queue.clear()
        for token_id in list(self.keeper.held):
            self._give_back(token_id, reason)
