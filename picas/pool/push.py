"""Pushing work: turn command files, JSON/YAML documents and parameter sweeps into tokens, then store them.

Parsing is pure: :func:`tokens_from_lines`, :func:`tokens_from_data` and
:func:`expand_sweep` return plain token *bodies* (mappings with an ``input``
and, optionally, an ``_id``), and :func:`make_tokens` completes them into
tokens with every classic field.  Only :func:`push` talks to the server, in
``_bulk_docs`` batches, so a push of 10^5 tokens costs 10^2 requests.

Token ids
---------
An id given in the input is kept.  Every other token gets ``token_`` followed
by 16 random hex characters (64 bits from :mod:`secrets`).  Two reasons:

* two pushes running at the same time can never hand out the same id, since
  nothing is counted or numbered (counting existing documents races);
* the ids are spread uniformly over the hex alphabet, which is what the claim
  protocol (:mod:`picas.core.claim`) needs: pilots start their view windows at
  random keys drawn from the shape of the ids, so uniform ids mean evenly
  spread pilots and few 409s.  It also makes "the first N tokens of a view"
  a uniform random sample, which :mod:`picas.pool.status` relies on.

Duplicates are never overwritten: a token is created without a ``_rev``, so
CouchDB refuses it with a per-document 409 when its id exists.  An id from the
input that conflicts is reported as a duplicate; a generated id that conflicts
(astronomically unlikely) simply gets a fresh id and is sent again.
"""
from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from picas.core.client import CouchClient, chunks
from picas.errors import InvalidInput
from picas.core.token import new_token

#: The prefix of generated ids; what follows it is uniformly random hex.
ID_PREFIX = "token_"
#: Special (underscore) members a pushed body may carry; CouchDB refuses any other, failing the whole batch.
ALLOWED_SPECIAL = ("_id", "_attachments")
DEFAULT_BATCH = 1000

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?::(\d+))?$")

Warn = Callable[[str], None]


def new_token_id() -> str:
    """A fresh token id: unique across concurrent pushes and uniformly spread (see the module docstring)."""
    return ID_PREFIX + secrets.token_hex(8)


# --------------------------------------------------------------------------- parsing (pure)


def tokens_from_lines(lines: Iterable[str]) -> list[dict]:
    """One token per non-blank line, the line being the bash command to run.

    Lines that start with ``#`` are comments and are skipped, as bash would
    skip them anyway; surrounding whitespace (and the line end) is dropped.
    """
    bodies = []
    for line in lines:
        command = line.strip()
        if command and not command.startswith("#"):
            bodies.append({"input": command})
    return bodies


def _check_body(body: Any, where: str, warn: Warn | None) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput(f"{where} is a {type(body).__name__}, not a mapping",
                           hint="each token must be a mapping such as {input: 'echo hello'}")
    if "_rev" in body:
        raise InvalidInput(f"{where} has a '_rev': push creates tokens and never updates existing ones",
                           hint="remove '_rev' (use 'picas reset' to change existing tokens)")
    for key in body:
        if not isinstance(key, str):
            raise InvalidInput(f"{where} has a non-string field name {key!r}")
        if key.startswith("_") and key not in ALLOWED_SPECIAL:
            raise InvalidInput(f"{where} has the field '{key}'; CouchDB reserves names that start with '_'",
                               hint="rename the field")
    if "_id" in body:
        _check_id(body["_id"], where)
    if "input" not in body and warn is not None:
        warn(f"{where} has no 'input': a pilot will have nothing to run for it")
    return dict(body)


def _check_id(token_id: Any, where: str) -> str:
    if not isinstance(token_id, str) or not token_id:
        raise InvalidInput(f"{where} has the id {token_id!r}; ids must be non-empty strings")
    if token_id.startswith("_"):
        raise InvalidInput(f"{where} has the id {token_id!r}; ids that start with '_' are reserved by CouchDB")
    return token_id


