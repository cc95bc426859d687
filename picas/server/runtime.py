"""Process plumbing of the local server: its environment, ports, pid checks, log tails, quiet files."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from picas.support import files, procgroup

#: Preloaded into pouchdb-server's Node process: refuses the requests that would crash it
#: (see :mod:`picas.server.local`).
GUARD = Path(__file__).with_name("guard.js")


def guarded_environment(environ: dict | None = None) -> dict:
    """The environment to run pouchdb-server in: Node preloads :data:`GUARD` (see the module docstring)."""
    env = dict(os.environ if environ is None else environ)
    guard = '--require "' + str(GUARD).replace("\\", "\\\\").replace('"', '\\"') + '"'
    env["NODE_OPTIONS"] = f"{env['NODE_OPTIONS']} {guard}" if env.get("NODE_OPTIONS") else guard
    return env


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


def read_pid_record(path: Path) -> dict | None:
    """The record of a server's pid file (``{"pid": ..., "url": ..., "binary": ...}``), or None if unusable."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    return record


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


def settle_writes(data_dir: Path, ignored: set[str], quiet: float = 0.3, limit: float = 3.0) -> None:
    """Wait until the database files have been quiet for ``quiet`` s (at most ``limit`` s).

    pouchdb-server registers a new database in its ``pouch__all_dbs__``
    index asynchronously, after answering 201, and dies on SIGTERM without
    finishing pending writes: a database created just before a stop is
    gone after the restart (404 ``no_db_file``; measured).  Waiting for
    the files to stop changing lets that write land.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        newest = 0.0
        for entry in _scan(data_dir):
            if entry.name in ignored:
                continue
            newest = max(newest, _mtime(entry))
            if entry.is_dir(follow_symlinks=False):
                newest = max([newest, *(_mtime(item) for item in _scan(Path(entry.path)))])
        if time.time() - newest >= quiet:
            return
        time.sleep(0.05)
