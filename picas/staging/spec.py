"""A token's staging fields, read and checked: what to copy in before the payload and out after it.

Pure functions: nothing here touches a file or a network.  A token asks for
staging with these fields::

    "stage_in":  [{"src": URL, "dst": "relative/path", "checksum": "adler32:<hex>"}, ...]
    "stage_out": [{"src": "relative/path or glob", "dst": URL, "overwrite": false}, ...]
    "stage_out_on_failure": false

``src``/``dst`` may use ``{token_id}`` and any of the token's own top-level
fields that hold a string or a number (``{run}``, ``{sample}``); ``{{`` and
``}}`` stand for literal braces.  A stage-in entry may be a bare URL string
(its file name becomes ``dst``).  A stage-out ``src`` with ``*``, ``?`` or
``[`` is a glob, and its ``dst`` must be a folder URL ending in ``/``; a plain
``src`` with a folder ``dst`` keeps its file name.  ``optional: true`` lets a
stage-out entry match nothing.

Credentials never travel in a token (every member of the database can read
it): a URL with a password in it is refused here, and the storage backends
take credentials from the pilot's environment.
"""
from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass

from picas.errors import InvalidInput
from picas.staging.checksum import Checksum

__all__ = ["StageIn", "StageOut", "StagingPlan", "plan_for", "render", "has_staging", "recorded_outputs",
           "STAGING_FIELDS", "is_glob"]

#: The token fields that ask for staging; a token without them runs exactly as before.
STAGING_FIELDS = ("stage_in", "stage_out")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
#: Characters a field's value keeps as they are when it is put into a URL; the rest is percent-encoded.
_URL_SAFE = "/:@!$&'()*+,;=-._~"
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class StageIn:
    """Copy ``src`` (a URL) to ``dst`` (relative to the working directory), checking ``checksum`` if given."""

    src: str
    dst: str
    checksum: Checksum | None = None


@dataclass(frozen=True)
class StageOut:
    """Copy the file(s) ``src`` (a relative path or glob) to ``dst`` (a URL; a folder URL for a glob)."""

    src: str
    dst: str
    overwrite: bool = False
    optional: bool = False

    @property
    def is_glob(self) -> bool:
        return is_glob(self.src)


@dataclass(frozen=True)
class StagingPlan:
    """Everything one token asks to be staged, with templates filled in."""

    stage_in: tuple[StageIn, ...] = ()
    stage_out: tuple[StageOut, ...] = ()
    on_failure: bool = False

    @property
    def empty(self) -> bool:
        return not self.stage_in and not self.stage_out


def is_glob(path: str) -> bool:
    return bool(_GLOB.search(path))


def has_staging(doc: dict) -> bool:
    """Whether the token asks for any staging at all (cheap; no validation)."""
    return any(doc.get(name) for name in STAGING_FIELDS)


def _values(doc: dict) -> dict[str, str]:
    values = {name: str(value) for name, value in doc.items()
              if isinstance(value, (str, int, float)) and not isinstance(value, bool) and _NAME.match(name)}
    if "_id" in doc:
        values["token_id"] = str(doc["_id"])
    return values


def render(template: object, doc: dict, where: str, url: bool) -> str:
    """Fill ``{name}`` placeholders from the token; InvalidInput names the entry and the unknown field.

    In a URL a value is percent-encoded except for the characters that
    structure a URL (``/``, ``:``, ``@``...), so a token id with a space or a
    ``#`` cannot cut the URL short; in a relative path it is used as it is
    (and the path is then checked to stay inside the working directory).
    """
    if not isinstance(template, str) or not template.strip():
        raise InvalidInput(f"{where} must be a non-empty string")
    values = _values(doc)

    def substitute(match: re.Match) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        name = match.group(1)
        if name is None or not _NAME.match(name):
            raise InvalidInput(f"{where} has a malformed placeholder in {template!r} "
                               f"(use {{field}}, and {{{{ or }}}} for a literal brace)")
        if name not in values:
            raise InvalidInput(f"{where} uses {{{name}}}, but the token has no field '{name}' holding "
                               f"a string or a number")
        value = values[name]
        return urllib.parse.quote(value, safe=_URL_SAFE) if url else value

    return _PLACEHOLDER.sub(substitute, template)


