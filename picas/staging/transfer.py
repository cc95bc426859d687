"""One file in or out, done properly: retries, a timeout that grows with the size, checksums, no overwrite.

:class:`Transfer` is the layer every copy in picas goes through (the pilot's
stager, and the classic ``picas.srm`` API).  It asks the registry for the
backend of each URL and adds what a backend does not promise:

* **bounded retries** with backoff and jitter (:class:`picas.core.retry.Backoff`)
  for transient failures only: a missing source, a refused login, a file
  that is in the way or a wrong checksum fail at once;
* a **timeout** of ``base_timeout + size / min_rate`` per attempt, so a
  10 GB file gets the time it needs and a stalled 1 kB file does not hang;
* **no partial files**: a download goes to a temporary name next to its
  destination and is renamed only once complete and checked; an upload that
  failed is removed by the backend, and a retry may replace what an earlier
  attempt of its own left behind, never a file someone else wrote;
* **checksums**: a given stage-in checksum is verified; every upload has its
  adler32 (and md5) computed, its size checked after the upload, and its
  checksum compared with the storage's own when the storage keeps one;
* **skip**: an upload whose destination already holds the same bytes (same
  size and checksum) is not sent again.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from picas.core.retry import Backoff
from picas.staging.background import Background
from picas.staging.checksum import DEFAULT_ALGORITHM, Checksum, digest_chunks, file_digests, remember
from picas.staging.errors import ChecksumMismatch, DestinationExists, SourceMissing, TransferError
from picas.staging.registry import Registry
from picas.staging.storage import Cancel, RemoteFile
from picas.support.credentials import redact_url

__all__ = ["Transfer", "TransferPolicy", "FileResult"]

log = logging.getLogger("picas.staging")
T = TypeVar("T")


@dataclass
class TransferPolicy:
    """How hard and how long to try; the defaults suit a grid worker node."""

    attempts: int = 4
    base_delay: float = 2.0
    max_delay: float = 60.0
    base_timeout: float = 120.0
    #: The slowest rate (bytes/s) a transfer may run at before it counts as stalled.
    min_rate: float = 1024 * 1024
    algorithm: str = DEFAULT_ALGORITHM

    def timeout_for(self, size: int) -> float:
        return self.base_timeout + max(0, size) / self.min_rate

    def backoff(self) -> Backoff:
        return Backoff(base=self.base_delay, cap=self.max_delay, attempts=max(1, self.attempts))


@dataclass
class FileResult:
    """What happened to one file."""

    src: str
    dst: str
    size: int
    seconds: float
    attempts: int
    digests: dict[str, str] = field(default_factory=dict)
    skipped: bool = False

    def checksum(self, algorithm: str = DEFAULT_ALGORITHM) -> str:
        return f"{algorithm}:{self.digests[algorithm]}"


class Transfer:
    """Copies single files between local paths and storage URLs; see the module docstring."""

    def __init__(self, registry: Registry | None = None, policy: TransferPolicy | None = None,
                 cancel: Cancel | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.registry = registry or Registry()
        self.policy = policy or TransferPolicy()
        self.cancel = cancel
        self.sleep = sleep

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel()

    def _retry(self, what: str, url: str, action: Callable[[int], T]) -> tuple[T, int]:
        """Run ``action(attempt)`` until it succeeds, fails for good, or the attempts are spent."""
        run = self.policy.backoff().start()
        attempt = 0
        while True:
            attempt += 1
            try:
                return action(attempt), attempt
            except TransferError as exc:
                delay = run.next_delay() if exc.transient else None
                if delay is None or self._cancelled():
                    if exc.transient and attempt > 1:
                        raise TransferError(f"{exc} (gave up after {attempt} tries)", url=exc.url) from None
                    raise
                log.warning("%s %s failed (%s); try %d of %d in %.1f s", what, redact_url(url), exc, attempt + 1,
                            self.policy.attempts, delay)
                self.sleep(delay)

    def stat(self, url: str) -> RemoteFile | None:
        """What is at ``url`` (None: nothing), with retries."""
        storage = self.registry.for_url(url)
        return self._retry("stat", url, lambda _: storage.stat(url, self.policy.base_timeout))[0]

    # ------------------------------------------------------------------ in
    def fetch(self, url: str, path: Path | str, checksum: Checksum | None = None,
              algorithms: tuple[str, ...] = ()) -> FileResult:
        """Download ``url`` to ``path``; with ``checksum`` the file is verified before it takes its name.

        ``algorithms``: digests wanted besides the checksum's own (in ``FileResult.digests``); a
        backend whose bytes pass through Python computes them on the way, at no extra read.
        """
        path = Path(path)
        started = time.monotonic()
        storage = self.registry.for_url(url)
        info = self.stat(url)
        if info is None:
            raise SourceMissing(f"{redact_url(url)} does not exist", url=url)
        if info.is_dir:
            raise TransferError(f"{redact_url(url)} is a folder, not a file", url=url, transient=False)
        wanted = tuple(dict.fromkeys((*algorithms, *((checksum.algorithm,) if checksum else ()))))
        timeout = self.policy.timeout_for(info.size or 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.picas-part")

        def attempt(_: int) -> dict[str, str]:
            try:
                digests = storage.get(url, partial, timeout, wanted, self.cancel)
                got = partial.stat().st_size
            except BaseException:
                _unlink(partial)
                raise
            if info.size is not None and got != info.size:
                _unlink(partial)
                raise TransferError(f"{redact_url(url)}: got {got} of {info.size} bytes", url=url)
            return digests

        digests, attempts = self._retry("download", url, attempt)
        try:
            missing = [name for name in wanted if name not in digests]
            if missing:
                digests.update(file_digests(partial, missing))
            if checksum is not None and digests[checksum.algorithm] != checksum.value:
                raise ChecksumMismatch(f"{redact_url(url)} has {checksum.algorithm} "
                                       f"{digests[checksum.algorithm]}, but the token expects {checksum.value}",
                                       url=url)
            os.replace(partial, path)
        finally:
            _unlink(partial)
        remember(path, digests)
        return FileResult(src=url, dst=str(path), size=path.stat().st_size, seconds=time.monotonic() - started,
                          attempts=attempts, digests=digests)

    # ------------------------------------------------------------------ out
    def remote_checksum(self, url: str, algorithm: str | None = None) -> str:
        """The checksum of the file at ``url``: the storage's own, else computed by reading the file."""
        algorithm = algorithm or self.policy.algorithm
        storage = self.registry.for_url(url)

        def attempt(_: int) -> str:
            value = storage.checksum(url, algorithm, self.policy.base_timeout)
            if value is None:
                info = storage.stat(url, self.policy.base_timeout)
                value = digest_chunks(storage.read(url, self.policy.timeout_for(info.size or 0 if info else 0)),
                                      [algorithm])[algorithm]
            return value

        return self._retry("checksum", url, attempt)[0]

    def holds(self, url: str, size: int, checksum: Checksum) -> bool:
        """Whether ``url`` holds a file of this size and checksum (the size is compared first: cheap)."""
        info = self.stat(url)
        if info is None or info.is_dir or info.size not in (size, None):
            return False
        return self.remote_checksum(url, checksum.algorithm) == checksum.value

    def store(self, path: Path | str, url: str, overwrite: bool = False) -> FileResult:
        """Upload ``path`` to ``url``; skipped when ``url`` already holds the same bytes.

        The local file's checksum is computed in a thread of its own while the
        destination is looked at and the bytes travel (zlib and gfal2 let go of
        the GIL), so it costs no time of its own unless the upload is quicker.
        """
        path = Path(path)
        started = time.monotonic()
        if not path.is_file():
            raise SourceMissing(f"the local file {path} does not exist")
        size = path.stat().st_size
        algorithm = self.policy.algorithm
        local = Background(lambda: Checksum(algorithm, file_digests(path, (algorithm,))[algorithm]))
        storage = self.registry.for_url(url)
        existing = self.stat(url)
        if existing is not None:
            if existing.is_dir:
                raise TransferError(f"{redact_url(url)} is a folder; name a file, or end the URL with '/' "
                                    f"to copy into it", url=url, transient=False)
            if existing.size in (size, None) and self.remote_checksum(url, algorithm) == local.result().value:
                return FileResult(src=str(path), dst=url, size=size, seconds=time.monotonic() - started,
                                  attempts=0, digests={algorithm: local.result().value}, skipped=True)
            if not overwrite:
                raise DestinationExists(f"{redact_url(url)} already exists with different content "
                                        f"({_bytes(existing.size)} there, {size} here)", url=url)
        timeout = self.policy.timeout_for(size)

        def attempt(number: int) -> None:
            # Nothing was there before the first attempt, so what is there now is ours to replace.
            replace = overwrite or (existing is None and number > 1)
            storage.put(path, url, replace, timeout, self.cancel)
            after = storage.stat(url, self.policy.base_timeout)
            if after is None or after.size not in (size, None):
                raise TransferError(f"{redact_url(url)} holds {_bytes(after.size) if after else 'nothing'} after "
                                    f"the upload of {size}", url=url)
            kept = storage.checksum(url, algorithm, self.policy.base_timeout)
            if kept is not None and kept != local.result().value:
                raise TransferError(f"{redact_url(url)} has {algorithm} {kept} after the upload; the local file "
                                    f"has {local.result().value}", url=url)

        attempts = self._retry("upload", url, attempt)[1]
        return FileResult(src=str(path), dst=url, size=size, seconds=time.monotonic() - started,
                          attempts=attempts, digests={algorithm: local.result().value})

    def delete(self, url: str) -> None:
        """Remove the file at ``url`` (nothing there is fine), with retries."""
        storage = self.registry.for_url(url)
        self._retry("delete", url, lambda _: storage.delete(url, self.policy.base_timeout))

    def listdir(self, url: str) -> list[str]:
        """The names in the folder at ``url``, with retries."""
        storage = self.registry.for_url(url)
        return self._retry("list", url, lambda _: storage.listdir(url, self.policy.base_timeout))[0]

    def close(self) -> None:
        self.registry.close()


def _bytes(size: int | None) -> str:
    return "an unknown number of bytes" if size is None else f"{size} bytes"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
