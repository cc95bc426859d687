"""Staging around any executor: stage in, run, stage out, and say what happened in the token.

:class:`StagingExecutor` wraps the pilot's executor (the
:class:`~picas.pilot.payload.BashExecutor`, or anything with the same
``run``/``cleanup_logs``): it does nothing at all to a token that asks for no
staging, so such tokens run exactly as before.  For a token with
``stage_in``/``stage_out`` it

1. makes the token's working directory and copies the inputs in (checksums
   verified), then records the ``setup_md5_checksums.json`` manifest;
2. runs the payload there (the inner executor leaves the directory to us);
3. records ``upload_md5_checksums.json`` and ``deleted.txt``, and copies the
   outputs out when the payload succeeded (or always, with
   ``stage_out_on_failure``), recording ``outputs`` (destination -> size,
   checksum) in the token.

The result is the inner :class:`~picas.pilot.payload.ExecResult` with the
history ``events`` (``stage_in_start`` ... ``stage_out_success``), the
``token_fields`` (``outputs``, ``failed_stage``) and the ``attachments`` (the
manifests) filled in, for the pilot to write.  A failed stage makes the result an error whose message names
the stage and the file; after a failed stage-out the working directory is
kept, and the message says where, so no output is lost.

With ``skip_done_outputs``, a token whose recorded ``outputs`` are all at
their destinations with their checksums is reported done without running.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from picas.errors import InvalidInput
from picas.pilot.payload import ExecResult, safe_name
from picas.staging.background import Background
from picas.staging.errors import StageFailed
from picas.staging.manifest import manifest_attachments, snapshot
from picas.staging.spec import StagingPlan, has_staging, plan_for
from picas.staging.stager import Stage, Stager, Status, event

__all__ = ["StagingExecutor"]

_NEVER: Callable[[], bool] = lambda: False  # noqa: E731


class StagingExecutor:
    """Wraps an executor with stage-in and stage-out; see the module docstring."""

    def __init__(self, inner, stager: Stager | None = None, *, skip_done_outputs: bool = False,
                 manifests: bool = True) -> None:
        self.inner = inner
        self.stager = stager or Stager()
        self.skip_done_outputs = skip_done_outputs
        self.manifests = manifests

    @property
    def workdir_root(self) -> Path:
        return self.inner.workdir_root

    def workdir_for(self, token_id: str) -> Path:
        return self.inner.workdir_for(token_id)

    def cleanup_logs(self, result: ExecResult) -> None:
        self.inner.cleanup_logs(result)

    def close(self) -> None:
        self.stager.transfer.close()

    # ------------------------------------------------------------------ one token
    def run(self, doc: dict, *, timeout: float | None = None, should_stop: Callable[[], bool] = _NEVER,
            should_force: Callable[[], bool] = _NEVER) -> ExecResult:
        if self.skip_done_outputs and doc.get("outputs"):
            present, why = self.stager.outputs_present(doc)
            if present:
                return self._skipped(doc, why)
        if not has_staging(doc):
            return self.inner.run(doc, timeout=timeout, should_stop=should_stop, should_force=should_force)
        started = time.time()
        try:
            plan = plan_for(doc)
        except InvalidInput as exc:
            return self._failed(doc, started, [], StageFailed(Stage.STAGE_IN.value, "the token's staging fields", exc))
        if plan is None or plan.empty:
            return self.inner.run(doc, timeout=timeout, should_stop=should_stop, should_force=should_force)
        return self._staged(doc, plan, timeout, should_stop, should_force)

    def _staged(self, doc: dict, plan: StagingPlan, timeout: float | None, should_stop: Callable[[], bool],
                should_force: Callable[[], bool]) -> ExecResult:
        started = time.time()
        workdir = self.workdir_for(str(doc.get("_id", "token")))
        try:
            if workdir.exists():
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
        except OSError as exc:
            return self._failed(doc, started, [], StageFailed(Stage.STAGE_IN.value, str(workdir), exc))

        staged_in = self.stager.stage_in(plan.stage_in, workdir, should_stop)
        events = staged_in.events() if plan.stage_in else []
        if not staged_in.ok:
            self._remove(workdir)
            if staged_in.interrupted:
                return self._interrupted(doc, started, events)
            return self._failed(doc, started, events, staged_in.failure)
        setup = snapshot(workdir) if self.manifests else {}

        result = self.inner.run(doc, timeout=timeout, should_stop=should_stop, should_force=should_force,
                                workdir_ready=True)
        if result.interrupted:
            self._remove(workdir)
            return replace(result, events=events)
        payload_ok = result.exit_code == 0 and result.error is None and not result.timed_out
        events.append(event(Stage.RUN, Status.START, result.started))
        events.append(event(Stage.RUN, Status.SUCCESS if payload_ok else Status.FAIL, result.finished,
                            exit_code=result.exit_code, seconds=round(result.duration, 3),
                            error=result.error[:500] if result.error else None))
        # The md5 manifest of what the run left is made while the outputs travel: both read every file.
        after_run = Background(lambda: snapshot(workdir)) if self.manifests else None
        token_fields: dict = {"failed_stage": None if payload_ok else Stage.RUN.value,
                              **{stale: None for stale in ("payload_exit_code", "skipped_run") if stale in doc}}
        staged = replace(result, events=events, token_fields=token_fields)

        def with_manifests() -> ExecResult:
            if after_run is not None:
                staged.attachments = manifest_attachments(setup, after_run.result())
            return staged

        if plan.stage_out and (payload_ok or plan.on_failure):
            staged_out = self.stager.stage_out(plan.stage_out, workdir, should_stop)
            events.extend(staged_out.events())
            token_fields["outputs"] = staged_out.outputs()
            if staged_out.interrupted:
                with_manifests()
                self._remove(workdir)
                staged.interrupted = True
                return staged
            if staged_out.failure is not None:
                kept = f"; the payload's files are kept in {workdir}"
                staged.error = f"{staged_out.failure}{kept}" if payload_ok else \
                    f"{result.error or f'exit code {result.exit_code}'}; then {staged_out.failure}{kept}"
                if payload_ok:
                    staged.exit_code = -1
                    token_fields["payload_exit_code"] = result.exit_code
                    token_fields["failed_stage"] = Stage.STAGE_OUT.value
                return with_manifests()  # the working directory stays: the outputs are still only here
        with_manifests()
        if not getattr(self.inner, "keep_workdirs", False):
            self._remove(workdir)
        return staged

    # ------------------------------------------------------------------ results without a run
    def _logs(self, doc: dict, message: str | None) -> tuple[Path, Path]:
        """Log files where the inner executor keeps them, with ``message`` in stderr."""
        logs = Path(self.workdir_root) / ".logs"
        name = safe_name(str(doc.get("_id", "token")))
        out, err = logs / f"{name}.out", logs / f"{name}.err"
        try:
            logs.mkdir(parents=True, exist_ok=True)
            out.write_bytes(b"")
            err.write_bytes(f"picas: {message}\n".encode() if message else b"")
        except OSError:
            pass  # the pilot attaches empty logs then; the message is in the token's error too
        return out, err

    def _failed(self, doc: dict, started: float, events: list[dict], failure: StageFailed) -> ExecResult:
        message = str(failure)
        if not events or not events[-1]["event"].endswith("_fail"):
            events = events + [event(Stage(failure.stage), Status.FAIL, time.time(), file=failure.file,
                                     error=str(failure.cause)[:500])]
        out, err = self._logs(doc, message)
        return ExecResult(exit_code=-1, started=started, finished=time.time(), stdout=out, stderr=err,
                          error=message, events=events, token_fields={"failed_stage": failure.stage})

    def _interrupted(self, doc: dict, started: float, events: list[dict]) -> ExecResult:
        out, err = self._logs(doc, None)
        return ExecResult(exit_code=-1, started=started, finished=time.time(), stdout=out, stderr=err,
                          interrupted=True, events=events)

    def _skipped(self, doc: dict, why: str) -> ExecResult:
        now = time.time()
        out, err = self._logs(doc, None)
        return ExecResult(exit_code=0, started=now, finished=now, stdout=out, stderr=err,
                          events=[event(Stage.RUN, Status.SKIP, now, reason=why)],
                          token_fields={"failed_stage": None, "skipped_run": True})

    @staticmethod
    def _remove(workdir: Path) -> None:
        shutil.rmtree(workdir, ignore_errors=True)
