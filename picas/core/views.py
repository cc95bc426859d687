"""Design documents: the classic token views, built from the JavaScript sources in ``views/``.

Each ``views/<name>.js`` holds one map function (and ``<name>.reduce.js`` its
reduce, if any).  A design document may add one extra condition that every
view applies, e.g. ``doc.cores == 4``, so that different pilot classes draw
from different subsets of one pool.  The sources mark where the condition
goes with ``true /* picas:condition */``, so each file stays valid JavaScript.

Building a design document is pure (:func:`design_document`); deploying it
(:func:`deploy`) writes only when the stored views differ, so it is safe to
run on every pilot start or from many places at once.
"""
from __future__ import annotations

from pathlib import Path

from picas import defaults
from picas.core.client import CouchClient
from picas.errors import Conflict, InvalidInput, NotFound, PicasError

#: Kept for callers of the classic name; the value is :data:`picas.defaults.DESIGN`.
DEFAULT_DESIGN = defaults.DESIGN
CLASSIC_VIEWS = ("todo", "locked", "done", "error", "overview_total")
_MARKER = "true /* picas:condition */"


def source_dir() -> Path:
    """Where the view sources are: packaged inside picas, or the checkout's ``views/``."""
    package = Path(__file__).resolve().parents[1]  # picas/, this module lives in picas/core/
    packaged = package / "_views"
    if packaged.is_dir():
        return packaged
    checkout = package.parent / "views"
    if checkout.is_dir():
        return checkout
    import importlib.resources  # picas run from a zipapp (the grid sandbox): the sources are inside the archive
    archived = importlib.resources.files("picas") / "_views"
    if archived.is_dir():
        return archived  # type: ignore[return-value]  # a zipfile.Path: iterdir, name, read_text, exists
    raise PicasError("the view sources are missing from this picas installation", hint="reinstall picas")


def load_sources(directory: Path | None = None) -> dict[str, dict[str, str]]:
    """Map and reduce sources by view name, with their leading comment lines removed."""
    directory = directory or source_dir()
    views: dict[str, dict[str, str]] = {}
    for path in sorted((p for p in directory.iterdir() if p.name.endswith(".js")), key=lambda p: p.name):
        if path.name.endswith(".reduce.js"):
            continue
        name = path.name[:-len(".js")]
        views[name] = {"map": _strip_comments(path.read_text())}
        reduce_path = directory / f"{name}.reduce.js"
        if reduce_path.exists():
            views[name]["reduce"] = _strip_comments(reduce_path.read_text())
    return views


def _strip_comments(source: str) -> str:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith("//")]
    return "\n".join(lines).strip()


def check_condition(condition: str) -> str:
    """Reject conditions that would break out of the expression they are placed in."""
    text = condition.strip()
    if not text:
        raise InvalidInput("the view condition is empty", hint="e.g. --condition 'doc.cores == 4'")
    depth = 0
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                break
        elif char == ";":
            depth = -1
            break
    if depth != 0 or quote:
        raise InvalidInput(f"the view condition {condition!r} is not a single JavaScript expression",
                           hint="use e.g. --condition 'doc.cores == 4'")
    return text


def design_document(condition: str | None = None, directory: Path | None = None) -> dict:
    """The design document body (without ``_id``/``_rev``) for an optional extra condition."""
    views = load_sources(directory)
    if condition is not None:
        expr = f"({check_condition(condition)})"
        views = {name: {part: code.replace(_MARKER, expr) for part, code in view.items()}
                 for name, view in views.items()}
    body = {"language": "javascript", "views": views}
    if condition is not None:
        body["picas_condition"] = condition
    return body


def deploy(client: CouchClient, design: str = defaults.DESIGN, condition: str | None = None) -> bool:
    """Make ``_design/<design>`` hold the picas views; returns True if anything was written.

    Views the user added to the same design document are kept.  On a 409 (two
    deployers at once) the stored document is read again and compared: if it
    already holds our views the other writer did our work, else we retry.
    """
    wanted = design_document(condition)
    for _ in range(5):
        try:
            current = client.get(f"_design/{design}")
        except NotFound as exc:
            if type(exc).__name__ == "DatabaseNotFound":
                raise
            current = {"_id": f"_design/{design}"}
        merged_views = {**(current.get("views") or {}), **wanted["views"]}
        if current.get("views") == merged_views and current.get("language") == "javascript" \
                and current.get("picas_condition") == wanted.get("picas_condition"):
            return False
        body = {**current, "language": "javascript", "views": merged_views}
        if condition is not None:
            body["picas_condition"] = condition
        else:
            body.pop("picas_condition", None)
        try:
            client.save(body)
            return True
        except Conflict:
            continue
    raise Conflict(f"could not deploy _design/{design}: it kept changing under us")


def list_designs(client: CouchClient) -> list[dict]:
    """The design documents of the database with their view names and condition."""
    rows = client.all_docs(startkey="_design/", endkey="_design0", include_docs=True).rows
    out = []
    for row in rows:
        doc = row.doc or {}
        out.append({"design": row.id.split("/", 1)[1], "views": sorted((doc.get("views") or {}).keys()),
                    "condition": doc.get("picas_condition")})
    return out


def describe_design(entry: dict) -> str:
    """One line for an entry of :func:`list_designs`: ``_design/Cores4: done, error, ... (where doc.cores == 4)``."""
    condition = f" (where {entry['condition']})" if entry.get("condition") else ""
    return f"_design/{entry['design']}: {', '.join(entry['views'])}{condition}"
