"""file:// URLs: a shared file system, or a local disk, through the standard library.

A file is written under a temporary name in the destination folder and then
linked (no overwrite: the link fails if the name exists, atomically) or
renamed (overwrite) into place, so a reader never sees half a file and a
crash leaves no file under the real name.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Iterator

from picas.staging.checksum import CHUNK, Hasher, file_digests
from picas.staging.errors import AccessDenied, DestinationExists, SourceMissing, TransferError
from picas.staging.storage import Cancel, RemoteFile, Storage, pump

__all__ = ["FileStorage", "path_of"]


def path_of(url: str) -> Path:
    """The local path of a ``file://`` URL (percent-decoded)."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _error(exc: OSError, url: str, what: str) -> TransferError:
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return SourceMissing(f"{what}: {url} does not exist", url=url)
    if isinstance(exc, PermissionError):
        return AccessDenied(f"{what}: permission denied on {url}", url=url)
    # A stale NFS handle or an I/O error on a network file system may pass; a full disk will not.
    transient = exc.errno in (errno.EIO, errno.ESTALE, errno.EAGAIN, errno.EINTR)
    return TransferError(f"{what} {url}: {reason}", url=url, transient=transient)


class FileStorage(Storage):
    """The ``file`` scheme, with nothing but the standard library."""

    name = "file"

    def schemes(self) -> frozenset[str]:
        return frozenset({"file"})

    def stat(self, url: str, timeout: float) -> RemoteFile | None:
        try:
            st = path_of(url).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _error(exc, url, "cannot look at") from None
        return RemoteFile(size=st.st_size, is_dir=os.path.isdir(path_of(url)))

    def get(self, url: str, path, timeout: float, algorithms: tuple[str, ...] = (),
            cancel: Cancel | None = None) -> dict[str, str]:
        hashers = [Hasher(name) for name in dict.fromkeys(algorithms)]
        deadline = time.monotonic() + timeout
        try:
            with open(path_of(url), "rb") as src, open(path, "wb") as dst:
                if hashers or cancel is not None:
                    pump(iter(lambda: src.read(CHUNK), b""), dst, hashers, deadline, cancel, f"copying {url}", url)
                else:
                    shutil.copyfileobj(src, dst, CHUNK)
        except OSError as exc:
            raise _error(exc, url, "cannot read") from None
        return {hasher.algorithm: hasher.hexdigest() for hasher in hashers}

    def put(self, path, url: str, overwrite: bool, timeout: float, cancel: Cancel | None = None) -> None:
        target = path_of(url)
        temp = target.with_name(f".{target.name}.picas-{uuid.uuid4().hex[:8]}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as src, open(temp, "wb") as dst:
                pump(iter(lambda: src.read(CHUNK), b""), dst, [], time.monotonic() + timeout, cancel,
                     f"copying {url}", url)
                dst.flush()
                os.fsync(dst.fileno())
            if overwrite:
                os.replace(temp, target)
            else:
                self._link_new(temp, target, url)
        except FileNotFoundError as exc:
            if not Path(path).exists():
                raise SourceMissing(f"the local file {path} does not exist") from None
            raise _error(exc, url, "cannot write") from None
        except OSError as exc:
            raise _error(exc, url, "cannot write") from None
        finally:
            try:
                temp.unlink()
            except OSError:
                pass

    @staticmethod
    def _link_new(temp: Path, target: Path, url: str) -> None:
        """Put ``temp`` at ``target`` unless something is there; a hard link makes that atomic."""
        try:
            os.link(temp, target)
        except FileExistsError:
            raise DestinationExists(f"{url} already exists", url=url) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise
            # A file system without hard links: check, then rename (a race here is the file system's limit).
            if target.exists():
                raise DestinationExists(f"{url} already exists", url=url) from None
            os.rename(temp, target)

    def checksum(self, url: str, algorithm: str, timeout: float) -> str | None:
        try:
            return file_digests(path_of(url), [algorithm])[algorithm]
        except OSError as exc:
            raise _error(exc, url, "cannot read") from None

    def read(self, url: str, timeout: float) -> Iterator[bytes]:
        try:
            handle = open(path_of(url), "rb")
        except OSError as exc:
            raise _error(exc, url, "cannot read") from None
        with handle:
            yield from iter(lambda: handle.read(CHUNK), b"")

    def delete(self, url: str, timeout: float) -> None:
        try:
            path_of(url).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _error(exc, url, "cannot delete") from None

    def mkdir(self, url: str, timeout: float) -> None:
        try:
            path_of(url).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _error(exc, url, "cannot create the folder") from None

    def listdir(self, url: str, timeout: float) -> list[str]:
        try:
            return sorted(os.listdir(path_of(url)))
        except OSError as exc:
            raise _error(exc, url, "cannot list") from None
