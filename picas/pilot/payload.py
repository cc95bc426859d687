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

    @property
    def duration(self) -> float:
        return self.finished - self.started


class CappedLog:
    """Drains one pipe into a file, keeping the head and the tail within ``cap`` bytes."""

    def __init__(self, stream, path: Path, cap: int) -> None:
        self.stream = stream
        self.path = path
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.total = 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        written = 0
        tail: deque[bytes] = deque()
        tail_size = 0
        with open(self.path, "wb") as out:
            while True:
                chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
                if not chunk:
                    break
                self.total += len(chunk)
                if written < self.head_cap:
                    part = chunk[:self.head_cap - written]
                    out.write(part)
                    written += len(part)
                    chunk = chunk[len(part):]
                if chunk:
                    tail.append(chunk)
                    tail_size += len(chunk)
                    while tail and tail_size - len(tail[0]) >= self.tail_cap:
                        tail_size -= len(tail.popleft())
            kept_tail = b"".join(tail)[-self.tail_cap:] if tail else b""
            cut = self.total - written - len(kept_tail)
            if cut > 0:
                out.write(f"\n[picas: {cut} bytes of output cut here; the log keeps the first {written} "
                          f"and the last {len(kept_tail)} bytes]\n".encode())
            out.write(kept_tail)
        self.stream.close()

    @property
    def truncated_bytes(self) -> int:
        return max(0, self.total - self.head_cap - self.tail_cap)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


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
            for path in (stdout_path, stderr_path):
                if path.parent.is_dir() and not path.exists():
                    path.write_bytes(b"")
            if stderr_path.parent.is_dir():
                with open(stderr_path, "ab") as err:
                    err.write(f"picas: {message}\n".encode())
            return ExecResult(exit_code=code, started=started, finished=time.time(), stdout=stdout_path,
                              stderr=stderr_path, error=message)

        try:
            logs.mkdir(parents=True, exist_ok=True)
            if not workdir_ready:
                if workdir.exists():
                    shutil.rmtree(workdir, ignore_errors=True)
                workdir.mkdir(parents=True)
        except OSError as exc:
            return failed(f"cannot create the working directory {workdir}: {exc.strerror or exc}")
        try:
            argv = command_for(doc.get("input"))
        except InvalidInput as exc:
            return failed(str(exc))

        env = {**os.environ, **self.env, "PICAS_TOKEN_ID": token_id, "PICAS_WORKDIR": str(workdir)}
        env.pop("PICAS_PASSWORD", None)  # the pilot's password is not the payload's: it would end up in its logs
        try:
            proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            return failed(f"command not found: {argv[0]}", code=127)
        except PermissionError:
            return failed(f"permission denied: {argv[0]}", code=126)
        except OSError as exc:
            return failed(f"cannot start {argv[0]}: {exc.strerror or exc}", code=126)

        out = CappedLog(proc.stdout, stdout_path, self.log_cap)
        err = CappedLog(proc.stderr, stderr_path, self.log_cap)
        deadline = None if not timeout else time.monotonic() + timeout
        timed_out = interrupted = False
        while True:
            try:
                proc.wait(timeout=0.1)
                if proc.returncode < 0 or proc.returncode > 128:
                    # scancel and a walltime signal every process of a job at once: the payload may
                    # die of that signal a moment before the pilot's own handler runs.  A payload
                    # killed while the pilot is told to stop was interrupted, not failed.
                    settle = time.monotonic() + 1.0
                    while not should_stop() and time.monotonic() < settle:
                        time.sleep(0.02)
                    interrupted = should_stop()
                break
            except subprocess.TimeoutExpired:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
            elif should_stop():
                interrupted = True
            if timed_out or interrupted:
                procgroup.terminate(proc, grace=self.grace, hurry=should_force)
                break
        # Stragglers that outlived the payload's main process would hold the pipes open.
        if procgroup.group_alive(proc.pid):
            procgroup.terminate(proc, grace=min(self.grace, 2.0))
        out.join(timeout=30)
        err.join(timeout=30)
        finished = time.time()
        code = proc.returncode
        error = None
        if timed_out:
            error = f"timed out after {timeout:g} s; the payload's process group was stopped"
        truncated = {name: log.truncated_bytes for name, log in (("stdout", out), ("stderr", err))
                     if log.truncated_bytes}
        if not self.keep_workdirs and not workdir_ready:
            shutil.rmtree(workdir, ignore_errors=True)
        return ExecResult(exit_code=code if code is not None else -1, started=started, finished=finished,
                          stdout=stdout_path, stderr=stderr_path, timed_out=timed_out, interrupted=interrupted,
                          truncated=truncated, error=error)

    def cleanup_logs(self, result: ExecResult) -> None:
        for path in (result.stdout, result.stderr):
            try:
                path.unlink()
            except OSError:
                pass
