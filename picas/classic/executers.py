"""Run a command and collect its output: the helper classic picas scripts call in ``process_task``.

:func:`execute` keeps the classic signature and return value.  Two things
differ, both so that a running actor can stop a payload it did not start
itself (on its per-token timeout, or when SIGTERM/SIGINT asks it to stop):

* the command runs in a process group of its own, so stopping it reaches
  its children and grandchildren too (``/usr/bin/time ./job.sh`` → bash →
  the real work), not only the first process;
* while it runs it is listed in a registry (:func:`running`) that the actor
  reads; ``execute`` itself never needs to be told about the actor.

An exception in the waiting thread (Ctrl-C in an interactive session) stops
the process group before it propagates, so nothing is left running.
Stopping a group (TERM, grace, KILL) is :func:`picas.support.procgroup.terminate`.
"""
from __future__ import annotations

import contextlib
import subprocess
import threading
from typing import Iterator, Sequence

# Stopping and watching process groups is picas.support.procgroup's; re-exported under the names
# classic code (and the actor's watchdog) uses.
from picas.support.procgroup import alive, child_pids, send, terminate

__all__ = ["execute", "execute_old", "running", "alive", "child_pids", "send", "terminate"]

_registry_lock = threading.Lock()
_running: set[subprocess.Popen] = set()


@contextlib.contextmanager
def _listed(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """List ``proc`` in :func:`running` while the caller waits for it; an interrupted wait stops its group."""
    with _registry_lock:
        _running.add(proc)
    try:
        yield proc
    except BaseException:
        terminate(proc, grace=2.0)
        raise
    finally:
        with _registry_lock:
            _running.discard(proc)


def execute(args: str | Sequence[str], shell: bool = False) -> tuple[subprocess.Popen, int, bytes, bytes]:
    """Run ``args`` to completion; returns ``(process, exit code, stdout bytes, stderr bytes)``.

    ``args`` is what :class:`subprocess.Popen` takes: an argument list, or a
    command line with ``shell=True``.
    """
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, shell=shell,
                            start_new_session=True)
    try:
        with _listed(proc):
            stdout, stderr = proc.communicate()
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return proc, proc.returncode, stdout, stderr


def execute_old(cmd: str) -> int:
    """Run a shell command line with its output on ours; returns the wait status, as ``os.system`` does.

    The classic helper (1.1.x ran ``os.system``): 0 means success, a normal
    exit ``n`` is ``n << 8``, death by signal ``s`` is ``s``.  The command
    runs in a process group of its own and is listed in :func:`running`, so
    a running actor can stop it like any payload.
    """
    proc = subprocess.Popen(cmd, shell=True, start_new_session=True)
    with _listed(proc):
        code = proc.wait()
    return -code if code < 0 else code << 8


def running() -> list[subprocess.Popen]:
    """The processes started by :func:`execute` that have not been collected yet (any thread)."""
    with _registry_lock:
        return list(_running)
