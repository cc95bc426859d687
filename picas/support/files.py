"""Files that hold a secret (a password, a pid record with an admin URL), written whole or not at all.

Such a file is created with mode 0600 from its first byte, as a temporary file
in the same directory that is renamed over the old one: no other user can
read it even for a moment, and a crash or a full disk leaves the old file,
never a half-written one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path | str, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8), readable and writable by its owner only.

    A missing directory is created with mode 0700, since it is about to hold
    a secret.  The data is flushed to disk before the rename, so that after a
    power cut the file is either the old one or the new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp uses 0600 already; say it whatever the umask or platform
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
