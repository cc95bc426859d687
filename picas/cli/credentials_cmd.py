"""``picas credentials``: pilot users scoped to one database (create, list, revoke).

A thin layer over :mod:`picas.pool.credentials`, which says why pilots get
their own users.  The connection options are the operator's (an admin, who
may write ``_users`` and ``_security``); the credential made is written to a
private file that ``picas submit dirac --credential`` ships with the pilots
and ``picas submit slurm --credential`` points them at.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from picas.cli.options import connection_options, make_client
from picas.config import Settings
from picas.pool import credentials as creds


@click.group("credentials")
def credentials() -> None:
    """Pilot credentials: CouchDB users that may use one token database and nothing else.

    Pilots on the grid or in batch jobs get such a user instead of your own
    password: it can claim tokens and save results in its database, but it
    cannot read other databases, change their security, create or delete
    databases, or read the user list.  Revoke it when the run is over.
    """


@credentials.command("create")
@connection_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="File for the credential (mode 0600) [default: ./<user name>.yml].")
@click.option("--label", default="", help="A note kept with the user, e.g. the run it is for.")
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
def create_cmd(settings: Settings, output: Path | None, label: str, force: bool) -> None:
    """Create a pilot user for the database and write its credential to a private file.

    \b
    Examples:
      picas credentials create --output run42-pilots.yml --label run42
      picas submit dirac --credential run42-pilots.yml --pilots 50
      picas submit slurm --credential run42-pilots.yml --array 10
    """
    client = make_client(settings)
    if output is not None and output.exists() and not force:
        raise click.UsageError(f"{output} exists already; give another --output, or --force to replace it")
    credential, note = creds.create(client, label=label)
    target = output or Path(f"{credential.username}.yml")
    try:
        creds.write_file(target, credential, overwrite=force)
    except BaseException:
        creds.revoke(client, credential.username)  # nobody could ever use it: the password is gone
        raise
    if note:
        click.echo(f"note: {note}", err=True)
    click.echo(f"Created pilot user {credential.username} for database {credential.database}; "
               f"credential in {target} (mode 0600).")
    click.echo(f"Revoke it with: picas credentials revoke {credential.username}")


def _when(stamp: object) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(stamp)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"


@credentials.command("list")
@connection_options
@click.option("--all", "all_databases", is_flag=True, help="Pilot users of every database, not only this one.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
def list_cmd(settings: Settings, all_databases: bool, as_json: bool) -> None:
    """List the pilot users made for the database (never their passwords)."""
    client = make_client(settings, need_database=not all_databases)
    found = creds.list_credentials(client, all_databases=all_databases)
    if as_json:
        for item in found:
            click.echo(json.dumps({"username": item.username, "database": item.database, "created": item.created,
                                   "label": item.label, "member": item.member}))
        return
    if not found:
        click.echo("No pilot users." if all_databases else f"No pilot users for database {client.database}.")
        return
    width = max(len(item.username) for item in found)
    click.echo(f"{'USER':<{width}}  {'DATABASE':<20} {'CREATED':<16}  {'MEMBER':<6}  LABEL")
    for item in found:
        member = "-" if item.member is None else "yes" if item.member else "NO"
        click.echo(f"{item.username:<{width}}  {item.database:<20} {_when(item.created):<16}  {member:<6}  "
                   f"{item.label}".rstrip())


@credentials.command("revoke")
@connection_options
@click.argument("names", nargs=-1)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every pilot user of the database.")
def revoke_cmd(settings: Settings, names: tuple[str, ...], revoke_all: bool) -> None:
    """Delete pilot users: they are locked out of the database at once.

    Pilots still running with them fail at their next request and their
    tokens go back to todo when their leases expire (or with 'picas scrub').

    \b
    Examples:
      picas credentials revoke picas-pilot-run42-1a2b3c4d
      picas credentials revoke --all
    """
    if bool(names) == revoke_all:
        raise click.UsageError("give the user names to revoke, or --all (not both)")
    client = make_client(settings)
    targets = list(names) or [item.username for item in creds.list_credentials(client)]
    for name in targets:
        gone = creds.revoke(client, name)
        click.echo(f"Revoked {gone.username} (database {gone.database or '?'}).")
    if not targets:
        click.echo(f"No pilot users for database {client.database}.")
