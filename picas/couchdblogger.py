"""``CouchDBLogger``: a logging handler that stores each record as a document in a CouchDB database.

The picas 1.1.x handler, on picas' own client.  Each record becomes one
document of ``type: "log"`` with the 1.1.x fields: ``lvl`` (the level
number), ``msg``, ``created`` (epoch seconds), ``func``, ``host`` and
``trance_nr`` (sic: the 1.1.x spelling, kept so that existing views still
find it), a random number that tells the processes of one host apart.

Differences from 1.1.2: ``msg`` is the message with its arguments filled
in (1.1.2 stored the format string); a document id is unique per record
(``host:created:sequence``; 1.1.2 used ``host:seconds`` and, on the
collision of two records in one second, retried ten times half a second
apart, blocking the program); a record that cannot be stored after a few
quick retries goes to :meth:`logging.Handler.handleError`, as in every
logging handler, instead of being printed; credentials may be given apart
from the URL.
"""
from __future__ import annotations

import itertools
import logging
import random
import socket

from picas.core.client import CouchClient
from picas.core.retry import Backoff
from picas.errors import PicasError

__all__ = ["CouchDBLogger", "default_log_formatter"]

#: The 1.1.x line format, for handlers that print.
default_log_formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")


class CouchDBLogger(logging.Handler):
    """Stores log records in the database ``db`` on the server at ``url`` (which may carry ``user:pw@``)."""

    def __init__(self, url: str, db: str, username: str | None = None, password: str | None = None,
                 verify: bool | str = True) -> None:
        super().__init__()
        # Few, quick retries: a logging call must not hold the program up for long.
        self.client = CouchClient(url, db, username=username, password=password, verify=verify,
                                  timeout=10.0, retry=Backoff(base=0.1, cap=1.0, attempts=3))
        self.hostname = socket.gethostname()
        self.trace_nr = random.SystemRandom().randrange(100000)
        self._sequence = itertools.count()

    def document(self, record: logging.LogRecord) -> dict:
        """The document stored for ``record``."""
        return {
            "_id": f"{self.hostname}:{record.created:.6f}:{next(self._sequence)}",
            "type": "log",
            "lvl": record.levelno,
            "msg": record.getMessage(),
            "created": record.created,
            "func": record.funcName,
            "host": self.hostname,
            "trance_nr": self.trace_nr,
        }

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.client.save(self.document(record))
        except PicasError:
            self.handleError(record)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            super().close()
