"""``picas tokens list|show|logs``, ``picas reset`` and ``picas delete``: look at and change tokens.

A thin layer over :mod:`picas.pool.tokens`, which selects tokens, writes changes in
bulk and handles the races with running pilots.
"""
from __future__ import annotations

import json
import time

import click

from picas.pool import tokens as pool
from picas.core import token as tok
from picas.cli.options import DURATION, connection_options, design_option, make_client
from picas.config import Settings
from picas.support.durations import format_duration

_design_option = design_option()


def _complete_views(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [view for view in pool.STATE_VIEWS if view.startswith(incomplete)]


def _split_ids(values: tuple[str, ...]) -> list[str]:
    """Ids from repeated --ids options, each holding one or more ids separated by commas or spaces."""
    return [item for value in values for item in value.replace(",", " ").split() if item]


@click.group("tokens")
def tokens() -> None:
    """Look at tokens: list a view, show one token, print its logs.

    \b
    Examples:
      picas tokens list --view error --limit 20
      picas tokens show token_3f9a0c1d2e4b5a67
      picas tokens logs token_3f9a0c1d2e4b5a67 --err
    """


@tokens.command("list")
@click.option("--view", default="todo", show_default=True, shell_complete=_complete_views,
              help="View to list: todo, locked, done, error (or a view of your own).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0),
              help="At most this many tokens; 0 lists all.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (one token summary per line).")
@_design_option
@connection_options
def list_cmd(settings: Settings, view: str, limit: int, as_json: bool, design: str) -> None:
    """List the tokens of a view: id, state, host, job id, age and exit code.

    \b
    Examples:
      picas tokens list --view locked
      picas tokens list --view error --limit 0 --json | jq -r .id
    """
    docs = pool.list_tokens(make_client(settings), view, limit=limit or None, design=design)
    now = time.time()
    rows = [pool.token_row(doc, now) for doc in docs]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo(f"No tokens in view '{view}'.")
        return
    width = max(len("ID"), *(len(str(row["id"])) for row in rows))
    host_width = max(len("HOST"), *(len(row["host"]) for row in rows))
    click.echo(f"{'ID':<{width}}  {'STATE':<7} {'HOST':<{host_width}}  {'JOB':<12} {'AGE':>5}  EXIT")
    for row in rows:
        click.echo(f"{row['id']:<{width}}  {row['state']:<7} {row['host']:<{host_width}}  {row['job_id']:<12} "
                   f"{format_duration(row['age'], parts=1, unknown='-'):>5}  {row['exit_code']}")
    if limit and len(rows) == limit:
        click.echo(f"(first {limit}; --limit 0 lists all)", err=True)


@tokens.command("show")
@click.argument("token_id", metavar="ID")
@click.option("--tail", "tail_lines", default=10, show_default=True, type=click.IntRange(0),
              help="Lines of the end of each log to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the token document as JSON.")
@connection_options
def show_cmd(settings: Settings, token_id: str, tail_lines: int, as_json: bool) -> None:
    """Show every field of a token, and the end of its logs.

    \b
    Example:
      picas tokens show token_3f9a0c1d2e4b5a67 --tail 30
    """
    client = make_client(settings)
    doc = pool.get_token(client, token_id)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    stage = doc.get("failed_stage") if tok.state(doc) == "error" else None  # set by staging (picas.staging)
    click.echo(f"{'state':<14} {tok.state(doc)}" + (f" (failed in {str(stage).replace('_', '-')})" if stage else ""))
    for key in sorted(doc):
        if key == "_attachments":
            continue
        value = doc[key]
        text = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"{key:<14} {text}")
    attachments = doc.get("_attachments") or {}
    for name, meta in sorted(attachments.items()):
        click.echo(f"{'attachment':<14} {name} ({meta.get('length', '?')} bytes)")
    for err in (False, True):
        if tail_lines and pool.log_attachment_name(doc, err):
            text = pool.tail(pool.token_log(client, doc, err) or "", tail_lines)
            click.echo(f"--- {'stderr' if err else 'stdout'} (last {tail_lines} lines) ---")
            click.echo(text)


