"""The bash executor: runs a token's ``input`` in its own process group and working directory.

A string ``input`` runs through ``bash``; a list runs as an argument vector
without a shell.  The payload gets a fresh working directory and
``PICAS_TOKEN_ID``, ``PICAS_HOST_URL``, ``PICAS_DATABASE`` in its environment.

stdout and stderr are read through pipes, so a payload that prints gigabytes
costs neither memory nor disk: the first half of the cap is written as it
comes, the last half is kept in a ring buffer and appended at the end, with a
line that says how much was cut in between.

The payload runs in a new session (its own process group).  Stopping it — on
the per-token timeout, on a signal to the pilot, or because the pilot lost its
token — sends TERM to the whole group, waits a grace period, then sends KILL,
so children and grandchildren go too.  After a normal exit, stragglers left in
the group are ended the same way; the caller decides the token's state.
"""
from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from picas import defaults
from picas.errors import InvalidInput
from picas.support import procgroup
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
#: How much of a log's head stays in memory before it goes to a file (see :class:`CappedLog`).
LOG_MEMORY = 1024 * 1024


@dataclass
class ExecResult:
    """What happened to one payload run; the pilot turns it into a token state."""

    exit_code: int
    started: float
    finished: float
    stdout: Path
    stderr: Path
    timed_out: bool = False
    interrupted: bool = False
    truncated: dict = field(default_factory=dict)
    error: str | None = None
    #: What a wrapping executor adds to the token (staging: stage events, ``outputs``, manifests):
    #: history entries ``{"event", "time", ...}``, fields (None removes one), attachments (name -> (type, bytes)).
    events: list = field(default_factory=list)
    token_fields: dict = field(default_factory=dict)
    attachments: dict = field(default_factory=dict)
    #: The logs' bytes when they stayed in memory (most logs are small); None: they are in ``stdout``/``stderr``.
    stdout_data: bytes | None = None
    stderr_data: bytes | None = None

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def log(self, stream: str) -> bytes:
        """The bytes of ``"stdout"`` or ``"stderr"``, from memory or from the file; a missing file is empty."""
        data = self.stdout_data if stream == "stdout" else self.stderr_data
        if data is not None:
            return data
        try:
            return (self.stdout if stream == "stdout" else self.stderr).read_bytes()
        except OSError:
            return b""


class CappedLog:
    """One pipe's output, keeping the head and the tail within ``cap`` bytes, in memory while it is small.

    It is fed by the executor's own loop (:meth:`feed`, :meth:`close`), which
    reads both pipes of a payload in one thread: starting two reader threads
    per token cost a pilot of short tokens more CPU than the rest of its work
    on the payload together.  The head stays in memory up to ``memory``
    bytes and goes to ``path`` beyond that; most logs are a few lines, and
    writing, reading back and deleting a file for each cost as much again on
    a journalling file system.  After :meth:`close`, ``data`` holds the log
    when it never left memory (None when it is in the file).
    """

    def __init__(self, path: Path, cap: int, memory: int = LOG_MEMORY) -> None:
        self.path = path
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.memory = memory
        self.total = 0
        self.data: bytes | None = None
        self._written = 0
        self._head = bytearray()
        self._out = None
        self._tail: deque[bytes] = deque()
        self._tail_size = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self._written < self.head_cap:
            part = chunk[:self.head_cap - self._written]
            if self._out is None and len(self._head) + len(part) > self.memory:
                self._spill()
            if self._out is None:
                self._head += part
            else:
                self._out.write(part)
            self._written += len(part)
            chunk = chunk[len(part):]
        if chunk:
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            while self._tail and self._tail_size - len(self._tail[0]) >= self.tail_cap:
                self._tail_size -= len(self._tail.popleft())

    def _spill(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.path, "wb")
        self._out.write(self._head)
        self._head = bytearray()

    def close(self) -> None:
        """Add the kept tail, after a line saying how much was cut before it (if anything was)."""
        kept_tail = b"".join(self._tail)[-self.tail_cap:] if self._tail else b""
        cut = self.total - self._written - len(kept_tail)
        note = (f"\n[picas: {cut} bytes of output cut here; the log keeps the first {self._written} "
                f"and the last {len(kept_tail)} bytes]\n".encode()) if cut > 0 else b""
        self._tail.clear()
        if self._out is None:
            self.data = bytes(self._head) + note + kept_tail
            self._head = bytearray()
            return
        with self._out as out:
            out.write(note)
            out.write(kept_tail)

    @property
    def truncated_bytes(self) -> int:
        return max(0, self.total - self.head_cap - self.tail_cap)


#: How often a payload's run looks at its timeout and stop requests while the payload is silent.
_TICK = 0.1
#: How long output may still come after the payload and its group ended (a process outside the group
#: holding the pipes open, a daemon that left the session): then the logs are closed without it.
_DRAIN_AFTER_EXIT = 30.0


