"""A managed local CouchDB-compatible server, so a laptop needs neither CouchDB nor Docker.

pouchdb-server (PouchDB on Node, from npm; installed by :mod:`picas.server.install`)
speaks enough of the CouchDB HTTP API for picas: documents, ``_bulk_docs``,
JavaScript map/reduce views, ``_security`` and basic auth.  This module starts,
watches and stops one instance per data directory.  The command line (``picas
server``) and the test fixtures both go through :class:`LocalServer`, so there
is one way to run a server and it is exercised by every test run.

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
  and that crash is translated;
* one request from anyone could kill it: a database-level ``PUT`` or
  ``DELETE`` by a non-admin once an admin exists, or ``_changes?filter=_selector``.
  On a shared login node any local user could stop the pool that way.  The
  process therefore runs with ``guard.js`` preloaded (``NODE_OPTIONS``), which
  answers those requests as CouchDB would (401, 403, 400) before
  pouchdb-server sees them, and keeps the process serving if anything else
  throws.  Pilots see no outage: the server never goes down for them.
"""
from __future__ import annotations

import errno
import json
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from picas.errors import LocalServerError
from picas.core.http import Transport, TransportError
from picas.server.install import (POUCHDB_SERVER_PACKAGE, POUCHDB_SERVER_VERSION, data_home,  # noqa: F401
                                  find_binary, install, is_installed)
from picas.server import configfile
from picas.server.runtime import (GUARD, _tail, free_port, guarded_environment, process_alive,  # noqa: F401
                                  read_pid_record, settle_writes, write_private_file)
from picas.support import procgroup

_PORT_IN_USE_SIGNS = ("EADDRINUSE", "stopTailingLog is not a function", "already in use")


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

    def _live_record(self) -> dict | None:
        """The pid-file record if its process still runs, else None."""
        record = read_pid_record(self.pid_file)
        if record is None:
            return None
        pid = record["pid"]
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: poll() also reaps it, so it does not linger as a zombie.
            return record if self._proc.poll() is None else None
        binary_name = Path(record["binary"]).name if record.get("binary") else None
        return record if process_alive(pid, binary_name) else None

    # -- lifecycle -------------------------------------------------------

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
            server_uuid = configfile.server_uuid(self.config_file)
            configfile.write_config(self.config_file, admin=self.admin, server_uuid=server_uuid,
                                    log_level=self.log_level, log_file=self.data_dir / "log.txt")
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
                                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                        env=guarded_environment())
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
                    configfile.protect_config(self.config_file, self.admin[0] if self.admin else None)
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

    def _terminate(self, pid: int, timeout: float) -> None:
        """TERM to the server's session group, KILL after ``timeout`` s (:func:`picas.support.procgroup.terminate`).

        Our own child is reaped on the way; a server started by another
        process is only waited for.
        """
        target = self._proc if self._proc is not None and self._proc.pid == pid else pid
        procgroup.terminate(target, grace=timeout)
        deadline = time.monotonic() + 5.0
        while procgroup.alive(target):  # a bare pid's KILL lands asynchronously
            if time.monotonic() > deadline:
                raise LocalServerError(f"pouchdb-server (pid {pid}) survived SIGKILL")
            time.sleep(0.05)

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

    def _settle_writes(self) -> None:
        settle_writes(self.data_dir, {self.LOG_FILE, self.PID_FILE, self.CONFIG_FILE, "log.txt"})

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
