"""The picas 1.1.x storage API (``SRMClient``, ``download_many``), over picas' own transfers.

picas 1.1.x ran the ``srmcp``, ``srmls`` and ``srmrm`` command-line tools,
which are long gone from most grid user interfaces.  Here the same calls go
through :class:`picas.staging.transfer.Transfer`, the layer the pilot's data
staging uses: every URL scheme a storage backend serves here works (``srm://``
and the other grid protocols through gfal2 with its plugins, ``https://``/
``davs://`` WebDAV, ``file://``), with retries, timeouts that grow with the
file, no partial files and checksums.

``SRMClient(logger, host)`` keeps its meaning: a path is appended to
``host`` as text, so ``SRMClient(log, "srm://srm.grid.sara.nl").download(
"/pnfs/grid.sara.nl/data/f.dat")`` fetches ``srm://srm.grid.sara.nl/pnfs/...``.
Errors are :class:`SRMError`, which is both an ``EnvironmentError`` (what
1.1.x raised, so ``except EnvironmentError`` still works) and a
:class:`~picas.errors.PicasError` with the reason from the storage.

Differences from 1.1.2: the module functions ``download``, ``upload`` and
``upload_many`` work instead of raising NotImplementedError (``upload`` and
``upload_many`` need the destination folder, which 1.1.x never took);
``download_many`` raises :class:`SRMError` naming the files that failed
instead of losing the exception in a thread; an upload whose destination
holds the same bytes already is not sent again.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from picas.staging.errors import StagingError
from picas.staging.transfer import Transfer

__all__ = ["SRMClient", "SRMError", "Downloader", "DEFAULT_HOST", "download", "upload", "download_many",
           "upload_many"]

#: The SURF dCache SRM endpoint, 1.1.x's default host (read when a client is made, so it can be changed).
DEFAULT_HOST = "srm://srm.grid.sara.nl/"

log = logging.getLogger("picas")


class SRMError(StagingError, EnvironmentError):
    """A storage operation of the classic API failed (also an EnvironmentError, as in 1.1.x).

    ``errno`` is 10 for a missing file and 11 for one in the way, when
    ``check`` found it (1.1.x's numbers); ``filename`` names the file.
    """

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.strerror = message
        if errno is not None:
            self.errno = errno
        if filename is not None:
            self.filename = filename

    def __str__(self) -> str:
        return self.strerror or ""


class SRMClient:
    """Copies files between this machine and a storage endpoint (see the module docstring).

    ``transfer`` is the :class:`~picas.staging.transfer.Transfer` to use
    (one per client by default; it is thread-safe to share between clients
    only if its backends are, so each :class:`Downloader` makes its own).
    """

    def __init__(self, logger: logging.Logger | None = None, host: str | None = None,
                 transfer: Transfer | None = None) -> None:
        self.logger = logger or logging.getLogger("SRM")
        self.srm_host = host if host is not None else DEFAULT_HOST
        self.transfer = transfer or Transfer()

    def _url(self, path: str) -> str:
        return self.srm_host + path

    def remote_exists(self, loc: str) -> bool:
        """Whether a file (or folder) exists at ``host + loc``."""
        try:
            return self.transfer.stat(self._url(loc)) is not None
        except StagingError as exc:
            raise SRMError(f"cannot check {self._url(loc)}: {exc}") from None

    def upload(self, local_file: str, srm_dir: str, check: bool = False) -> str:
        """Copy ``local_file`` into the folder ``host + srm_dir``; returns the URL of the copy.

        With ``check``, a missing local file (errno 10) or an existing
        remote one (errno 11) is refused before anything is sent.  Without
        it an existing remote file with other content is refused too, by
        the transfer (never overwritten); one with the same bytes is kept.
        """
        url = self._url(os.path.join(srm_dir, os.path.basename(local_file)))
        if check:
            if not os.path.isfile(local_file):
                raise SRMError(f"File not found: {local_file}", 10, local_file)
            if self.remote_exists(os.path.join(srm_dir, os.path.basename(local_file))):
                raise SRMError(f"File exists on the storage: {url}", 11, url)
        self.logger.info("Uploading %s to %s", local_file, url)
        try:
            self.transfer.store(local_file, url)
        except StagingError as exc:
            raise SRMError(f"Upload failed: {exc}", filename=local_file) from None
        return url

    def download(self, srm_file: str, local_dir: str = "./", check: bool = False) -> str:
        """Copy ``host + srm_file`` into ``local_dir``; returns the local path.

        ``check`` only asks the storage first (a missing file is errno 10);
        a missing file fails either way.
        """
        local_file = os.path.join(local_dir, os.path.basename(srm_file))
        url = self._url(srm_file)
        if check and not self.remote_exists(srm_file):
            raise SRMError(f"File not found: {url}", 10, url)
        self.logger.info("Downloading: %s", local_file)
        try:
            self.transfer.fetch(url, local_file)
        except StagingError as exc:
            self.logger.error("Download failed of: %s", srm_file)
            raise SRMError(f"Download failed: {exc}", filename=url) from None
        self.logger.debug("Done downloading %s", local_file)
        return local_file

    def remove(self, srm_file: str) -> bool:
        """Delete ``host + srm_file`` (a file that is not there counts as removed); True."""
        url = self._url(srm_file)
        try:
            self.transfer.registry.for_url(url).delete(url, self.transfer.policy.base_timeout)
        except StagingError as exc:
            self.logger.error("Removal failed of: %s", srm_file)
            raise SRMError(f"Remove failed: {exc}", filename=url) from None
        return True


class Downloader(threading.Thread):
    """A worker thread that downloads the paths in a queue with its own :class:`SRMClient`.

    Failed paths are kept in ``failed`` (with their error) instead of ending
    the thread; :func:`download_many` reports them.
    """

    def __init__(self, q: queue.Queue, logger: logging.Logger | None = None, host: str | None = None,
                 local_dir: str = "./") -> None:
        super().__init__(daemon=False)
        self.q = q
        self.logger = logger or logging.getLogger("SRM")
        self.srm = SRMClient(self.logger, host)
        self.local_dir = local_dir
        self.failed: list[tuple[str, SRMError]] = []

    def run(self) -> None:
        while True:
            try:
                path = self.q.get_nowait()
            except queue.Empty:
                return
            try:
                self.srm.download(path, self.local_dir)
            except SRMError as exc:
                self.logger.error("Download of %s failed: %s", path, exc)
                self.failed.append((path, exc))
            finally:
                self.q.task_done()


def download_many(files: Iterable[str], poolsize: int = 10, logger: logging.Logger | None = None,
                  host: str | None = None, local_dir: str = "./") -> list[str]:
    """Download many paths with ``poolsize`` threads; returns the local paths.

    Every file is tried; afterwards an :class:`SRMError` lists the ones that
    failed.  Keep ``poolsize`` modest: each thread is one more connection
    to the storage.
    """
    work: queue.Queue = queue.Queue()
    paths = list(files)
    for path in paths:
        work.put(path)
    workers = [Downloader(work, logger, host, local_dir) for _ in range(max(1, min(poolsize, len(paths))))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [item for worker in workers for item in worker.failed]
    if failed:
        listed = "; ".join(f"{path}: {exc}" for path, exc in failed)
        raise SRMError(f"{len(failed)} of {len(paths)} download(s) failed: {listed}")
    return [os.path.join(local_dir, os.path.basename(path)) for path in paths]


def download(remotefile: str, local_dir: str = "./") -> str:
    """Download one file given by its full URL into ``local_dir``; returns the local path."""
    return SRMClient(host="").download(remotefile, local_dir)


def upload(localfile: str, destination: str) -> str:
    """Upload one file into the folder URL ``destination``; returns the URL of the copy."""
    return SRMClient(host="").upload(localfile, destination)


def upload_many(files: Iterable[str], destination: str, poolsize: int = 10) -> list[str]:
    """Upload many files into the folder URL ``destination`` with ``poolsize`` threads; returns their URLs.

    Every file is tried; afterwards an :class:`SRMError` lists the ones that failed.
    """
    paths = list(files)
    results: list[str] = []
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(poolsize, len(paths) or 1))) as pool:
        for path, outcome in zip(paths, pool.map(lambda p: _try_upload(p, destination), paths)):
            if isinstance(outcome, SRMError):
                failed.append(f"{path}: {outcome}")
            else:
                results.append(outcome)
    if failed:
        raise SRMError(f"{len(failed)} of {len(paths)} upload(s) failed: {'; '.join(failed)}")
    return results


def _try_upload(path: str, destination: str) -> str | SRMError:
    try:
        return SRMClient(host="").upload(path, destination)
    except SRMError as exc:
        return exc
