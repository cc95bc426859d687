"""``picas server``: run a local CouchDB-compatible server for a laptop session or a small cluster.

The point is a first session without a CouchDB admin: ``picas server start``
installs pouchdb-server on first use, starts it in the background with an
admin account, and records the URL and credentials in the picas config so
that every other command finds them without options.  The admin password is
generated once and kept in ``server.json`` (mode 0600) under the data home, so
restarts do not invalidate the config or running pilots.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import click

from picas.server import local
from picas.errors import LocalServerError

ADMIN_USER = "admin"
DEFAULT_PORT = 5984
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATABASE = "picas"
STATE_FILE = "server.json"


def state_path() -> Path:
    """Where the server's settings and admin password are kept between commands."""
    return local.data_home() / STATE_FILE


def load_state() -> dict[str, Any]:
    """Read the remembered server settings; an absent file means no server was ever started."""
    path = state_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LocalServerError(f"{path}: cannot read the local server's state: {exc}",
                               hint="delete the file to start afresh (a new admin password is then generated)")
    if not isinstance(data, dict):
        raise LocalServerError(f"{path}: expected a JSON object", hint="delete the file to start afresh")
    return data


def save_state(state: dict[str, Any]) -> None:
    """Remember the settings with mode 0600, since they include the admin password."""
    local.write_private_file(state_path(), json.dumps(state, indent=2, sort_keys=True) + "\n")


def _default_data_dir() -> Path:
    return local.data_home() / "server"


def server_from_state(state: dict[str, Any]) -> local.LocalServer:
    """The LocalServer the remembered settings describe, so stop/status find the one start began."""
    password = state.get("password")
    return local.LocalServer(
        Path(state.get("data_dir") or _default_data_dir()),
        port=int(state.get("port") or DEFAULT_PORT),
        host=state.get("host") or DEFAULT_HOST,
        admin=(state.get("username") or ADMIN_USER, password) if password else None,
        in_memory=bool(state.get("in_memory", False)),
    )


def record_in_config(url: str, password: str, previous_url: str | None) -> tuple[str, Path]:
    """Store the connection in the picas config so that other commands need no options.

    The default profile is only claimed when it has no URL yet (or already
    points at this local server); a user who configured a real CouchDB keeps
    it as the default and gets the local server as profile ``local``.
    """
    from picas import config as picas_config

    data = picas_config.load_file(picas_config.config_path())
    profiles = data.get("profiles") or {}
    active = data.get("default_profile") or "default"
    current = profiles.get(active) or {}
    existing_url = current.get("url")
    ours = {url, previous_url} - {None}
    profile = "default" if active == "default" and (not existing_url or existing_url in ours) else "local"
    path = picas_config.write_profile(None, profile, {
        "url": url,
        "username": ADMIN_USER,
        "password": password,
        "database": DEFAULT_DATABASE,
    })
    return profile, path


@click.group("server")
def server() -> None:
    """Run a local CouchDB-compatible server (pouchdb-server), no CouchDB or Docker needed.

    \b
    Example:
      picas server start            # installs on first use (~30 s), then starts
      picas server status
      picas server stop

    The server runs in the background and survives the shell that started
    it. It needs Node.js (node and npm on PATH); set PICAS_POUCHDB_SERVER to
    use a pouchdb-server you installed yourself. Its files live under
    PICAS_DATA_HOME (default ~/.local/share/picas).
    """


@server.command("start")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help=f"TCP port to listen on (default: the one used last time, else {DEFAULT_PORT}).")
@click.option("--host", default=None,
              help=f"Address to bind (default: the one used last time, else {DEFAULT_HOST}); "
                   "0.0.0.0 lets pilots on other machines connect.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where databases, config and logs go (default: the one used last time, "
                   "else PICAS_DATA_HOME/server).")
@click.option("--in-memory/--on-disk", default=None,
              help="Keep databases in memory only (lost on stop), or on disk (the default).")
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the server to answer.")
def start(port: int | None, host: str | None, data_dir: Path | None, in_memory: bool | None, wait: float) -> None:
    """Start the local server in the background and save its URL and login in the picas config.

    \b
    Example:
      picas server start --port 5985
      picas views create && picas push commands.txt && picas run

    The first start installs pouchdb-server with npm and generates an admin
    password; later starts reuse both. The URL, user 'admin', the password
    and database 'picas' are written to the config profile 'default' (or to
    profile 'local' if 'default' already points at another server).
    """
    state = load_state()
    previous = server_from_state(state)
    status = previous.status()
    if status["running"]:
        click.echo(f"pouchdb-server is already running at {status['url']} (pid {status['pid']})")
        asked = {"port": port, "host": host, "data_dir": data_dir, "in_memory": in_memory}
        if any(value is not None for value in asked.values()):
            click.echo("picas: note: options ignored; run 'picas server stop' first to change them", err=True)
        return

    password = state.get("password") or secrets.token_urlsafe(24)
    directory = (data_dir or Path(state.get("data_dir") or _default_data_dir())).expanduser().absolute()
    chosen = local.LocalServer(
        directory,
        port=port or int(state.get("port") or DEFAULT_PORT),
        host=host or state.get("host") or DEFAULT_HOST,
        admin=(ADMIN_USER, password),
        in_memory=in_memory if in_memory is not None else bool(state.get("in_memory", False)),
    )
    chosen.binary = local.find_binary()  # installs on first use, saying so on stderr
    chosen.start(wait=wait)

    previous_url = state.get("url")
    state.update({
        "host": chosen.host,
        "port": chosen.port,
        "data_dir": str(chosen.data_dir),
        "in_memory": chosen.in_memory,
        "url": chosen.url,
        "username": ADMIN_USER,
        "password": password,
    })
    save_state(state)
    profile, path = record_in_config(chosen.url, password, previous_url)

    click.echo(f"pouchdb-server is running at {chosen.url} (pid {chosen.pid})")
    click.echo(f"  data:  {'in memory (lost on stop)' if chosen.in_memory else chosen.data_dir}")
    click.echo(f"  log:   {chosen.log_file}")
    click.echo(f"  login: user '{ADMIN_USER}', saved with the URL in profile '{profile}' of {path}")


@server.command("stop")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
def stop(timeout: float) -> None:
    """Stop the local server (databases on disk are kept).

    \b
    Example:
      picas server stop
    """
    srv = server_from_state(load_state())
    pid = srv.pid
    if srv.stop(timeout=timeout):
        click.echo(f"stopped pouchdb-server (pid {pid})")
    else:
        click.echo("pouchdb-server is not running")


@server.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say whether the local server runs; exit 0 if it does, 3 if not (for scripts).

    \b
    Example:
      picas server status || picas server start
    """
    info = server_from_state(load_state()).status()
    click.echo("running" if info["running"] else "not running")
    if info["running"]:
        click.echo(f"  pid:   {info['pid']}")
    click.echo(f"  url:   {info['url']}")
    click.echo(f"  data:  {'in memory' if info['in_memory'] else info['data_dir']}")
    ctx.exit(0 if info["running"] else 3)


@server.command("install")
def install() -> None:
    """Install pouchdb-server with npm now (otherwise 'start' does it on first use).

    \b
    Example:
      picas server install          # e.g. while building a CI image
    """
    was_installed = local.is_installed()
    binary = local.install(quiet=False)
    click.echo(f"{'already installed' if was_installed else 'installed'}: {binary}")
