"""Pilot credentials: a CouchDB user that may use one token database and nothing else.

A pilot started by any batch system needs a password, and whatever travels
with a job is stored where others may read it: a job's sandbox passes
through the scheduler's servers, a batch script stays in the scheduler's
spool.  The operator's own (often admin) password must therefore never be
in it.
Instead each pool gets *pilot users*:

* a CouchDB user ``picas-pilot-<database>-<random>`` with a random password
  and no roles, in ``_users``;
* listed in the database's ``_security`` as a **member**, never as an admin
  and never as a server admin, so it can read and write documents (claim
  tokens, save results, attach logs) in that one database, but cannot read
  any other database, change ``_security`` or design documents' rights,
  create or delete databases, or read ``_users``.

Revoking deletes the user and takes its name out of ``_security``; either
step alone locks it out (CouchDB may recognise a deleted user from its auth
cache for a moment, but no longer as a member).  The user document carries a ``picas`` field
that says which database it was made for, so ``list`` and ``revoke`` never
touch a person's own account.

A credential travels as a picas config file with one profile, ``pilot``
(mode 0600): :func:`write_file` and :func:`read_file`.
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from picas.config import load_file
from picas.core.client import CouchClient
from picas.errors import ConfigError, Conflict, InvalidInput, NotFound, PicasError
from picas.pilot.options import Option
from picas.support.files import write_private

__all__ = [
    "OPTION",
    "PREFIX",
    "PROFILE",
    "PilotCredential",
    "check_scoped",
    "create",
    "credential_text",
    "list_credentials",
    "new_username",
    "pilot_env",
    "read_file",
    "revoke",
    "write_file",
]

#: Every pilot user's name starts with this, so they are easy to tell apart in ``_users``.
PREFIX = "picas-pilot-"
#: The profile a credential file holds.
PROFILE = "pilot"
USERS_DB = "_users"
_USER_DOC = "org.couchdb.user:"
#: ``--credential FILE``, declared once for every scheduler that can hand its pilots a credential.
OPTION = Option("credential", "Pilot credential file from 'picas credentials create': the pilots log in as that "
                "user, scoped to the database, never with your own password.", "path", metavar="FILE")
#: Read-modify-write rounds of ``_security`` before giving up: it has no revision to detect a lost update.
SECURITY_ATTEMPTS = 5


@dataclass
class PilotCredential:
    """A pilot user and where it works; ``password`` is None when listed (it is never stored readable)."""

    username: str
    database: str
    url: str
    password: str | None = field(default=None, repr=False)
    verify: bool | str = True
    created: int | None = None
    label: str = ""
    member: bool | None = None

    def profile(self) -> dict[str, Any]:
        """The profile values of a credential file."""
        return {"url": self.url, "database": self.database, "username": self.username,
                "password": self.password, "verify": self.verify}


def new_username(database: str) -> str:
    """``picas-pilot-<database>-<8 hex>``: CouchDB user names may hold most characters, but keep it plain."""
    plain = re.sub(r"[^a-z0-9_-]+", "-", database.lower()).strip("-")[:40] or "db"
    return f"{PREFIX}{plain}-{secrets.token_hex(4)}"


def _users(client: CouchClient) -> CouchClient:
    return client.copy(database=USERS_DB)


def _names(security: dict, part: str) -> list[str]:
    return list(((security.get(part) or {}).get("names")) or [])


def _change_members(client: CouchClient, name: str, add: bool) -> bool:
    """Add ``name`` to (or take it out of) the database's members; True if ``_security`` had no members.

    ``_security`` has no revision, so two writers at once can undo each
    other: after writing, it is read again, and the change is made again if
    it is not there (a few rounds), which makes concurrent creates and
    revokes all land.
    """
    was_open = False
    for attempt in range(SECURITY_ATTEMPTS):
        security = client.get_security() or {}
        members = dict(security.get("members") or {})
        names = _names(security, "members")
        if attempt == 0:
            was_open = not names and not (members.get("roles") or [])
        if (name in names) == add:
            return was_open
        names = names + [name] if add else [n for n in names if n != name]
        members["names"] = names
        members.setdefault("roles", [])
        security["members"] = members
        security.setdefault("admins", {"names": [], "roles": []})
        client.set_security(security)
    security = client.get_security() or {}
    if (name in _names(security, "members")) != add:
        raise Conflict(f"the _security of database '{client.database}' kept changing under us; "
                       f"{name} is {'not ' if add else 'still '}a member", hint="try again")
    return was_open


def create(client: CouchClient, *, label: str = "", username: str | None = None,
           verify: bool | str | None = None) -> tuple[PilotCredential, str | None]:
    """Make a pilot user for ``client.database`` and make it a member; returns it and a note, or None.

    ``client`` must be allowed to write ``_users`` and the database's
    ``_security`` (a server admin).  The note says when the database had no
    members before: adding one closes it to everyone but its members and
    admins (pouchdb-server lets anyone in while the list is empty).
    """
    database = client.database
    if not database:
        raise InvalidInput("a pilot credential is made for one database: give --db")
    if database.startswith("_"):
        raise InvalidInput(f"'{database}' is a system database; pilot credentials are for token databases")
    client.db_info()  # DatabaseNotFound names the database when it does not exist
    name = username or new_username(database)
    if not name.startswith(PREFIX):
        raise InvalidInput(f"a pilot user's name must start with {PREFIX!r}, got {name!r}")
    password = secrets.token_urlsafe(24)
    now = int(time.time())
    doc = {"_id": _USER_DOC + name, "name": name, "type": "user", "roles": [], "password": password,
           "picas": {"database": database, "created": now, "label": label,
                     "created_by": client.username or ""}}
    try:
        _users(client).save(doc)
    except Conflict:
        raise Conflict(f"a CouchDB user called {name} exists already", hint="pick another --name") from None
    try:
        was_open = _change_members(client, name, add=True)
    except PicasError:
        _delete_user(client, name)  # a user that is no member of anything serves no one
        raise
    note = None
    if was_open:
        note = (f"database '{database}' had no members in its _security; it now admits only its members "
                f"({name}) and its admins")
    credential = PilotCredential(username=name, database=database, url=client.url, password=password,
                                 verify=client.verify if verify is None else verify, created=now, label=label,
                                 member=True)
    return credential, note


def _delete_user(client: CouchClient, name: str) -> bool:
    users = _users(client)
    doc = users.get_or_none(_USER_DOC + name)
    if doc is None:
        return False
    users.delete(doc)
    return True


def list_credentials(client: CouchClient, *, all_databases: bool = False) -> list[PilotCredential]:
    """The pilot users made for ``client.database`` (or for any database), oldest first.

    ``member`` tells whether the name is still in the database's
    ``_security`` (asked only for the client's own database).
    """
    answer = _users(client).all_docs(startkey=_USER_DOC + PREFIX, endkey=_USER_DOC + PREFIX + "\ufff0",
                                     include_docs=True)
    members: set[str] | None = None
    if client.database:
        members = set(_names(client.get_security() or {}, "members"))
    found = []
    for row in answer.rows:
        doc = row.doc or {}
        info = doc.get("picas")
        if not isinstance(info, dict):
            continue
        database = str(info.get("database") or "")
        if not all_databases and database != client.database:
            continue
        found.append(PilotCredential(
            username=str(doc.get("name")), database=database, url=client.url, created=info.get("created"),
            label=str(info.get("label") or ""),
            member=(doc.get("name") in members) if members is not None and database == client.database else None))
    return sorted(found, key=lambda c: (c.created or 0, c.username))


def revoke(client: CouchClient, name: str) -> PilotCredential:
    """Delete the pilot user ``name`` and take it out of its database's members.

    Only users made by :func:`create` (with the ``picas`` field) can be
    revoked here; anything else is refused, so a typo cannot remove a
    person's account.  The user is deleted first, so the password stops
    working even if cleaning ``_security`` fails afterwards.
    """
    users = _users(client)
    doc = users.get_or_none(_USER_DOC + name)
    if doc is None:
        raise NotFound(f"no pilot user called {name}", hint="see 'picas credentials list'")
    info = doc.get("picas")
    if not isinstance(info, dict) or not name.startswith(PREFIX):
        raise InvalidInput(f"{name} is not a pilot credential made by picas; it is left alone")
    database = str(info.get("database") or client.database or "")
    users.delete(doc)
    if database:
        try:
            _change_members(client.copy(database=database), name, add=False)
        except NotFound:
            pass  # the database is gone, and its _security with it
    return PilotCredential(username=name, database=database, url=client.url, created=info.get("created"),
                           label=str(info.get("label") or ""), member=False)


def check_scoped(credential: PilotCredential) -> None:
    """Refuse a credential that is not a pilot user: a server admin must never travel with a job.

    Asks the server who the credential is (``GET /_session``): its name must
    be a pilot user's and it must hold no ``_admin`` role.
    """
    client = CouchClient(credential.url, credential.database, username=credential.username,
                         password=credential.password, verify=credential.verify)
    try:
        context = client.request("GET", "/_session", context="checking the pilot credential").json()
    finally:
        client.close()
    user = (context or {}).get("userCtx") or {}
    if user.get("name") != credential.username:
        raise ConfigError(f"the server does not accept the pilot credential {credential.username}",
                          hint="was it revoked? make a new one with 'picas credentials create'")
    if "_admin" in (user.get("roles") or []) or not credential.username.startswith(PREFIX):
        raise ConfigError(f"{credential.username} is not a scoped pilot credential (a server admin, or a "
                          "person's account); pilots only get users made by 'picas credentials create'")


def credential_text(credential: PilotCredential) -> str:
    """The credential as a picas config file: one profile, ``pilot``, which is also the default (pure)."""
    values = {key: value for key, value in credential.profile().items() if value is not None}
    document = {"default_profile": PROFILE, "profiles": {PROFILE: values}}
    header = (f"# picas pilot credential: user {credential.username} may use database {credential.database} only.\n"
              f"# Revoke it with: picas credentials revoke {credential.username}\n")
    return header + yaml.safe_dump(document, default_flow_style=False, sort_keys=False, allow_unicode=True)


def write_file(path: Path, credential: PilotCredential, *, overwrite: bool = False) -> Path:
    """Write the credential file (:func:`credential_text`) with mode 0600 from its first byte.

    An existing file is not overwritten unless ``overwrite``: it may hold
    the only copy of another credential's password.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists already", hint="give another --output, or --force to replace it")
    write_private(path, credential_text(credential))
    return path


def read_file(path: Path) -> PilotCredential:
    """The credential in a file written by :func:`write_file` (or any config file's default profile)."""
    data = load_file(Path(path))
    profiles = data.get("profiles") or {}
    if not profiles:
        raise ConfigError(f"{path}: no credential in it (or no such file)",
                          hint="make one with 'picas credentials create --output FILE'")
    name = data.get("default_profile") or (PROFILE if PROFILE in profiles else next(iter(profiles)))
    values = profiles[name]
    missing = [key for key in ("url", "database", "username", "password") if not values.get(key)]
    if missing:
        raise ConfigError(f"{path}: profile '{name}' lacks {', '.join(missing)}")
    return PilotCredential(username=values["username"], database=values["database"], url=values["url"],
                           password=values["password"], verify=values.get("verify", True))


def pilot_env(path: Path) -> dict[str, str]:
    """What a batch job exports so that its pilots use the credential in ``path``: where it is, no password.

    The file must be on a file system the nodes see (a home directory); a
    backend whose nodes see no file of the submitting machine ships the file
    itself with the job instead.
    """
    credential = read_file(path)
    return {"PICAS_HOST_URL": credential.url, "PICAS_DATABASE": credential.database,
            "PICAS_USERNAME": credential.username, "PICAS_CONFIG": str(Path(path).expanduser().absolute()),
            "PICAS_PROFILE": PROFILE}
