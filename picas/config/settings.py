"""The effective connection settings: options over ``PICAS_*`` variables over the file's profile.

:func:`resolve` merges the three and remembers where each value came from, so
that ``picas config show`` can answer "why is it talking to *that* server?".
It is a pure function of its arguments plus reading the one config file.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from picas.config.paths import CONFIG_ENV, config_path, display_path, expand_home
from picas.config.profiles import DEFAULT_PROFILE, PROFILE_KEYS, load_file, parse_verify, profile_names
from picas.errors import ConfigError
from picas.support.credentials import REDACTED, redact_url

__all__ = ["ENV_VARS", "PROFILE_ENV", "NOT_SET", "REDACTED", "Settings", "resolve"]

#: The environment variable for each setting.
ENV_VARS = {
    "url": "PICAS_HOST_URL",
    "database": "PICAS_DATABASE",
    "username": "PICAS_USERNAME",
    "password": "PICAS_PASSWORD",
    "verify": "PICAS_VERIFY",
}
PROFILE_ENV = "PICAS_PROFILE"
NOT_SET = "(not set)"


@dataclass
class Settings:
    """The effective connection settings, and where each one came from.

    ``sources`` maps every field name to a label such as ``"option"``,
    ``"env PICAS_HOST_URL"``, ``"file ~/.config/picas/conf.yml [profile default]"``
    or ``"default"``, so that a surprising value can be traced to its origin.
    ``repr()`` shows the redacted form, so a password cannot leak into a traceback or log.
    """

    url: str | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool | str = True
    profile: str = DEFAULT_PROFILE
    config_file: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    #: How the config file was read (:func:`picas.picas_config.format_label`); None when there was nothing to read.
    config_format: str | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in self.redacted().items())
        return f"Settings({shown})"

    def redacted(self) -> dict[str, Any]:
        """Return the settings as plain data that is safe to print or log.

        The password becomes ``********`` (or ``(not set)``), and so does a
        password embedded in the URL (``https://user:secret@host``).
        """
        return {
            "profile": self.profile,
            "config_file": str(self.config_file) if self.config_file is not None else None,
            "config_format": self.config_format,
            "url": redact_url(self.url),
            "database": self.database,
            "username": self.username,
            "password": REDACTED if self.password is not None else NOT_SET,
            "verify": self.verify,
            "sources": dict(self.sources),
        }

    def require_url(self) -> str:
        """Return the URL, or explain how to provide one; every server command needs it."""
        if not self.url:
            raise ConfigError(
                f"no CouchDB URL is configured (profile '{self.profile}' of {self._file_label()})",
                hint="pass --url, set PICAS_HOST_URL, or run 'picas init'",
            )
        scheme = urlsplit(self.url).scheme
        if scheme not in ("http", "https"):
            raise ConfigError(
                f"the CouchDB URL {redact_url(self.url)!r} (from {self.sources.get('url', 'unknown')}) "
                "must start with http:// or https://",
                hint="pass --url, set PICAS_HOST_URL, or run 'picas init'",
            )
        return self.url

    def require_database(self) -> str:
        """Return the database name, or explain how to provide one."""
        if not self.database:
            raise ConfigError(
                f"no database name is configured (profile '{self.profile}' of {self._file_label()})",
                hint="pass --db, set PICAS_DATABASE, or run 'picas init'",
            )
        return self.database

    def _file_label(self) -> str:
        return str(self.config_file) if self.config_file is not None else "no config file"


def resolve(
    options: Mapping[str, Any] | None = None,
    profile: str | None = None,
    env: Mapping[str, str] = os.environ,
    path: Path | None = None,
) -> Settings:
    """Merge options, environment and config file into one :class:`Settings`.

    Precedence is options, then ``PICAS_*`` variables, then the chosen
    profile of the file, then defaults: the most specific, most recent intent
    wins, and a batch job can override a laptop's file without editing it.

    ``options`` holds command-line values under ``url``, ``database``,
    ``username``, ``password`` and ``verify`` (``None`` means "not given");
    ``profile`` and ``path`` are the ``--profile`` and ``--config`` values.
    Asking for a profile that is not in the file is an error rather than a
    silent fall back to defaults, which would connect to the wrong place.
    """
    options = dict(options or {})
    unknown = set(options) - set(PROFILE_KEYS)
    if unknown:
        raise TypeError(f"resolve() got unknown option keys: {', '.join(sorted(unknown))}")
    sources: dict[str, str] = {}

    if path is not None:
        config_file = expand_home(str(path), env)
        sources["config_file"] = "option"
    else:
        config_file = config_path(env)
        if env.get(CONFIG_ENV):
            sources["config_file"] = f"env {CONFIG_ENV}"
        elif env.get("XDG_CONFIG_HOME") and os.path.isabs(env["XDG_CONFIG_HOME"]):
            sources["config_file"] = "env XDG_CONFIG_HOME"
        else:
            sources["config_file"] = "default"
    shown = display_path(config_file, env)
    data = load_file(config_file)
    config_format = None
    if data:  # 'picas config show' names the format it read: picas' profiles, or a picas 1.1.x file
        from picas.picas_config import format_label

        config_format = format_label(data)
    profiles: dict[str, dict[str, Any]] = data.get("profiles", {})

    if profile:
        name, sources["profile"] = profile, "option"
    elif env.get(PROFILE_ENV):
        name, sources["profile"] = env[PROFILE_ENV], f"env {PROFILE_ENV}"
    elif data.get("default_profile"):
        name, sources["profile"] = data["default_profile"], f"file {shown} default_profile"
    else:
        name, sources["profile"] = DEFAULT_PROFILE, "default"

    if name not in profiles and sources["profile"] != "default":
        how = "--profile" if sources["profile"] == "option" else sources["profile"]
        if not data and not config_file.exists():
            raise ConfigError(
                f"profile '{name}' was requested ({how}) but the config file {config_file} does not exist",
                hint=f"create it with 'picas init --profile {name}'",
            )
        raise ConfigError(
            f"profile '{name}' was requested ({how}) but is not in {config_file}; "
            f"profiles there: {profile_names(profiles)}",
            hint=f"pick one of those, or create it with 'picas init --profile {name}'",
        )
    chosen = profiles.get(name, {})

    values: dict[str, Any] = {}
    defaults: dict[str, Any] = {"url": None, "database": None, "username": None, "password": None, "verify": True}
    for key in PROFILE_KEYS:
        env_name = ENV_VARS[key]
        if options.get(key) is not None:
            value, source = options[key], "option"
        elif env.get(env_name):
            value, source = env[env_name], f"env {env_name}"
        elif chosen.get(key) is not None:
            value, source = chosen[key], f"file {shown} [profile {name}]"
        else:
            value, source = defaults[key], "default"
        if key == "verify":
            value = parse_verify(value)
        values[key] = value
        sources[key] = source

    return Settings(profile=name, config_file=config_file, sources=sources, config_format=config_format, **values)
