"""A managed local CouchDB-compatible server, so a laptop needs neither CouchDB nor Docker.

Apache CouchDB is rarely at hand on a laptop or a CI runner, but Node.js is.
pouchdb-server (PouchDB on Node, from npm) speaks enough of the CouchDB HTTP API
for picas: documents, ``_bulk_docs``, JavaScript map/reduce views, ``_security``
and basic auth.  This module installs it once per user, and starts, watches and
stops one instance per data directory.  The command line (``picas server``)
and the test fixtures both go through :class:`LocalServer`, so there is one way
to run a server and it is exercised by every test run.

Quirks of pouchdb-server 4.2.0 that shape this code:

* it writes ``config.json`` and ``log.txt`` into its working directory, so the
  process runs with the data directory as its working directory;
* admins come from the ``-c`` config file, which it rewrites with the password
  hashed, so the file is written afresh before every start;
* ``/_up`` does not exist: readiness is a ``GET /`` that returns the uuid we
  put in the config file (which also tells our server apart from a stranger
  that happens to listen on the same port);
* with ``-n`` a taken port makes it die with ``TypeError: stopTailingLog is not
  a function`` instead of its own message, so the port is checked beforehand
  and that crash is translated.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from picas.errors import LocalServerError
from picas.core.http import Transport, TransportError
from picas.support import files, procgroup

POUCHDB_SERVER_VERSION = "4.2.0"
POUCHDB_SERVER_PACKAGE = f"pouchdb-server@{POUCHDB_SERVER_VERSION}"

_INSTALL_MARKER = ".picas-installed"
_NPM_TIMEOUT = 900.0
_PORT_IN_USE_SIGNS = ("EADDRINUSE", "stopTailingLog is not a function", "already in use")


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


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago, for servers that must not collide (tests, CI)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, offset: int = 0, lines: int = 12) -> str:
    """The last lines a process wrote, so that an error message carries its own evidence."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def write_private_file(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically, because it holds a password."""
    files.write_private(path, text)


def process_alive(pid: int, expect_in_cmdline: str | None = None) -> bool:
    """Whether ``pid`` is a live process, still the one we started (see :mod:`picas.support.procgroup`)."""
    return procgroup.process_alive(pid, expect_in_cmdline)


