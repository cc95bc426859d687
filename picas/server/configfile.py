"""pouchdb-server's ``config.json`` in a data directory: its admin, its uuid, its log.

pouchdb-server reads its admins from this file and rewrites it with the
password hashed, so the file is written afresh before every start (with the
password in plain text, mode 0600) and made private again once the server
has hashed it.  The uuid in it stays the same across restarts: a ``GET /``
that answers with it is how :class:`picas.server.local.LocalServer` knows
that *its* server is up, not a stranger on the same port.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from picas.support.files import write_private

__all__ = ["protect_config", "server_uuid", "write_config"]


def _read(path: Path) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def server_uuid(path: Path) -> str:
    """The uuid the config file holds, or a new one: stable across restarts, the readiness fingerprint."""
    value = (_read(path).get("couchdb") or {}).get("uuid")
    return value if isinstance(value, str) and value else uuid.uuid4().hex


def write_config(path: Path, *, admin: tuple[str, str] | None, server_uuid: str, log_level: str,
                 log_file: Path) -> None:
    """Write the config afresh (other settings kept): only ``admin`` as admin, the uuid, the log settings."""
    config = _read(path)
    config.pop("admins", None)
    if admin is not None:
        user, password = admin
        config["admins"] = {user: password}
    if not isinstance(config.get("couchdb"), dict):
        config["couchdb"] = {}
    config["couchdb"]["uuid"] = server_uuid
    log = config.setdefault("log", {})
    log["level"] = log_level
    log["file"] = str(log_file)
    write_private(Path(path), json.dumps(config, indent=2) + "\n")


def protect_config(path: Path, admin_user: str | None, timeout: float = 3.0) -> None:
    """Wait until pouchdb-server has hashed the admin's password in the file, then make the file private.

    It hashes and rewrites the file asynchronously (as mode 0644, by
    renaming a temporary file), possibly after it already answers; until
    then the file holds the password in plain text.  Waiting keeps that
    window inside the start and makes the chmod stick.
    """
    deadline = time.monotonic() + timeout
    while admin_user is not None and time.monotonic() < deadline:
        stored = (_read(path).get("admins") or {}).get(admin_user, "")
        if isinstance(stored, str) and stored.startswith("-pbkdf2-"):
            break
        time.sleep(0.02)
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
