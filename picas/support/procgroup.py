"""Processes and process groups: the one place picas asks "does it still run?" and stops a group.

Payloads (the pilot's bash executor, the classic ``execute``) and the local
server run in a session of their own, so that one signal to the group reaches
their children and grandchildren too.  Stopping such a group is always the
same three steps: TERM to the group, a grace period, KILL to what is left.

"Does it still run?" is answered from ``/proc`` where there is one, because
``kill(pid, 0)`` alone says yes for a zombie: an orphan that died stays a
zombie until init reaps it, and some container inits never do.  A zombie
counts as gone, except a thread-group leader whose other threads still run
(Node's main thread may exit a moment before the threads holding its socket).
Without ``/proc`` the answers fall back on ``kill(pid, 0)``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Union

from picas import defaults

__all__ = ["stat_fields", "is_zombie", "process_alive", "group_alive", "alive", "send", "terminate",
           "child_pids"]

#: A process picas started (a Popen it may reap) or a bare pid (someone else's child: never reaped here).
Target = Union[subprocess.Popen, int]
_PROC = Path("/proc")
_GONE_STATES = ("Z", "X")


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, ...), or None.

    The command name is cut at the *last* parenthesis: it may itself hold
    spaces and parentheses.
    """
    try:
        with open(_PROC / str(pid) / "stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields or None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not reaped yet (False when /proc cannot tell)."""
    fields = stat_fields(pid)
    return bool(fields) and fields[0] in _GONE_STATES


def _other_threads_alive(pid: int) -> bool:
    """Whether a zombie thread-group leader still has live threads (they may still hold its sockets)."""
    for task_stat in (_PROC / str(pid) / "task").glob("*/stat"):
        try:
            fields = task_stat.read_text(errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] not in _GONE_STATES:
            return True
    return False


def process_alive(pid: int, expect_in_cmdline: str | None = None) -> bool:
    """Whether ``pid`` is a live process, and (where /proc exists) still the one we mean.

    ``expect_in_cmdline`` guards against a stale pid file: a pid handed out
    again to an unrelated process must not be reported as ours, nor killed.
    """
    if (_PROC / "self").exists():
        fields = stat_fields(pid)
        if fields is None:
            return False
        if fields[0] in _GONE_STATES and not _other_threads_alive(pid):
            return False
        if expect_in_cmdline is None:
            return True
        cmdline = _cmdline(pid)
        return cmdline is not None and expect_in_cmdline in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is only not ours to signal
    return True


def _cmdline(pid: int) -> str | None:
    """A process's command line, or None when it is gone.

    A process caught in the middle of exec (its name already set, its new
    arguments not yet) reads as empty for a moment; that moment is waited out
    (bounded), or a server just started would look like a stranger.
    """
    for _ in range(50):
        try:
            raw = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return raw.replace(b"\0", b" ").decode("utf-8", "replace")
        time.sleep(0.002)
    return ""


def group_states(pgid: int) -> list[str] | None:
    """The states of the processes in a group, or None where /proc cannot tell."""
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return None
    states = []
    for entry in entries:
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields and len(fields) > 2 and fields[2] == str(pgid):
                states.append(fields[0])
    return states


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs; zombies nobody reaps do not count.

    Our own group never counts: it is not a payload's.
    """
    if pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    states = group_states(pgid)
    return states is None or any(state not in _GONE_STATES for state in states)


def alive(target: Target) -> bool:
    """Whether a process, or anything left in the group it leads, still runs.

    A :class:`subprocess.Popen` is polled (and so reaped when it has exited);
    a bare pid is someone else's child and is never reaped here, or its owner
    would read exit code 0 for a killed process.
    """
    if isinstance(target, subprocess.Popen):
        if target.poll() is None:
            return True
        pid = target.pid
    else:
        pid = target
        if process_alive(pid):
            return True
    return group_alive(pid)  # stragglers left in the group keep pipes open


def send(target: Target, sig: int) -> None:
    """Send ``sig`` to the group ``target`` leads, or to the process alone when it leads none.

    A group keeps its id while any member lives, and Linux does not hand out
    a pid that is still some group's id, so ``killpg(pid)`` reaches exactly
    the group that process started, even after the leader itself was reaped.
    Our own group is never signalled.
    """
    pid = target if isinstance(target, int) else target.pid
    try:
        if pid != os.getpgrp():
            try:
                os.killpg(pid, sig)
                return
            except ProcessLookupError:
                pass  # it leads no group
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate(*targets: Target, grace: float = defaults.GRACE,
              hurry: Callable[[], bool] | threading.Event | None = None) -> None:
    """Stop processes with their groups: TERM, up to ``grace`` seconds to exit, then KILL.

    All targets get TERM at once and share one grace period, so stopping many
    costs no more than stopping one.  ``hurry`` (a callable, or an event such
    as a second Ctrl-C) cuts the grace period short.  Popen targets are
    reaped before this returns, so their exit code is known.
    """
    hurried = hurry.is_set if isinstance(hurry, threading.Event) else hurry
    live = [target for target in targets if alive(target)]
    for target in live:
        send(target, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline and any(alive(target) for target in live):
        if hurried is not None and hurried():
            break
        time.sleep(0.05)
    for target in live:
        if alive(target):
            send(target, signal.SIGKILL)
    for target in targets:
        if isinstance(target, subprocess.Popen):
            target.wait()


def child_pids() -> set[int]:
    """The pids of this process's live (non-zombie) children; empty where /proc cannot tell.

    Finds payloads that were started by other means than picas' own
    executors (``subprocess.run`` in a classic ``process_task``...).
    """
    pids: set[int] = set()
    try:
        tasks = os.listdir(_PROC / "self" / "task")
    except OSError:
        return pids
    found_children_files = False
    for tid in tasks:
        try:
            with open(_PROC / "self" / "task" / tid / "children", encoding="ascii") as handle:
                pids.update(int(pid) for pid in handle.read().split())
            found_children_files = True
        except (OSError, ValueError):
            continue
    if not found_children_files:  # kernels without CONFIG_PROC_CHILDREN: scan every process
        me = str(os.getpid())
        for entry in os.listdir(_PROC):
            if entry.isdigit():
                fields = stat_fields(entry)
                if fields and len(fields) > 1 and fields[1] == me:
                    pids.add(int(entry))
    return {pid for pid in pids if not is_zombie(pid)}
