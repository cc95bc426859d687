"""The ``picas`` command: a thin click layer over the library.

Every subcommand lives in its own module and is registered here.  Errors
from the library arrive as :class:`picas.errors.PicasError`; this module turns
each into one line on stderr and that class's exit code.  ``--debug`` (or
``PICAS_DEBUG=1``) lets the traceback through instead.
"""
from __future__ import annotations

import os
import sys

import click

from picas.errors import PicasError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class PicasGroup(click.Group):
    """A click group that reports PicasError as one line and a distinct exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # In the order an operator meets them, not alphabetically.
        return list(self.commands)

    def invoke(self, ctx: click.Context):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except PicasError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"picas: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("picas: interrupted", err=True)
            sys.exit(130)


@click.group(cls=PicasGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--debug", is_flag=True, envvar="PICAS_DEBUG", help="Show full tracebacks on errors.")
@click.version_option(package_name="picas")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Run a CouchDB token pool: push work, run pilots, watch progress.

    \b
    A first session on a laptop:
      picas server start          # a local CouchDB-compatible server
      picas views create          # the todo/locked/done/error views
      picas push commands.txt     # one bash command per line
      picas run                   # a pilot drains the pool
      picas status                # counts per state

    Connection settings come from options, then PICAS_* environment
    variables, then ~/.config/picas/conf.yml.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or os.environ.get("PICAS_DEBUG") == "1"


def _register() -> None:
    """Attach the subcommands; each module owns one noun of the command line."""
    from picas.cli.config_cmd import config, init
    from picas.cli.db_cmd import db
    from picas.cli.push_cmd import push_cmd
    from picas.cli.run_cmd import run
    from picas.cli.scrub_cmd import scrub
    from picas.cli.server_cmd import server
    from picas.cli.status_cmd import status_cmd
    from picas.cli.autopilot_cmd import autopilot
    from picas.cli.pilots_cmd import pilots
    from picas.cli.submit_cmd import submit
    from picas.cli.tokens_cmd import delete_cmd, reset_cmd, tokens
    from picas.cli.views_cmd import views

    for command in (init, config, server, db, views, push_cmd, status_cmd, tokens, reset_cmd, delete_cmd,
                    scrub, run, submit, pilots, autopilot):
        main.add_command(command)


_register()
