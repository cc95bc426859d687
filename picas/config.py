"""Where picas finds its connection settings, and how it writes them down.

A user may give the CouchDB URL, database and credentials in three places: on
the command line, in ``PICAS_*`` environment variables (handy in batch jobs),
or in a YAML file written once by ``picas init``.  :func:`resolve` merges them
in that order of precedence and remembers where each value came from, so that
``picas config show`` can answer "why is it talking to *that* server?".

Everything here is a pure function of its arguments (plus reading or writing
the one config file), so tests can pass their own environment and path and
never touch the real ``~/.config``.

The file looks like this (a flat file with the profile keys at the top level
is also accepted and read as the profile ``default``)::

    default_profile: default      # optional
    profiles:
      default: {url: http://127.0.0.1:5984, database: picas, username: admin, password: secret}
      cluster: {url: https://couch.example.org:6984, database: run42, verify: /etc/ssl/ca.pem}
"""
from __future__ import annotations

import ast
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from picas.errors import ConfigError

#: The settings a profile may hold, in the order they are written and shown.
PROFILE_KEYS = ("url", "database", "username", "password", "verify")

#: Top-level keys of the structured file format.
TOP_LEVEL_KEYS = ("default_profile", "profiles")

#: The environment variable for each setting.
ENV_VARS = {
    "url": "PICAS_HOST_URL",
    "database": "PICAS_DATABASE",
    "username": "PICAS_USERNAME",
    "password": "PICAS_PASSWORD",
    "verify": "PICAS_VERIFY",
}
PROFILE_ENV = "PICAS_PROFILE"
CONFIG_ENV = "PICAS_CONFIG"

DEFAULT_PROFILE = "default"
REDACTED = "********"
NOT_SET = "(not set)"

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}

#: The names a classic ``picasconfig.py`` uses, mapped to our keys.
PICASCONFIG_NAMES = {
    "PICAS_HOST_URL": "url",
    "PICAS_DATABASE": "database",
    "PICAS_USERNAME": "username",
    "PICAS_PASSWORD": "password",
}


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
            "url": _redact_url(self.url),
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
                f"the CouchDB URL {_redact_url(self.url)!r} (from {self.sources.get('url', 'unknown')}) "
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


# --------------------------------------------------------------------------- paths


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """Return the config file to use, honouring ``PICAS_CONFIG`` and the XDG convention.

    ``env`` is a parameter so that tests and callers with a prepared
    environment never reach for the real home directory by accident.
    """
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return _expand_home(explicit, env)
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "picas" / "conf.yml"
    return _home(env) / ".config" / "picas" / "conf.yml"


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _expand_home(value: str, env: Mapping[str, str]) -> Path:
    if value == "~" or value.startswith("~/"):
        return _home(env) / value[2:]
    return Path(value).expanduser()


def _display_path(path: Path, env: Mapping[str, str] = os.environ) -> str:
    """Shorten a path under the home directory to ``~/...`` for messages."""
    try:
        return "~/" + str(Path(path).relative_to(_home(env)))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- reading


