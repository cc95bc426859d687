"""One rooted exception tree for everything picas reports to a user.

Every error a user can meet is a :class:`PicasError`.  Each subclass carries
a distinct ``exit_code`` so that the command line can turn it into one line on
stderr and an exit status that scripts can test, and a ``hint`` that says what
to do about it.  Library code raises these; only the CLI prints them.
"""
from __future__ import annotations


class PicasError(Exception):
    """Root of all picas errors; catch this to handle any of them."""

    exit_code = 1
    hint = ""

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        if self.hint and self.hint not in message:
            return f"{message} ({self.hint})" if message else self.hint
        return message


class ConfigError(PicasError):
    """The configuration (file, environment, options) is missing or malformed."""

    exit_code = 3
    hint = "check the file named here, or run 'picas init'"


class ServerUnavailable(PicasError):
    """The CouchDB server could not be reached, or kept answering 5xx."""

    exit_code = 4
    hint = "check the URL and that the server runs ('picas server status' for the local one)"


class Unauthorized(PicasError):
    """The server rejected the credentials (HTTP 401)."""

    exit_code = 5
    hint = "check the username and password (PICAS_USERNAME / PICAS_PASSWORD, or 'picas init')"


class Forbidden(PicasError):
    """The credentials are valid but lack the rights for this (HTTP 403)."""

    exit_code = 6
    hint = "ask the database admin to add this user to the database's members"


class NotFound(PicasError):
    """A database, document, view or attachment does not exist (HTTP 404)."""

    exit_code = 7


class DatabaseNotFound(NotFound):
    exit_code = 14
    hint = "create it with 'picas db create' (or 'picas views create', which creates it too)"


class ViewNotFound(NotFound):
    exit_code = 15
    hint = "deploy the views with 'picas views create'"


class TokenNotFound(NotFound):
    exit_code = 16
    hint = "list tokens with 'picas tokens list'"


class Conflict(PicasError):
    """A write lost a race: the document changed since it was read (HTTP 409).

    Callers that meet this decide explicitly what wins; see the claim and
    result modules.  Classic scripts may catch it as ``ResourceConflict``.
    """

    exit_code = 8
    hint = "another client changed the document; re-read it and try again"


ResourceConflict = Conflict


class BadRequest(PicasError):
    """The server refused a request as malformed (HTTP 400)."""

    exit_code = 9


class InvalidInput(PicasError):
    """User-supplied input (a token, a push file, an option) is not valid."""

    exit_code = 10


class SchedulerError(PicasError):
    """A batch scheduler (sbatch, squeue, DIRAC) refused or failed."""

    exit_code = 11


class LocalServerError(PicasError):
    """The managed local server could not be installed, started or stopped."""

    exit_code = 12


class PilotError(PicasError):
    """A pilot could not go on (for example: the server stayed away too long)."""

    exit_code = 13


# --------------------------------------------------------------------------- couchdb-python's except clauses
# Scripts written for picas 1.x catch ``couchdb.http.ResourceConflict`` / ``ResourceNotFound``.
# When couchdb-python is loaded, Conflict and NotFound also derive from those classes, so both
# ``except`` clauses catch picas' errors.  couchdb-python is not imported for this (it is not a
# dependency, and importing it costs ~0.3 s through pkg_resources): if it is loaded already, the
# bases are added now, otherwise the moment it is imported, by a finder that watches that one name.
_COUCHDB_HTTP = "couchdb.http"
_COUCHDB_BASES = ((Conflict, "ResourceConflict"), (NotFound, "ResourceNotFound"))


def _adopt_couchdb_bases(module: object) -> None:
    for ours, name in _COUCHDB_BASES:
        theirs = getattr(module, name, None)
        if isinstance(theirs, type) and issubclass(theirs, Exception) and not issubclass(ours, theirs):
            try:
                ours.__bases__ = ours.__bases__ + (theirs,)
            except TypeError:  # an incompatible couchdb-python: its clauses then catch only its own errors
                pass


class _CouchdbHttpWatcher:
    """A meta-path finder that finds nothing itself; it wraps the loader of ``couchdb.http``."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != _COUCHDB_HTTP:
            return None
        import sys
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: object) -> None:
            run(module)
            _adopt_couchdb_bases(module)

        loader.exec_module = exec_module
        return spec


def _watch_couchdb() -> None:
    import sys
    if _COUCHDB_HTTP in sys.modules:
        _adopt_couchdb_bases(sys.modules[_COUCHDB_HTTP])
    elif not any(isinstance(finder, _CouchdbHttpWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _CouchdbHttpWatcher())


_watch_couchdb()
