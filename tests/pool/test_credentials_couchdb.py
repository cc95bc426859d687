"""Pilot credentials on real Apache CouchDB 3.4: what a pilot user can and cannot do.

The same promises as on pouchdb-server (tests/pool/test_credentials.py),
checked where they matter most, on the server pilots use in production:
CouchDB refuses every forbidden request (401 or 403; a member's PUT of
``_security`` gets 500 ``no_majority`` on 3.4, as every shard refuses it)
and does not die of them as pouchdb-server does, so all of them are asked of
one server here, and what they would have changed is checked afterwards.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import requests

from picas.core import views
from picas.core.client import CouchClient
from picas.pool import credentials as creds
from tests.helpers import overview, push
from tests.servers import couchdb


def test_pilot_credential_on_couchdb(couchdb_node, tmp_path):
    server = couchdb_node
    server.ensure_up()
    pool, other = f"pool_{uuid.uuid4().hex[:8]}", f"other_{uuid.uuid4().hex[:8]}"
    couchdb.create_db(server, pool)
    couchdb.create_db(server, other)
    user, password = server.admin
    admin = CouchClient(server.url, pool, username=user, password=password)
    try:
        views.deploy(admin)
        push(admin, [f"echo token {i}" for i in range(5)])
        cred, _ = creds.create(admin, label="couchdb")
        creds.write_file(tmp_path / "pilot.yml", cred)
        creds.check_scoped(cred)

        env = {k: v for k, v in os.environ.items() if not k.startswith("PICAS_")}
        env["PICAS_CONFIG"] = str(tmp_path / "pilot.yml")
        proc = subprocess.run([sys.executable, "-m", "picas", "run", "-q"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert overview(admin) == {"done": 5}

        second, _ = creds.create(admin)
        auth = (cred.username, cred.password)
        url = server.url
        forbidden = {
            "read another database": ("GET", f"/{other}/_all_docs", None),
            "write another database": ("PUT", f"/{other}/x", {}),
            "change _security": ("PUT", f"/{pool}/_security", {
                "admins": {"names": [cred.username], "roles": []}, "members": {"names": [cred.username], "roles": []}}),
            "create a database": ("PUT", f"/newdb_{uuid.uuid4().hex[:8]}", None),
            "delete its database": ("DELETE", f"/{pool}", None),
            "list _users": ("GET", "/_users/_all_docs", None),
            "read another user": ("GET", f"/_users/org.couchdb.user:{second.username}", None),
            "write a design document": ("PUT", f"/{pool}/_design/mine", {"views": {}}),
        }
        for what, (method, path, body) in forbidden.items():
            response = requests.request(method, url + path, json=body, auth=auth, timeout=30)
            assert not response.ok, f"a pilot credential could {what}: {response.status_code} {response.text}"
        security = requests.get(f"{url}/{pool}/_security", auth=server.admin, timeout=30).json()
        assert cred.username not in (security.get("admins") or {}).get("names", [])
        names = requests.get(f"{url}/_all_dbs", auth=server.admin, timeout=30).json()
        assert pool in names and not any(n.startswith("newdb_") for n in names)

        creds.revoke(admin, cred.username)
        # Locked out at once: CouchDB may still know the deleted user from its auth cache for a moment (403:
        # no member any more) before it stops knowing it at all (401).
        assert requests.get(f"{url}/{pool}", auth=auth, timeout=30).status_code in (401, 403)
    finally:
        for item in creds.list_credentials(admin):
            creds.revoke(admin, item.username)
        for name in (pool, other):
            requests.delete(f"{server.url}/{name}", auth=server.admin, timeout=30)