def load_file(path: Path) -> dict[str, Any]:
    """Read a config file into its canonical shape, or say exactly what is wrong with it.

    Returns ``{}`` when the file does not exist (a fresh machine is not an
    error), otherwise ``{"profiles": {name: {key: value}}}`` plus
    ``"default_profile"`` when the file sets it.  A flat file comes back as
    the single profile ``default``.  Every :class:`ConfigError` names the
    file and, where YAML can tell, the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_message(path, exc)) from None

    if data is None:
        return {}
    checker = _ShapeChecker(path, text)
    if not isinstance(data, dict):
        checker.fail((), f"the top level must be a mapping (key: value lines), not {_kind(data)}")

    if "profiles" in data or "default_profile" in data:
        return checker.structured(data)
    return checker.flat(data)


def _yaml_error_message(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else problem
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        detail = f"{context} (from line {context_mark.line + 1}), {problem}"
    if mark is not None:
        return f"{path}:{mark.line + 1}:{mark.column + 1}: malformed YAML: {detail}"
    return f"{path}: malformed YAML: {detail}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number",
    }.get(type(value), type(value).__name__)


class _ShapeChecker:
    """Validates parsed YAML and reports problems with the line they sit on.

    ``yaml.safe_load`` throws away positions, so on an error the text is
    composed again (it parsed once, so it parses again) and the offending
    key is looked up in the node tree to find its line.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, keys: tuple[Any, ...], problem: str) -> None:
        line = self._line_of(keys)
        where = f"{self.path}:{line}" if line else str(self.path)
        raise ConfigError(f"{where}: {problem}")

    def _line_of(self, keys: tuple[Any, ...]) -> int | None:
        try:
            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:  # pragma: no cover - safe_load accepted the same text
            return None
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in keys:
            if not isinstance(node, yaml.MappingNode):
                break
            for key_node, value_node in node.value:
                if key_node.value == str(key):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                break
        return line

    def structured(self, data: dict[Any, Any]) -> dict[str, Any]:
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                if key in PROFILE_KEYS:
                    self.fail((key,), f"'{key}' is at the top level of a file with profiles; "
                                      "move it into a profile")
                self.fail((key,), f"unknown key '{key}' (expected: {', '.join(TOP_LEVEL_KEYS)})")
        profiles = data.get("profiles")
        if profiles is None:
            profiles = {}
        if not isinstance(profiles, dict):
            self.fail(("profiles",), f"'profiles' must be a mapping of profile names, not {_kind(profiles)}")
        result: dict[str, Any] = {"profiles": {}}
        for name, values in profiles.items():
            if not isinstance(name, str) or not name:
                self.fail(("profiles", name), f"profile name {name!r} must be a non-empty string")
            result["profiles"][name] = self._profile(values, ("profiles", name), f"profile '{name}'")
        default = data.get("default_profile")
        if default is not None:
            if not isinstance(default, str):
                self.fail(("default_profile",), f"'default_profile' must be a profile name, not {_kind(default)}")
            if default not in result["profiles"]:
                self.fail(("default_profile",), f"default_profile '{default}' is not one of the profiles "
                                                f"({_names(result['profiles'])})")
            result["default_profile"] = default
        return result

    def flat(self, data: dict[Any, Any]) -> dict[str, Any]:
        return {"profiles": {DEFAULT_PROFILE: self._profile(data, (), "the file")}}

    def _profile(self, values: Any, keys: tuple[Any, ...], what: str) -> dict[str, Any]:
        if values is None:
            return {}
        if not isinstance(values, dict):
            self.fail(keys, f"{what} must be a mapping of settings, not {_kind(values)}")
        profile: dict[str, Any] = {}
        for key, value in values.items():
            if key not in PROFILE_KEYS:
                self.fail(keys + (key,), f"unknown key '{key}' in {what} (expected: {', '.join(PROFILE_KEYS)})")
            if value is None:
                continue
            if key == "verify":
                if not isinstance(value, (bool, str)):
                    self.fail(keys + (key,), f"'verify' in {what} must be true, false or a CA bundle path, "
                                             f"not {_kind(value)}")
                profile[key] = _parse_verify(value) if isinstance(value, str) else value
            elif not isinstance(value, str):
                self.fail(keys + (key,), f"'{key}' in {what} must be a string, not {_kind(value)}; "
                                         "put quotes around it")
            else:
                profile[key] = value
        return profile


def _names(profiles: Mapping[str, Any]) -> str:
    return ", ".join(sorted(profiles)) if profiles else "there are none"


