"""Tests for settings resolution, the config file, and the init/config commands.

Every test passes its own environment and a path under tmp_path, so the real
~/.config is never read or written.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import types
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from picas.cli.config_cmd import config, init
from picas.cli.options import connection_options, make_client
from picas.config import (
    Settings, config_path, import_picasconfig, load_file, resolve, write_profile,
)
from picas.errors import ConfigError, PicasError

PICAS_VARS = ("PICAS_HOST_URL", "PICAS_DATABASE", "PICAS_USERNAME", "PICAS_PASSWORD", "PICAS_VERIFY",
              "PICAS_PROFILE", "PICAS_CONFIG", "PICAS_DEBUG")

CLASSIC_PICASCONFIG = '''\
# Classic picas client configuration.
import os

PICAS_HOST_URL = "https://picas.example.org:6984"
PICAS_DATABASE = "run42"
PICAS_USERNAME = "alice"
PICAS_PASSWORD = "s3cret-pw"
OTHER = os.getcwd()  # must never be executed
'''


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's own PICAS_* variables and home directory out of every test."""
    for name in PICAS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "conf.yml"


@pytest.fixture
def cli_env(tmp_path: Path, conf: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = {name: None for name in PICAS_VARS}
    env.update({"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
                "PICAS_CONFIG": str(conf)})
    return env


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


TWO_PROFILES = """\
default_profile: laptop
profiles:
  laptop:
    url: http://127.0.0.1:5984
    database: picas
    username: admin
    password: admin-pw
  cluster:
    url: https://couch.example.org:6984
    database: run42
    verify: /etc/ssl/ca.pem
"""


# --------------------------------------------------------------------------- config_path


def test_config_path_prefers_picas_config_then_xdg_then_home(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    assert config_path({"HOME": home}) == Path(home) / ".config" / "picas" / "conf.yml"
    assert config_path({"HOME": home, "XDG_CONFIG_HOME": "/x"}) == Path("/x/picas/conf.yml")
    assert config_path({"HOME": home, "XDG_CONFIG_HOME": "relative"}) == Path(home) / ".config/picas/conf.yml"
    assert config_path({"HOME": home, "XDG_CONFIG_HOME": "/x", "PICAS_CONFIG": "/c.yml"}) == Path("/c.yml")
    assert config_path({"HOME": home, "PICAS_CONFIG": "~/my.yml"}) == Path(home) / "my.yml"


# --------------------------------------------------------------------------- load_file


def test_load_missing_and_empty_file(tmp_path: Path) -> None:
    assert load_file(tmp_path / "absent.yml") == {}
    assert load_file(write_yaml(tmp_path / "empty.yml", "")) == {}


def test_load_structured_file(conf: Path) -> None:
    data = load_file(write_yaml(conf, TWO_PROFILES))
    assert data["default_profile"] == "laptop"
    assert set(data["profiles"]) == {"laptop", "cluster"}
    assert data["profiles"]["cluster"]["verify"] == "/etc/ssl/ca.pem"


def test_flat_file_is_the_default_profile(conf: Path) -> None:
    write_yaml(conf, "url: http://h:5984\ndatabase: flat\nverify: false\n")
    assert load_file(conf) == {"profiles": {"default": {"url": "http://h:5984", "database": "flat",
                                                        "verify": False}}}
    settings = resolve(env={}, path=conf)
    got = (settings.url, settings.database, settings.verify, settings.profile)
    assert got == ("http://h:5984", "flat", False, "default")


def test_malformed_yaml_names_file_and_line(conf: Path) -> None:
    write_yaml(conf, "profiles:\n  default:\n    url: http://h:5984\n    database: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_file(conf)
    message = str(info.value)
    assert str(conf) in message
    assert "malformed YAML" in message
    # yaml notices at the end of the file; the message also points back at the bracket on line 4
    assert f"{conf}:5:" in message
    assert "from line 4" in message


def test_malformed_yaml_tab_indentation(conf: Path) -> None:
    write_yaml(conf, "profiles:\n  default:\n\turl: x\n")
    with pytest.raises(ConfigError, match=rf"{conf}:3:"):
        load_file(conf)


@pytest.mark.parametrize("text, line, fragment", [
    ("- url\n- db\n", 1, "top level must be a mapping"),
    ("profiles:\n  default:\n    url: http://h\n    databse: x\n", 4, "unknown key 'databse'"),
    ("profiles:\n  default: just-a-string\n", 2, "profile 'default' must be a mapping"),
    ("profiles: [a, b]\n", 1, "'profiles' must be a mapping"),
    ("url: http://h\nprofiles:\n  default: {}\n", 1, "move it into a profile"),
    ("profiles: {}\ncolour: blue\n", 2, "unknown key 'colour'"),
    ("urll: http://h\n", 1, "unknown key 'urll'"),
    ("profiles:\n  a:\n    password: 12345\n", 3, "put quotes around it"),
    ("profiles:\n  a:\n    verify: 3\n", 3, "'verify'"),
    ("default_profile: nope\nprofiles:\n  a: {url: http://h}\n", 1, "default_profile 'nope'"),
])
def test_wrong_shape_names_key_and_line(conf: Path, text: str, line: int, fragment: str) -> None:
    write_yaml(conf, text)
    with pytest.raises(ConfigError) as info:
        load_file(conf)
    message = str(info.value)
    assert f"{conf}:{line}:" in message
    assert fragment in message


# --------------------------------------------------------------------------- resolve


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = resolve(env={}, path=tmp_path / "absent.yml")
    assert settings.url is None and settings.database is None
    assert settings.username is None and settings.password is None
    assert settings.verify is True
    assert settings.profile == "default"
    for key in ("url", "database", "username", "password", "verify", "profile"):
        assert settings.sources[key] == "default", key
    assert settings.sources["config_file"] == "option"


def test_precedence_option_over_env_over_file(conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    env = {"PICAS_HOST_URL": "http://env:5984", "PICAS_DATABASE": "envdb", "HOME": "/nowhere"}
    settings = resolve({"url": "http://opt:5984", "database": None}, env=env, path=conf)
    assert settings.url == "http://opt:5984"
    assert settings.sources["url"] == "option"
    assert settings.database == "envdb"
    assert settings.sources["database"] == "env PICAS_DATABASE"
    assert settings.username == "admin"
    assert settings.sources["username"] == f"file {conf} [profile laptop]"
    assert settings.password == "admin-pw"
    assert settings.verify is True and settings.sources["verify"] == "default"


def test_file_source_label_abbreviates_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    conf = write_yaml(home / ".config" / "picas" / "conf.yml", "url: http://h:5984\n")
    settings = resolve(env={"HOME": str(home)})
    assert settings.config_file == conf
    assert settings.sources["url"] == "file ~/.config/picas/conf.yml [profile default]"
    assert settings.sources["config_file"] == "default"


def test_env_picas_config_selects_the_file(conf: Path) -> None:
    write_yaml(conf, "database: fromfile\n")
    settings = resolve(env={"PICAS_CONFIG": str(conf), "HOME": "/nowhere"})
    assert settings.database == "fromfile"
    assert settings.config_file == conf
    assert settings.sources["config_file"] == "env PICAS_CONFIG"


def test_empty_env_values_count_as_unset(conf: Path) -> None:
    write_yaml(conf, "database: fromfile\n")
    settings = resolve(env={"PICAS_DATABASE": ""}, path=conf)
    assert settings.database == "fromfile"


def test_profile_selection_order(conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    by_file = resolve(env={}, path=conf)
    assert by_file.profile == "laptop"
    assert by_file.sources["profile"].endswith("default_profile")
    by_env = resolve(env={"PICAS_PROFILE": "cluster"}, path=conf)
    assert (by_env.profile, by_env.database) == ("cluster", "run42")
    assert by_env.sources["profile"] == "env PICAS_PROFILE"
    by_option = resolve(profile="laptop", env={"PICAS_PROFILE": "cluster"}, path=conf)
    assert (by_option.profile, by_option.database) == ("laptop", "picas")
    assert by_option.sources["profile"] == "option"
    assert by_env.verify == "/etc/ssl/ca.pem"


def test_unknown_profile_lists_the_profiles(conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    with pytest.raises(ConfigError) as info:
        resolve(profile="nope", env={}, path=conf)
    message = str(info.value)
    assert "'nope'" in message and str(conf) in message
    assert "cluster, laptop" in message
    with pytest.raises(ConfigError, match="PICAS_PROFILE"):
        resolve(env={"PICAS_PROFILE": "nope"}, path=conf)


def test_requested_profile_without_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(profile="cluster", env={}, path=tmp_path / "absent.yml")


def test_implicit_default_profile_may_be_missing(conf: Path) -> None:
    write_yaml(conf, "profiles:\n  other: {url: http://o:5984}\n")
    settings = resolve(env={}, path=conf)
    assert settings.profile == "default" and settings.url is None


@pytest.mark.parametrize("raw, expected", [
    ("0", False), ("false", False), ("No", False), ("off", False),
    ("1", True), ("TRUE", True), ("yes", True), ("/etc/ca.pem", "/etc/ca.pem"),
])
def test_verify_from_env(tmp_path: Path, raw: str, expected: bool | str) -> None:
    settings = resolve(env={"PICAS_VERIFY": raw}, path=tmp_path / "absent.yml")
    assert settings.verify == expected
    assert settings.sources["verify"] == "env PICAS_VERIFY"


def test_verify_option_beats_file(conf: Path) -> None:
    write_yaml(conf, "verify: /ca.pem\n")
    assert resolve({"verify": False}, env={}, path=conf).verify is False
    assert resolve(env={}, path=conf).verify == "/ca.pem"


def test_resolve_rejects_unknown_option_keys(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        resolve({"db": "x"}, env={}, path=tmp_path / "absent.yml")


def test_resolve_reports_a_malformed_file(conf: Path) -> None:
    write_yaml(conf, "url: [\n")
    with pytest.raises(ConfigError, match=str(conf)):
        resolve(env={}, path=conf)


# --------------------------------------------------------------------------- Settings


def test_redacted_hides_passwords() -> None:
    settings = Settings(url="https://bob:hunter2@h:6984/", password="hunter2", sources={"url": "option"})
    data = settings.redacted()
    assert data["password"] == "********"
    assert "hunter2" not in json.dumps(data)
    assert data["url"] == "https://bob:********@h:6984/"
    assert Settings().redacted()["password"] == "(not set)"
    assert "hunter2" not in repr(settings)


def test_require_url_and_database_explain_how() -> None:
    with pytest.raises(ConfigError) as info:
        Settings().require_url()
    assert "--url" in str(info.value) and "PICAS_HOST_URL" in str(info.value) and "picas init" in str(info.value)
    with pytest.raises(ConfigError) as info:
        Settings().require_database()
    assert "--db" in str(info.value) and "PICAS_DATABASE" in str(info.value)
    with pytest.raises(ConfigError, match="http://"):
        Settings(url="127.0.0.1:5984").require_url()
    assert Settings(url="http://h:5984", database="d").require_url() == "http://h:5984"
    assert Settings(url="http://h:5984", database="d").require_database() == "d"
    assert ConfigError.exit_code == 3 and issubclass(ConfigError, PicasError)


# --------------------------------------------------------------------------- write_profile


def test_write_profile_creates_private_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "conf.yml"
    path = write_profile(target, "default", {"url": "http://h:5984", "database": "d", "password": "pw",
                                             "username": None})
    assert path == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert load_file(target) == {"profiles": {"default": {"url": "http://h:5984", "database": "d",
                                                          "password": "pw"}}}
    assert not [p for p in target.parent.iterdir() if p.name != "conf.yml"], "temporary file left behind"


def test_write_profile_is_private_even_with_a_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        target = write_profile(tmp_path / "conf.yml", "default", {"url": "http://h"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_write_profile_is_never_world_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check the mode of the file at the moment its contents are written, not only afterwards."""
    import picas.support.files as module

    seen: list[int] = []
    real_fdopen = os.fdopen

    def spying_fdopen(fd: int, *args, **kwargs):
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(module.os, "fdopen", spying_fdopen)
    write_profile(tmp_path / "conf.yml", "default", {"password": "pw"})
    assert seen == [0o600]


def test_write_profile_merges_and_keeps_other_profiles(conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    os.chmod(conf, 0o644)
    write_profile(conf, "cluster", {"username": "carol", "password": None, "verify": False})
    data = load_file(conf)
    assert data["default_profile"] == "laptop"
    assert data["profiles"]["laptop"]["password"] == "admin-pw"
    assert data["profiles"]["cluster"] == {"url": "https://couch.example.org:6984", "database": "run42",
                                           "username": "carol", "verify": False}
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def test_write_profile_converts_a_flat_file(conf: Path) -> None:
    write_yaml(conf, "url: http://flat:5984\n")
    write_profile(conf, "cluster", {"url": "https://c:6984"})
    data = load_file(conf)
    assert data["profiles"]["default"] == {"url": "http://flat:5984"}
    assert data["profiles"]["cluster"] == {"url": "https://c:6984"}
    assert "default_profile" not in data


def test_first_profile_of_a_new_file_becomes_the_default(conf: Path) -> None:
    write_profile(conf, "cluster", {"url": "https://c:6984"})
    assert load_file(conf)["default_profile"] == "cluster"
    assert resolve(env={}, path=conf).url == "https://c:6984"


def test_write_profile_refuses_to_clobber_a_malformed_file(conf: Path) -> None:
    write_yaml(conf, "url: [\n")
    with pytest.raises(ConfigError):
        write_profile(conf, "default", {"url": "http://h"})
    assert conf.read_text() == "url: [\n"


def test_write_profile_rejects_unknown_keys(conf: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        write_profile(conf, "default", {"colour": "blue"})


def test_write_profile_default_path_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "via-env.yml"
    monkeypatch.setenv("PICAS_CONFIG", str(target))
    assert write_profile(None, "default", {"database": "d"}) == target
    assert target.exists()


# --------------------------------------------------------------------------- import_picasconfig


def test_import_picasconfig_reads_without_executing(tmp_path: Path) -> None:
    py = tmp_path / "picasconfig.py"
    py.write_text(CLASSIC_PICASCONFIG + "raise SystemExit('executed!')\n")
    assert import_picasconfig(py) == {"url": "https://picas.example.org:6984", "database": "run42",
                                      "username": "alice", "password": "s3cret-pw"}


def test_import_picasconfig_partial_and_empty_values(tmp_path: Path) -> None:
    py = tmp_path / "picasconfig.py"
    py.write_text('PICAS_HOST_URL="https://h:6984"\nPICAS_DATABASE=""\nPICAS_USERNAME: str = "u"\n'
                  'PICAS_PASSWORD = os.environ["PW"]\n')
    assert import_picasconfig(py) == {"url": "https://h:6984", "database": None, "username": "u",
                                      "password": None}


def test_import_picasconfig_rejects_a_broken_file(tmp_path: Path) -> None:
    py = tmp_path / "picasconfig.py"
    py.write_text('PICAS_HOST_URL = "https://h"\nPICAS_DATABASE = "unterminated\n')
    with pytest.raises(ConfigError, match=rf"{py}:2:"):
        import_picasconfig(py)


def test_import_picasconfig_needs_something_usable(tmp_path: Path) -> None:
    py = tmp_path / "picasconfig.py"
    py.write_text('PICAS_HOST_URL = ""\nimport os\n')
    with pytest.raises(ConfigError, match="found no PICAS_HOST_URL"):
        import_picasconfig(py)
    with pytest.raises(ConfigError, match="no such file"):
        import_picasconfig(tmp_path / "absent.py")


# --------------------------------------------------------------------------- connection_options


@click.command()
@connection_options
def probe(settings: Settings) -> None:
    click.echo(json.dumps({"values": settings.redacted(), "verify": settings.verify,
                           "password": settings.password}))


def run_probe(args: list[str], env: dict[str, str | None]) -> dict:
    result = CliRunner().invoke(probe, args, env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def test_options_distinguish_env_from_command_line(cli_env: dict, conf: Path) -> None:
    write_yaml(conf, "url: http://file:5984\ndatabase: filedb\nusername: fileuser\n")
    env = {**cli_env, "PICAS_DATABASE": "envdb", "PICAS_PASSWORD": "envpw"}
    out = run_probe(["--url", "http://opt:5984", "--username", "optuser"], env)
    values, sources = out["values"], out["values"]["sources"]
    assert (values["url"], sources["url"]) == ("http://opt:5984", "option")
    assert (values["database"], sources["database"]) == ("envdb", "env PICAS_DATABASE")
    assert (values["username"], sources["username"]) == ("optuser", "option")
    assert (out["password"], sources["password"]) == ("envpw", "env PICAS_PASSWORD")
    assert sources["config_file"] == "env PICAS_CONFIG"
    out = run_probe(["--db", "optdb"], env)
    assert (out["values"]["database"], out["values"]["sources"]["database"]) == ("optdb", "option")
    out = run_probe(["--database", "optdb2"], env)
    assert out["values"]["database"] == "optdb2"


def test_options_profile_and_config(cli_env: dict, tmp_path: Path) -> None:
    other = write_yaml(tmp_path / "other.yml", TWO_PROFILES)
    out = run_probe(["--config", str(other), "--profile", "cluster"], cli_env)
    assert out["values"]["database"] == "run42"
    assert out["values"]["sources"]["profile"] == "option"
    assert out["values"]["sources"]["config_file"] == "option"
    out = run_probe(["--config", str(other)], {**cli_env, "PICAS_PROFILE": "cluster"})
    assert out["values"]["sources"]["profile"] == "env PICAS_PROFILE"


def test_options_verify(cli_env: dict, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert run_probe(["--insecure"], cli_env)["verify"] is False
    out = run_probe(["--ca-bundle", str(ca)], cli_env)
    assert out["verify"] == str(ca) and out["values"]["sources"]["verify"] == "option"
    assert run_probe([], {**cli_env, "PICAS_VERIFY": "false"})["verify"] is False
    result = CliRunner().invoke(probe, ["--insecure", "--ca-bundle", str(ca)], env=cli_env)
    assert result.exit_code == 2 and "contradict" in result.output


def test_make_client_passes_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class FakeClient:
        def __init__(self, url, database, **kwargs):
            calls.append((url, database, kwargs))

    monkeypatch.setitem(sys.modules, "picas.core.client", types.SimpleNamespace(CouchClient=FakeClient))
    settings = Settings(url="http://h:5984", database="d", username="u", password="p", verify=False)
    assert isinstance(make_client(settings), FakeClient)
    assert calls == [("http://h:5984", "d", {"username": "u", "password": "p", "verify": False})]
    with pytest.raises(ConfigError, match="--db"):
        make_client(Settings(url="http://h:5984"))
    make_client(Settings(url="http://h:5984"), need_database=False)
    with pytest.raises(ConfigError, match="CA bundle"):
        make_client(Settings(url="http://h:5984", database="d", verify="/no/such/ca.pem"))


# --------------------------------------------------------------------------- init


def test_init_prompts_and_never_echoes_the_password(cli_env: dict, conf: Path) -> None:
    result = CliRunner().invoke(init, [], input="http://couch:5984\nmydb\nalice\ntopsecret\n", env=cli_env)
    assert result.exit_code == 0, result.output
    assert "topsecret" not in result.output
    assert str(conf) in result.output and "0600" in result.output
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert load_file(conf)["profiles"]["default"] == {"url": "http://couch:5984", "database": "mydb",
                                                      "username": "alice", "password": "topsecret"}


def test_init_defaults(cli_env: dict, conf: Path) -> None:
    result = CliRunner().invoke(init, [], input="\n\n\n", env=cli_env)
    assert result.exit_code == 0, result.output
    assert "Password" not in result.output  # no username, so no password to ask for
    assert load_file(conf)["profiles"]["default"] == {"url": "http://127.0.0.1:5984", "database": "picas"}


def test_init_non_interactive(cli_env: dict, conf: Path) -> None:
    args = ["--url", "https://c:6984", "--db", "run1", "--username", "bob", "--password", "pw",
            "--profile", "cluster", "--insecure"]
    result = CliRunner().invoke(init, args, input="", env=cli_env)
    assert result.exit_code == 0, result.output
    assert "pw\n" not in result.output and "?" not in result.output
    data = load_file(conf)
    assert data["profiles"]["cluster"] == {"url": "https://c:6984", "database": "run1", "username": "bob",
                                           "password": "pw", "verify": False}
    assert data["default_profile"] == "cluster"
    result = CliRunner().invoke(init, ["--no-input", "--profile", "laptop"], input="", env=cli_env)
    assert result.exit_code == 0, result.output
    assert load_file(conf)["profiles"]["laptop"] == {"url": "http://127.0.0.1:5984", "database": "picas"}
    assert "--profile laptop" in result.output


def test_init_rerun_keeps_stored_password(cli_env: dict, conf: Path) -> None:
    write_profile(conf, "default", {"url": "http://old:5984", "database": "olddb", "username": "al",
                                    "password": "keepme"})
    result = CliRunner().invoke(init, [], input="\n\n\n\n", env=cli_env)
    assert result.exit_code == 0, result.output
    assert "keepme" not in result.output
    assert "[http://old:5984]" in result.output
    assert load_file(conf)["profiles"]["default"]["password"] == "keepme"


def test_init_config_option_and_malformed_file(cli_env: dict, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "c.yml"
    result = CliRunner().invoke(init, ["--config", str(target), "--no-input"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert target.exists()
    bad = write_yaml(tmp_path / "bad.yml", "profiles: [\n")
    result = CliRunner().invoke(init, ["--config", str(bad), "--no-input"], env=cli_env)
    assert isinstance(result.exception, ConfigError)
    assert str(bad) in str(result.exception)


# --------------------------------------------------------------------------- config show / import


def test_config_show_redacts_and_shows_sources(cli_env: dict, conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    result = CliRunner().invoke(config, ["show"], env={**cli_env, "PICAS_DATABASE": "envdb"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "admin-pw" not in out and "********" in out
    assert "envdb" in out and "(env PICAS_DATABASE)" in out
    assert f"(file {conf} [profile laptop])" in out
    assert "laptop" in out


def test_config_show_names_the_format_it_read(cli_env: dict, conf: Path) -> None:
    """Both formats are named: picas' own (with profiles, or flat) here; a 1.1.x file in tests/classic."""
    write_yaml(conf, TWO_PROFILES)
    result = CliRunner().invoke(config, ["show"], env=cli_env)
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("config ")]
    assert row.endswith("(env PICAS_CONFIG; read as picas profiles format)"), row
    write_yaml(conf, "url: http://127.0.0.1:5984\ndatabase: flat\n")
    shown = json.loads(CliRunner().invoke(config, ["show", "--json"], env=cli_env).output)
    assert shown["config_format"] == "picas profiles format" and shown["database"] == "flat"
    conf.unlink()
    missing = json.loads(CliRunner().invoke(config, ["show", "--json"], env=cli_env).output)
    assert missing["config_format"] is None and missing["sources"]["config_file"] == "env PICAS_CONFIG"


def test_config_show_json(cli_env: dict, conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    result = CliRunner().invoke(config, ["show", "--json", "--profile", "cluster", "--url", "https://o:1"],
                                env=cli_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["url"] == "https://o:1" and data["sources"]["url"] == "option"
    assert data["database"] == "run42" and data["password"] == "(not set)"
    assert data["verify"] == "/etc/ssl/ca.pem"


def test_config_show_without_a_file(cli_env: dict) -> None:
    result = CliRunner().invoke(config, ["show"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "does not exist" in result.output and "(not set)" in result.output


def test_config_show_unknown_profile_is_a_config_error(cli_env: dict, conf: Path) -> None:
    write_yaml(conf, TWO_PROFILES)
    result = CliRunner().invoke(config, ["show", "--profile", "nope"], env=cli_env)
    assert isinstance(result.exception, ConfigError)
    assert "cluster, laptop" in str(result.exception)


def test_config_import(cli_env: dict, conf: Path, tmp_path: Path) -> None:
    py = tmp_path / "picasconfig.py"
    py.write_text(CLASSIC_PICASCONFIG)
    result = CliRunner().invoke(config, ["import", str(py), "--profile", "grid"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert load_file(conf)["profiles"]["grid"] == {"url": "https://picas.example.org:6984", "database": "run42",
                                                   "username": "alice", "password": "s3cret-pw"}
    shown = CliRunner().invoke(config, ["show", "--json"], env=cli_env)
    assert json.loads(shown.output)["profile"] == "grid"


def test_config_import_broken_file(cli_env: dict, tmp_path: Path) -> None:
    py = tmp_path / "picasconfig.py"
    py.write_text("PICAS_HOST_URL = (\n")
    result = CliRunner().invoke(config, ["import", str(py)], env=cli_env)
    assert isinstance(result.exception, ConfigError)
    assert str(py) in str(result.exception)


@pytest.mark.parametrize("command, args", [(init, ["--help"]), (config, ["--help"]), (config, ["show", "--help"]),
                                           (config, ["import", "--help"])])
def test_help_has_examples(command: click.Command, args: list[str]) -> None:
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "  picas " in result.output


def test_yaml_written_is_plain_data(conf: Path) -> None:
    write_profile(conf, "default", {"url": "http://h", "verify": "/ca.pem"})
    assert yaml.safe_load(conf.read_text()) == {"profiles": {"default": {"url": "http://h", "verify": "/ca.pem"}}}