def _scan(directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:  # compaction may remove a file between listing and stat
        return 0.0


class LocalServer:
    """One pouchdb-server process serving one data directory.

    Everything it needs lives in ``data_dir``: the databases (unless
    ``in_memory``), ``config.json``, pouchdb-server's ``log.txt``, the
    process's own output in ``server.log`` and the pid in ``server.pid``.  A
    server started by one Python process (``picas server start``) can thus be
    inspected and stopped by another, given the same ``data_dir``.
    """

    PID_FILE = "server.pid"
    LOG_FILE = "server.log"
    CONFIG_FILE = "config.json"

    def __init__(self, data_dir: Path, port: int = 5984, host: str = "127.0.0.1",
                 admin: tuple[str, str] | None = None, in_memory: bool = False, *,
                 binary: Path | None = None, log_level: str = "warning") -> None:
        """Describe a server; nothing runs until :meth:`start`.

        ``binary`` defaults to :func:`find_binary` at start time (which may
        install it).  ``log_level`` is pouchdb-server's: the default,
        ``warning``, keeps it from logging every request, which at pilot
        rates would grow ``log.txt`` by gigabytes a day; use ``info`` to debug.
        """
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.port = int(port)
        self.host = host
        self.admin = admin
        self.in_memory = in_memory
        self.binary = Path(binary) if binary is not None else None
        self.log_level = log_level
        self._proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else str(self.data_dir)
        return f"<LocalServer {self.url} ({where})>"

    # -- addresses -------------------------------------------------------

    @property
    def _url_host(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"[{host}]" if ":" in host else host

    @property
    def url(self) -> str:
        """The base URL without credentials, safe to print and log."""
        return f"http://{self._url_host}:{self.port}"

    @property
    def admin_url(self) -> str:
        """The base URL with the admin's credentials in it, for clients that take only a URL."""
        if self.admin is None:
            return self.url
        user, password = self.admin
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{self._url_host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / self.PID_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / self.LOG_FILE

    @property
    def config_file(self) -> Path:
        return self.data_dir / self.CONFIG_FILE

    # -- pid file --------------------------------------------------------

    def _read_pid_file(self) -> dict | None:
        try:
            record = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            return None
        return record

    def _live_record(self) -> dict | None:
        """The pid-file record if its process still runs, else None."""
        record = self._read_pid_file()
        if record is None:
            return None
        pid = record["pid"]
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: poll() also reaps it, so it does not linger as a zombie.
            return record if self._proc.poll() is None else None
        binary_name = Path(record["binary"]).name if record.get("binary") else None
        return record if process_alive(pid, binary_name) else None

    # -- lifecycle -------------------------------------------------------

    def _server_uuid(self) -> str:
        """Keep the server's uuid stable across restarts; it is also our readiness fingerprint."""
        try:
            existing = json.loads(self.config_file.read_text())
            value = existing.get("couchdb", {}).get("uuid")
            if isinstance(value, str) and value:
                return value
        except (OSError, ValueError, AttributeError):
            pass
        return uuid.uuid4().hex

    def _write_config(self, server_uuid: str) -> None:
        """Write config.json afresh: pouchdb-server hashes admin passwords in place at start."""
        try:
            config = json.loads(self.config_file.read_text())
            if not isinstance(config, dict):
                config = {}
        except (OSError, ValueError):
            config = {}
        config.pop("admins", None)
        if self.admin is not None:
            user, password = self.admin
            config["admins"] = {user: password}
        config.setdefault("couchdb", {})["uuid"] = server_uuid
        log = config.setdefault("log", {})
        log["level"] = self.log_level
        log["file"] = str(self.data_dir / "log.txt")
        write_private_file(self.config_file, json.dumps(config, indent=2) + "\n")

    def _probe(self, transport: Transport) -> dict | None:
        try:
            response = transport.request("GET", "/")
            if response.status_code != 200:
                return None
            body = response.json()
        except (TransportError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def _check_port_free(self) -> None:
        """Fail early and clearly on a taken port; pouchdb-server itself reports it with a TypeError.

        "Taken" means something accepts connections there.  A bind test alone
        is too strict: right after a stop, the old server's closing
        connections (FIN-WAIT-1) make a test bind fail for a moment although
        Node can listen (measured), and a restart must not fail on that.
        """
        probe_host = self._url_host.strip("[]")
        try:
            with socket.create_connection((probe_host, self.port), timeout=1.0):
                pass
        except OSError:
            pass
        else:
            raise self._port_in_use_error()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # a clash is left to Node, whose failure is translated
                    raise LocalServerError(
                        f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None

    def _port_in_use_error(self) -> LocalServerError:
        who = ""
        probe = self._prober()
        body = self._probe(probe)
        probe.close()
        if body is not None:
            if "couchdb" in body:
                who = f" (CouchDB {body.get('version', '?')} answers there)"
            elif "express-pouchdb" in body:
                who = " (another pouchdb-server answers there)"
        return LocalServerError(
            f"port {self.port} on {self.host} is already in use{who}",
            hint="choose another port (picas server start --port N), or stop what listens there",
        )

    def start(self, wait: float = 30) -> None:
        """Spawn pouchdb-server and return once it answers, or raise LocalServerError saying why not.

        The process gets a session of its own so that it outlives the shell
        (and the ``picas server start`` process) that started it, and so that
        a terminal's Ctrl-C does not reach it.
        """
        running = self._live_record()
        if running is not None:
            raise LocalServerError(
                f"a server for {self.data_dir} already runs (pid {running['pid']}, {running.get('url', self.url)})",
                hint="stop it first with 'picas server stop'",
            )
        binary = self.binary if self.binary is not None else find_binary()
        # Private from the start: it will hold databases, logs and the (weakly) hashed admin password.
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._check_port_free()
            server_uuid = self._server_uuid()
            self._write_config(server_uuid)
        except OSError as exc:
            raise LocalServerError(f"cannot prepare {self.data_dir}: {exc.strerror or exc}",
                                   hint="choose a writable --data-dir") from None

        command = [str(binary), "--host", self.host, "--port", str(self.port),
                   "-c", str(self.config_file), "-n", "--no-color"]
        command += ["--in-memory"] if self.in_memory else ["--dir", str(self.data_dir)]
        with open(self.log_file, "ab") as log:
            offset = log.tell()
            log.write(f"--- picas: {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(command, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
            except OSError as exc:
                raise LocalServerError(
                    f"cannot run {binary}: {exc.strerror or exc}",
                    hint="run 'picas server install', or fix PICAS_POUCHDB_SERVER",
                ) from exc
        self._proc = proc
        write_private_file(self.pid_file, json.dumps({
            "pid": proc.pid, "url": self.url, "binary": str(binary), "in_memory": self.in_memory,
        }) + "\n")

        deadline = time.monotonic() + max(wait, 0.0)
        probe = self._prober()
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    self._forget_process()
                    raise self._died_error(code, offset)
                if wait <= 0:
                    return
                body = self._probe(probe)
                if body is not None and body.get("uuid") == server_uuid:
                    self._protect_config()
                    return
                if time.monotonic() > deadline:
                    self._terminate(proc.pid, timeout=5)
                    self._forget_process()
                    tail = _tail(self.log_file, offset)
                    raise LocalServerError(
                        f"pouchdb-server did not answer on {self.url} within {wait:g} s"
                        + (f"; last lines of {self.log_file}:\n{tail}" if tail else "")
                    )
                time.sleep(0.05)
        finally:
            probe.close()

    def _prober(self) -> Transport:
        """A short-timeout connection for "is it up?" probes; a corporate proxy must not intercept localhost."""
        return Transport(self.url, timeout=1.0, pool_size=1, environment_proxy=False)

    def _protect_config(self, timeout: float = 3.0) -> None:
        """Wait until pouchdb-server has hashed the admin password in config.json, then make the file private.

        It hashes and rewrites the file asynchronously (as mode 0644, by
        renaming a temporary file), possibly after it already answers; until
        then the file holds the password in plain text.  Waiting keeps that
        window inside start() and makes the chmod stick.
        """
        deadline = time.monotonic() + timeout
        while self.admin is not None and time.monotonic() < deadline:
            try:
                stored = json.loads(self.config_file.read_text()).get("admins", {}).get(self.admin[0], "")
            except (OSError, ValueError, AttributeError):
                stored = ""
            if isinstance(stored, str) and stored.startswith("-pbkdf2-"):
                break
            time.sleep(0.02)
        try:
            os.chmod(self.config_file, 0o600)
        except OSError:
            pass

    def _died_error(self, code: int, offset: int) -> LocalServerError:
        tail = _tail(self.log_file, offset)
        if any(sign in tail for sign in _PORT_IN_USE_SIGNS):
            return self._port_in_use_error()
        if "node: No such file" in tail or "'node'" in tail:
            return LocalServerError("pouchdb-server cannot start: node is not on PATH",
                                    hint="install Node.js 18 or newer")
        message = f"pouchdb-server exited with status {code} while starting"
        if tail:
            message += f"; last lines of {self.log_file}:\n{tail}"
        else:
            pouch_log = _tail(self.data_dir / "log.txt")
            if pouch_log:
                message += f"; last lines of {self.data_dir / 'log.txt'}:\n{pouch_log}"
        return LocalServerError(message)

    def _forget_process(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def _signal(self, pid: int, sig: int) -> None:
        """Signal the server's whole session group, so that a wrapper script's children go too."""
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _wait_dead(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:
                    return True
            elif not process_alive(pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _terminate(self, pid: int, timeout: float) -> None:
        self._signal(pid, signal.SIGTERM)
        if self._wait_dead(pid, timeout):
            return
        self._signal(pid, signal.SIGKILL)
        if not self._wait_dead(pid, 5.0):
            raise LocalServerError(f"pouchdb-server (pid {pid}) survived SIGKILL")

    def stop(self, timeout: float = 10) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s); return whether one was running.

        Stopping a server that is not running is not an error, so that
        cleanup code and ``picas server stop`` can be run unconditionally.
        """
        record = self._live_record()
        if record is None:
            self._forget_process()
            return False
        if not record.get("in_memory", self.in_memory):
            self._settle_writes()
        self._terminate(record["pid"], timeout)
        self._forget_process()
        return True

    def _settle_writes(self, quiet: float = 0.3, limit: float = 3.0) -> None:
        """Wait until the database files have been quiet for ``quiet`` s (at most ``limit`` s).

        pouchdb-server registers a new database in its ``pouch__all_dbs__``
        index asynchronously, after answering 201, and dies on SIGTERM without
        finishing pending writes: a database created just before a stop is
        gone after the restart (404 ``no_db_file``; measured).  Waiting for
        the files to stop changing lets that write land.
        """
        ignored = {self.LOG_FILE, self.PID_FILE, self.CONFIG_FILE, "log.txt"}
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            newest = 0.0
            for entry in _scan(self.data_dir):
                if entry.name in ignored:
                    continue
                newest = max(newest, _mtime(entry))
                if entry.is_dir(follow_symlinks=False):
                    newest = max([newest, *(_mtime(item) for item in _scan(Path(entry.path)))])
            if time.time() - newest >= quiet:
                return
            time.sleep(0.05)

    def restart(self, wait: float = 30) -> None:
        """Stop (if running) and start again; an in-memory server comes back empty."""
        self.stop()
        self.start(wait=wait)

    def status(self) -> dict:
        """Report whether the server runs, as plain data for the CLI and for scripts."""
        record = self._live_record()
        return {
            "running": record is not None,
            "pid": record["pid"] if record is not None else None,
            "url": record.get("url", self.url) if record is not None else self.url,
            "data_dir": str(self.data_dir),
            "in_memory": bool(record.get("in_memory", self.in_memory)) if record is not None else self.in_memory,
        }

    @property
    def pid(self) -> int | None:
        """The pid of the running server, or None."""
        return self.status()["pid"]

    def __enter__(self) -> "LocalServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
