"""``picas views create|list``: the design documents whose views pilots and ``status`` read.

A thin layer over :mod:`picas.core.views`.  ``views create`` also creates the
database when it is missing, so that a new pool needs one command.
"""
from __future__ import annotations

import json

import click

from picas.core import database
from picas.cli.options import connection_options, design_option, make_client
from picas.config import Settings
from picas.core.views import deploy, describe_design, design_document, list_designs


@click.group("views")
def views() -> None:
    """Create or list the token views (todo, locked, done, error, overview_total, ...).

    \b
    Examples:
      picas views create
      picas views create --design-doc Cores4 --condition 'doc.cores == 4'
      picas views list
    """


@views.command("create")
@design_option("Design document to hold the views; pilots pick one with their own --design-doc.")
@click.option("--condition", metavar="EXPR",
              help="A JavaScript expression every view also requires, e.g. 'doc.cores == 4'.")
@connection_options
def create_cmd(settings: Settings, design: str, condition: str | None) -> None:
    """Deploy the picas views (and create the database if it is missing).

    Safe to run again: nothing is written when the views are up to date, and
    views you added to the same design document are kept.  A --condition
    makes every view of this design document select only matching tokens,
    so different pilot classes can draw from different parts of one pool.

    \b
    Examples:
      picas views create
      picas views create --design-doc GPU --condition 'doc.gpu === true'
    """
    design_document(condition)  # validate the condition before touching the server
    client = make_client(settings)
    if database.ensure(client):
        click.echo(f"Created database '{client.database}' on {client.url}.")
    names = ", ".join(sorted(design_document(condition)["views"]))
    if deploy(client, design, condition):
        click.echo(f"Deployed views {names} in _design/{design} of '{client.database}'.")
    else:
        click.echo(f"Views in _design/{design} of '{client.database}' are up to date.")


@views.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@connection_options
def list_cmd(settings: Settings, as_json: bool) -> None:
    """List the design documents with their views and condition.

    \b
    Example:
      picas views list
    """
    designs = list_designs(make_client(settings))
    if as_json:
        click.echo(json.dumps(designs, indent=2))
        return
    if not designs:
        click.echo("No design documents (create them with 'picas views create').")
    for entry in designs:
        click.echo(describe_design(entry))