def tokens_from_data(data: Any, *, warn: Warn | None = None) -> list[dict]:
    """Token bodies from parsed JSON or YAML: a list of bodies, or a mapping of id to body.

    Every body must be a mapping and must not carry ``_rev`` (a push never
    updates).  A body without ``input`` is allowed, for pools whose pilots
    read other fields, but ``warn`` is told about it.  Errors name the item
    (its position in a list, its id in a mapping).
    """
    if isinstance(data, list):
        return [_check_body(body, f"item {number}", warn) for number, body in enumerate(data, 1)]
    if isinstance(data, dict):
        bodies = []
        for token_id, body in data.items():
            where = f"token {token_id!r}"
            _check_id(token_id, where)
            body = _check_body(body, where, warn)
            if body.setdefault("_id", token_id) != token_id:
                raise InvalidInput(f"{where} has a different '_id' ({body['_id']!r}) inside its body")
            bodies.append(body)
        return bodies
    if data is None:
        return []
    raise InvalidInput(f"the document is a {type(data).__name__}; expected a list of tokens or a mapping id -> token",
                       hint="e.g. [{input: 'echo 1'}, {input: 'echo 2'}] or {job1: {input: 'echo 1'}}")


def parse_param(spec: str) -> tuple[str, list]:
    """One ``--param``: ``name=1..100`` (inclusive, ``:step`` optional), ``name=a,b,c`` or ``name=value``.

    A range whose start has leading zeros (``001..100``) keeps that width, so
    file names built from it sort correctly.
    """
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not _PARAM_NAME.match(name):
        raise InvalidInput(f"the parameter {spec!r} is not NAME=VALUES",
                           hint="e.g. --param x=1..100 or --param y=a,b,c")
    values = values.strip()
    match = _RANGE.match(values)
    if match:
        start, stop = int(match.group(1)), int(match.group(2))
        step = int(match.group(3) or 1)
        if step <= 0:
            raise InvalidInput(f"the parameter {spec!r} has step {step}; the step must be positive")
        numbers = list(range(start, stop + 1, step) if start <= stop else range(start, stop - 1, -step))
        digits = match.group(1).lstrip("-")
        if len(digits) > 1 and digits.startswith("0"):
            width = len(match.group(1))
            return name, [f"{n:0{width}d}" for n in numbers]
        return name, numbers
    items = [item.strip() for item in values.split(",")]
    if not values or any(not item for item in items):
        raise InvalidInput(f"the parameter {spec!r} has an empty value",
                           hint="give values like a,b,c or a range like 1..10")
    return name, items


def _placeholder(name: str) -> re.Pattern:
    return re.compile(r"\{" + re.escape(name) + r"\}")


def iter_sweep(params: list[str], command: str) -> Iterator[dict]:
    """Like :func:`expand_sweep`, one body at a time (for sweeps too large to hold in memory).

    The parameters are checked at once; only the bodies are made lazily.
    """
    parsed = [parse_param(spec) for spec in params]
    names = [name for name, _ in parsed]
    for name in names:
        if names.count(name) > 1:
            raise InvalidInput(f"the parameter '{name}' is given more than once")
        if not _placeholder(name).search(command):
            raise InvalidInput(f"the parameter '{name}' does not appear in the command as {{{name}}}",
                               hint=f"e.g. --command 'sim --{name} {{{name}}}'")
    if not command.strip():
        raise InvalidInput("the sweep command is empty", hint="e.g. --command 'sim --x {x}'")
    return _fill(command, names, [values for _, values in parsed])


def _fill(command: str, names: list[str], values: list[list]) -> Iterator[dict]:
    patterns = [_placeholder(name) for name in names]
    for combination in itertools.product(*values):
        text = command
        for pattern, value in zip(patterns, combination):
            text = pattern.sub(lambda _m, v=value: str(v), text)
        yield {"input": text, "parameters": dict(zip(names, combination))}


def expand_sweep(params: list[str], command: str) -> list[dict]:
    """The cross product of the parameters, each combination filled into ``command``.

    ``{name}`` is replaced for the given names only, so the rest of a bash
    command (``${HOME}``, ``awk '{print $1}'``) stays as it is.  Each body
    also records its values under ``parameters``, so results can be matched
    to inputs without parsing the command again.
    """
    return list(iter_sweep(params, command))


