"""Every scheme gfal2's plugins serve (file, http(s), dav(s), root, srm, gsiftp...), through gfal2 itself.

gfal2 comes from one of two places, and :func:`load_gfal2` finds either:

* conda's ``python-gfal2`` (a grid UI, CVMFS): a plain ``import gfal2`` works;
* the distribution's ``python3-gfal2`` (Debian, EL): the module is built for
  the system Python and lives in its ``dist-packages``/``site-packages``.  Only
  the ``gfal2*.so`` file whose ABI tag this interpreter accepts is loaded from
  there, so picas's own Python (a venv, pyenv) can use it without the rest of
  the system's packages shadowing its own.  ``$PICAS_GFAL2_PATH`` names
  another folder (or the file itself).

Facts of gfal2 this backend leans on: over HTTP the plugin ignores the
transfer timeout, so ``HTTP PLUGIN:OPERATION_TIMEOUT`` is set as well; it
ignores ``user:pw@`` in URLs, so a netrc login goes in as an
``Authorization`` header for that host's operation only; a bearer token is
handed over per URL prefix.  X.509 proxies are found by gfal2 itself
(``X509_USER_PROXY``).  gfal2 errors carry an errno, mapped here onto the
staging errors.
"""
from __future__ import annotations

import base64
import errno
import importlib.machinery
import importlib.util
import os
import stat as stat_module
import sys
import threading
import urllib.parse
import uuid
from pathlib import Path
from typing import Iterator

from picas.staging import credentials
from picas.staging.checksum import CHUNK, normalize
from picas.staging.errors import AccessDenied, DestinationExists, SourceMissing, TransferError
from picas.staging.storage import Cancel, RemoteFile, Storage
from picas.support.credentials import redact_url

__all__ = ["Gfal2Storage", "load_gfal2", "gfal2_problem", "PLUGIN_SCHEMES"]

