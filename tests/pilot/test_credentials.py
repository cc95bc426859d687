"""How a batch pilot gets its credentials: never in what is submitted, always from a private file."""
from __future__ import annotations

import stat

import yaml

from picas.config import resolve
from picas.pilot.credentials import pilot_environment, pilots_config_name


def test_password_from_the_users_file_stays_there(tmp_path):
    conf = tmp_path / "conf.yml"
    lab = {"url": "http://h:5984", "database": "db", "username": "u", "password": "pw"}
    conf.write_text(yaml.safe_dump({"profiles": {"lab": lab}}))
    settings = resolve({}, profile="lab", env={}, path=conf)
    access = pilot_environment(settings)
    assert access.env == {"PICAS_HOST_URL": "http://h:5984", "PICAS_DATABASE": "db", "PICAS_USERNAME": "u",
                          "PICAS_CONFIG": str(conf), "PICAS_PROFILE": "lab"}
    assert access.note is None and access.config_file == conf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.yml"]


def test_password_from_the_environment_goes_to_a_private_profile(tmp_path):
    conf = tmp_path / "conf.yml"
    shell = {"PICAS_HOST_URL": "http://x:secret@h:5984/", "PICAS_DATABASE": "db", "PICAS_PASSWORD": "pw",
             "PICAS_USERNAME": "u", "PICAS_CONFIG": str(conf)}
    settings = resolve({}, env=shell)
    name = pilots_config_name("slurm")
    target = tmp_path / "slurm-pilots.yml"
    dry = pilot_environment(settings, write=False, config_name=name)
    assert dry.note.startswith("would write") and not target.exists()
    access = pilot_environment(settings, config_name=name)
    assert access.note.startswith("wrote") and access.env["PICAS_CONFIG"] == str(target) == str(access.config_file)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert access.env["PICAS_HOST_URL"] == "http://h:5984"
    assert "secret" not in str(access.env) and "pw" not in access.env.values()
    # What the job sees: the exported variables only, no password: it comes from the profile.
    job = resolve({}, env=access.env)
    assert (job.url, job.database, job.username, job.password) == ("http://h:5984", "db", "u", "pw")
    assert pilot_environment(settings, config_name=name).note is None, "an unchanged profile is not written again"


def test_a_chosen_file_and_tls_settings(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    settings = resolve({"url": "https://h:6984", "database": "db", "password": "pw", "verify": str(bundle)},
                       env={"PICAS_CONFIG": str(tmp_path / "conf.yml")})
    access = pilot_environment(settings, tmp_path / "mine" / "pilots.yml")
    assert access.env["PICAS_VERIFY"] == str(bundle) and access.config_file == tmp_path / "mine" / "pilots.yml"
    assert yaml.safe_load(access.config_file.read_text())["profiles"][access.env["PICAS_PROFILE"]]["password"] == "pw"
    insecure = resolve({"url": "https://h:6984", "database": "db", "verify": False}, env={})
    assert pilot_environment(insecure).env["PICAS_VERIFY"] == "false"


def test_with_a_scoped_credential_nothing_of_the_operator_is_written(tmp_path):
    from picas.pool.credentials import PilotCredential, write_file

    cred = write_file(tmp_path / "cred.yml", PilotCredential(username="picas-pilot-x", database="db",
                                                             url="http://h:5984", password="scoped"))
    conf = tmp_path / "conf.yml"
    shell = {"PICAS_HOST_URL": "http://h:5984", "PICAS_DATABASE": "db", "PICAS_PASSWORD": "operator",
             "PICAS_USERNAME": "admin", "PICAS_CONFIG": str(conf)}
    access = pilot_environment(resolve({}, env=shell), config_name="x-pilots.yml", credential=cred)
    assert access.note is None and access.config_file == cred
    assert access.env["PICAS_USERNAME"] == "picas-pilot-x" and access.env["PICAS_CONFIG"] == str(cred)
    assert "operator" not in str(access.env)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cred.yml"], "no private profile of the operator's"
