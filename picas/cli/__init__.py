"""The ``picas`` command: a thin click layer over the library.

Every subcommand lives in its own module and is listed in :data:`COMMANDS`
by name, ``module:attribute`` and its one-line help.  A command's module is
imported only when that command runs (or its own ``--help`` is asked for):
``picas --help`` imports no command module at all, and ``picas status`` does
not load the pilot, the schedulers or the local server.  That keeps every
command quick to start, also on a login node with a slow shared file system,
and a broken optional dependency of one command cannot break the others.

Errors from the library arrive as :class:`picas.errors.PicasError`; this
module turns each into one line on stderr and that class's exit code.
``--debug`` (or ``PICAS_DEBUG=1``) lets the traceback through instead.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

import click
from click.utils import make_default_short_help

from picas.errors import PicasError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Entry(NamedTuple):
    """Where a command lives, and the line ``picas --help`` shows for it without importing it."""

    target: str
    short_help: str


#: The subcommands in the order an operator meets them.  ``short_help`` must stay the loaded
#: command's own short help (a test compares them).
COMMANDS: dict[str, Entry] = {
    "init": Entry("picas.cli.config_cmd:init", "Store connection settings so that later commands need no options."),
    "config": Entry("picas.cli.config_cmd:config",
                    "Inspect the connection settings, or import them from an old picasconfig.py."),
    "server": Entry("picas.cli.server_cmd:server",
                    "Run a local CouchDB-compatible server (pouchdb-server), no CouchDB or Docker needed."),
    "db": Entry("picas.cli.db_cmd:db", "Create, inspect or delete the token database."),
    "views": Entry("picas.cli.views_cmd:views",
                   "Create or list the token views (todo, locked, done, error, overview_total, ...)."),
    "credentials": Entry("picas.cli.credentials_cmd:credentials",
                         "Pilot credentials: CouchDB users that may use one token database and nothing else."),
    "push": Entry("picas.cli.push_cmd:push_cmd", "Add tokens to the pool, from files or a parameter sweep."),
    "status": Entry("picas.cli.status_cmd:status_cmd",
                    "Show how the pool is doing: tokens per state, tokens/s, ETA, errors and locks."),
    "report": Entry("picas.cli.report_cmd:report",
                    "Write a self-contained HTML report of the pool: one file, no network needed to open it."),
    "dashboard": Entry("picas.cli.report_cmd:dashboard", "Serve the report live on http://127.0.0.1:PORT/, "
                                                         "redrawn as the pool changes; Ctrl-C stops it."),
    "tokens": Entry("picas.cli.tokens_cmd:tokens", "Look at tokens: list a view, show one token, print its logs."),
    "reset": Entry("picas.cli.tokens_cmd:reset_cmd",
                   "Put tokens back to todo so pilots run them again (scrub_count goes up by one)."),
    "delete": Entry("picas.cli.tokens_cmd:delete_cmd",
                    "Delete tokens for good (asks first unless --yes or --dry-run)."),
    "scrub": Entry("picas.cli.scrub_cmd:scrub", "Put tokens whose pilot died back to todo, in bulk."),
    "run": Entry("picas.cli.run_cmd:run",
                 "Run a pilot: take tokens, run their input, save the results, until the pool is empty."),
    "submit": Entry("picas.cli.submit_cmd:submit", "Submit pilots to a batch system (see 'picas submit NAME --help')."),
    "pilots": Entry("picas.cli.pilots_cmd:pilots", "The pilot jobs submitted for this database: list, cancel, prune."),
    "autopilot": Entry("picas.cli.autopilot_cmd:autopilot",
                       "Submit just enough pilots for the work in the pool (for cron, or --loop)."),
    "snakemake": Entry("picas.cli.snakemake_cmd:snakemake",
                       "Snakemake workflows on picas pilots: write a profile for 'snakemake --executor picas'."),
}


def load_command(name: str) -> click.Command:
    """Import the module of one subcommand and return its click command."""
    module_name, _, attribute = COMMANDS[name].target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class PicasGroup(click.Group):
    """A click group that loads subcommands on use and reports PicasError as one line and a distinct exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # In the order an operator meets them, not alphabetically.
        return list(COMMANDS) + [name for name in self.commands if name not in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        command = load_command(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands by their recorded short help, as click would, without importing any of them."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                rows.append((name, make_default_short_help(COMMANDS[name].short_help, limit)))
            elif not self.commands[name].hidden:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
