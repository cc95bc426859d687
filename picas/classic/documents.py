"""Classic picas document classes: thin, dict-like wrappers around one CouchDB document body.

Scripts written for picas 1.x build tokens with ``Task({...})``, change them
with ``task.lock()``, ``task.done()``, ``task.error(...)`` and attach logs with
``task.put_attachment(...)``; all of that works unchanged here.

A :class:`Document` wraps its body by reference (``doc.value`` is the very
dict that is saved), so changes made through either are the same change.

Differences from 1.1.2, on purpose:

* ``Task`` gets ``type: "token"`` by default, not ``"task"``: the views (new
  and classic alike) select ``doc.type == "token"``, so a task pushed with the
  classic default was invisible to every pilot unless the script overrode it.
* State changes also append an entry to the token's ``history`` (what, when,
  where), as the new pilot does, so ``picas`` tools show what a classic
  script did.  Where the classic field semantics and :mod:`picas.core.token` agree
  (scrubbing) the pure function does the work; where they differ (``error``
  sets ``lock = done = 99``, ``done`` leaves ``exit_code`` alone) the classic
  semantics are kept.
"""
from __future__ import annotations

import base64
import mimetypes
import socket
import traceback
from typing import Any, Iterator
from uuid import uuid4

from picas.pilot import jobid
from picas.core import token as tok
from picas.classic.util import merge_dicts, seconds


def _note(doc: dict, event: str, **extra: Any) -> None:
    """Append a history entry to ``doc`` in place (the pure function returns a copy)."""
    noted = tok.note(doc, None, seconds(), event, host=socket.gethostname(), **extra)
    doc["history"] = noted["history"]


class Document:
    """A CouchDB document body with dict-style access and attachment helpers.

    ``data`` is a dict (or another Document, whose body is shared).  A body
    that has no ``_rev`` is new, so the defaults in ``base`` are filled in
    below it; a body read from the database is taken as it is.
    """

    def __init__(self, data: dict | "Document" | None = None, base: dict | None = None) -> None:
        if data is None:
            data = {}
        if isinstance(data, Document):
            data = data.value
        if "_rev" not in data:
            data = merge_dicts(base or {}, data)
        self.doc: dict = data

    # -- dict emulation (classic), plus the read helpers scripts tend to reach for
    def __len__(self) -> int:
        return len(self.doc)

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.doc[key] = value

    def __delitem__(self, key: str) -> None:
        del self.doc[key]

    def __contains__(self, key: object) -> bool:
        return key in self.doc

    def __iter__(self) -> Iterator[str]:
        return iter(self.doc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.doc!r})"

    def get(self, key: str, default: Any = None) -> Any:
        return self.doc.get(key, default)

    def keys(self):
        return self.doc.keys()

    def items(self):
        return self.doc.items()

    def values(self):
        return self.doc.values()

    # -- identity
    @property
    def id(self) -> str:
        try:
            return self.doc["_id"]
        except KeyError as exc:
            raise AttributeError("_id for document is not set") from exc

    @id.setter
    def id(self, new_id: str) -> None:
        self.doc["_id"] = new_id

    @property
    def rev(self) -> str:
        try:
            return self.doc["_rev"]
        except KeyError as exc:
            raise AttributeError("_rev is not available: document is not retrieved from database") from exc

    @property
    def value(self) -> dict:
        """The body itself (not a copy): what ``save`` sends."""
        return self.doc

    def update(self, values: dict) -> None:
        self.doc.update(values)

    # -- attachments
    def put_attachment(self, name: str, data: bytes | str, mimetype: str | None = None) -> None:
        """Attach ``data`` inline (base64); it is uploaded with the next save of the document.

        Inline attachments travel with the document in one write, so a token's
        result and its logs are saved together or not at all.  The content type
        is guessed from ``name`` and defaults to text/plain.
        """
        if mimetype is None:
            mimetype = mimetypes.guess_type(name)[0] or "text/plain"
        if isinstance(data, str):
            data = data.encode()
        self.doc.setdefault("_attachments", {})[name] = {
            "content_type": mimetype, "data": base64.b64encode(data).decode()}

    def get_attachment(self, name: str, retrieve_from_database: Any = None) -> dict:
        """The attachment's metadata with its content as bytes under ``data``.

        A document read from the database holds only a stub (no data); pass
        the database (a :class:`picas.classic.clients.CouchDB` or a
        :class:`picas.core.client.CouchClient`) to fetch the content, which is then
        kept inline.  Raises KeyError if there is no such attachment.
        """
        stored = self.doc["_attachments"][name]
        attachment = {key: value for key, value in stored.items() if key != "data"}
        if "data" in stored:
            attachment["data"] = base64.b64decode(stored["data"])
        elif retrieve_from_database is not None:
            client = getattr(retrieve_from_database, "client", retrieve_from_database)
            content = client.get_attachment(self.id, name)
            attachment["data"] = content
            stored["data"] = base64.b64encode(content).decode()
            stored.pop("stub", None)
        return attachment

    def remove_attachment(self, name: str) -> "Document":
        del self.doc["_attachments"][name]
        return self

    def _update_hostname(self) -> "Document":
        self.doc["hostname"] = socket.gethostname()
        return self


