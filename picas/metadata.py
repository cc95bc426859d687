"""Facts about the installed picas, under the names picas 1.1.x's ``picas.metadata`` had.

Read from the installed distribution's metadata (so they never disagree with
``pip show picas``), with the source tree's values when picas runs from a
checkout without being installed.
"""
from __future__ import annotations

from importlib import metadata as _metadata

from picas import __version__

__all__ = ["project", "package", "description", "project_no_spaces", "version", "authors", "authors_string",
           "emails", "license", "copyright", "url"]


def _installed() -> _metadata.PackageMetadata | None:
    try:
        return _metadata.metadata("picas")
    except _metadata.PackageNotFoundError:
        return None


_meta = _installed()


def _field(name: str, default: str) -> str:
    value = _meta.get(name) if _meta is not None else None
    return value if value and value != "UNKNOWN" else default


def _project_url() -> str:
    for entry in (_meta.get_all("Project-URL") or []) if _meta is not None else []:
        return entry.split(",", 1)[-1].strip()
    return _field("Home-page", "")


project = "picas"
package = "picas"
description = _field("Summary", "Turn a CouchDB database into a pool of work tokens, and run pilots that drain it.")
project_no_spaces = project.replace(" ", "")
version = _field("Version", __version__)
authors = [_field("Author", "the picas developers")]
authors_string = ", ".join(authors)
emails = [address for address in [_field("Author-email", "")] if address]
license = _field("License", "MIT")  # noqa: A001 - the 1.1.x name
copyright = f"the picas developers ({license} licence)"  # noqa: A001 - the 1.1.x name
url = _project_url()
