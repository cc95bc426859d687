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
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Sequence

_registry_lock = threading.Lock()
_running: set[subprocess.Popen] = set()


def execute(args: str | Sequence[str], shell: bool = False) -> tuple[subprocess.Popen, int, bytes, bytes]:
    """Run ``args`` to completion; returns ``(process, exit code, stdout bytes, stderr bytes)``.

    ``args`` is what :class:`subprocess.Popen` takes: an argument list, or a
    command line with ``shell=True``.
    """
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, shell=shell,
                            start_new_session=True)
    with _registry_lock:
        _running.add(proc)
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        terminate(proc, grace=2.0)
        raise
    finally:
        with _registry_lock:
            _running.discard(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return proc, proc.returncode, stdout, stderr


def running() -> list[subprocess.Popen]:
    """The processes started by :func:`execute` that have not been collected yet (any thread)."""
    with _registry_lock:
        return list(_running)


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except (ProcessLookupError, PermissionError):
        return False


def send(target: subprocess.Popen | int, sig: int) -> None:
    """Send ``sig`` to a process, or to its whole group when it leads one (never to our own group)."""
    pid = target if isinstance(target, int) else target.pid
    try:
        if _is_group_leader(pid) and pid != os.getpgrp():
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def alive(target: subprocess.Popen | int) -> bool:
    """Whether the process (or, for a group leader, anything in its group) still runs."""
    if isinstance(target, subprocess.Popen):
        if target.poll() is None:
            return True
        pid = target.pid
    else:
        # A bare pid is someone else's child (e.g. a Popen of the user's): never reap it here, or its
        # owner would read exit code 0 for a killed process.  A zombie counts as gone.
        pid = target
        try:
            os.kill(pid, 0)
            if not _is_zombie(pid):
                return True
        except (ProcessLookupError, PermissionError):
            pass
    if pid == os.getpgrp():
        return False
    try:
        os.killpg(pid, 0)  # stragglers left in the group keep the pipes open
    except (ProcessLookupError, PermissionError):
        return False
    members = _group_states(pid)
    # Orphans that died are zombies until init reaps them, which some container inits never do.
    return members is None or any(state != "Z" for state in members)


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _is_zombie(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] == "Z"


def _group_states(pgid: int) -> list[str] | None:
    """The states of the processes in a group (None where /proc cannot tell)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    states = []
    for entry in entries:
        if entry.isdigit():
            fields = _stat(entry)
            if fields and len(fields) > 2 and fields[2] == str(pgid):
                states.append(fields[0])
    return states


def terminate(*targets: subprocess.Popen | int, grace: float = 10.0, hurry: threading.Event | None = None) -> None:
    """Stop processes (with their groups): TERM, up to ``grace`` seconds to exit, then KILL.

    All targets get TERM at once and share one grace period, so stopping many
    costs no more than stopping one.  Setting ``hurry`` (a second Ctrl-C)
    cuts the grace period short.
    """
    live = [t for t in targets if alive(t)]
    if not live:
        return
    for target in live:
        send(target, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(t) for t in live):
        if hurry is not None and hurry.is_set():
            break
        time.sleep(0.05)
    for target in live:
        if alive(target):
            send(target, signal.SIGKILL)


def child_pids() -> set[int]:
    """The pids of this process's live (non-zombie) children; empty where /proc cannot tell.

    The actor uses it to find payload processes that ``process_task``
    started by other means than :func:`execute` (``subprocess.run``...).
    """
    pids: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    found_children_files = False
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as handle:
                pids.update(int(pid) for pid in handle.read().split())
            found_children_files = True
        except (OSError, ValueError):
            continue
    if not found_children_files:  # kernels without CONFIG_PROC_CHILDREN: scan every process
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat(entry)
                if fields and len(fields) > 1 and fields[1] == me:
                    pids.add(int(entry))
    return {pid for pid in pids if not _is_zombie(pid)}
