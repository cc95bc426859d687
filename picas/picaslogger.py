"""``picaslogger``: the logger picas 1.1.x scripts import, which prints INFO and up on stderr.

picas itself logs to the ``picas`` logger and, like any library, adds no
handler to it: an application decides where log lines go (for example
``logging.basicConfig(level=logging.INFO)``).  ``picaslogger`` keeps the
1.1.x behaviour for scripts that use it: its own stream handler, with the
1.1.x line format, at level INFO.  It does not pass its records on to the
root logger, so a script that also configures logging does not print each
line twice.
"""
from __future__ import annotations

import logging

__all__ = ["picaslogger", "FORMAT", "formatter", "ch"]

#: The line format of 1.1.x: time, logger name, level, message.
FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

picaslogger = logging.getLogger("PiCaS")
#: The formatter and the stream handler (the 1.1.x names), the same objects after a reload of this module.
ch = next((handler for handler in picaslogger.handlers if getattr(handler, "_picas_classic", False)), None)
if ch is None:
    ch = logging.StreamHandler()
    ch.setFormatter(logging.Formatter(FORMAT))
    ch._picas_classic = True  # type: ignore[attr-defined] - so a reload adds no second handler
    picaslogger.addHandler(ch)
    picaslogger.setLevel(logging.INFO)
    picaslogger.propagate = False
formatter = ch.formatter