class _Pipes:
    """A payload's stdout and stderr, read in the calling thread through one selector.

    Both pipes must be read while the payload runs (one that fills up stops
    the payload), and both must be read to their end.  One selector does it
    without threads, and it wakes the moment the payload exits, because its
    pipes close then: no polling for the exit.
    """

    def __init__(self, proc: subprocess.Popen, out: CappedLog, err: CappedLog) -> None:
        self.proc = proc
        self.selector = selectors.DefaultSelector()
        for stream, log in ((proc.stdout, out), (proc.stderr, err)):
            self.selector.register(stream.fileno(), selectors.EVENT_READ, log)
        self.open = 2
        self._lock = threading.Lock()

    def pump(self, timeout: float) -> None:
        """Read whatever arrives within ``timeout`` seconds (returns early when something came)."""
        with self._lock:
            for key, _ in self.selector.select(timeout):
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    key.data.feed(chunk)
                else:
                    self.selector.unregister(key.fd)
                    self.open -= 1

    def until_closed(self, deadline: float) -> None:
        while self.open and time.monotonic() < deadline:
            self.pump(min(_TICK * 10, max(0.0, deadline - time.monotonic())))

    def while_stopping(self, proc: subprocess.Popen, grace: float, hurry: Callable[[], bool] | None) -> None:
        """Stop the payload's group (TERM, grace, KILL) while a helper thread keeps reading its output.

        What a payload prints while it shuts down is kept, and a payload that
        fills a pipe while shutting down is not blocked until the KILL.
        """
        reader = threading.Thread(target=self.until_closed, args=(time.monotonic() + grace + _DRAIN_AFTER_EXIT,),
                                  daemon=True)
        reader.start()
        procgroup.terminate(proc, grace=grace, hurry=hurry)
        reader.join()

    def close(self) -> None:
        self.selector.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


_CHUNK = 65536


