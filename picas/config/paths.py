"""Where the config file is: ``PICAS_CONFIG``, else ``$XDG_CONFIG_HOME/picas/conf.yml``, else ``~/.config``.

Every function takes the environment as a parameter, so that tests and
callers with a prepared environment never reach the real home directory by
accident.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The variable naming the config file explicitly.
CONFIG_ENV = "PICAS_CONFIG"


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """Return the config file to use, honouring ``PICAS_CONFIG`` and the XDG convention.

    ``env`` is a parameter so that tests and callers with a prepared
    environment never reach for the real home directory by accident.
    """
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return expand_home(explicit, env)
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "picas" / "conf.yml"
    return home(env) / ".config" / "picas" / "conf.yml"


def home(env: Mapping[str, str]) -> Path:
    """``$HOME`` of the given environment, else the user's home directory."""
    value = env.get("HOME")
    return Path(value) if value else Path.home()


def expand_home(value: str, env: Mapping[str, str]) -> Path:
    """``~`` and ``~/...`` against the given environment's home; anything else as ``Path.expanduser``."""
    if value == "~" or value.startswith("~/"):
        return home(env) / value[2:]
    return Path(value).expanduser()


def display_path(path: Path, env: Mapping[str, str] = os.environ) -> str:
    """Shorten a path under the home directory to ``~/...`` for messages."""
    try:
        return "~/" + str(Path(path).relative_to(home(env)))
    except ValueError:
        return str(path)
