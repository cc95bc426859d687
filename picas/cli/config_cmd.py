"""``picas init`` and ``picas config``: write the connection settings once, then inspect them.

A token pool is only useful once every pilot and every shell talks to the
same server and database.  ``init`` stores those settings in a private
(0600) YAML file so they need not be typed again or left in shell history;
``config show`` explains which value wins and why; ``config import`` carries
over a classic ``picasconfig.py`` without executing it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from picas.cli.options import connection_options
from picas.config import (
    DEFAULT_PROFILE, NOT_SET, PROFILE_KEYS, REDACTED, Settings, config_path, import_picasconfig, load_file,
    write_profile,
)

DEFAULT_URL = "http://127.0.0.1:5984"
DEFAULT_DATABASE = "picas"

_config_file_option = click.option(
    "--config", "config_file", envvar="PICAS_CONFIG", show_envvar=True, metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file to write [default: ~/.config/picas/conf.yml].",
)


def _target(config_file: Path | None) -> Path:
    return config_file if config_file is not None else config_path()


def _verify_text(verify: Any) -> str:
    if verify is True:
        return "true"
    if verify is False:
        return "false (TLS certificates are NOT checked)"
    return str(verify)


def _echo_profile(values: dict[str, Any]) -> None:
    """Print a profile's values for confirmation; the password only as stars."""
    for key in PROFILE_KEYS:
        value = values.get(key)
        if key == "password":
            shown = REDACTED if value else NOT_SET
        elif key == "verify":
            shown = _verify_text(value) if value is not None else "true (default)"
        else:
            shown = value if value else NOT_SET
        click.echo(f"  {key:<9} {shown}")


def _wrote(path: Path, profile: str, created: bool) -> None:
    verb = "Wrote" if created else "Updated"
    click.echo(f"{verb} profile '{profile}' in {path} (mode 0600: readable only by you).")
    data = load_file(path)
    effective_default = data.get("default_profile", DEFAULT_PROFILE)
    if profile != effective_default:
        click.echo(f"Use it with --profile {profile} or PICAS_PROFILE={profile} "
                   f"(the default profile is '{effective_default}').")
    click.echo("Check the result with: picas config show" + ("" if profile == effective_default
                                                             else f" --profile {profile}"))


@click.command("init")
@click.option("--url", metavar="URL", help=f"CouchDB server [prompted; default {DEFAULT_URL}].")
@click.option("--db", "--database", "database", metavar="NAME",
              help=f"Database that holds the tokens [prompted; default {DEFAULT_DATABASE}].")
@click.option("--username", metavar="USER", help="CouchDB user name [prompted; empty for none].")
@click.option("--password", metavar="PASS",
              help="CouchDB password [prompted without echo; prefer the prompt: options show up in 'ps'].")
@click.option("--profile", envvar="PICAS_PROFILE", show_envvar=True, default=DEFAULT_PROFILE, show_default=True,
              metavar="NAME", help="Profile to write; keep several servers side by side.")
@_config_file_option
@click.option("--insecure", is_flag=True, default=False,
              help="Store verify: false (do not check TLS certificates; self-signed test servers only).")
@click.option("--ca-bundle", "ca_bundle", metavar="PATH", type=click.Path(exists=True),
              help="Store a CA bundle (a PEM file or a hashed CA directory) to verify the server's TLS "
                   "certificate against.")
@click.option("--no-input", is_flag=True, default=False,
              help="Never prompt: take defaults (or the stored values) for anything not given.")
