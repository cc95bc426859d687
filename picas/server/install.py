"""Installing pouchdb-server: once per user, with npm, into picas' data home.

Apache CouchDB is rarely at hand on a laptop or a CI runner, but Node.js is.
pouchdb-server (PouchDB on Node, from npm) speaks enough of the CouchDB HTTP API
for picas; :mod:`picas.server.local` runs it.  This module finds it, or installs
it on first use: ``$PICAS_POUCHDB_SERVER`` names a prepared copy, otherwise it
lives under :func:`data_home`.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from picas.errors import LocalServerError

POUCHDB_SERVER_VERSION = "4.2.0"
POUCHDB_SERVER_PACKAGE = f"pouchdb-server@{POUCHDB_SERVER_VERSION}"

_INSTALL_MARKER = ".picas-installed"
_NPM_TIMEOUT = 900.0


def data_home() -> Path:
    """Return the per-user directory where picas keeps the server, its data and its state.

    Follows the XDG base directory convention so that it lands where users
    expect data (not configuration) to live; ``$PICAS_DATA_HOME`` overrides it,
    which is what tests and shared machines use to keep installations apart.
    """
    explicit = os.environ.get("PICAS_DATA_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "picas"
    return Path.home() / ".local" / "share" / "picas"


def _install_prefix() -> Path:
    return data_home() / "pouchdb-server"


def _installed_binary(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "pouchdb-server"


def is_installed() -> bool:
    """Tell whether the per-user pouchdb-server is installed, so callers can warn before a slow install.

    A marker written after npm succeeded is required, so that an install that
    was interrupted half-way is redone instead of being trusted.
    """
    prefix = _install_prefix()
    marker = prefix / _INSTALL_MARKER
    try:
        version = marker.read_text().strip()
    except OSError:
        return False
    return version == POUCHDB_SERVER_VERSION and _installed_binary(prefix).exists()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise installs: two first-use starts (say, parallel test runs) must not run npm at once."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError as exc:
        raise LocalServerError(f"cannot write to {path.parent}: {exc.strerror or exc}",
                               hint="set PICAS_DATA_HOME to a writable directory") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _last_meaningful_line(text: str) -> str:
    """Pick the line of npm's stderr that says what went wrong, not where its debug log is."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if "complete log of this run" not in line]
    return (useful or lines or ["(no output)"])[-1]


def install(quiet: bool = False) -> Path:
    """Install pouchdb-server with npm into the per-user data home, once, and return its executable.

    ``--ignore-scripts`` matters: without it npm compiles sqlite3 from source
    for minutes, while the LevelDB backend picas uses ships prebuilt.  The
    install goes into its own prefix with its own package.json so that npm
    does not wander up to some parent directory's package.json.
    """
    prefix = _install_prefix()
    binary = _installed_binary(prefix)
    if is_installed():
        return binary
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, found in (("node", node), ("npm", npm)) if found is None)
        raise LocalServerError(
            f"cannot install pouchdb-server: {missing} not found on PATH",
            hint="install Node.js 18 or newer (it brings npm), "
                 "or set PICAS_POUCHDB_SERVER to a pouchdb-server executable",
        )
    with _file_lock(prefix / ".install.lock"):
        if is_installed():  # another process finished the install while we waited for the lock
            return binary
        package_json = prefix / "package.json"
        if not package_json.exists():
            package_json.write_text(json.dumps({
                "name": "picas-local-server",
                "private": True,
                "description": "pouchdb-server installed by picas; safe to delete",
            }, indent=2) + "\n")
        if not quiet:
            print(f"picas: installing {POUCHDB_SERVER_PACKAGE} with npm into {prefix} "
                  f"(first use only, takes about 30 s)...", file=sys.stderr, flush=True)
        command = [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(prefix),
                   POUCHDB_SERVER_PACKAGE]
        try:
            result = subprocess.run(command, cwd=prefix, capture_output=True, text=True, timeout=_NPM_TIMEOUT,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise LocalServerError(
                f"npm install {POUCHDB_SERVER_PACKAGE} did not finish within {_NPM_TIMEOUT:.0f} s",
                hint="check the network connection to the npm registry",
            ) from None
        except OSError as exc:
            raise LocalServerError(f"could not run npm ({npm}): {exc}") from exc
        if result.returncode != 0:
            raise LocalServerError(
                f"npm install {POUCHDB_SERVER_PACKAGE} failed (exit {result.returncode}): "
                f"{_last_meaningful_line(result.stderr or result.stdout)}",
                hint="check the network connection to the npm registry, or set PICAS_POUCHDB_SERVER",
            )
        if not binary.exists():
            raise LocalServerError(f"npm install {POUCHDB_SERVER_PACKAGE} succeeded but {binary} is missing")
        (prefix / _INSTALL_MARKER).write_text(POUCHDB_SERVER_VERSION + "\n")
    if not quiet:
        print(f"picas: installed {binary}", file=sys.stderr, flush=True)
    return binary


def find_binary(install_if_missing: bool = True) -> Path:
    """Return the pouchdb-server executable to run, installing it on first use.

    ``$PICAS_POUCHDB_SERVER`` wins so that CI images and shared installs can
    point at a copy they prepared; it may be a path or a command name on PATH.
    """
    explicit = os.environ.get("PICAS_POUCHDB_SERVER")
    if explicit:
        found = shutil.which(os.path.expanduser(explicit))
        if found is None:
            raise LocalServerError(
                f"PICAS_POUCHDB_SERVER={explicit} is not an executable file",
                hint="point it at a pouchdb-server executable, or unset it to use the per-user install",
            )
        return Path(found)
    if is_installed():
        return _installed_binary(_install_prefix())
    if not install_if_missing:
        raise LocalServerError("pouchdb-server is not installed yet", hint="run 'picas server install'")
    return install()