@tokens.command("logs")
@click.argument("token_id", metavar="ID")
@click.option("--err", is_flag=True, help="Print the stderr log instead of stdout.")
@connection_options
def logs_cmd(settings: Settings, token_id: str, err: bool) -> None:
    """Print a token's stdout log (or stderr, with --err), as the pilot attached it.

    \b
    Example:
      picas tokens logs token_3f9a0c1d2e4b5a67 --err | less
    """
    client = make_client(settings)
    doc = pool.get_token(client, token_id)
    text = pool.token_log(client, doc, err)
    if text is None:
        which = "stderr" if err else "stdout"
        click.echo(f"picas: token '{token_id}' has no {which} log attached (it has not finished yet?)", err=True)
        return
    click.echo(text, nl=not text.endswith("\n"))


def _summary(verb: str, report: pool.ChangeReport, as_json: bool) -> None:
    """Print a count of what changed; ``verb`` is the base form (reset, delete)."""
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    past = {"reset": "Reset", "delete": "Deleted"}[verb]
    would = f"Would {verb}" if report.dry_run else past
    line = f"{would} {report.changed:,} tokens"
    if report.skipped:
        line += f" ({report.skipped:,} did not qualify or changed meanwhile)"
    click.echo(line + ".")
    if report.dry_run and report.ids:
        for token_id in report.ids[:20]:
            click.echo(f"  {token_id}")
        if len(report.ids) > 20:
            click.echo(f"  ... ({len(report.ids) - 20:,} more)")
    for token_id, reason in list(report.failed.items())[:10]:
        click.echo(f"picas: {token_id}: not changed: {reason}", err=True)


def _check_selection(view: str | None, ids: list[str]) -> None:
    if not view and not ids:
        raise click.UsageError("choose tokens with --view or --ids")


@click.command("reset")
@click.option("--view", type=click.Choice(["error", "locked", "done"]), help="Reset the tokens in this state.")
@click.option("--ids", "ids", multiple=True, metavar="ID[,ID...]", help="Reset these tokens (any state but todo).")
@click.option("--older-than", type=DURATION,
              help="Only tokens that entered their state this long ago: 90s, 30m, 2h, 1d.")
@click.option("--dry-run", is_flag=True, help="Count and list what would be reset; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_design_option
@connection_options
def reset_cmd(settings: Settings, view: str | None, ids: tuple[str, ...], older_than: float | None, dry_run: bool,
              as_json: bool, design: str) -> None:
    """Put tokens back to todo so pilots run them again (scrub_count goes up by one).

    A token that a pilot changes while the reset runs is left to the pilot.

    \b
    Examples:
      picas reset --view error
      picas reset --view locked --older-than 2h --dry-run
      picas reset --ids token_3f9a0c1d2e4b5a67,token_0b1c2d3e4f5a6b7c
    """
    id_list = _split_ids(ids)
    _check_selection(view, id_list)
    report = pool.reset_tokens(make_client(settings), view=view, ids=id_list or None, older_than=older_than,
                               dry_run=dry_run, design=design)
    _summary("reset", report, as_json)


@click.command("delete")
@click.option("--view", type=click.Choice(list(pool.STATE_VIEWS)), help="Delete the tokens in this state.")
@click.option("--ids", "ids", multiple=True, metavar="ID[,ID...]", help="Delete these tokens.")
@click.option("--older-than", type=DURATION,
              help="Only tokens that entered their state this long ago: 90s, 30m, 2h, 1d.")
@click.option("--dry-run", is_flag=True, help="Count and list what would be deleted; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_design_option
@connection_options
def delete_cmd(settings: Settings, view: str | None, ids: tuple[str, ...], older_than: float | None,
               dry_run: bool, yes: bool, as_json: bool, design: str) -> None:
    """Delete tokens for good (asks first unless --yes or --dry-run).

    \b
    Examples:
      picas delete --view done --older-than 7d --dry-run
      picas delete --view error --yes
      picas delete --ids token_3f9a0c1d2e4b5a67
    """
    id_list = _split_ids(ids)
    _check_selection(view, id_list)
    client = make_client(settings)
    kwargs = dict(view=view, ids=id_list or None, older_than=older_than, design=design)
    if not dry_run and not yes:
        planned = pool.delete_tokens(client, dry_run=True, **kwargs)
        if planned.changed == 0:
            _summary("delete", pool.ChangeReport(), as_json)
            return
        click.confirm(f"Delete {planned.changed:,} tokens from '{client.database}'?", abort=True)
    _summary("delete", pool.delete_tokens(client, dry_run=dry_run, **kwargs), as_json)
