"""One function run in a thread of its own while the caller goes on: checksums beside transfers.

Hashing a large file and copying it are both slow and both let go of the
GIL (zlib, hashlib and gfal2 do, socket I/O does), so running them side by
side costs the time of the slower one instead of the sum.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

__all__ = ["Background"]

T = TypeVar("T")


class Background(Generic[T]):
    """One function run in a thread of its own; :meth:`result` waits for it and re-raises what it raised."""

    def __init__(self, function: Callable[[], T]) -> None:
        self._function = function
        self._outcome: tuple[bool, object] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = (True, self._function())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            self._outcome = (False, exc)

    def result(self) -> T:
        self._thread.join()
        ok, value = self._outcome
        if not ok:
            raise value
        return value
