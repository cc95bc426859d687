"""``picas snakemake profile DIR``: a Snakemake profile that runs a workflow's jobs as picas tokens.

The profile is a ``config.yaml`` that says ``executor: picas`` plus the
plugin's settings, so ``snakemake --profile DIR`` works as the seed's
cookiecutter profile was used, with Snakemake 8 and 9.  Its keys come from
the plugin's own settings (:mod:`snakemake_executor_plugin_picas.settings`),
read as data: this command needs neither Snakemake nor Python 3.11.

No password is ever written: a profile is a file people copy and commit.
Connection settings that are not given stay out of the profile, and are then
resolved at run time as for every picas command (``PICAS_*`` variables, then
picas' ``conf.yml``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import click
import yaml

from picas.errors import ConfigError, InvalidInput
from snakemake_executor_plugin_picas.settings import SETTINGS, Setting, profile_key

#: The file Snakemake 8 and 9 read in a profile directory.
PROFILE_FILE = "config.yaml"
_HEADER = """\
# Snakemake profile for picas pilots, written by 'picas snakemake profile'.
#   snakemake --profile {directory}
# No password here: Snakemake connects to the pool as picas does, with PICAS_PASSWORD or the picas
# config file ('picas init'). Pilots are started separately (picas run --wait, picas submit, picas autopilot)
# unless picas-local-pilots is set. Options on Snakemake's command line override these values.
"""


def profile_data(values: dict[str, Any], *, jobs: int, status_interval: int, retries: int) -> dict[str, Any]:
    """The profile's settings (pure): Snakemake's own first, then every plugin setting that was given."""
    url = values.get("url")
    if url and any(urlsplit(part.strip()).password for part in url.split(",")):
        raise InvalidInput("the URL holds a password; a profile must not",
                           hint="give the password in PICAS_PASSWORD or picas' config file ('picas init')")
    data: dict[str, Any] = {"executor": "picas", "jobs": jobs, "seconds-between-status-checks": status_interval}
    if retries:
        data["retries"] = retries
    if values.get("storage_prefix"):
        data["shared-fs-usage"] = "none"  # the storage prefix means: no shared file system
    for setting in SETTINGS:
        value = values.get(setting.name)
        if value is None or value is False or (setting.type is int and value == setting.default):
            continue
        data[profile_key(setting.name)] = value
    return data


def _option(setting: Setting) -> Callable:
    flags = [f"--{setting.name.replace('_', '-')}"] + (["--db"] if setting.name == "database" else [])
    help_text = setting.help.split(" [default:")[0].rstrip(".") + "."
    help_text = help_text.replace("Also give --shared-fs-usage none.", "The profile then says shared-fs-usage: none.")
    if setting.type is bool:
        return click.option(*flags, setting.name, is_flag=True, default=False, help=help_text)
    kind = click.IntRange(min=0) if setting.type is int else str
    return click.option(*flags, setting.name, type=kind, default=None, metavar=setting.metavar, help=help_text)


def _plugin_options(func: Callable) -> Callable:
    for setting in reversed(SETTINGS):
        func = _option(setting)(func)
    return func


@click.group("snakemake")
def snakemake() -> None:
    """Snakemake workflows on picas pilots: write a profile for 'snakemake --executor picas'.

    \b
    'pip install picas[snakemake]' installs Snakemake and picas' executor plugin (Python 3.11+).
    Then, in the workflow directory:
      snakemake --executor picas --picas-local-pilots 4 --jobs 50
      picas snakemake profile ~/picas-profile && snakemake --profile ~/picas-profile
    """


@snakemake.command("profile")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_plugin_options
@click.option("--jobs", "jobs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Jobs Snakemake keeps submitted at once (tokens in the pool).")
@click.option("--status-interval", type=click.IntRange(min=1), default=10, show_default=True,
              help="Seconds between status rounds (one request each, for every job of the run).")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Times Snakemake runs a failed job again (each attempt is a token of its own).")
@click.option("--force", is_flag=True, help="Overwrite an existing profile.")
def profile_cmd(directory: Path, jobs: int, status_interval: int, retries: int, force: bool, **values: Any) -> None:
    """Write DIR/config.yaml, a Snakemake profile that runs jobs on picas pilots.

    Only what is given here is written; connection settings left out come
    from PICAS_* variables or picas' config file when Snakemake runs, as for
    every picas command.  There is no password option: passwords never go
    into a profile.

    \b
    Examples:
      picas snakemake profile ~/picas-profile
      picas snakemake profile ~/grid-profile --db lofar --design-doc Monitor \\
          --storage-prefix davs://webdav.grid.surfsara.nl:2880/pnfs/grid.sara.nl/data/lofar/user
      picas snakemake profile ./laptop --local-pilots 4 --jobs 20 --status-interval 2
    """
    data = profile_data(values, jobs=jobs, status_interval=status_interval, retries=retries)
    path = directory / PROFILE_FILE
    if path.exists() and not force:
        raise ConfigError(f"{path} exists already", hint="use --force to overwrite it, or pick another directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(_HEADER.format(directory=directory) + yaml.safe_dump(data, sort_keys=False))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"Wrote {path}. Run the workflow with: snakemake --profile {directory}")
