"""Pilots on this machine for the length of one Snakemake run (``--picas-local-pilots N``).

The pilots are ``picas run --wait -j N``: the same pilots as anywhere else,
draining the run's design document, with the connection handed over in the
environment (never on a command line, which ``ps`` shows).  They run in a
session of their own, so the Ctrl-C a terminal sends to Snakemake does not
reach them: Snakemake first cancels the run's tokens, then stops the pilots,
in that order, and a pilot's payload is never cut off before its token is
marked.

A small watchdog sits between Snakemake and the pilots (``python -m
snakemake_executor_plugin_picas.pilots --parent PID -- COMMAND``).  It
forwards a stop to the pilots and also stops them by itself when Snakemake
is gone without saying so (killed with SIGKILL, or its terminal closed), so
no pilot outlives the run that started it.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Mapping

from picas.config import Settings
from picas.support import procgroup

__all__ = ["LocalPilots", "pilot_command", "pilot_env", "main"]

#: Local pilots renew their leases this often by default, so a cancelled job stops within seconds.
HEARTBEAT = 5
#: Seconds the pilots get to stop their payloads and give tokens back before they are killed.
STOP_GRACE = 30.0


def pilot_command(count: int, design: str, extra: str | None = None) -> list[str]:
    """``picas run`` for ``count`` waiting pilots on ``design``; ``extra`` options come last, so they win."""
    return [sys.executable, "-m", "picas", "run", "--wait", "--jobs", str(count), "--design-doc", design,
            "--heartbeat", str(HEARTBEAT), *shlex.split(extra or "")]


def pilot_env(settings: Settings, url: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The pilots' environment: ours, with the resolved connection in the ``PICAS_*`` variables."""
    env = {key: value for key, value in environ.items() if key not in ("PICAS_PROFILE",)}
    env.update({"PICAS_HOST_URL": url, "PICAS_DATABASE": settings.database or ""})
    for key, name in (("username", "PICAS_USERNAME"), ("password", "PICAS_PASSWORD")):
        value = getattr(settings, key)
        if value is not None:
            env[name] = value
        else:
            env.pop(name, None)
    env["PICAS_VERIFY"] = settings.verify if isinstance(settings.verify, str) else str(settings.verify).lower()
    return env


class LocalPilots:
    """Starts the pilots (through the watchdog) and stops them; one instance per run."""

    def __init__(self, command: list[str], env: Mapping[str, str], log: Path) -> None:
        self.command = command
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "LocalPilots":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        watchdog = [sys.executable, "-m", "snakemake_executor_plugin_picas.pilots", "--parent", str(os.getpid()),
                    "--", *self.command]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(watchdog, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """Ask the pilots to stop (they give their tokens back), wait up to ``grace``, then kill what is left."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        procgroup.terminate(self.proc, grace=2.0)  # stragglers of the group, and reaping
        return self.proc.returncode


def main(argv: list[str] | None = None) -> int:
    """The watchdog: run COMMAND; stop it on TERM/INT/HUP or when the parent process is gone."""
    parser = argparse.ArgumentParser(prog="python -m snakemake_executor_plugin_picas.pilots")
    parser.add_argument("--parent", type=int, required=True, help="stop the pilots when this process is gone")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the pilot command after --")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    child = subprocess.Popen(command)
    forwarded = False
    while child.poll() is None:
        if not forwarded and (stop.is_set() or os.getppid() != args.parent):
            child.send_signal(signal.SIGTERM)  # picas run forwards it to its pilots
            forwarded = True
        try:
            child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