def init(url: str | None, database: str | None, username: str | None, password: str | None, profile: str,
         config_file: Path | None, insecure: bool, ca_bundle: str | None, no_input: bool) -> None:
    """Store connection settings so that later commands need no options.

    Asks for what is not given as an option; re-running it on an existing
    profile offers the stored values as defaults and keeps the stored
    password when the answer is empty.  The file is created with mode 0600.

    \b
    Examples:
      picas init                                   # asks for everything
      picas init --profile cluster --url https://couch.example.org:6984 \\
                 --db run42 --username alice       # asks only for the password
      picas init --no-input --url http://127.0.0.1:5984 --db picas   # for scripts
    """
    if insecure and ca_bundle:
        raise click.UsageError("--insecure and --ca-bundle contradict each other; give one of them")
    target = _target(config_file)
    existing_file = load_file(target)  # fails early, before any prompt, if the file is malformed
    stored: dict[str, Any] = existing_file.get("profiles", {}).get(profile, {})

    if url is None:
        default_url = stored.get("url", DEFAULT_URL)
        url = default_url if no_input else click.prompt("CouchDB URL", default=default_url)
    if database is None:
        default_db = stored.get("database", DEFAULT_DATABASE)
        database = default_db if no_input else click.prompt("Database", default=default_db)
    if username is None and not no_input:
        stored_user = stored.get("username")
        username = click.prompt("Username (empty for none)", default=stored_user or "",
                                show_default=bool(stored_user)) or None
    if password is None and username and not no_input:
        label = "Password (empty keeps the stored one)" if stored.get("password") else "Password (empty for none)"
        password = click.prompt(label, default="", show_default=False, hide_input=True) or None

    verify: bool | str | None = False if insecure else (ca_bundle or None)
    created = not target.exists()
    path = write_profile(target, profile, {
        "url": url, "database": database, "username": username, "password": password, "verify": verify,
    })
    _wrote(path, profile, created)
    _echo_profile(load_file(path)["profiles"][profile])


@click.group("config")
def config() -> None:
    """Inspect the connection settings, or import them from an old picasconfig.py.

    Settings come from options, then PICAS_* environment variables, then the
    profile in the config file (~/.config/picas/conf.yml, or $PICAS_CONFIG).

    \b
    Examples:
      picas config show                    # what would be used, and why
      picas config show --profile cluster --json
      picas config import picasconfig.py   # carry over a classic setup
    """


@config.command("show")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print machine-readable JSON.")
@connection_options
def show(settings: Settings, as_json: bool) -> None:
    """Print the effective settings and where each one comes from.

    The password is never printed, only whether it is set.  Options and
    environment variables given here are taken into account, so this shows
    exactly what another command would use with the same arguments.

    \b
    Examples:
      picas config show
      PICAS_DATABASE=run42 picas config show     # database: run42  (env PICAS_DATABASE)
      picas config show --profile cluster --json
    """
    data = settings.redacted()
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False))
        return
    sources = data["sources"]
    config_file = settings.config_file
    state = "" if config_file is None else ("" if config_file.exists() else "  [does not exist]")
    how = sources.get("config_file", "") + (f"; read as {data['config_format']}" if data["config_format"] else "")
    rows = [
        ("config", f"{config_file}{state}", how),
        ("profile", data["profile"], sources.get("profile", "")),
        ("url", data["url"] or NOT_SET, sources.get("url", "")),
        ("database", data["database"] or NOT_SET, sources.get("database", "")),
        ("username", data["username"] or NOT_SET, sources.get("username", "")),
        ("password", data["password"], sources.get("password", "")),
        ("verify", _verify_text(data["verify"]), sources.get("verify", "")),
    ]
    width = max(len(str(value)) for _, value, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<9} {str(value):<{width}}  ({source})")


@config.command("import")
@click.argument("picasconfig_py", metavar="PICASCONFIG_PY", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--profile", envvar="PICAS_PROFILE", show_envvar=True, default=DEFAULT_PROFILE, show_default=True,
              metavar="NAME", help="Profile to write the settings into.")
@_config_file_option
def import_cmd(picasconfig_py: Path, profile: str, config_file: Path | None) -> None:
    """Copy the settings of a classic picasconfig.py into the config file.

    The Python file is read, not executed: only plain assignments such as
    PICAS_HOST_URL = "https://..." are taken (PICAS_HOST_URL,
    PICAS_DATABASE, PICAS_USERNAME, PICAS_PASSWORD).  Values already in the
    profile that the file does not set are kept.

    \b
    Examples:
      picas config import picasconfig.py
      picas config import ~/old-project/picasconfig.py --profile grid
    """
    values = import_picasconfig(picasconfig_py)
    target = _target(config_file)
    created = not target.exists()
    path = write_profile(target, profile, values)
    taken = [key for key in PROFILE_KEYS if values.get(key)]
    click.echo(f"Read {', '.join(taken)} from {picasconfig_py} (without running it).")
    _wrote(path, profile, created)
    _echo_profile(load_file(path)["profiles"][profile])