def _fresh_dir(path: Path) -> None:
    """An empty directory at ``path``: one mkdir when it is not there yet (the usual case)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    except FileNotFoundError:
        os.makedirs(path)


def _remove_dir(path: Path) -> None:
    """Remove a working directory: one rmdir when the payload left it empty (the usual case)."""
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def command_for(input_: object) -> list[str]:
    """The argument vector for a token input, or InvalidInput saying why there is none."""
    if isinstance(input_, str):
        if not input_.strip():
            raise InvalidInput("the token's input is an empty command")
        return ["bash", "-c", input_]
    if isinstance(input_, list) and input_:
        if not all(isinstance(arg, (str, int, float)) and not isinstance(arg, bool) for arg in input_):
            raise InvalidInput("the token's input list must hold only strings and numbers")
        return [str(arg) for arg in input_]
    if input_ is None:
        raise InvalidInput("the token has no input: nothing to run")
    raise InvalidInput(f"the token's input is a {type(input_).__name__}; expected a command string "
                       f"or a list of arguments")


def safe_name(token_id: str) -> str:
    """A file-system-safe form of a token id, for directories and log names."""
    return _SAFE_NAME.sub("_", token_id)[:200] or "token"


class BashExecutor:
    """Runs token inputs as processes; one instance serves one pilot."""

    def __init__(self, workdir_root: Path, *, log_cap: int = defaults.LOG_CAP, grace: float = defaults.GRACE,
                 keep_workdirs: bool = False, env: dict | None = None) -> None:
        self.workdir_root = Path(workdir_root)
        self.log_cap = log_cap
        self.grace = grace
        self.keep_workdirs = keep_workdirs
        self.env = dict(env or {})
        self._env_bytes: dict[bytes, bytes] | None = None
        self._shells: dict[str | None, str] = {}

    def _environment(self, token_id: str, workdir: Path) -> dict:
        """The payload's environment: the pilot's, the executor's additions, the token's id and directory.

        Built as bytes (``os.environb``), read afresh for every token: handing
        subprocess a str environment makes it encode every variable again,
        which cost a pilot of short tokens more than starting bash itself.
        """
        if not os.supports_bytes_environ:
            env = {**os.environ, **self.env, "PICAS_TOKEN_ID": token_id, "PICAS_WORKDIR": str(workdir)}
            env.pop("PICAS_PASSWORD", None)
            return env
        # os.environb's own dict of bytes (shared with os.environ, so always current): copying the mapping
        # through its public interface checks and converts every key and value again, once per token.
        env = dict(getattr(os.environb, "_data", None) or os.environb)
        if self._env_bytes is None:
            self._env_bytes = {os.fsencode(k): os.fsencode(v) for k, v in self.env.items()}
        env.update(self._env_bytes)
        env[b"PICAS_TOKEN_ID"] = os.fsencode(token_id)
        env[b"PICAS_WORKDIR"] = os.fsencode(str(workdir))
        env.pop(b"PICAS_PASSWORD", None)  # the pilot's password is not the payload's: it would end up in its logs
        return env

    def _bash(self, argv: list[str], env: dict) -> str | None:
        """Where ``bash`` is on the payload's PATH, looked up once per PATH (None: let subprocess search).

        Only bash, the shell of every string input, is remembered: a list
        input names a program that an earlier token may have just installed.
        """
        if argv[0] != "bash":
            return None
        path = env.get(b"PATH", env.get("PATH"))
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        found = self._shells.get(path)
        if found is None:
            found = shutil.which("bash", path=path)
            if found is None or not os.path.isabs(found):
                return None  # not found (subprocess says so), or found relative to a directory that moves
            self._shells[path] = found
        return found

    def workdir_for(self, token_id: str) -> Path:
        return self.workdir_root / safe_name(token_id)

    def run(self, doc: dict, *, timeout: float | None = None,
            should_stop: Callable[[], bool] = lambda: False,
            should_force: Callable[[], bool] = lambda: False, workdir_ready: bool = False) -> ExecResult:
        """Run the token's input to the end, the timeout, or until ``should_stop()`` says so.

        ``workdir_ready``: the caller made the working directory and filled it
        (staging, :mod:`picas.staging.executor`); it is used as it is and left
        in place afterwards, for the caller to take the outputs from.

        Errors of the token itself (bad input, a command that does not exist,
        a working directory that cannot be made) come back as a result with
        ``error`` set and exit code 127 or -1, never as an exception: they end
        this token in error, and the pilot goes on.
        """
        token_id = str(doc.get("_id", "token"))
        workdir = self.workdir_for(token_id)
        logs = self.workdir_root / ".logs"
        started = time.time()
        stdout_path = logs / f"{safe_name(token_id)}.out"
        stderr_path = logs / f"{safe_name(token_id)}.err"

        def failed(message: str, code: int = -1) -> ExecResult:
            return ExecResult(exit_code=code, started=started, finished=time.time(), stdout=stdout_path,
                              stderr=stderr_path, error=message, stdout_data=b"",
                              stderr_data=f"picas: {message}\n".encode())

        try:
            if not workdir_ready:
                _fresh_dir(workdir)
        except OSError as exc:
            return failed(f"cannot create the working directory {workdir}: {exc.strerror or exc}")
        try:
            argv = command_for(doc.get("input"))
        except InvalidInput as exc:
            return failed(str(exc))

        env = self._environment(token_id, workdir)
        try:
            proc = subprocess.Popen(argv, executable=self._bash(argv, env), cwd=workdir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except FileNotFoundError:
            return failed(f"command not found: {argv[0]}", code=127)
        except PermissionError:
            return failed(f"permission denied: {argv[0]}", code=126)
        except OSError as exc:
            return failed(f"cannot start {argv[0]}: {exc.strerror or exc}", code=126)

        out = CappedLog(stdout_path, self.log_cap)
        err = CappedLog(stderr_path, self.log_cap)
        pipes = _Pipes(proc, out, err)
        deadline = None if not timeout else time.monotonic() + timeout
        timed_out = interrupted = False
        try:
            while True:
                # Wakes at once when output comes or the payload ends (its pipes close), else every tick.
                wait = _TICK if deadline is None else max(0.0, min(_TICK, deadline - time.monotonic()))
                if pipes.open:
                    pipes.pump(wait)
                else:  # the payload closed both pipes but may still run
                    try:
                        proc.wait(timeout=wait)
                    except subprocess.TimeoutExpired:
                        pass
                if proc.poll() is not None:
                    if proc.returncode < 0 or proc.returncode > 128:
                        # scancel and a walltime signal every process of a job at once: the payload may
                        # die of that signal a moment before the pilot's own handler runs.  A payload
                        # killed while the pilot is told to stop was interrupted, not failed.
                        settle = time.monotonic() + 1.0
                        while not should_stop() and time.monotonic() < settle:
                            time.sleep(0.02)
                        interrupted = should_stop()
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    timed_out = True
                elif should_stop():
                    interrupted = True
                if timed_out or interrupted:
                    pipes.while_stopping(proc, self.grace, should_force)
                    break
            # Stragglers that outlived the payload's main process would hold the pipes open.
            if procgroup.group_alive(proc.pid):
                pipes.while_stopping(proc, min(self.grace, 2.0), None)
            pipes.until_closed(time.monotonic() + _DRAIN_AFTER_EXIT)
        finally:
            pipes.close()
            out.close()
            err.close()
        finished = time.time()
        code = proc.returncode
        error = None
        if timed_out:
            error = f"timed out after {timeout:g} s; the payload's process group was stopped"
        truncated = {name: log.truncated_bytes for name, log in (("stdout", out), ("stderr", err))
                     if log.truncated_bytes}
        if not self.keep_workdirs and not workdir_ready:
            _remove_dir(workdir)
        return ExecResult(exit_code=code if code is not None else -1, started=started, finished=finished,
                          stdout=stdout_path, stderr=stderr_path, timed_out=timed_out, interrupted=interrupted,
                          truncated=truncated, error=error, stdout_data=out.data, stderr_data=err.data)

    def cleanup_logs(self, result: ExecResult) -> None:
        """Remove the log files of a result whose logs were read; logs kept in memory have none."""
        for path, data in ((result.stdout, result.stdout_data), (result.stderr, result.stderr_data)):
            if data is not None:
                continue
            try:
                path.unlink()
            except OSError:
                pass
