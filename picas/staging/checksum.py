"""File checksums as the grid writes them: ``adler32:<8 lowercase hex digits>`` or ``md5:<32 hex digits>``.

adler32 is what grid storage (dCache, EOS, XRootD, FTS) records and
compares, so staged files are checked with it by default; md5 is what the
manifests use, because that is what users check by hand with ``md5sum``.
Both are computed while the bytes stream, in one pass over a file, so a
large file is read once whatever is asked of it.  Digests of local files are
remembered by (path, size, mtime, inode), because a staged file's checksum is
wanted again by the manifests moments later.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from picas.errors import InvalidInput

#: The checksum algorithms picas understands, and the hex digits of each.
ALGORITHMS = {"adler32": 8, "md5": 32}
#: The algorithm recorded for outputs and compared with storage.
DEFAULT_ALGORITHM = "adler32"
CHUNK = 1024 * 1024
_HEX = re.compile(r"^[0-9a-fA-F]+$")

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "Checksum", "Hasher", "file_digests", "normalize", "digest_chunks"]


def normalize(algorithm: str, value: str) -> str:
    """The canonical hex of a checksum: lowercase, adler32 zero-padded to 8 digits; InvalidInput if malformed."""
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise InvalidInput(f"unknown checksum algorithm '{algorithm}'; use one of {', '.join(sorted(ALGORITHMS))}")
    value = value.strip()
    width = ALGORITHMS[algorithm]
    if not _HEX.match(value) or len(value) > width or (algorithm == "md5" and len(value) != width):
        raise InvalidInput(f"'{value}' is not a valid {algorithm} checksum ({width} hex digits)")
    return value.lower().zfill(width)


@dataclass(frozen=True)
class Checksum:
    """One checksum value; ``str()`` gives the ``algorithm:hex`` form stored in tokens."""

    algorithm: str
    value: str

    @classmethod
    def parse(cls, text: str) -> "Checksum":
        """Read ``adler32:1a2b3c4d`` or ``md5:...``; InvalidInput says what is wrong with anything else."""
        if not isinstance(text, str) or ":" not in text:
            raise InvalidInput(f"checksum {text!r} must look like 'adler32:<hex>' or 'md5:<hex>'")
        algorithm, _, value = text.partition(":")
        algorithm = algorithm.strip().lower()
        return cls(algorithm, normalize(algorithm, value))

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


class Hasher:
    """A running checksum of one algorithm, fed chunk by chunk."""

    def __init__(self, algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidInput(f"unknown checksum algorithm '{algorithm}'")
        self.algorithm = algorithm
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False) if algorithm == "md5" else None

    def update(self, chunk: bytes) -> None:
        if self._md5 is not None:
            self._md5.update(chunk)
        else:
            self._adler = zlib.adler32(chunk, self._adler)

    def hexdigest(self) -> str:
        if self._md5 is not None:
            return self._md5.hexdigest()
        return f"{self._adler & 0xFFFFFFFF:08x}"


def digest_chunks(chunks: Iterable[bytes], algorithms: Iterable[str]) -> dict[str, str]:
    """Digests of a stream of chunks, every algorithm in the same pass."""
    hashers = [Hasher(name) for name in dict.fromkeys(algorithms)]
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)
    return {hasher.algorithm: hasher.hexdigest() for hasher in hashers}


_cache: dict[tuple, dict[str, str]] = {}
_cache_lock = threading.Lock()
_CACHE_LIMIT = 4096


def _key(path: Path) -> tuple:
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def remember(path: Path, digests: dict[str, str]) -> None:
    """Record digests computed elsewhere (while a file was downloaded), so nobody reads the file again."""
    key = _key(path)
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = {**_cache.get(key, {}), **digests}


def file_digests(path: Path | str, algorithms: Iterable[str]) -> dict[str, str]:
    """Digests of a local file; the algorithms not yet known for this exact file are computed in one read."""
    path = Path(path)
    wanted = list(dict.fromkeys(algorithms))
    key = _key(path)
    with _cache_lock:
        known = dict(_cache.get(key, {}))
    missing = [name for name in wanted if name not in known]
    if missing:
        with open(path, "rb") as handle:
            known.update(digest_chunks(iter(lambda: handle.read(CHUNK), b""), missing))
        if _key(path) == key:  # a file that changed while it was read is not remembered
            with _cache_lock:
                if len(_cache) >= _CACHE_LIMIT:
                    _cache.clear()
                _cache[key] = known
    return {name: known[name] for name in wanted}
