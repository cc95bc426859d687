"""picas.crypto, picas.picas_config and picas-cli: the picas 1.1.x configuration, both ways.

The files under tests/classic/data/picas-1.1.2/ were written by picas 1.1.2's
own ``picas-cli init`` (see the README there); reading them here is the
check that a 1.1.x user's files work unchanged.  Files written here are
checked the way 1.1.x reads them: four YAML keys, and a Fernet token that
the key file's key decrypts.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import yaml

from picas import config as settings_file
from picas import crypto
from picas.errors import ConfigError, Unauthorized
from picas.picas_config import (
    CLASSIC_FORMAT, PROFILES_FORMAT, ConfigFileMissing, PicasConfig, PicasConfigSchemaError, classic_profiles,
    format_label, is_classic, write_classic_profile,
)
from tests.classic.mockdb import require

DATA = Path(__file__).parent / "data" / "picas-1.1.2"
PASSWORD_112 = "s3cret-from-1.1.2"


@pytest.fixture(autouse=True)
def fernet():
    """cryptography's Fernet, as 1.1.x uses it (every test here needs the package)."""
    return require("cryptography.fernet")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, with no PICAS_* settings from the caller's environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("PICAS_") or name == "XDG_CONFIG_HOME":
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def home_112(home: Path) -> Path:
    """A HOME holding the conf.yml and key.dat picas 1.1.2 wrote."""
    target = home / ".config" / "picas"
    target.mkdir(parents=True)
    shutil.copy(DATA / "conf.yml", target / "conf.yml")
    shutil.copy(DATA / "key.dat", target / "key.dat")
    return home


def read_as_112_does(conf: Path, key: Path) -> tuple[dict, str]:
    fernet = require("cryptography.fernet")
    """What picas 1.1.x does with the files: safe_load the YAML, Fernet-decrypt with the key file's bytes."""
    data = yaml.safe_load(conf.read_text())
    return data, fernet.Fernet(key.read_bytes()).decrypt(data["encrypted_password"].encode()).decode()


# ---------------------------------------------------------------------- files written by 1.1.2, read here
def test_picasconfig_of_a_112_user_works_unchanged(home_112: Path):
    cfg = PicasConfig(load=True)
    assert cfg.format == CLASSIC_FORMAT
    assert cfg.config["host_url"] == "http://127.0.0.1:5984" and cfg.config["database"] == "mydb"
    assert cfg.config["username"] == "alice"
    assert crypto.decrypt_password(cfg.config["encrypted_password"]).decode() == PASSWORD_112
    assert cfg.password() == PASSWORD_112
    assert PASSWORD_112 not in str(cfg) and "***masked***" in str(cfg)


def test_picas_reads_a_112_file_as_its_default_profile(home_112: Path):
    path = home_112 / ".config" / "picas" / "conf.yml"
    data = yaml.safe_load(path.read_text())
    assert is_classic(data)
    loaded = classic_profiles(path, data)
    assert loaded["profiles"]["default"] == {"url": "http://127.0.0.1:5984", "database": "mydb",
                                             "username": "alice", "password": PASSWORD_112}
    assert format_label(loaded) == CLASSIC_FORMAT
    assert format_label({"profiles": {}}) == PROFILES_FORMAT


def test_a_112_file_without_its_key_or_with_another_key_says_what_to_do(home_112: Path):
    key = home_112 / ".config" / "picas" / "key.dat"
    key.unlink()
    with pytest.raises(crypto.KeyFileMissing) as missing:
        PicasConfig().password()
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, ConfigError)
    assert "key.dat" in str(missing.value) and "copy key.dat" in str(missing.value)

    crypto.generate_and_save_key()
    with pytest.raises(crypto.WrongKey, match="does not decrypt"):
        PicasConfig().password()
    path = home_112 / ".config" / "picas" / "conf.yml"
    with pytest.raises(crypto.WrongKey, match=str(path)):
        classic_profiles(path, yaml.safe_load(path.read_text()))