def sweep_size(params: list[str]) -> int:
    """How many tokens a sweep makes, without making them."""
    size = 1
    for spec in params:
        size *= len(parse_param(spec)[1])
    return size


# --------------------------------------------------------------------------- tokens (pure)


def make_token(body: dict, id_factory: Callable[[], str] = new_token_id) -> dict:
    """A complete todo token for ``body``: its fields over the classic ones, and an id.

    Applying it twice changes nothing, so :func:`push` may be handed either
    raw bodies or finished tokens.
    """
    fields = {k: v for k, v in body.items() if k not in ("_id", "input")}
    return new_token(body.get("input"), body.get("_id") or id_factory(), **fields)


def make_tokens(bodies: Iterable[dict], id_factory: Callable[[], str] = new_token_id) -> list[dict]:
    """:func:`make_token` for each body, e.g. to show what a ``--dry-run`` would push."""
    return [make_token(body, id_factory) for body in bodies]


# --------------------------------------------------------------------------- pushing (I/O)


@dataclass
class PushReport:
    """What a push did: how many tokens it created, and which it did not."""

    created: int = 0
    duplicates: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.duplicates and not self.failed

    def to_dict(self) -> dict:
        return {"created": self.created, "duplicates": list(self.duplicates), "failed": dict(self.failed),
                "requests": self.requests}


def push(client: CouchClient, bodies: Iterable[dict], batch: int = DEFAULT_BATCH,
         progress: Callable[[int], None] | None = None, *, retries: int = 3) -> PushReport:
    """Create one token per body, ``batch`` per ``_bulk_docs`` request; never overwrite anything.

    ``progress(n)`` is called after each batch with the number of bodies it
    handled.  Bodies without ``_id`` get a generated one; a repeated id within
    the same push counts as a duplicate of the first.  A generated id that
    happens to exist already is replaced and sent again (up to ``retries``
    times), whereas an id that came with the input is reported in
    ``duplicates``.  Other per-document refusals land in ``failed``.
    """
    if batch < 1:
        raise InvalidInput(f"the batch size must be at least 1, not {batch}")
    report = PushReport()
    seen: set[str] = set()
    for group in chunks(bodies, batch):
        docs, generated = [], set()
        pushed_at = int(time.time())
        for body in group:
            doc = make_token(body)
            doc.setdefault("created_at", pushed_at)  # the report's wait times and todo curve start here
            if "_id" not in body or not body["_id"]:
                generated.add(doc["_id"])
            if doc["_id"] in seen:
                report.duplicates.append(doc["_id"])
                continue
            seen.add(doc["_id"])
            docs.append(doc)
        _push_batch(client, docs, generated, report, retries)
        if progress is not None:
            progress(len(group))
    return report


def _push_batch(client: CouchClient, docs: list[dict], generated: set[str], report: PushReport,
                retries: int) -> None:
    for attempt in range(retries + 1):
        if not docs:
            return
        report.requests += 1
        again = []
        for doc, result in zip(docs, client.bulk_save(docs)):
            if result.ok:
                report.created += 1
            elif result.conflict and doc["_id"] in generated and attempt < retries:
                doc.pop("_rev", None)
                doc["_id"] = new_token_id()
                generated.add(doc["_id"])
                again.append(doc)
            elif result.conflict:
                report.duplicates.append(doc["_id"])
            else:
                report.failed[doc["_id"]] = f"{result.error}: {result.reason}"
        docs = again


def existing_ids(client: CouchClient, ids: Iterable[str], batch: int = 500) -> list[str]:
    """Which of ``ids`` exist already: what a push would report as duplicates (used by ``--dry-run``)."""
    found: list[str] = []
    for group in chunks(ids, batch):
        stored = client.bulk_get(group)
        found.extend(token_id for token_id in group if token_id in stored)
    return found