def check_url(url: str, where: str) -> str:
    """A storage URL: a scheme, a host (except for file://), no password; returns it unchanged."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidInput(f"{where}: {url!r} is not a valid URL ({exc})") from None
    if not parts.scheme or not _SCHEME.match(parts.scheme) or "://" not in url:
        raise InvalidInput(f"{where}: {url!r} is not a URL (expected scheme://host/path, "
                           f"for example davs://storage.example.org/data/file)")
    if parts.password is not None:
        raise InvalidInput(f"{where}: the URL holds a password; tokens are readable by every member of the "
                           f"database, so credentials come from the pilot's environment "
                           f"(X509_USER_PROXY, BEARER_TOKEN, ~/.netrc)")
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidInput(f"{where}: {url!r} must be file:///absolute/path")
    elif not parts.hostname:
        raise InvalidInput(f"{where}: {url!r} has no host")
    if not parts.path or parts.path == "/" and parts.scheme.lower() != "file":
        raise InvalidInput(f"{where}: {url!r} names no file")
    return url


def check_relative(path: str, where: str) -> str:
    """A path inside the working directory: relative, no ``..``; returned normalized."""
    if path.startswith("/") or "\\" in path:
        raise InvalidInput(f"{where}: {path!r} must be a relative path inside the working directory")
    normal = posixpath.normpath(path)
    if normal in (".", "") or normal == ".." or normal.startswith("../") or "\x00" in normal:
        raise InvalidInput(f"{where}: {path!r} must name a file inside the working directory")
    return normal


def url_basename(url: str) -> str:
    return posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/")))


def _entry(raw: object, where: str, keys: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object with 'src' and 'dst'")
    unknown = set(raw) - keys
    if unknown:
        raise InvalidInput(f"{where} has unknown key(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(keys))}")
    for flag in ("overwrite", "optional"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise InvalidInput(f"{where}.{flag} must be true or false")
    return raw


def _stage_in(raw: object, doc: dict, where: str) -> StageIn:
    if isinstance(raw, str):
        raw = {"src": raw}
    raw = _entry(raw, where, {"src", "dst", "checksum"})
    src = check_url(render(raw.get("src"), doc, f"{where}.src", url=True), f"{where}.src")
    if raw.get("dst") is None:
        name = url_basename(src)
        if not name:
            raise InvalidInput(f"{where}: give a 'dst', the URL {src!r} names no file")
        dst = name
    else:
        dst = render(raw.get("dst"), doc, f"{where}.dst", url=False)
    dst = check_relative(dst, f"{where}.dst")
    checksum = None
    if raw.get("checksum") not in (None, ""):
        try:
            checksum = Checksum.parse(raw["checksum"])
        except InvalidInput as exc:
            raise InvalidInput(f"{where}.checksum: {exc}") from None
    return StageIn(src=src, dst=dst, checksum=checksum)


def _stage_out(raw: object, doc: dict, where: str) -> StageOut:
    raw = _entry(raw, where, {"src", "dst", "overwrite", "optional"})
    src = check_relative(render(raw.get("src"), doc, f"{where}.src", url=False), f"{where}.src")
    dst = render(raw.get("dst"), doc, f"{where}.dst", url=True)
    if is_glob(src) and not dst.endswith("/"):
        raise InvalidInput(f"{where}: src {src!r} is a glob, so dst must be a folder URL ending in '/'")
    if dst.endswith("/") and not is_glob(src):
        dst += urllib.parse.quote(posixpath.basename(src), safe=_URL_SAFE)
    check_url(dst if not dst.endswith("/") else dst + "x", f"{where}.dst")
    return StageOut(src=src, dst=dst, overwrite=bool(raw.get("overwrite", False)),
                    optional=bool(raw.get("optional", False)))


def _list(doc: dict, name: str) -> list:
    value = doc.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"the token's '{name}' must be a list of entries, not a {type(value).__name__}")
    return value


def plan_for(doc: dict) -> StagingPlan | None:
    """The token's staging plan, or None when it asks for none; InvalidInput says which entry is wrong."""
    if not has_staging(doc):
        return None
    stage_in = tuple(_stage_in(raw, doc, f"stage_in[{i}]") for i, raw in enumerate(_list(doc, "stage_in")))
    stage_out = tuple(_stage_out(raw, doc, f"stage_out[{i}]") for i, raw in enumerate(_list(doc, "stage_out")))
    seen: dict[str, int] = {}
    for i, entry in enumerate(stage_in):
        if entry.dst in seen:
            raise InvalidInput(f"stage_in[{i}] and stage_in[{seen[entry.dst]}] both write {entry.dst!r}")
        seen[entry.dst] = i
    on_failure = doc.get("stage_out_on_failure", False)
    if not isinstance(on_failure, bool):
        raise InvalidInput("the token's 'stage_out_on_failure' must be true or false")
    return StagingPlan(stage_in=stage_in, stage_out=stage_out, on_failure=on_failure)


def recorded_outputs(doc: dict) -> dict[str, tuple[int, Checksum]]:
    """The ``outputs`` an earlier run recorded (destination URL -> size and checksum); malformed ones left out."""
    found = {}
    outputs = doc.get("outputs")
    if not isinstance(outputs, dict):
        return found
    for url, info in outputs.items():
        try:
            found[url] = (int(info["size"]), Checksum.parse(info["checksum"]))
        except (KeyError, TypeError, ValueError, InvalidInput):
            continue
    return found