#: The URL schemes of each gfal2 plugin (plugin names as gfal2 reports them, without the version).
PLUGIN_SCHEMES = {
    "file": {"file"},
    "http": {"http", "https", "dav", "davs", "s3", "s3s", "gcloud", "gclouds", "swift", "swifts"},
    "xrootd": {"root", "roots", "xroot", "xroots"},
    "srm": {"srm"},
    "gridftp": {"gsiftp", "ftp"},
    "sftp": {"sftp"},
    "dcap": {"dcap", "gsidcap", "kdcap"},
    "lfc": {"lfn", "lfc"},
}
_SYSTEM_DIRS = ("/usr/lib/python3/dist-packages",
                f"/usr/lib64/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages",
                f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")
_UNSUPPORTED = {errno.ENOSYS, errno.EOPNOTSUPP, errno.EPROTONOSUPPORT, errno.ENOTSUP}
_PERMANENT = {errno.EINVAL, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG} | _UNSUPPORTED

_loaded: dict[str, object] = {}


def _candidates(environ: dict) -> list[Path]:
    places = [Path(p) for p in environ.get("PICAS_GFAL2_PATH", "").split(os.pathsep) if p]
    places += [Path(p) for p in _SYSTEM_DIRS]
    found = []
    for place in places:
        if place.is_file():
            found.append(place)
            continue
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = place / f"gfal2{suffix}"
            if path.is_file():
                found.append(path)
    return found


def load_gfal2(environ: dict | None = None):
    """The gfal2 module, or None (then :func:`gfal2_problem` says why); loaded once per process."""
    if "module" in _loaded:
        return _loaded["module"]
    env = os.environ if environ is None else environ
    problems = []
    try:
        import gfal2  # conda's python-gfal2, or a venv with the system's site packages
        _loaded["module"] = gfal2
        return gfal2
    except ImportError as exc:
        problems.append(f"'import gfal2': {exc}")
    for path in _candidates(env):
        spec = importlib.util.spec_from_file_location("gfal2", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:
            problems.append(f"{path}: {exc}")
            continue
        sys.modules["gfal2"] = module
        _loaded["module"] = module
        return module
    if len(problems) == 1:
        problems.append("no gfal2 module in " + ", ".join(_SYSTEM_DIRS))
    _loaded["module"] = None
    _loaded["problem"] = "; ".join(problems)
    return None


def gfal2_problem() -> str:
    """Why gfal2 could not be loaded ('' when it was)."""
    load_gfal2()
    return str(_loaded.get("problem", ""))


def _native(url: str) -> str:
    """The URL as gfal2 wants it: its file plugin takes the path as it is, without percent-decoding."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "file":
        return "file://" + urllib.parse.unquote(parts.path)
    return url


def install_hint(scheme: str) -> str | None:
    for plugin, schemes in PLUGIN_SCHEMES.items():
        if scheme in schemes:
            return (f"install gfal2 with its {plugin} plugin: 'apt-get install python3-gfal2 gfal2-plugin-{plugin}' "
                    f"(Debian, Ubuntu) or 'dnf install python3-gfal2 gfal2-plugin-{plugin}' (EL, from EPEL), "
                    f"or use conda-forge's python-gfal2")
    return None


class Gfal2Storage(Storage):
    """The gfal2 library: whatever schemes its installed plugins serve."""

    name = "gfal2"

    def __init__(self, environ: dict | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.gfal2 = load_gfal2(self.environ)
        if self.gfal2 is None:
            raise TransferError(f"gfal2 is not available: {gfal2_problem()}", transient=False)
        self._ctx = None
        self._lock = threading.Lock()

    @classmethod
    def available(cls) -> bool:
        return load_gfal2() is not None

    @classmethod
    def missing(cls, scheme: str) -> str | None:
        return install_hint(scheme)

    def _context(self):
        if self._ctx is None:
            self._ctx = self.gfal2.creat_context()
            self._ctx.set_user_agent("picas-staging", "2")
        return self._ctx

    def schemes(self) -> frozenset[str]:
        names = {name.split("-")[0].lower() for name in self._context().get_plugin_names()}
        return frozenset(scheme for name in names for scheme in PLUGIN_SCHEMES.get(name, ()))

    def _prepare(self, url: str, timeout: float):
        """The context, set up for one operation on ``url``: its timeout and the credentials for its host."""
        ctx = self._context()
        seconds = max(1, int(timeout + 0.999))
        ctx.set_opt_integer("HTTP PLUGIN", "OPERATION_TIMEOUT", seconds)
        parts = urllib.parse.urlsplit(url)
        headers = []
        if parts.scheme in ("http", "https", "dav", "davs"):
            login = credentials.netrc_login(parts.hostname or "", self.environ)
            if login:
                pair = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
                headers.append(f"Authorization: Basic {pair}")
            elif parts.scheme in ("https", "davs"):
                token = credentials.bearer_token(self.environ)
                if token:
                    ctx.cred_set(f"{parts.scheme}://{parts.netloc}/", ctx.cred_new("BEARER", token))
        ctx.set_opt_string_list("HTTP PLUGIN", "HEADERS", headers)
        return ctx

    def _error(self, exc: Exception, url: str, what: str) -> TransferError:
        code = getattr(exc, "code", None)
        message = f"{what} {redact_url(url)}: {str(exc).strip()}"
        if code == errno.ENOENT:
            return SourceMissing(message, url=url)
        if code == errno.EEXIST:
            return DestinationExists(message, url=url)
        if code in (errno.EACCES, errno.EPERM):
            return AccessDenied(message, url=url)
        return TransferError(message, url=url, transient=code not in _PERMANENT)

    def _copy(self, src: str, dst: str, url: str, *, overwrite: bool, create_parent: bool, timeout: float,
              cancel: Cancel | None, what: str) -> None:
        with self._lock:
            ctx = self._prepare(url, timeout)
            params = ctx.transfer_parameters()
            params.timeout = max(1, int(timeout + 0.999))
            params.overwrite = overwrite
            params.create_parent = create_parent
            done = threading.Event()
            if cancel is not None:
                def watch() -> None:
                    while not done.wait(0.2):
                        if cancel():
                            ctx.cancel()
                            return
                threading.Thread(target=watch, daemon=True).start()
            try:
                ctx.filecopy(params, src, dst)
            except self.gfal2.GError as exc:
                raise self._error(exc, url, what) from None
            finally:
                done.set()

    def stat(self, url: str, timeout: float) -> RemoteFile | None:
        with self._lock:
            try:
                st = self._prepare(url, timeout).stat(_native(url))
            except self.gfal2.GError as exc:
                if exc.code == errno.ENOENT:
                    return None
                raise self._error(exc, url, "cannot stat") from None
        return RemoteFile(size=int(st.st_size), is_dir=stat_module.S_ISDIR(st.st_mode))

    def get(self, url: str, path, timeout: float, algorithms: tuple[str, ...] = (),
            cancel: Cancel | None = None) -> dict[str, str]:
        local = "file://" + str(Path(path).resolve())
        self._copy(_native(url), local, url, overwrite=True, create_parent=False, timeout=timeout, cancel=cancel,
                   what="cannot download")
        return {}  # the bytes never passed through Python: the caller checksums the file

    def put(self, path, url: str, overwrite: bool, timeout: float, cancel: Cancel | None = None) -> None:
        """Copy to a hidden temporary name next to ``url``, then rename it into place.

        So a storage that dies mid-upload leaves at most a hidden
        ``.name.picas-XXXXXXXX`` file, never half a file under the real name.
        gfal2's rename replaces an existing file, so without ``overwrite`` the
        name is checked just before (a race with another writer remains).
        Where the protocol has no rename, the copy goes straight to ``url``.
        """
        if not Path(path).is_file():
            raise SourceMissing(f"the local file {path} does not exist")
        local = "file://" + str(Path(path).resolve())
        parts = urllib.parse.urlsplit(url)
        head, _, name = parts.path.rstrip("/").rpartition("/")
        temp = urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{head}/.{name}.picas-{uuid.uuid4().hex[:8]}",
                                        "", ""))
        self._copy(local, _native(temp), url, overwrite=True, create_parent=True, timeout=timeout, cancel=cancel,
                   what="cannot upload to")
        try:
            if not overwrite and self.stat(url, timeout) is not None:
                raise DestinationExists(f"{redact_url(url)} already exists", url=url)
            with self._lock:
                try:
                    self._prepare(url, timeout).rename(_native(temp), _native(url))
                    return
                except self.gfal2.GError as exc:
                    if exc.code not in _UNSUPPORTED:
                        raise self._error(exc, url, "cannot rename the upload to") from None
        except BaseException:
            self._quiet_delete(temp, timeout)
            raise
        self._quiet_delete(temp, timeout)
        self._copy(local, _native(url), url, overwrite=overwrite, create_parent=True, timeout=timeout, cancel=cancel,
                   what="cannot upload to")

    def _quiet_delete(self, url: str, timeout: float) -> None:
        try:
            self.delete(url, min(timeout, 30.0))
        except TransferError:
            pass  # the storage is away: a hidden temporary file stays behind, never the real name

    def checksum(self, url: str, algorithm: str, timeout: float) -> str | None:
        with self._lock:
            try:
                value = self._prepare(url, timeout).checksum(_native(url), algorithm.upper())
            except self.gfal2.GError as exc:
                if exc.code in _UNSUPPORTED:
                    return None  # e.g. a WebDAV server that keeps no checksums: the caller reads the file
                raise self._error(exc, url, "cannot checksum") from None
        return normalize(algorithm, str(value))

    def read(self, url: str, timeout: float) -> Iterator[bytes]:
        with self._lock:
            try:
                handle = self._prepare(url, timeout).open(_native(url), "r")
            except self.gfal2.GError as exc:
                raise self._error(exc, url, "cannot read") from None
        while True:
            try:
                chunk = handle.read_bytes(CHUNK)
            except self.gfal2.GError as exc:
                raise self._error(exc, url, "reading broke off:") from None
            if not chunk:
                return
            yield chunk

    def delete(self, url: str, timeout: float) -> None:
        with self._lock:
            try:
                self._prepare(url, timeout).unlink(_native(url))
            except self.gfal2.GError as exc:
                if exc.code != errno.ENOENT:
                    raise self._error(exc, url, "cannot delete") from None

    def mkdir(self, url: str, timeout: float) -> None:
        with self._lock:
            try:
                self._prepare(url, timeout).mkdir_rec(_native(url), 0o755)
            except self.gfal2.GError as exc:
                if exc.code != errno.EEXIST:
                    raise self._error(exc, url, "cannot create the folder") from None

    def listdir(self, url: str, timeout: float) -> list[str]:
        with self._lock:
            try:
                return sorted(self._prepare(url, timeout).listdir(_native(url)))
            except self.gfal2.GError as exc:
                raise self._error(exc, url, "cannot list") from None

    def close(self) -> None:
        self._ctx = None