# ---------------------------------------------------------------------- files written here, read as 1.1.x does
def test_save_config_writes_what_112_reads(home: Path):
    cfg = PicasConfig(load=False)
    cfg.save_config(SimpleNamespace(host_url="https://couch.example.org:6984", database="db1", username="bob",
                                    password="pw-é"))
    conf, key = home / ".config" / "picas" / "conf.yml", home / ".config" / "picas" / "key.dat"
    assert conf.stat().st_mode & 0o777 == 0o600 and key.stat().st_mode & 0o777 == 0o600
    assert (key.parent.stat().st_mode & 0o777) == 0o700
    data, password = read_as_112_does(conf, key)
    assert list(data) == ["host_url", "database", "username", "encrypted_password"]
    assert data["host_url"] == "https://couch.example.org:6984" and password == "pw-é"

    # The key is kept on a second save: passwords encrypted with it stay readable.
    key_before = key.read_bytes()
    cfg.save_config(SimpleNamespace(host_url="http://h:5984", database="db2", username="bob", password="pw2"))
    assert key.read_bytes() == key_before and read_as_112_does(conf, key)[1] == "pw2"


def test_validation_and_missing_file(home: Path):
    with pytest.raises(ConfigFileMissing) as missing:
        PicasConfig()
    assert isinstance(missing.value, FileNotFoundError)
    cfg = PicasConfig(load=False)
    with pytest.raises(PicasConfigSchemaError, match="'username' is missing"):
        cfg.validate_config({"host_url": "h", "database": "d", "encrypted_password": "x"})
    with pytest.raises(PicasConfigSchemaError, match="unknown key 'port'") as wrong:
        cfg.validate_config({"host_url": "h", "database": "d", "username": "u", "encrypted_password": "x", "port": 1})
    assert "unknown key" in wrong.value.message
    conf = home / ".config" / "picas" / "conf.yml"
    conf.parent.mkdir(parents=True)
    conf.write_text("host_url: http://h:5984\ndatabase: 5\n")
    with pytest.raises(PicasConfigSchemaError, match="'database' must be a string"):
        PicasConfig()


# ---------------------------------------------------------------------- one file for both
def test_picasconfig_reads_what_picas_init_writes(home: Path, fernet):
    path = settings_file.write_profile(None, "default", {"url": "http://127.0.0.1:5984", "database": "pool",
                                                         "username": "carol", "password": "init-pw"})
    cfg = PicasConfig()
    assert cfg.format == PROFILES_FORMAT and cfg.profile == "default" and cfg.path == path
    assert cfg.config["host_url"] == "http://127.0.0.1:5984" and cfg.config["username"] == "carol"
    assert crypto.decrypt_password(cfg.config["encrypted_password"]).decode() == "init-pw"
    assert not (home / ".config" / "picas" / "key.dat").exists()  # reading writes no key file

    # With a key file, the password is offered encrypted with it, as 1.1.x would have stored it.
    key = crypto.generate_and_save_key()
    token = PicasConfig().config["encrypted_password"]
    assert fernet.Fernet(key.read_bytes()).decrypt(token.encode()) == b"init-pw"


def test_profile_choice_and_anonymous_profiles(home: Path, monkeypatch: pytest.MonkeyPatch):
    settings_file.write_profile(None, "default", {"url": "http://a:5984", "database": "pool"})
    settings_file.write_profile(None, "grid", {"url": "https://b:6984", "database": "run", "username": "u",
                                               "password": "p"})
    cfg = PicasConfig()
    assert cfg.config["username"] is None and cfg.config["encrypted_password"] is None and cfg.password() is None
    monkeypatch.setenv("PICAS_PROFILE", "grid")
    assert PicasConfig().password() == "p"
    monkeypatch.setenv("PICAS_PROFILE", "nope")
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        PicasConfig()