def _parse_verify(value: str | bool) -> bool | str:
    """Read a verify setting written as text: a yes/no word, or else a CA bundle path."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return value


# --------------------------------------------------------------------------- resolving


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
        config_file = _expand_home(str(path), env)
        sources["config_file"] = "option"
    else:
        config_file = config_path(env)
        if env.get(CONFIG_ENV):
            sources["config_file"] = f"env {CONFIG_ENV}"
        elif env.get("XDG_CONFIG_HOME") and os.path.isabs(env["XDG_CONFIG_HOME"]):
            sources["config_file"] = "env XDG_CONFIG_HOME"
        else:
            sources["config_file"] = "default"
    shown = _display_path(config_file, env)
    data = load_file(config_file)
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
            f"profiles there: {_names(profiles)}",
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
            value = _parse_verify(value)
        values[key] = value
        sources[key] = source

    return Settings(profile=name, config_file=config_file, sources=sources, **values)


# --------------------------------------------------------------------------- writing


def write_profile(path: Path | None, profile: str, values: Mapping[str, Any]) -> Path:
    """Merge ``values`` into one profile of the config file and write it back safely.

    ``None`` values are skipped, so re-running ``picas init`` without a
    password keeps the stored one.  The file holds a password, so it is
    created with mode 0600 from the start (a temporary file in the same
    directory, renamed over the old one), never readable by others even for
    a moment, and a crash cannot leave a half-written file.  The first
    profile written to a new file also becomes ``default_profile``, so that
    ``picas init --profile cluster`` works without a ``--profile`` on every
    later command.  Comments in an existing file are not preserved.
    """
    if not isinstance(profile, str) or not profile:
        raise ConfigError(f"profile name {profile!r} must be a non-empty string")
    unknown = set(values) - set(PROFILE_KEYS)
    if unknown:
        raise ConfigError(f"cannot write unknown setting(s) {', '.join(sorted(unknown))} "
                          f"(expected: {', '.join(PROFILE_KEYS)})")
    target = config_path() if path is None else Path(path).expanduser()
    data = load_file(target)  # refuses to overwrite a malformed file
    profiles: dict[str, dict[str, Any]] = data.get("profiles", {})
    default_profile = data.get("default_profile")
    if not profiles and profile != DEFAULT_PROFILE:
        default_profile = profile

    merged = dict(profiles.get(profile, {}))
    for key, value in values.items():
        if value is None:
            continue
        if key == "verify":
            if not isinstance(value, (bool, str)):
                raise ConfigError(f"'verify' must be true, false or a CA bundle path, not {_kind(value)}")
            merged[key] = _parse_verify(value)
        elif not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, not {_kind(value)}")
        else:
            merged[key] = value
    profiles[profile] = {key: merged[key] for key in PROFILE_KEYS if key in merged}

    document: dict[str, Any] = {}
    if default_profile is not None:
        document["default_profile"] = default_profile
    document["profiles"] = profiles
    body = yaml.safe_dump(document, default_flow_style=False, sort_keys=False, allow_unicode=True)
    header = "# picas connection settings, written by picas (mode 0600: it may hold a password).\n"
    _atomic_write_private(target, header + body)
    return target


def _atomic_write_private(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp already uses 0600; make it explicit whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


# --------------------------------------------------------------------------- classic picasconfig.py


def import_picasconfig(py_file: Path) -> dict[str, str | None]:
    """Read the settings out of a classic ``picasconfig.py`` without running it.

    Old picas projects keep credentials in a Python module.  Executing a
    file just to read four strings would run whatever else is in it, so the
    file is parsed with :mod:`ast` and only plain top-level string
    assignments (``PICAS_HOST_URL = "https://..."``) are taken; the last one
    wins, as it would at run time, and empty strings count as unset.
    """
    py_file = Path(py_file)
    try:
        source = py_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{py_file}: no such file", hint="give the path of your picasconfig.py") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{py_file}: cannot read it: {exc}") from None
    try:
        tree = ast.parse(source, filename=str(py_file))
    except SyntaxError as exc:
        raise ConfigError(f"{py_file}:{exc.lineno or '?'}: not valid Python: {exc.msg}",
                          hint="fix the file, or run 'picas init' instead") from None

    found: dict[str, str | None] = {key: None for key in PICASCONFIG_NAMES.values()}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in PICASCONFIG_NAMES:
                found[PICASCONFIG_NAMES[target.id]] = value.value or None

    if not any(found.values()):
        raise ConfigError(
            f"{py_file}: found no PICAS_HOST_URL, PICAS_DATABASE, PICAS_USERNAME or PICAS_PASSWORD "
            "set to a non-empty string",
            hint="only plain assignments like PICAS_HOST_URL = \"https://...\" are read; or run 'picas init'",
        )
    return found


def _redact_url(url: str | None) -> str | None:
    """Hide a password embedded in a URL's userinfo, keeping the rest readable."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username}:{REDACTED}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return url
