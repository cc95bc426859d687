"""``picas db create|info|delete``: the database that holds a token pool.

A thin layer over :mod:`picas.core.database`, which knows why creating and
deleting need care (admin rights, ``_security`` members).
"""
from __future__ import annotations

import json

import click

from picas.core import database
from picas.core.views import describe_design
from picas.cli.options import connection_options, make_client
from picas.config import Settings


@click.group("db")
def db() -> None:
    """Create, inspect or delete the token database.

    \b
    Examples:
      picas db create                  # the database named by --db / PICAS_DATABASE
      picas db info --json
      picas db delete --yes
    """


@db.command("create")
@click.option("--no-members", is_flag=True, help="Do not make the current user the database's only member.")
@click.option("--exist-ok", is_flag=True, help="Succeed if the database exists already.")
@click.option("--q", "shards", type=click.IntRange(min=1), default=None, metavar="N",
              help="CouchDB cluster: shards of the database [default: the server's, 2 on CouchDB 3].")
@click.option("--n", "copies", type=click.IntRange(min=1), default=None, metavar="N",
              help="CouchDB cluster: copies of each shard, on as many nodes [default: the server's, 3].")
@connection_options
def create_cmd(settings: Settings, no_members: bool, exist_ok: bool, shards: int | None,
               copies: int | None) -> None:
    """Create the database (server admins only) and make the current user its member.

    A database with no members in its _security is open to anyone who can
    reach the server, so by default the user who creates it becomes its
    member.  On a CouchDB cluster --q and --n choose its shards and copies;
    with --n 3 any one node may be down and pilots go on.

    \b
    Examples:
      picas db create --db run42
      picas db create --db run42 --q 8 --n 3 --url http://n1:5984,http://n2:5984,http://n3:5984
    """
    client = make_client(settings)
    created = database.create(client, exist_ok=exist_ok, members=not no_members, q=shards, n=copies)
    where = f"'{client.database}' on {client.url}"
    click.echo(f"Created database {where}." if created else f"Database {where} exists already.")


@db.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@connection_options
def info_cmd(settings: Settings, as_json: bool) -> None:
    """Show the database's documents, size, members and design documents.

    \b
    Example:
      picas db info --json | jq .doc_count
    """
    details = database.info(make_client(settings))
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    members = ", ".join(details["members"]["names"] + [f"role:{r}" for r in details["members"]["roles"]])
    click.echo(f"Database   {details['name']} on {details['url']}")
    deleted = f" ({details['doc_del_count']:,} deleted)" if details.get("doc_del_count") is not None else ""
    click.echo(f"Documents  {details['doc_count']:,}{deleted}")
    if details.get("cluster") and int(details["cluster"].get("n") or 1) > 1:
        shape = details["cluster"]
        click.echo(f"Cluster    {shape.get('q')} shards x {shape.get('n')} copies (w={shape.get('w')}, "
                   f"r={shape.get('r')})")
    if details.get("size") is not None:
        click.echo(f"Size       {details['size']:,} bytes")
    click.echo(f"Members    {members or '(none: open to anyone who reaches the server)'}")
    if not details["designs"]:
        click.echo("Views      none (create them with 'picas views create')")
    for design in details["designs"]:
        click.echo(f"Views      {describe_design(design)}")


@db.command("delete")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@connection_options
def delete_cmd(settings: Settings, yes: bool) -> None:
    """Delete the database and every token in it (asks first unless --yes).

    \b
    Example:
      picas db delete --db scratch --yes
    """
    client = make_client(settings)
    if not yes:
        click.confirm(f"Delete database '{client.database}' on {client.url} and everything in it?", abort=True)
    database.delete(client)
    click.echo(f"Deleted database '{client.database}'.")
