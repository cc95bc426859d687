"""Which storage backend serves a URL: the first, in order, that is available and serves its scheme.

The order is gfal2 (every protocol its plugins speak, and the grid's own
way of doing it), then the built-in fallbacks that need no gfal2: WebDAV /
HTTP through urllib3 and plain files.  ``$PICAS_STAGING_BACKEND`` narrows the
choice to a comma-separated list of backend names (``gfal2``, ``http``,
``file``), for example ``http,file`` to leave gfal2 out.

A scheme that nothing here serves is one :class:`UnsupportedScheme` error
that names the scheme and what to install for it.
"""
from __future__ import annotations

import importlib
import os

from picas.staging.errors import StagingError, UnsupportedScheme
from picas.staging.storage import Storage, scheme_of

__all__ = ["Registry", "BACKENDS"]

#: Every backend picas knows, in order of preference: (name, "module:class").
BACKENDS: tuple[tuple[str, str], ...] = (
    ("gfal2", "picas.staging.backends.gfal:Gfal2Storage"),
    ("http", "picas.staging.backends.webdav:WebDavStorage"),
    ("file", "picas.staging.backends.local:FileStorage"),
)


def _load(path: str) -> type[Storage]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Registry:
    """Hands out one backend instance per kind, chosen by URL scheme; close() releases them all."""

    def __init__(self, names: list[str] | tuple[str, ...] | None = None, environ: dict | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        if names is None:
            wanted = self.environ.get("PICAS_STAGING_BACKEND", "").strip().lower()
            names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted and wanted != "auto" else None
        known = dict(BACKENDS)
        if names is not None:
            unknown = [n for n in names if n not in known]
            if unknown:
                raise StagingError(f"unknown storage backend(s) {', '.join(unknown)} in PICAS_STAGING_BACKEND; "
                                   f"known: {', '.join(known)}")
        self.names = list(names) if names is not None else [name for name, _ in BACKENDS]
        self._instances: dict[str, Storage] = {}
        self._schemes: dict[str, frozenset[str]] = {}

    def _backend(self, name: str) -> Storage | None:
        if name not in self._instances:
            cls = _load(dict(BACKENDS)[name])
            if not cls.available():
                return None
            instance = cls(environ=self.environ)
            self._instances[name] = instance
            self._schemes[name] = instance.schemes()
        return self._instances[name]

    def for_url(self, url: str) -> Storage:
        """The backend for ``url``; UnsupportedScheme names the scheme and what would add it."""
        scheme = scheme_of(url)
        for name in self.names:
            backend = self._backend(name)
            if backend is not None and scheme in self._schemes[name]:
                return backend
        raise UnsupportedScheme(self._unsupported(scheme))

    def _unsupported(self, scheme: str) -> str:
        tried = []
        for name in self.names:
            backend = self._instances.get(name)
            tried.append(f"{name} ({', '.join(sorted(self._schemes[name]))})" if backend else f"{name} (not installed)")
        hints = [hint for name, path in BACKENDS if (hint := _load(path).missing(scheme))]
        excluded = [name for name, _ in BACKENDS if name not in self.names]
        message = f"no storage backend here handles '{scheme}://' URLs; tried {'; '.join(tried)}"
        if hints:
            message += f". To add it, {hints[0]}"
        else:
            message += ". No package known to picas adds this scheme"
        if excluded:
            message += f" (PICAS_STAGING_BACKEND leaves out {', '.join(excluded)})"
        return message

    def describe(self) -> dict[str, list[str]]:
        """Each available backend with the schemes it serves (for messages and 'picas' diagnostics)."""
        return {name: sorted(self._schemes[name]) for name in self.names if self._backend(name) is not None}

    def close(self) -> None:
        for backend in self._instances.values():
            backend.close()
