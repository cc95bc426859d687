"""The storage contract: what a backend must do for picas to stage files through it.

A backend is one way of reaching storage (gfal2, plain files, WebDAV over
urllib3).  The stager never names one: it asks the registry
(:mod:`picas.staging.registry`) for the backend of a URL's scheme and uses
only the methods below.  To add a backend, subclass :class:`Storage`, say
which schemes it serves, and add it to the registry's list.

The contract, method by method:

``schemes()``
    The URL schemes this backend serves here and now (gfal2's depend on the
    plugins installed).  ``available()`` (a classmethod) says whether the
    backend can work at all on this machine; ``missing(scheme)`` says what
    to install for a scheme it could serve but does not, or None.
``stat(url, timeout)``
    :class:`RemoteFile` (size, folder or not) or None when nothing is there.
``get(url, path, timeout, algorithms, cancel)``
    Copy the file at ``url`` to the local ``path`` (overwriting ``path``,
    creating nothing else).  Returns the digests of the bytes written for the
    ``algorithms`` it could compute on the way (may be empty: the caller then
    reads the file).  Must not leave a half-written ``path`` it claims is
    complete: on any failure, raise.
``put(path, url, overwrite, timeout, cancel)``
    Copy the local file ``path`` to ``url``, creating missing parent folders.
    With ``overwrite=False`` an existing destination is
    :class:`~picas.staging.errors.DestinationExists`.  On failure, remove
    what it wrote when it can.
``checksum(url, algorithm, timeout)``
    The checksum the *storage* computes or keeps, or None when it offers
    none (the caller then streams the file through :meth:`read`).
``read(url, timeout)``
    An iterator over the file's bytes, in chunks.
``delete(url, timeout)``, ``mkdir(url, timeout)``, ``listdir(url, timeout)``
    Remove a file (absent is fine); make a folder with its parents (present
    is fine); the names in a folder.

Every method raises :class:`~picas.staging.errors.TransferError` (or a
subclass) on failure, with ``transient`` set when another try may help.
``timeout`` bounds the whole operation in seconds; ``cancel``, when given,
is polled during long copies and stops them with a transient error.
Credentials come from the environment only (:mod:`picas.staging.credentials`).
"""
from __future__ import annotations

import abc
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Callable, ClassVar, Iterable, Iterator, Sequence

from picas.staging.errors import TransferError

if TYPE_CHECKING:
    from picas.staging.checksum import Hasher

__all__ = ["Storage", "RemoteFile", "scheme_of", "Cancel", "check_progress", "pump"]

Cancel = Callable[[], bool]


def check_progress(deadline: float, cancel: Cancel | None, what: str, url: str) -> None:
    """Raise :class:`TransferError` when a transfer is past its deadline or was cancelled.

    Backends call it at every chunk, so a stalled or unwanted transfer ends
    within one chunk however it moves its bytes.  ``what`` names the
    transfer in the message (``"downloading https://..."``, password-free).
    """
    if time.monotonic() > deadline:
        raise TransferError(f"{what} took longer than its timeout", url=url)
    if cancel is not None and cancel():
        raise TransferError(f"{what} was cancelled", url=url)


def pump(chunks: Iterable[bytes], out: BinaryIO, hashers: Sequence[Hasher], deadline: float,
         cancel: Cancel | None, what: str, url: str) -> None:
    """Write ``chunks`` to ``out``, feeding ``hashers`` on the way, checking :func:`check_progress` per chunk."""
    for chunk in chunks:
        out.write(chunk)
        for hasher in hashers:
            hasher.update(chunk)
        check_progress(deadline, cancel, what, url)


def scheme_of(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


@dataclass(frozen=True)
class RemoteFile:
    """What a storage says about one name: its size in bytes (None: not said) and whether it is a folder."""

    size: int | None
    is_dir: bool = False


class Storage(abc.ABC):
    """One way of reaching storage; see the module docstring for the contract of each method."""

    #: A short name for messages and for ``PICAS_STAGING_BACKEND``.
    name: ClassVar[str] = ""

    def __init__(self, environ: dict | None = None) -> None:
        """``environ``: where credentials are looked up (the process environment by default)."""
        self.environ = os.environ if environ is None else environ

    @classmethod
    def available(cls) -> bool:
        """Whether this backend can work on this machine (its library imports)."""
        return True

    @classmethod
    def missing(cls, scheme: str) -> str | None:
        """What to install so that this backend serves ``scheme``; None if it never could."""
        return None

    @abc.abstractmethod
    def schemes(self) -> frozenset[str]:
        ...

    @abc.abstractmethod
    def stat(self, url: str, timeout: float) -> RemoteFile | None:
        ...

    @abc.abstractmethod
    def get(self, url: str, path, timeout: float, algorithms: tuple[str, ...] = (),
            cancel: Cancel | None = None) -> dict[str, str]:
        ...

    @abc.abstractmethod
    def put(self, path, url: str, overwrite: bool, timeout: float, cancel: Cancel | None = None) -> None:
        ...

    @abc.abstractmethod
    def checksum(self, url: str, algorithm: str, timeout: float) -> str | None:
        ...

    @abc.abstractmethod
    def read(self, url: str, timeout: float) -> Iterator[bytes]:
        ...

    @abc.abstractmethod
    def delete(self, url: str, timeout: float) -> None:
        ...

    @abc.abstractmethod
    def mkdir(self, url: str, timeout: float) -> None:
        ...

    @abc.abstractmethod
    def listdir(self, url: str, timeout: float) -> list[str]:
        ...

    def close(self) -> None:
        """Release connections; the backend may be used again afterwards."""
