"""Pilot credentials against the real pouchdb-server: scoped to one database, and revocable.

The credential is made with the CLI (``picas credentials create``), used by a
real pilot process that reads only the credential file, and then probed with
plain HTTP for everything it must not be able to do.  pouchdb-server dies on
a non-admin ``PUT /newdb`` or ``DELETE /db`` (see the notes on real
components), so those two run against a dedicated on-disk server, which is
restarted afterwards to check that nothing was created or deleted.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from picas.cli import main
from picas.core.client import CouchClient
from picas.pool import credentials as creds
from picas.schedulers.slurm import cancel
from tests.conftest import ADMIN_USER
from tests.helpers import client_for, overview, push, wait_for
from tests.slurm_fixture import slurm_cluster  # noqa: F401


def _cli_env(server, db_name: str) -> dict:
    user, password = server.admin
    return {"PICAS_HOST_URL": server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
            "PICAS_PASSWORD": password, "PICAS_CONFIG": "/nonexistent/picas-test-conf.yml"}


def _make_db(server, name: str) -> None:
    auth = server.admin
    assert requests.put(f"{server.url}/{name}", auth=auth, timeout=30).status_code in (201, 202)
    security = {"admins": {"names": [ADMIN_USER], "roles": []}, "members": {"names": [ADMIN_USER], "roles": []}}
    assert requests.put(f"{server.url}/{name}/_security", json=security, auth=auth, timeout=30).ok


def _create(server, db_name: str, path, label: str = "test") -> creds.PilotCredential:
    result = CliRunner().invoke(main, ["credentials", "create", "--output", str(path), "--label", label],
                                env=_cli_env(server, db_name), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return creds.read_file(path)


def test_create_writes_a_private_member_only_credential(couch_server, db_name, tmp_path):
    path = tmp_path / "pilot.yml"
    cred = _create(couch_server, db_name, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cred.username.startswith(creds.PREFIX) and cred.database == db_name and cred.password
    security = requests.get(f"{couch_server.url}/{db_name}/_security", auth=couch_server.admin, timeout=30).json()
    assert cred.username in security["members"]["names"]
    assert cred.username not in security["admins"]["names"]
    user = requests.get(f"{couch_server.url}/_users/org.couchdb.user:{cred.username}", auth=couch_server.admin,
                        timeout=30).json()
    assert user["roles"] == [] and user["picas"]["database"] == db_name
    session = requests.get(f"{couch_server.url}/_session", auth=(cred.username, cred.password), timeout=30).json()
    assert session["userCtx"] == {"name": cred.username, "roles": []}
    creds.check_scoped(cred)  # accepted: no admin role, a pilot user's name


def test_credential_claims_and_saves_tokens_but_nothing_else(couch_server, db_name, tmp_path):
    admin = client_for(couch_server, db_name)
    push(admin, [f"echo token {i}" for i in range(5)])
    cred = _create(couch_server, db_name, tmp_path / "pilot.yml")
    # A real pilot that knows only the credential file: no PICAS_PASSWORD, no user name in its environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICAS_")}
    env["PICAS_CONFIG"] = str(tmp_path / "pilot.yml")
    proc = subprocess.run([sys.executable, "-m", "picas", "run", "-q"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert overview(admin).get("done") == 5

    other = f"{db_name}_other"
    _make_db(couch_server, other)
    auth = (cred.username, cred.password)
    url = couch_server.url
    try:
        denied = {
            "read another database": requests.get(f"{url}/{other}/_all_docs", auth=auth, timeout=30),
            "write another database": requests.put(f"{url}/{other}/x", json={}, auth=auth, timeout=30),
            "change _security": requests.put(f"{url}/{db_name}/_security", auth=auth, timeout=30,
                                             json={"admins": {"names": [cred.username]}, "members": {}}),
            "list _users": requests.get(f"{url}/_users/_all_docs", auth=auth, timeout=30),
        }
        for what, response in denied.items():
            assert not response.ok, f"a pilot credential could {what}: {response.status_code} {response.text}"
        security = requests.get(f"{url}/{db_name}/_security", auth=couch_server.admin, timeout=30).json()
        assert cred.username not in security["admins"]["names"]
        # Another pilot user's document (with its password hash) stays hidden.
        second = _create(couch_server, db_name, tmp_path / "second.yml")
        response = requests.get(f"{url}/_users/org.couchdb.user:{second.username}", auth=auth, timeout=30)
        assert not response.ok and "derived_key" not in response.text
    finally:
        requests.delete(f"{url}/{other}", auth=couch_server.admin, timeout=30)


def test_list_and_revoke(couch_server, db_name, tmp_path):
    first = _create(couch_server, db_name, tmp_path / "a.yml", label="run-a")
    second = _create(couch_server, db_name, tmp_path / "b.yml", label="run-b")
    env = _cli_env(couch_server, db_name)
    listed = CliRunner().invoke(main, ["credentials", "list"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0
    assert first.username in listed.output and second.username in listed.output and "run-a" in listed.output
    assert first.password not in listed.output

    revoked = CliRunner().invoke(main, ["credentials", "revoke", first.username], env=env, catch_exceptions=False)
    assert revoked.exit_code == 0, revoked.output
    assert requests.get(f"{couch_server.url}/{db_name}", auth=(first.username, first.password),
                        timeout=30).status_code == 401
    assert requests.get(f"{couch_server.url}/{db_name}", auth=(second.username, second.password), timeout=30).ok
    security = requests.get(f"{couch_server.url}/{db_name}/_security", auth=couch_server.admin, timeout=30).json()
    assert first.username not in security["members"]["names"] and second.username in security["members"]["names"]

    everything = CliRunner().invoke(main, ["credentials", "revoke", "--all"], env=env, catch_exceptions=False)
    assert everything.exit_code == 0 and second.username in everything.output
    assert creds.list_credentials(client_for(couch_server, db_name, deploy=False)) == []


def test_revoke_refuses_a_person_s_account(couch_server, db_name):
    person = {"_id": "org.couchdb.user:alice", "name": "alice", "type": "user", "roles": [], "password": "pw"}
    assert requests.put(f"{couch_server.url}/_users/org.couchdb.user:alice", json=person, auth=couch_server.admin,
                        timeout=30).ok
    try:
        result = CliRunner().invoke(main, ["credentials", "revoke", "alice"], env=_cli_env(couch_server, db_name))
        assert result.exit_code == 10 and "not a pilot credential" in result.output
        assert requests.get(f"{couch_server.url}/_users/org.couchdb.user:alice", auth=couch_server.admin,
                            timeout=30).ok
    finally:
        doc = requests.get(f"{couch_server.url}/_users/org.couchdb.user:alice", auth=couch_server.admin).json()
        requests.delete(f"{couch_server.url}/_users/org.couchdb.user:alice", params={"rev": doc["_rev"]},
                        auth=couch_server.admin, timeout=30)


def test_create_refuses_to_overwrite_a_file(couch_server, db_name, tmp_path):
    path = tmp_path / "pilot.yml"
    path.write_text("keep me\n")
    result = CliRunner().invoke(main, ["credentials", "create", "--output", str(path)],
                                env=_cli_env(couch_server, db_name))
    assert result.exit_code != 0 and "exists already" in result.output
    assert path.read_text() == "keep me\n"
    assert creds.list_credentials(client_for(couch_server, db_name, deploy=False)) == []


def test_admin_credential_is_refused_as_a_pilot_credential(couch_server, db_name):
    user, password = couch_server.admin
    admin = creds.PilotCredential(username=user, database=db_name, url=couch_server.url, password=password)
    with pytest.raises(creds.ConfigError, match="not a scoped pilot credential"):
        creds.check_scoped(admin)


@pytest.mark.parametrize("method, path", [("PUT", "/newdb_by_pilot"), ("DELETE", "/{db}")])
def test_credential_cannot_create_or_delete_databases(disk_server, tmp_path, method, path):
    """On a dedicated server: pouchdb-server may die of the attempt instead of answering 401."""
    db = "pool"
    _make_db(disk_server, db)
    admin = CouchClient(disk_server.url, db, username=disk_server.admin[0], password=disk_server.admin[1])
    cred, _ = creds.create(admin)
    try:
        response = requests.request(method, disk_server.url + path.format(db=db), timeout=10,
                                    auth=(cred.username, cred.password))
        assert not response.ok, f"{method} {path} as a pilot: {response.status_code} {response.text}"
    except requests.ConnectionError:
        pass  # the server died of it (a pouchdb-server defect); what it stored is checked below
    if not disk_server.server.status()["running"]:
        disk_server.server.start(wait=30)
    names = requests.get(f"{disk_server.url}/_all_dbs", auth=disk_server.admin, timeout=30).json()
    assert db in names and "newdb_by_pilot" not in names


def test_payload_environment_does_not_carry_the_pilot_password(couch_server, db_name):
    """A pilot that got its password from PICAS_PASSWORD does not hand it to the payloads it runs."""
    admin = client_for(couch_server, db_name)
    [token_id] = push(admin, ['echo "user=${PICAS_USERNAME:-} password=${PICAS_PASSWORD:-unset}"'])
    env = {**os.environ, **_cli_env(couch_server, db_name)}
    proc = subprocess.run([sys.executable, "-m", "picas", "run", "-q"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = [name for name in admin.get(token_id).get("_attachments", {}) if name.startswith("logs_") and "out" in name]
    assert names, admin.get(token_id)
    log = admin.get_attachment(token_id, names[0]).decode()
    assert f"user={couch_server.admin[0]} password=unset" in log
    assert couch_server.admin[1] not in log


def test_slurm_script_points_the_pilots_at_the_credential(couch_server, db_name, tmp_path):
    cred_path = tmp_path / "pilots.yml"
    cred = _create(couch_server, db_name, cred_path)
    result = CliRunner().invoke(main, ["submit", "slurm", "--credential", str(cred_path), "--dry-run"],
                                env=_cli_env(couch_server, db_name), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    script = result.output
    assert f"export PICAS_CONFIG={cred_path}" in script and "export PICAS_PROFILE=pilot" in script
    assert f"export PICAS_USERNAME={cred.username}" in script
    assert couch_server.admin[1] not in script and cred.password not in script


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_pilots_run_with_the_credential(couch_server, db_name, tmp_path, monkeypatch):
    """A real Slurm array whose pilots know only the credential file (no password of the operator's)."""
    monkeypatch.chdir(tmp_path)
    admin = client_for(couch_server, db_name)
    push(admin, [f"echo token {i}" for i in range(6)])
    cred_path = tmp_path / "pilots.yml"
    cred = _create(couch_server, db_name, cred_path)
    env = {**_cli_env(couch_server, db_name), "PICAS_CONFIG": str(tmp_path / "conf.yml")}
    result = CliRunner().invoke(main, ["submit", "slurm", "--credential", str(cred_path), "--array", "2",
                                       "--picas-command", f"{sys.executable} -m picas", "--parsable",
                                       "--output", str(tmp_path / "pilot-%A_%a.out")], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    job_id = result.output.strip().splitlines()[-1]
    try:
        wait_for(lambda: overview(admin) == {"done": 6}, timeout=120, what="the Slurm pilots to drain the pool")
    finally:
        cancel([job_id])
    # The submitting shell had the operator's PICAS_PASSWORD, which sbatch copies into the job: the pilots
    # logged in as the pilot user all the same (with that password they would have been refused).
    security = requests.get(f"{couch_server.url}/{db_name}/_security", auth=couch_server.admin, timeout=30).json()
    assert cred.username in security["members"]["names"]
