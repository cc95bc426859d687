"""The stages of one token: stage-in before the payload, stage-out after it, each reported as events.

:class:`Stager` walks a token's staging plan through :class:`Transfer`, one
file at a time, and stops a stage at its first failing file: the token ends
in error with a reason that names the stage and the file.  Every stage leaves
a :class:`StageReport` whose :meth:`~StageReport.events` are the history
entries of the token: ``stage_in_start`` then ``stage_in_success`` or
``stage_in_fail`` (likewise ``run_*`` and ``stage_out_*``), with times, files,
bytes, seconds, the files skipped because the storage already had them, and
the error.
"""
from __future__ import annotations

import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from picas.core.states import Name
from picas.errors import PicasError
from picas.staging.errors import SourceMissing, StageFailed, StagingError, TransferError
from picas.staging.spec import StageIn, StageOut, is_glob, recorded_outputs
from picas.staging.transfer import FileResult, Transfer

__all__ = ["Stage", "Status", "StageReport", "Stager", "event"]

log = logging.getLogger("picas.staging")
#: At most this many skipped destinations are named in one history entry (the history is short).
SKIPPED_LISTED = 20


class Stage(Name):
    """The three stages of a staged token, in order."""

    STAGE_IN = "stage_in"
    RUN = "run"
    STAGE_OUT = "stage_out"


class Status(Name):
    START = "start"
    SUCCESS = "success"
    FAIL = "fail"
    #: The run was skipped: every output it recorded before is still at its destination.
    SKIP = "skip"


def event(stage: Stage, status: Status, when: float, **extra: object) -> dict:
    """One history entry: ``{"event": "stage_in_start", "time": ..., ...}`` (None values left out)."""
    entry = {"event": f"{stage.value}_{status.value}", "time": int(when)}
    entry.update({key: value for key, value in extra.items() if value is not None})
    return entry


@dataclass
class StageReport:
    """What one stage did: the files it moved or skipped, and the failure that ended it, if any."""

    stage: Stage
    planned: int
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    files: list[FileResult] = field(default_factory=list)
    failure: StageFailed | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.interrupted

    @property
    def bytes(self) -> int:
        return sum(result.size for result in self.files if not result.skipped)

    @property
    def skipped(self) -> list[str]:
        return [result.dst for result in self.files if result.skipped]

    def events(self) -> list[dict]:
        seconds = round(max(0.0, self.finished - self.started), 3)
        entries = [event(self.stage, Status.START, self.started, files=self.planned)]
        if self.failure is not None:
            entries.append(event(self.stage, Status.FAIL, self.finished, file=self.failure.file,
                                 error=str(self.failure.cause)[:500], bytes=self.bytes, seconds=seconds))
        elif not self.interrupted:
            skipped = self.skipped
            entries.append(event(self.stage, Status.SUCCESS, self.finished, files=len(self.files), bytes=self.bytes,
                                 seconds=seconds, skipped=skipped[:SKIPPED_LISTED] or None,
                                 skipped_count=len(skipped) if len(skipped) > SKIPPED_LISTED else None))
        return entries

    def outputs(self) -> dict[str, dict]:
        """``{destination URL: {"size", "checksum"}}`` of every file now at its destination."""
        return {result.dst: {"size": result.size, "checksum": result.checksum()} for result in self.files}


def expand(entry: StageOut, workdir: Path) -> list[tuple[Path, str]]:
    """The (local file, destination URL) pairs of a stage-out entry; a glob keeps paths below its fixed part."""
    if not entry.is_glob:
        path = workdir / entry.src
        return [(path, entry.dst)] if path.is_file() else []
    parts = PurePosixPath(entry.src).parts
    fixed = Path(*[p for p in parts[:next(i for i, p in enumerate(parts) if is_glob(p))]]) if parts else Path()
    base = (workdir / fixed).resolve()
    pairs = []
    for path in sorted(workdir.glob(entry.src)):
        if not path.is_file():
            continue
        relative = path.resolve().relative_to(base).as_posix() if path.resolve().is_relative_to(base) else path.name
        pairs.append((path, entry.dst + urllib.parse.quote(relative, safe="/")))
    return pairs


class Stager:
    """Runs the stage-in and stage-out of tokens through one :class:`Transfer`."""

    def __init__(self, transfer: Transfer | None = None) -> None:
        self.transfer = transfer or Transfer()

    def stage_in(self, entries: tuple[StageIn, ...], workdir: Path,
                 should_stop: Callable[[], bool] = lambda: False) -> StageReport:
        report = StageReport(Stage.STAGE_IN, planned=len(entries))
        self.transfer.cancel = should_stop
        for entry in entries:
            if should_stop():
                report.interrupted = True
                break
            try:
                report.files.append(self.transfer.fetch(entry.src, workdir / entry.dst, entry.checksum))
            except PicasError as exc:
                report.interrupted = should_stop()
                report.failure = None if report.interrupted else StageFailed(Stage.STAGE_IN.value, entry.dst, exc)
                break
        report.finished = time.time()
        return report

    def stage_out(self, entries: tuple[StageOut, ...], workdir: Path,
                  should_stop: Callable[[], bool] = lambda: False) -> StageReport:
        report = StageReport(Stage.STAGE_OUT, planned=0)
        self.transfer.cancel = should_stop
        pairs: list[tuple[Path, str, bool]] = []
        try:
            for entry in entries:
                found = expand(entry, workdir)
                if not found and not entry.optional:
                    what = "no file matches it" if entry.is_glob else "the payload did not write it"
                    raise StageFailed(Stage.STAGE_OUT.value, entry.src, SourceMissing(what))
                pairs.extend((path, url, entry.overwrite) for path, url in found)
            seen: dict[str, Path] = {}
            for path, url, _ in pairs:
                if url in seen:
                    raise StageFailed(Stage.STAGE_OUT.value, str(path.relative_to(workdir)), TransferError(
                        f"{seen[url].relative_to(workdir)} goes to the same destination {url}", transient=False))
                seen[url] = path
        except StageFailed as exc:
            report.failure = exc
            report.finished = time.time()
            return report
        report.planned = len(pairs)
        for path, url, overwrite in pairs:
            if should_stop():
                report.interrupted = True
                break
            try:
                result = self.transfer.store(path, url, overwrite=overwrite)
            except PicasError as exc:
                report.interrupted = should_stop()
                if not report.interrupted:
                    report.failure = StageFailed(Stage.STAGE_OUT.value, path.relative_to(workdir).as_posix(), exc)
                break
            if result.skipped:
                log.info("%s is already at %s with the same checksum: not uploaded again", path.name, url)
            report.files.append(result)
        report.finished = time.time()
        return report

    def outputs_present(self, doc: dict) -> tuple[bool, str]:
        """Whether every output an earlier run recorded is at its destination with its checksum, and why not."""
        recorded = recorded_outputs(doc)
        if not recorded:
            return False, "no outputs recorded"
        for url, (size, checksum) in recorded.items():
            try:
                if not self.transfer.holds(url, size, checksum):
                    return False, f"{url} is missing or differs"
            except StagingError as exc:
                return False, f"cannot check {url}: {exc}"
        return True, f"all {len(recorded)} recorded outputs are present"
