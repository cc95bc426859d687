"""picas.support.procgroup against real processes: groups, stragglers, zombies, grace and KILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from picas.support import procgroup
from tests.helpers import wait_for


def _group(script: str) -> subprocess.Popen:
    """A bash script in a session of its own, as picas starts payloads."""
    return subprocess.Popen(["bash", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL)


def _members(pgid: int) -> list[str]:
    return [state for state in procgroup.group_states(pgid) or [] if state not in ("Z", "X")]


def test_terminate_stops_the_whole_group_children_included() -> None:
    proc = _group("sleep 60 & sleep 60 & wait")
    wait_for(lambda: len(_members(proc.pid)) == 3, timeout=10, what="bash and its two sleeps")
    procgroup.terminate(proc, grace=10)
    assert proc.returncode is not None, "terminate reaps a Popen it stopped"
    assert not procgroup.group_alive(proc.pid)
    assert _members(proc.pid) == []


def test_a_payload_that_ignores_term_gets_kill_after_the_grace_period() -> None:
    proc = _group("trap '' TERM; sleep 60; true")
    wait_for(lambda: len(_members(proc.pid)) == 2, timeout=10, what="bash and sleep")
    procgroup.terminate(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert not procgroup.group_alive(proc.pid)


def test_hurry_cuts_the_grace_period_short() -> None:
    proc = _group("trap '' TERM; sleep 60; true")
    wait_for(lambda: len(_members(proc.pid)) == 2, timeout=10, what="bash and sleep")
    hurry = threading.Event()
    hurry.set()
    stopper = threading.Thread(target=procgroup.terminate, args=(proc,), kwargs={"grace": 3600, "hurry": hurry})
    stopper.start()
    stopper.join(timeout=30)  # without the hurry it would wait out the hour
    assert not stopper.is_alive()
    assert proc.returncode == -signal.SIGKILL


def test_stragglers_are_reached_after_their_leader_was_reaped() -> None:
    proc = _group("sleep 60 & exit 0")
    proc.wait()
    wait_for(lambda: _members(proc.pid), timeout=10, what="the straggler sleep")
    assert procgroup.group_alive(proc.pid) and procgroup.alive(proc)
    procgroup.send(proc.pid, signal.SIGKILL)
    wait_for(lambda: not procgroup.group_alive(proc.pid), timeout=10, what="the straggler to die")


def test_a_zombie_counts_as_gone_but_a_running_process_does_not() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    assert procgroup.process_alive(os.getpid())
    wait_for(lambda: procgroup.is_zombie(proc.pid), timeout=10, what="the child to exit (unreaped)")
    assert not procgroup.process_alive(proc.pid)
    assert not procgroup.alive(proc.pid), "a bare pid is not reaped, and a zombie is gone"
    assert procgroup.is_zombie(proc.pid), "alive() of a bare pid must not reap someone else's child"
    proc.wait()
    assert not procgroup.process_alive(proc.pid)


def test_process_alive_checks_the_command_line() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert procgroup.process_alive(proc.pid, "sleep")
        assert not procgroup.process_alive(proc.pid, "pouchdb-server"), "a reused pid is not ours"
    finally:
        proc.kill()
        proc.wait()


def test_send_never_signals_our_own_group() -> None:
    received = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        other = subprocess.Popen(["sleep", "60"])  # same group as this test process
        procgroup.send(other.pid, signal.SIGTERM)
        assert other.wait(timeout=10) == -signal.SIGTERM
        assert not received, "the test process itself was not signalled"
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_child_pids_lists_live_children_only() -> None:
    running = subprocess.Popen(["sleep", "60"])
    finished = subprocess.Popen(["true"])
    try:
        wait_for(lambda: procgroup.is_zombie(finished.pid), timeout=10, what="'true' to exit")
        children = procgroup.child_pids()
        assert running.pid in children
        assert finished.pid not in children
    finally:
        running.kill()
        running.wait()
        finished.wait()
