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
and in a local journal, and are saved when it is back (:mod:`picas.pilot.outbox`,
:mod:`picas.pilot.outage`).

The collaborators (claim source, lease keeper, journal, executor) are built
from the configuration unless the caller passes its own; what the loop needs
of each is in :mod:`picas.pilot.parts`.
"""
from __future__ import annotations

import base64
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

from picas.core import token as tok
from picas.core.claim import Claimer
from picas.core.client import CouchClient
from picas.core.retry import Backoff
from picas.core.siblings import Siblings
from picas.core.states import PilotEvent, RunOutcome, SaveOutcome
from picas.errors import PilotError, ServerUnavailable
from picas.pilot.config import PilotConfig
from picas.pilot.journal import Journal
from picas.pilot.lease import LeaseKeeper
from picas.pilot.outage import OutageGuard
from picas.pilot.outbox import Outbox
from picas.pilot.parts import ClaimSource, Executor, Holder, ResultJournal
from picas.pilot.payload import BashExecutor, ExecResult, safe_name
from picas.pilot.record import Recorder
from picas.pilot.report import PilotReport, new_pilot_id
from picas.pilot.results import save_result
from picas.pilot.signals import StopFlags
from picas.staging.executor import StagingExecutor
from picas.pool.scrub import scrub_expired

__all__ = ["Pilot", "PilotConfig", "PilotReport", "new_pilot_id"]


class Pilot:
    """Drains one view of a pool; subclasses may replace :meth:`execute` (see RunActor)."""

    #: Whether a finished token is saved in the same request as the next claim (see :mod:`picas.pilot.outbox`).
    carry_results = True

    def __init__(self, client: CouchClient, config: PilotConfig | None = None, *,
                 executor: Executor | None = None, claimer: ClaimSource | None = None,
                 keeper: Holder | None = None, journal: ResultJournal | None = None,
                 flags: StopFlags | None = None, pilot_id: str | None = None,
                 stop_callback: Callable[[], bool] | None = None,
                 on_event: Callable[[str, dict, dict], None] | None = None,
                 install_signals: bool = True, siblings: Siblings | None = None) -> None:
        # Short client-level retries: long outages are waited out by the OutageGuard, which also
        # journals a finished result at once instead of holding it only in memory meanwhile.
        self.client = client.copy(retry=Backoff(base=0.2, cap=1.0, attempts=3))
        self.config = cfg = config or PilotConfig()
        self.who = tok.PilotIdentity.from_environment(pilot_id or new_pilot_id())
        self.workroot = Path(cfg.workdir or Path(tempfile.gettempdir()) / f"picas-{os.getuid()}")
        self.stop_callback = stop_callback
        self.on_event = on_event or (lambda kind, doc, info: None)
        self.flags = flags if flags is not None else StopFlags()
        self.install_signals = install_signals
        env = {"PICAS_HOST_URL": client.url, "PICAS_DATABASE": client.database or "",
               "PICAS_PILOT_ID": self.who.pilot_id}
        # Staging wraps the bash executor; a token without stage_in/stage_out passes straight through.
        self.executor: Executor = executor if executor is not None else StagingExecutor(BashExecutor(
            self.workroot / safe_name(self.who.pilot_id), log_cap=cfg.log_cap, grace=cfg.grace,
            keep_workdirs=cfg.keep_workdirs, env=env), skip_done_outputs=cfg.skip_done_outputs)
        self.claimer: ClaimSource = claimer if claimer is not None else Claimer(
            self.client, self.who, design=cfg.design, view=cfg.view, window=max(cfg.window, cfg.prefetch * 3),
            lease_seconds=cfg.lease_seconds, view_params=cfg.view_params, stop=self.flags.requested,
            siblings=siblings)
        # The keeper renews leases from a thread of its own, so it gets a connection of its own.
        self.keeper: Holder = keeper if keeper is not None else LeaseKeeper(
            self.client.copy(), self.who, cfg.heartbeat, cfg.lease_seconds)
        self.journal: ResultJournal = journal if journal is not None else Journal(
            self.workroot / f"journal-{self.who.pilot_id}.jsonl")
        self.report = PilotReport(pilot_id=self.who.pilot_id)
        # The pilot record (start, end, how it ended) for 'picas report'; best effort, never stops the pilot.
        self.recorder = Recorder(self.client, self.who, design=cfg.design, view=cfg.view,
                                 lease_seconds=cfg.lease_seconds)
        self.guard = OutageGuard(cfg.outage_timeout, self.journal, self.flags, self._announce)
        self.outbox = Outbox(self.client, self.who, self.journal, self.guard, self.report, self._announce,
                             carry=self.carry_results, batch=cfg.prefetch, heartbeat=cfg.heartbeat)
        self._queue: list[dict] = []
        self._next_scrub = 0.0
        self._bases: dict[str, dict] = {}

    @property
    def flags(self) -> StopFlags:
        """What the stop signals asked for; replacing it (the classic actor shares its own) reaches the guard too."""
        return self._flags

    @flags.setter
    def flags(self, value: StopFlags) -> None:
        self._flags = value
        guard = self.__dict__.get("guard")
        if guard is not None:
            guard.flags = value

    def _announce(self, kind: str, doc: dict, info: dict) -> None:
        # Read at call time: callers (the classic actor) may set on_event after construction.
        self.on_event(kind, doc, info)

    # ------------------------------------------------------------------ the loop
    def run(self) -> PilotReport:
        if self.install_signals:
            self.flags.install()
        self.keeper.start()
        started = time.monotonic()
        self.recorder.start(time.time())
        crashed = True
        try:
            self.outbox.flush_journal()
            self.report.reason = self._loop(started)
            crashed = False
        finally:
            try:
                self.outbox.flush()
            finally:
                self._give_back_all("the pilot stopped")
            self.keeper.stop()
            self._tidy_workroot()
            if self.install_signals:
                self.flags.restore()
            self.report.finished = time.time()
            self.report.conflicts = self.client.stats["conflicts"]
            keeper_client = getattr(self.keeper, "client", None)
            self.report.requests = self.client.stats["requests"] + (
                keeper_client.stats["requests"] if keeper_client is not None else 0)
            self.recorder.end(self.report.finished, self.report.reason or "crashed", self.report, crashed=crashed)
        return self.report

    def _loop(self, started: float) -> str:
        idle = self._idle_backoff()
        while True:
            reason = self._should_stop(started)
            if reason:
                return reason
            if not self._queue:
                self._maybe_scrub()
                claimed = self.outbox.claim_with(
                    lambda carried: self.claimer.claim_batch(self.config.prefetch, carry=carried))
                if not claimed:
                    if not self.config.wait:
                        return "no more work"
                    self.flags.requested.wait(idle.next_delay() or 1.0)
                    continue
                idle = self._idle_backoff()
                self.keeper.hold(claimed)
                self._queue.extend(claimed)
            doc = self._queue.pop(0)
            self.on_event(PilotEvent.START, doc, {})
            body, outcome = self.execute(doc)
            if outcome == RunOutcome.INTERRUPTED:
                self.outbox.flush()
                self._give_back(doc["_id"], self._stopped_by())
                return self._stopped_by()
            if outcome == RunOutcome.LOST:
                self.keeper.release(doc["_id"])
                self.report.lost += 1
                self.on_event(PilotEvent.LOST, doc, {})
                continue
            self.outbox.add(body, self._bases.pop(doc["_id"], None), queued=len(self._queue),
                            stopping=bool(self.flags))

    def _idle_backoff(self) -> Backoff:
        """How long to sleep between polls of an empty pool (``--wait``): growing up to ``poll_max``."""
        return Backoff(base=1.0, cap=self.config.poll_max, attempts=None, deadline=float("inf")).start()

    def _stopped_by(self) -> str:
        return f"stopped by {self.flags.signal_name or 'request'}"

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
            return self._stopped_by()
        if cfg.max_tasks is not None and self.report.processed + len(self.outbox) >= cfg.max_tasks:
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
        scrubbed = self.guard(lambda: scrub_expired(self.client, design=self.config.design,
                                                    max_attempts=self.config.max_attempts,
                                                    who=self.who, limit=1000), "scrubbing")
        if scrubbed.total:
            self.on_event(PilotEvent.SCRUBBED, {}, {"reset": len(scrubbed.reset), "errored": len(scrubbed.errored)})

    # ------------------------------------------------------------------ one token
    def set_base(self, token_id: str, body: dict) -> None:
        """Record the token body a finished token's result was made from (an :meth:`execute` override calls it).

        Should the save meet a 409, the result is merged again onto the
        stored token against this base (:func:`picas.pilot.results.save_results`):
        every field the run changed wins over what changed meanwhile.
        """
        self._bases[token_id] = body

    def execute(self, doc: dict) -> tuple[dict, RunOutcome]:
        """Run one claimed token; returns the body to save and how the run ended."""
        token_id = doc["_id"]

        def should_stop() -> bool:
            return bool(self.flags) or self.keeper.is_lost(token_id)

        result = self.executor.run(doc, timeout=self.config.token_timeout, should_stop=should_stop,
                                   should_force=self.flags.forced.is_set)
        if self.keeper.is_lost(token_id):
            return doc, RunOutcome.LOST
        if result.interrupted:
            return doc, RunOutcome.INTERRUPTED
        return self._result_body(doc, result), RunOutcome.FINISHED

    def _result_body(self, doc: dict, result: ExecResult) -> dict:
        """The finished token: exit code, times, host, logs; retried if it failed and has retries left."""
        current = self.keeper.release(doc["_id"]) or doc
        self.set_base(doc["_id"], current)
        fields = {"started": int(result.started), "finished": int(result.finished),
                  "duration": round(result.duration, 3), "hostname": self.who.hostname}
        if result.truncated:
            fields["log_truncated"] = result.truncated
        if result.timed_out:
            fields["timed_out"] = True
        fields.update({name: value for name, value in result.token_fields.items() if value is not None})
        added = {name: {"content_type": kind, "data": base64.b64encode(data).decode()}
                 for name, (kind, data) in result.attachments.items()}
        if self.config.attach_logs or added:
            logs = self._log_attachments(doc, result) if self.config.attach_logs else {}
            fields["_attachments"] = {**(current.get("_attachments") or {}), **logs, **added}
        for entry in result.events:  # e.g. stage_in_start ... stage_out_success, before done/error
            current = tok.note(current, self.who, entry["time"], entry["event"],
                               **{k: v for k, v in entry.items() if k not in ("event", "time")})
        now = time.time()
        if result.error:
            body = tok.fail(current, self.who, now, result.error, exit_code=result.exit_code, **fields)
        else:
            body = tok.finish(current, self.who, now, result.exit_code, **fields)
        for name in [name for name, value in result.token_fields.items() if value is None]:
            body.pop(name, None)
        self.executor.cleanup_logs(result)
        # Only a plain non-zero exit is worth another try; bad input or a timeout would fail the same way.
        if result.exit_code != 0 and result.error is None and int(body.get("scrub_count") or 0) < self.config.retries:
            body = tok.reset(body, self.who, now, f"retry after exit code {result.exit_code}")
        return body

    def _log_attachments(self, doc: dict, result: ExecResult) -> dict:
        name = safe_name(doc["_id"])
        return {f"logs_{name}.{suffix}": {"content_type": "text/plain",
                                          "data": base64.b64encode(result.log(stream)).decode()}
                for suffix, stream in (("out", "stdout"), ("err", "stderr"))}

    # ------------------------------------------------------------------ giving tokens back
    def _give_back(self, token_id: str, reason: str) -> None:
        body = self.keeper.release(token_id)
        if body is None:
            return
        lock, done = self.config.release_state
        released = tok.reset(body, self.who, time.time(), reason, count_scrub=False, lock=lock, done=done)
        try:
            outcome = save_result(self.client, released, self.who)
        except (ServerUnavailable, PilotError):
            outcome = SaveOutcome.UNSAVED  # the lease runs out and a scrub returns the token
        if outcome == SaveOutcome.SAVED:
            self.report.released += 1
        self.on_event(PilotEvent.RELEASED, released, {"outcome": outcome})

    def _give_back_all(self, reason: str) -> None:
        for doc in list(self._queue):
            self._give_back(doc["_id"], reason)
        self._queue.clear()
        for token_id in list(self.keeper.held):
            self._give_back(token_id, reason)
