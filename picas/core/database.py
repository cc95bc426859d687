"""The token database itself: create it safely, describe it, delete it.

Creating a database is more than ``PUT /db``:

* Only server admins may create or delete databases.  CouchDB answers a
  non-admin with 403, but pouchdb-server *crashes* on such a request, so we
  ask ``/_session`` who we are first and refuse with advice instead.
* A database whose ``_security`` lists no members is readable and writable
  by anyone who can reach the server (pouchdb-server has no
  ``require_valid_user``), so a new database gets the current user as its
  only member unless the caller says otherwise.
"""
from __future__ import annotations

from picas.core.client import CouchClient
from picas.errors import DatabaseNotFound, Forbidden
from picas.core.views import list_designs


def session(client: CouchClient) -> dict:
    """Who the server thinks we are: ``{"name": ..., "roles": [...]}``."""
    return client.request("GET", "/_session", context="checking the login").json().get("userCtx") or {}


def is_admin(client: CouchClient) -> bool:
    """Whether we are a server admin: only admins may create or delete databases."""
    return "_admin" in (session(client).get("roles") or [])


def _require_admin(client: CouchClient, what: str) -> None:
    user = session(client)
    if "_admin" not in (user.get("roles") or []):
        who = f"user '{user['name']}'" if user.get("name") else "anonymous access"
        raise Forbidden(f"{what} needs a server admin, and {who} is not one",
                        hint="ask the server admin, or give an admin's --username/--password")


def has_members(security: dict) -> bool:
    """Whether a ``_security`` object restricts access; without members anyone who reaches the server gets in."""
    members = security.get("members") or {}
    return bool(members.get("names") or members.get("roles"))


def secure(client: CouchClient, user: str | None) -> bool:
    """Make ``user`` the database's only member if it has none yet; True if ``_security`` was written.

    Existing members are left alone: an admin may have set them up on purpose.
    """
    if not user:
        return False
    security = client.get_security() or {}
    if has_members(security):
        return False
    security["members"] = {"names": [user], "roles": []}
    security.setdefault("admins", {"names": [], "roles": []})
    client.set_security(security)
    return True


def create(client: CouchClient, *, exist_ok: bool = False, members: bool = True, q: int | None = None,
           n: int | None = None) -> bool:
    """Create the client's database (admins only); returns False if it existed and ``exist_ok``.

    With ``members`` the current user becomes the new database's member (see
    :func:`secure`).  The ``_security`` of a database that existed already is
    never touched: its admin may have set it up that way on purpose.

    ``q`` and ``n`` shape the database on a CouchDB cluster: ``q`` shards
    (more spread the writes over more nodes), each kept in ``n`` copies (on
    ``n`` different nodes; with 3, any one node may be down and claims still
    count, see :mod:`picas.core.claim`).  They are fixed at creation.  A
    server that is not a cluster (pouchdb-server) keeps one copy whatever is
    asked, and says nothing; :func:`info` shows what the server made of it.
    """
    if exist_ok and client.db_exists():
        return False
    _require_admin(client, f"creating database '{client.database}'")
    created = client.create_db(exist_ok=exist_ok, q=q, n=n)
    if created and members:
        secure(client, client.username)
    return created


def ensure(client: CouchClient, *, members: bool = True) -> bool:
    """Create the database if it is missing; True if it was created now."""
    return create(client, exist_ok=True, members=members)


def delete(client: CouchClient) -> None:
    """Delete the client's database (admins only) with everything in it."""
    _require_admin(client, f"deleting database '{client.database}'")
    if not client.db_exists():
        raise DatabaseNotFound(f"database '{client.database}' does not exist on {client.url}",
                               hint="nothing to delete; 'picas db info' shows what the settings point at")
    client.delete_db()


def info(client: CouchClient) -> dict:
    """What ``picas db info`` shows: sizes, document counts, design documents and members."""
    raw = client.db_info()
    sizes = raw.get("sizes") or {}
    try:
        security = client.get_security() or {}
    except Forbidden:
        security = {}
    members = security.get("members") or {}
    return {
        "name": raw.get("db_name", client.database),
        "url": client.url,
        "doc_count": raw.get("doc_count"),
        "doc_del_count": raw.get("doc_del_count"),
        "update_seq": raw.get("update_seq"),
        # A CouchDB cluster's shape: q shards, n copies, and the default write and read quorums.
        "cluster": raw.get("cluster"),
        "size": sizes.get("file") or raw.get("disk_size"),
        "members": {"names": members.get("names") or [], "roles": members.get("roles") or []},
        "designs": list_designs(client),
    }
