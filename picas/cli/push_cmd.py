"""``picas push``: add work to the pool from command files, JSON/YAML or a parameter sweep.

A thin layer over :mod:`picas.pool.push`: this module reads files and prints;
parsing, ids and the bulk writes are the library's.  The progress bar goes
to stderr so that stdout (the summary, or ``--json``) stays parseable.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import IO, Iterable

import click

from picas.pool import push as pushing
from picas.cli.options import connection_options, make_client
from picas.config import Settings
from picas.errors import Conflict, InvalidInput, PicasError
from picas.support.yamltext import load_yaml

FORMATS = ("auto", "text", "json", "yaml")
_SHOWN = 20


def _format_of(name: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    return "text"


def _read(stream: IO[str], name: str, fmt: str, warn) -> list[dict]:
    """Token bodies from one open file, by its format; parse errors name the file and line."""
    fmt = _format_of(name, fmt)
    if fmt == "text":
        return pushing.tokens_from_lines(stream)
    text = stream.read()
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    else:
        data = load_yaml(text, name, InvalidInput)
    try:
        return pushing.tokens_from_data(data, warn=lambda message: warn(f"{name}: {message}"))
    except InvalidInput as exc:
        raise InvalidInput(f"{name}: {exc}") from None


def _collect(files: tuple[str, ...], fmt: str, params: tuple[str, ...],
             command: str | None) -> tuple[Iterable[dict], int]:
    """All bodies to push and their number; a sweep is made lazily, as it may be large."""
    warnings: list[str] = []
    bodies: list[dict] = []
    for name in files:
        if name == "-":
            bodies.extend(_read(sys.stdin, "<stdin>", "text" if fmt == "auto" else fmt, warnings.append))
            continue
        try:
            with open(name, encoding="utf-8") as stream:
                bodies.extend(_read(stream, name, fmt, warnings.append))
        except OSError as exc:
            raise InvalidInput(f"cannot read {name}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{name} is not UTF-8 text") from None
    if len(warnings) > 3:
        warnings = warnings[:3] + [f"... and {len(warnings) - 3} more bodies without 'input'"]
    for message in warnings:
        click.echo(f"picas: warning: {message}", err=True)
    if params or command:
        if not params or not command:
            raise InvalidInput("a sweep needs both --param and --command",
                               hint="e.g. --param x=1..10 --command 'sim --x {x}'")
        sweep = pushing.iter_sweep(list(params), command)
        return itertools.chain(bodies, sweep), len(bodies) + pushing.sweep_size(list(params))
    return bodies, len(bodies)


def _show_ids(label: str, ids: list[str]) -> None:
    shown = ", ".join(ids[:_SHOWN]) + (f" ... ({len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else "")
    click.echo(f"{label}: {shown}", err=True)


@click.command("push")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="How to read FILE: text (one command per line), json or yaml; auto goes by the extension.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUES",
              help="A sweep parameter: x=1..100, x=1..100:5 (step), x=001..100 (padded) or y=a,b,c. Repeatable.")
@click.option("--command", metavar="TEMPLATE", help="The sweep's command, with {NAME} for each --param.")
@click.option("--batch-size", default=pushing.DEFAULT_BATCH, show_default=True, type=click.IntRange(1, 100000),
              help="Tokens per _bulk_docs request.")
@click.option("--dry-run", is_flag=True, help="Show what would be pushed, and which given ids exist already.")
@click.option("--skip-duplicates", is_flag=True,
              help="Exit 0 even if some ids existed already (they are still reported, never overwritten).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON on stdout.")
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
@click.option("--stage-in", nargs=2, multiple=True, metavar="URL PATH",
              help="Give every token this input: the pilot copies URL to PATH in the working directory first. "
                   "{NAME} of a --param is filled in; {token_id} and {FIELD} by the pilot. Repeatable.")
@click.option("--stage-out", nargs=2, multiple=True, metavar="PATH URL",
              help="Give every token this output: the pilot copies PATH (or a glob, to a URL ending in /) "
                   "to URL after a successful run. Repeatable. See docs/staging.md.")
@click.option("--stage-out-on-failure", is_flag=True, help="With --stage-out: copy the outputs out after a failed "
              "run too.")
@connection_options
def push_cmd(settings: Settings, files: tuple[str, ...], fmt: str, params: tuple[str, ...], command: str | None,
             batch_size: int, dry_run: bool, skip_duplicates: bool, as_json: bool, no_progress: bool,
             stage_in: tuple[tuple[str, str], ...] = (), stage_out: tuple[tuple[str, str], ...] = (),
             stage_out_on_failure: bool = False) -> None:
    """Add tokens to the pool, from files or a parameter sweep.

    \b
    A FILE is read by its extension (or --format):
      text         one bash command per line (# comments and blank lines skipped)
      .json/.yaml  a list of token bodies, or a mapping id -> body
    '-' reads text from stdin.  Ids given in a file are kept; the others are
    generated (token_<16 random hex>), unique even when pushes run at once.
    An id that exists already is reported and never overwritten; the exit
    code is then 8 unless --skip-duplicates is given.

    \b
    Examples:
      picas push commands.txt
      picas push tokens.yaml --dry-run
      picas push --param x=1..100 --param y=a,b --command 'sim --x {x} --y {y}'
      seq 10 | sed 's/^/echo /' | picas push -
      picas push --param run=1..100 --command 'sim --run {run} in.dat > out.dat' \\
          --stage-in 'davs://se/in/{run}.dat' in.dat --stage-out out.dat 'davs://se/out/{run}/{token_id}.dat'
    """
    bodies, total = _collect(files, fmt, params, command)
    if stage_in or stage_out or stage_out_on_failure:  # staging for every token, checked before anything is written
        from picas.staging.template import StagingTemplate
        sweep = [pushing.parse_param(spec) for spec in params] if params and command else []
        bodies = StagingTemplate(tuple(stage_in), tuple(stage_out), stage_out_on_failure).checked(
            bodies, total - (pushing.sweep_size(list(params)) if sweep else 0), sweep, command)
    if not total:
        raise InvalidInput("nothing to push", hint="give a FILE, or --param and --command for a sweep")
    if dry_run:
        _dry_run(settings, bodies, total, as_json)
        return
    client = make_client(settings)
    started = time.monotonic()
    if no_progress:
        report = pushing.push(client, bodies, batch=batch_size)
    else:
        with click.progressbar(length=total, label="Pushing", file=click.get_text_stream("stderr"),
                               show_pos=True, show_eta=True) as bar:
            report = pushing.push(client, bodies, batch=batch_size, progress=bar.update)
    elapsed = time.monotonic() - started
    _report(report, elapsed, total, client.database, as_json)
    if report.failed:
        first = next(iter(report.failed.items()))
        raise PicasError(f"{len(report.failed)} tokens were refused by the server, e.g. '{first[0]}': {first[1]}")
    if report.duplicates and not skip_duplicates:
        raise Conflict(f"{len(report.duplicates)} ids exist already and were not overwritten",
                       hint="give --skip-duplicates to accept that")


def _report(report: pushing.PushReport, elapsed: float, total: int, db: str | None, as_json: bool) -> None:
    rate = report.created / elapsed if elapsed > 0 else 0.0
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "seconds": round(elapsed, 3), "tokens_per_second": round(rate, 1),
                               "database": db}))
    else:
        click.echo(f"Pushed {report.created:,} of {total:,} tokens to '{db}' in {elapsed:.1f}s ({rate:,.0f} tokens/s).")
    if report.duplicates:
        _show_ids(f"picas: {len(report.duplicates):,} duplicate ids exist already (not overwritten)",
                  report.duplicates)
    if report.failed:
        _show_ids(f"picas: {len(report.failed):,} tokens refused", [f"{k} ({v})" for k, v in report.failed.items()])


def _dry_run(settings: Settings, bodies: Iterable[dict], total: int, as_json: bool) -> None:
    """Describe the push without writing: how many, the first few, and which given ids exist already."""
    first: list[dict] = []
    given: list[str] = []
    for body in bodies:
        if body.get("_id"):
            given.append(body["_id"])
        if len(first) < 5:
            first.append(pushing.make_token(body))
    existing = pushing.existing_ids(make_client(settings), given) if given else []
    if as_json:
        click.echo(json.dumps({"dry_run": True, "tokens": total, "given_ids": len(given), "duplicates": existing,
                               "first": first[:3]}, indent=2))
        return
    click.echo(f"Would push {total:,} tokens ({len(given):,} with ids given, "
               f"{total - len(given):,} with generated ids); the first:")
    for doc in first:
        click.echo(f"  {doc['_id']}: {json.dumps(doc['input'])}")
    if existing:
        _show_ids(f"picas: {len(existing):,} given ids exist already and would be reported as duplicates", existing)
    click.echo("Nothing was written (--dry-run).")
