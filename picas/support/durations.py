"""Durations as people write them (``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``) and read them.

One parser for every option and setting that takes a duration, and one
formatter for every table and line that shows one, so that what picas prints
can be typed back in.  The command-line type built on the parser is
:data:`picas.cli.options.DURATION`.
"""
from __future__ import annotations

import math
import re

from picas.errors import InvalidInput

__all__ = ["parse_duration", "format_duration", "UNITS"]

#: Seconds per unit letter.
UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text``: a bare number is seconds; parts such as ``1h30m`` add up.

    Raises :class:`~picas.errors.InvalidInput` saying what is accepted; a
    negative or not-a-number duration is refused too.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        value = str(text).strip()
        try:
            seconds = float(value)
        except ValueError:
            compact = value.replace(" ", "")
            parts = _PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
                raise InvalidInput(f"cannot read the duration {text!r}",
                                   hint="use e.g. 90s, 30m, 2h, 1d or 1h30m") from None
            seconds = sum(float(number) * UNITS[unit.lower()] for number, unit in parts)
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise InvalidInput(f"the duration {text!r} is not a finite, non-negative number of seconds")
    return seconds


def format_duration(seconds: float | None, parts: int = 2, unknown: str = "unknown") -> str:
    """The largest ``parts`` units of a duration: ``1h 02m``, ``3m 20s``, ``45s``; ``unknown`` for None.

    ``parts=1`` gives the short form of narrow table columns (``5m``,
    ``3h``).  Every result is itself a valid input of :func:`parse_duration`
    (rounded down to the units shown).  Weeks are not used: ``9d`` reads
    better than ``1w2d``.
    """
    if seconds is None:
        return unknown
    rest = max(0, int(round(seconds)))
    pieces: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = UNITS[unit]
        if rest >= size or (unit == "s" and not pieces):
            amount, rest = divmod(rest, size)
            pieces.append(f"{amount:02d}{unit}" if pieces else f"{amount}{unit}")
        elif pieces:
            pieces.append(f"00{unit}")
        if len(pieces) == parts:
            break
    return " ".join(pieces)
