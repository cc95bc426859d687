"""``picas scrub``: give tokens held by dead pilots back to the pool (see :mod:`picas.pool.scrub`)."""
from __future__ import annotations

import json

import click

from picas.cli.options import DURATION, connection_options, design_option, make_client
from picas.config import Settings
from picas.pool.scrub import scrub_expired


@click.command("scrub")
@connection_options
@design_option("Design document whose 'expired' view to use.")
@click.option("--older-than", type=DURATION,
              help="Also reset tokens locked by older clients (no lease) longer ago than this, e.g. 12h.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, metavar="N",
              help="A token already scrubbed N times goes to error instead of back to todo.")
@click.option("--dry-run", is_flag=True, help="Count what would be reset; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def scrub(settings: Settings, design: str, older_than: float | None, max_attempts: int | None, dry_run: bool,
          as_json: bool) -> None:
    """Put tokens whose pilot died back to todo, in bulk.

    A running pilot renews the lease of each token it holds; a token whose
    lease ran out belongs to a pilot that was killed, hung or lost the
    network.  Each such token goes back to todo with its scrub_count
    increased and the reason in its history.  Tokens locked by older picas
    clients have no lease: give --older-than to reset those by lock age.
    On a CouchDB cluster it also settles documents with conflicting
    revisions first, keeping the one the token's history says counts.

    \b
    Examples:
      picas scrub                        # reset every expired lease
      picas scrub --max-attempts 3       # a token scrubbed 3 times goes to error
      picas scrub --older-than 12h       # also old-style locks older than 12 hours
      picas scrub --dry-run
    """
    client = make_client(settings)
    report = scrub_expired(client, design=design, older_than=older_than, max_attempts=max_attempts,
                           dry_run=dry_run, settle_conflicts=True)
    if as_json:
        click.echo(json.dumps({"reset": len(report.reset), "errored": len(report.errored), "dry_run": dry_run,
                               "requests": report.requests, "ids": report.reset + report.errored}))
        return
    verb = "would reset" if dry_run else "reset"
    line = f"{verb} {len(report.reset)} tokens with expired leases"
    if report.errored:
        line += f"; {len(report.errored)} {'would go' if dry_run else 'went'} to error (scrubbed too often)"
    if report.settled:
        line += f"; settled {report.settled} documents with conflicting revisions"
    click.echo(line + f" ({report.requests} requests)")