def test_picasconfig_updates_a_picas_init_file_in_its_own_format(home: Path):
    settings_file.write_profile(None, "default", {"url": "http://a:5984", "database": "pool", "username": "u",
                                                  "password": "old"})
    settings_file.write_profile(None, "other", {"url": "http://b:5984", "database": "x"})
    cfg = PicasConfig()
    cfg.save_config(SimpleNamespace(host_url="http://c:5984", database="pool2", username="u", password="new"))
    loaded = settings_file.load_file(cfg.path)
    assert set(loaded["profiles"]) == {"default", "other"}  # the other profile is kept
    assert loaded["profiles"]["default"]["url"] == "http://c:5984" and PicasConfig().password() == "new"


def test_picas_init_on_a_112_file_keeps_it_in_the_112_format(home_112: Path):
    path = home_112 / ".config" / "picas" / "conf.yml"
    write_classic_profile(path, "default", {"url": None, "database": "otherdb", "username": None, "password": "n2"})
    data, password = read_as_112_does(path, home_112 / ".config" / "picas" / "key.dat")
    assert data["database"] == "otherdb" and data["username"] == "alice" and password == "n2"
    with pytest.raises(ConfigError, match="cannot hold profile 'grid'"):
        write_classic_profile(path, "grid", {"url": "http://x:5984"})
    with pytest.raises(ConfigError, match="TLS 'verify'"):
        write_classic_profile(path, "default", {"verify": False})
    assert read_as_112_does(path, home_112 / ".config" / "picas" / "key.dat")[1] == "n2"  # unchanged


# ---------------------------------------------------------------------- crypto
def test_crypto_round_trip_and_key_handling(home: Path, monkeypatch: pytest.MonkeyPatch):
    key_path = crypto.generate_and_save_key()
    assert key_path == home / ".config" / "picas" / "key.dat"
    key = crypto.read_key()
    assert len(key) == 44 and crypto.decrypt_password(crypto.encrypt_password(b"x y")) == b"x y"
    assert crypto.decrypt_password(crypto.encrypt_password("s", key), key) == b"s"
    # An existing key is never replaced without being asked to.
    assert crypto.generate_and_save_key(skip_if_exists=False, overwrite=False) == key_path
    assert crypto.read_key() == key
    crypto.generate_and_save_key(skip_if_exists=False, overwrite=True)
    assert crypto.read_key() != key
    with pytest.raises(ConfigError, match="not a valid key"):
        crypto.encrypt_password("x", b"short")
    other = home / "other.key"
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(other))
    assert crypto.generate_and_save_key() == other and crypto.read_key() == other.read_bytes().strip()


def test_without_cryptography_the_error_says_how_to_install_it(tmp_path: Path):
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "from picas import crypto\n"
            "try:\n    crypto.encrypt_password('x', b'k' * 44)\n"
            "except crypto.CryptoUnavailable as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'picas[crypto]'" in out.stdout, out.stderr


