"""The plugin's settings, declared once as data (pure; no Snakemake needed to read them).

Snakemake turns each field of the executor's settings class into an option
``--picas-<name>`` and a profile key ``picas-<name>``.  The executor builds
that class from :data:`SETTINGS` (:mod:`.executor`), and ``picas snakemake
profile`` writes the same keys from it, so the two cannot drift apart.

The connection is resolved as the ``picas`` command resolves it
(:func:`picas.config.resolve`): these options, then the ``PICAS_*``
environment variables, then the chosen profile of picas' ``conf.yml``.
There is deliberately no password option: a password on Snakemake's command
line shows up in ``ps``, and one in a Snakemake profile ends up in version
control.  It comes from ``PICAS_PASSWORD`` or picas' own config file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picas import defaults

__all__ = ["Setting", "SETTINGS", "CONNECTION", "PREFIX", "profile_key", "by_name"]

#: Snakemake's prefix for this plugin's options (``--picas-url``) and profile keys (``picas-url``).
PREFIX = "picas"


@dataclass(frozen=True)
class Setting:
    """One option of the plugin: the field name, its type (str, int or bool), default and help."""

    name: str
    help: str
    type: type = str
    default: Any = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return f"--{profile_key(self.name)}"


def profile_key(name: str) -> str:
    """The profile key (and, with ``--``, the option) of a setting: ``design_doc`` → ``picas-design-doc``."""
    return f"{PREFIX}-{name.replace('_', '-')}"


#: Settings that name the connection; None means "as the picas command would resolve it".
CONNECTION = ("url", "database", "username", "profile", "config", "ca_bundle", "insecure")

SETTINGS: tuple[Setting, ...] = (
    Setting("url", "CouchDB server of the token pool [default: PICAS_HOST_URL, else the picas config file]. "
            "No password in it: set PICAS_PASSWORD or use 'picas init'.", metavar="URL"),
    Setting("database", "Database that holds the tokens [default: PICAS_DATABASE, else the picas config file].",
            metavar="NAME"),
    Setting("username", "CouchDB user name [default: PICAS_USERNAME, else the picas config file]; the password "
            "comes only from PICAS_PASSWORD or the config file.", metavar="USER"),
    Setting("profile", "Profile of the picas config file to use [default: PICAS_PROFILE, else the file's default].",
            metavar="NAME"),
    Setting("config", "picas config file [default: PICAS_CONFIG, else ~/.config/picas/conf.yml].", metavar="FILE"),
    Setting("ca_bundle", "Verify the server's TLS certificate against this CA bundle (file or directory).",
            metavar="PATH"),
    Setting("insecure", "Do not verify the server's TLS certificate (self-signed test servers only).", bool, False),
    Setting("design_doc", "Design document whose pilots run the jobs; a rule may pick another with the resource "
            "picas_design_doc=\"NAME\". Created with the picas views if it does not exist.",
            default=defaults.DESIGN, metavar="NAME"),
    Setting("storage_prefix", "No shared file system: inputs, outputs and the workflow sources travel through this "
            "storage folder (davs://..., root://..., file://...) by picas staging, and jobs run in the pilots' "
            "own empty directories. Also give --shared-fs-usage none.", metavar="URL"),
    Setting("local_pilots", "Start this many pilots on this machine for the length of the run, and stop them at "
            "its end. 0: pilots are started separately (picas run --wait, picas submit, picas autopilot).",
            int, 0, metavar="N"),
    Setting("local_pilot_args", "Extra options for the local pilots' 'picas run', e.g. '--heartbeat 10 "
            "--token-timeout 2h'.", metavar="ARGS"),
)


def by_name() -> dict[str, Setting]:
    return {setting.name: setting for setting in SETTINGS}