class User(Document):
    """A CouchDB user document (for the ``_users`` database)."""

    def __init__(self, username: str, password: str, roles: list[str] | None = None,
                 data: dict | None = None) -> None:
        super().__init__(data=data or {}, base={
            "_id": f"org.couchdb.user:{username}",
            "name": username,
            "type": "user",
            "password": password,
            "roles": list(roles or []),
        })


class Task(Document):
    """A token with the classic fields and state changes.

    The default ``type`` is ``"token"`` (1.1.2 used ``"task"``, which no view
    selects); pass ``type`` explicitly to get anything else.
    """

    BASE = {
        "type": "token",
        "lock": 0,
        "done": 0,
        "hostname": "",
        "scrub_count": 0,
        "input": {},
        "exit_code": "",
        "output": {},
        "uploads": {},
        "error": [],
    }

    def __init__(self, task: dict | Document | None = None) -> None:
        super().__init__(task if task is not None else {}, Task.BASE)
        if "_id" not in self.doc:
            self.doc["_id"] = "task_" + uuid4().hex

    def lock(self) -> "Task":
        """Mark the task locked by this host now (classic: no pilot id, no lease).

        Saving the locked task with the revision it was read at is what makes
        the lock exclusive; the iterators in :mod:`picas.classic.iterators` do that.
        """
        self.doc["lock"] = seconds()
        jobid.add_job_id(self.doc)
        _note(self.doc, "locked")
        return self._update_hostname()

    def done(self) -> "Task":
        """Mark the task done now; ``exit_code`` (set by the caller) decides done or error in the views."""
        self.doc["done"] = seconds()
        _note(self.doc, "done", exit_code=self.doc.get("exit_code"))
        return self

    def scrub(self) -> "Task":
        """Put the task back to todo, counting one more scrub, so that another pilot can take it."""
        scrubbed = tok.reset(self.doc, None, seconds(), "scrubbed", count_scrub=True)
        jobid.remove_job_id(scrubbed)
        self.doc.clear()
        self.doc.update(scrubbed)
        return self._update_hostname()

    def error(self, msg: object = None, exception: BaseException | None = None) -> "Task":
        """Put the task in the error state (``lock = done = 99``) and record why.

        With ``exception``, the traceback of the exception being handled is
        recorded too, so call it from inside the ``except`` block.
        """
        entry: dict[str, Any] = {"time": seconds()}
        if msg is not None:
            entry["message"] = str(msg)
        if exception is not None:
            formatted = traceback.format_exc()
            if formatted.strip() == "NoneType: None":  # not called while handling it
                formatted = "".join(traceback.format_exception(type(exception), exception,
                                                               exception.__traceback__))
            entry["exception"] = formatted
        self.doc["lock"] = 99
        self.doc["done"] = 99
        errors = self.doc.get("error")
        if not isinstance(errors, list):
            errors = [] if errors in (None, "") else [errors]
        errors.append(entry)
        self.doc["error"] = errors
        _note(self.doc, "error", reason=entry.get("message"))
        return self

    def has_error(self) -> bool:
        return self.doc.get("lock") == 99

    def get_errors(self) -> list:
        return self.doc.get("error", [])

    def is_done(self) -> bool:
        return self.doc.get("done", 0) != 0

    @property
    def input(self) -> Any:
        return self.doc["input"]

    @input.setter
    def input(self, value: Any) -> None:
        self.doc["input"] = value

    @property
    def output(self) -> Any:
        return self.doc["output"]

    @output.setter
    def output(self, value: Any) -> None:
        self.doc["output"] = value

    @property
    def uploads(self) -> Any:
        return self.doc["uploads"]

    @uploads.setter
    def uploads(self, value: Any) -> None:
        self.doc["uploads"] = value


class Job(Document):
    """A record of one batch job (queued, started, finished, archived); not a token."""

    BASE = {
        "type": "job",
        "hostname": "",
        "start": 0,
        "done": 0,
        "queue": 0,
        "method": "",
        "archive": 0,
    }

    def __init__(self, job: dict | Document) -> None:
        super().__init__(job, Job.BASE)
        if "_id" not in self.doc:
            raise ValueError("Job ID must be set")

    def queue(self, method: str, host: str | None = None) -> "Job":
        self.doc["method"] = method
        if host is not None:
            self.doc["hostname"] = host
        self.doc["queue"] = seconds()
        return self

    def start(self) -> "Job":
        self.doc["start"] = seconds()
        self.doc["done"] = 0
        self.doc["archive"] = 0
        return self._update_hostname()

    def finish(self) -> "Job":
        self.doc["done"] = seconds()
        return self

    def archive(self) -> "Job":
        """Turn the record into a new archived copy (new id, no revision) to be saved next to the live one."""
        if self.doc["done"] <= 0:
            self.doc["done"] = seconds()
        self.doc["archive"] = seconds()
        self.id = f"archived-{self.id}-{seconds()}"
        del self.doc["_rev"]
        return self

    def is_done(self) -> bool:
        return self.doc["done"] != 0