# ---------------------------------------------------------------------- picas-cli
def picas_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "picas-cli"  # this interpreter's script, not another's on PATH
    command = [str(script)] if script.exists() else [sys.executable, "-m", "picas.apps.picas_cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


def test_picas_cli_init_and_dump_config(home: Path, tmp_path: Path):
    env = dict(os.environ)
    done = picas_cli("init", "--host-url", "http://127.0.0.1:5984", "--database", "d", "--username", "u",
                     "--password", "pw", env=env)
    assert done.returncode == 0, done.stderr
    dumped = picas_cli("dump-config", env=env)
    assert dumped.returncode == 0 and "PICAS_PASSWORD = 'pw'" in dumped.stdout
    assert "PICAS_HOST_URL = 'http://127.0.0.1:5984'" in dumped.stdout
    out = tmp_path / "picasconfig.py"
    assert picas_cli("dump-config", "-o", str(out), env=env).returncode == 0
    assert out.stat().st_mode & 0o777 == 0o600
    namespace: dict = {}
    exec(out.read_text(), namespace)  # noqa: S102 - the file is what old scripts import
    assert namespace["PICAS_USERNAME"] == "u" and namespace["PICAS_PASSWORD"] == "pw"

    no_user = picas_cli("init", "--password", "pw", env=env)
    assert no_user.returncode == ConfigError.exit_code
    assert no_user.stderr.strip() == "picas-cli: error: no user name given (pass --username)"

    missing = picas_cli("--config", str(tmp_path / "nope.yml"), "dump-config", env=env)
    assert missing.returncode == ConfigError.exit_code and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("picas-cli: error: configuration file not found")


def test_picas_cli_passwd_changes_it_on_the_server_and_in_the_file(couch_server, db_name, home: Path):
    admin = couch_server.admin
    user, old, new = "picas_cli_user", "old-pw", "new-pw"
    users = f"{couch_server.url}/_users/org.couchdb.user:{user}"
    requests.put(users, json={"name": user, "password": old, "roles": ["pilots"], "type": "user"}, auth=admin,
                 timeout=30).raise_for_status()
    try:
        env = dict(os.environ)
        assert picas_cli("init", "--host-url", couch_server.url, "--database", db_name, "--username", user,
                         "--password", old, env=env).returncode == 0
        changed = picas_cli("passwd", "--new-password", new, env=env)
        assert changed.returncode == 0, changed.stderr
        assert requests.get(f"{couch_server.url}/_session", auth=(user, new), timeout=30).json()["userCtx"]["name"] \
            == user
        assert requests.get(f"{couch_server.url}/_session", auth=(user, old), timeout=30).status_code == 401
        assert requests.get(users, auth=admin, timeout=30).json()["roles"] == ["pilots"]  # roles kept
        assert PicasConfig().password() == new

        # With a wrong stored password the server refuses, and the file is left as it was.
        cfg = PicasConfig()
        with pytest.raises(Unauthorized):
            cfg.change_couchdb_password(couch_server.url, user, "wrong", "x")
        assert PicasConfig().password() == new
    finally:
        doc = requests.get(users, auth=admin, timeout=30).json()
        requests.delete(users, params={"rev": doc["_rev"]}, auth=admin, timeout=30)


# ---------------------------------------------------------------------- the picas commands on a 1.1.x file
def picas(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "picas", *args], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)


def test_picas_commands_use_a_112_config_as_it_is(couch_server, db_name, home: Path):
    user, password = couch_server.admin
    PicasConfig(load=False).save_config(SimpleNamespace(host_url=couch_server.url, database=db_name, username=user,
                                                        password=password))
    conf = home / ".config" / "picas" / "conf.yml"
    written = conf.read_text()
    env = dict(os.environ)

    shown = picas("config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "read as picas 1.1.x format" in shown.stdout and password not in shown.stdout
    assert picas("views", "create", env=env).returncode == 0
    info = picas("db", "info", "--json", env=env)
    assert info.returncode == 0 and db_name in info.stdout, info.stderr
    assert conf.read_text() == written  # reading never rewrote it

    # picas init on it keeps the 1.1.x format (and so 1.1.x's picas-cli and PicasConfig go on reading it).
    updated = picas("init", "--no-input", "--db", "otherdb", env=env)
    assert updated.returncode == 0, updated.stderr
    data = yaml.safe_load(conf.read_text())
    assert list(data) == ["host_url", "database", "username", "encrypted_password"] and data["database"] == "otherdb"
    assert PicasConfig().password() == password
    refused = picas("init", "--no-input", "--profile", "grid", "--db", "x", env=env)
    assert refused.returncode == ConfigError.exit_code
    assert "cannot hold profile 'grid'" in refused.stderr and refused.stderr.count("\n") == 1

    # Without its key the file cannot be used, and every command says so in one line.
    (home / ".config" / "picas" / "key.dat").unlink()
    failed = picas("db", "info", env=env)
    assert failed.returncode == ConfigError.exit_code and "key.dat" in failed.stderr
