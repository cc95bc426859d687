"""Connection options shared by every command that talks to CouchDB.

Each such command takes the same ``--url``/``--db``/credential options, each
backed by a ``PICAS_*`` environment variable, so that a batch job can set
the environment once and a user can override one value on the command line.
:func:`connection_options` adds them all and hands the command a single
resolved :class:`~picas.config.Settings` instead of eight loose arguments.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import click
from click.core import ParameterSource

from picas import defaults
from picas.config import Settings, resolve
from picas.errors import ConfigError, InvalidInput
from picas.support.durations import parse_duration

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword arguments the options below produce; consumed by the decorator.
_PARAM_NAMES = ("url", "database", "username", "password", "profile", "config_file", "insecure", "ca_bundle")

_OPTIONS = (
    click.option("--url", envvar="PICAS_HOST_URL", show_envvar=True, metavar="URL",
                 help="CouchDB server, e.g. https://couch.example.org:6984; a cluster's nodes comma-separated."),
    click.option("--db", "--database", "database", envvar="PICAS_DATABASE", show_envvar=True, metavar="NAME",
                 help="Database that holds the tokens."),
    click.option("--username", envvar="PICAS_USERNAME", show_envvar=True, metavar="USER",
                 help="CouchDB user name."),
    click.option("--password", envvar="PICAS_PASSWORD", show_envvar=True, metavar="PASS",
                 help="CouchDB password (prefer the variable or 'picas init': options show up in 'ps')."),
    click.option("--profile", envvar="PICAS_PROFILE", show_envvar=True, metavar="NAME",
                 help="Profile of the config file to use."),
    click.option("--config", "config_file", envvar="PICAS_CONFIG", show_envvar=True, metavar="FILE",
                 type=click.Path(dir_okay=False), help="Config file [default: ~/.config/picas/conf.yml]."),
    click.option("--insecure", is_flag=True, default=False,
                 help="Do not verify the server's TLS certificate (self-signed test servers only)."),
    click.option("--ca-bundle", "ca_bundle", metavar="PATH", type=click.Path(exists=True),
                 help="Verify the server's TLS certificate against this CA bundle: a PEM file, or a directory "
                      "of hashed CA files such as /etc/grid-security/certificates."),
)


def design_option(help: str = "Design document whose views to read.") -> Callable[[F], F]:
    """The ``--design-doc`` option (default :data:`picas.defaults.DESIGN`), passed on as ``design``."""
    return click.option("--design-doc", "design", default=defaults.DESIGN, show_default=True, metavar="NAME",
                        help=help)


# Values that the user typed (or a caller passed) rather than click reading them from the environment.
_EXPLICIT_SOURCES = (ParameterSource.COMMANDLINE, ParameterSource.DEFAULT_MAP, ParameterSource.PROMPT, None)


def connection_options(func: F) -> F:
    """Add the connection options to a click command and pass it ``settings=Settings(...)``.

    click reads the ``PICAS_*`` variables itself, which would make every
    value look typed-in.  Values whose parameter source is the environment
    are therefore left for :func:`picas.config.resolve` to read again, so
    ``Settings.sources`` tells "option" and "env PICAS_..." apart correctly.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in _PARAM_NAMES}
        ctx = click.get_current_context()

        def explicit(name: str) -> Any:
            value = given[name]
            if value is None:
                return None
            return value if ctx.get_parameter_source(name) in _EXPLICIT_SOURCES else None

        if given["insecure"] and given["ca_bundle"]:
            raise click.UsageError("--insecure and --ca-bundle contradict each other; give one of them", ctx=ctx)
        verify: bool | str | None = None
        if given["insecure"]:
            verify = False
        elif given["ca_bundle"]:
            verify = given["ca_bundle"]
        options = {
            "url": explicit("url"),
            "database": explicit("database"),
            "username": explicit("username"),
            "password": explicit("password"),
            "verify": verify,
        }
        config_file = explicit("config_file")
        kwargs["settings"] = resolve(
            options,
            profile=explicit("profile"),
            env=os.environ,
            path=Path(config_file) if config_file else None,
        )
        return func(*args, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def make_client(settings: Settings, *, need_database: bool = True) -> Any:
    """Build the CouchDB client for a command, failing early with advice if settings are missing.

    ``need_database=False`` serves server-level commands (listing or
    creating databases) that work without a database name.  The client
    module is imported here, not at the top, so that commands which never
    talk to a server (``config show``, ``--help``) stay fast and independent.
    """
    settings.require_url()
    if need_database:
        settings.require_database()
    if isinstance(settings.verify, str) and not os.path.exists(os.path.expanduser(settings.verify)):
        raise ConfigError(
            f"the CA bundle {settings.verify} (from {settings.sources.get('verify', 'unknown')}) does not exist",
            hint="give an existing file or CA directory with --ca-bundle or PICAS_VERIFY, or use true/false",
        )
    from picas.core.client import CouchClient

    return CouchClient(
        settings.url,
        settings.database,
        username=settings.username,
        password=settings.password,
        verify=settings.verify,
    )


class Duration(click.ParamType):
    """A duration option: '90', '90s', '15m', '2h', '1d' or '1h30m', converted to seconds.

    The one click type for durations; the parsing is
    :func:`picas.support.durations.parse_duration`, shared with the library.
    A value that should reach another program as text (a batch script's
    ``picas run`` line) is written back with ``f"{seconds:g}"``.
    """

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except InvalidInput as exc:  # reported by click as a usage error naming the option
            self.fail(str(exc), param, ctx)


DURATION = Duration()
