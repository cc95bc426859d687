"""The config file itself: read it into one canonical shape, check it, write a profile back.

Reading says exactly what is wrong with a file and on which line, because a
config file is written by hand; writing is atomic and private, because the
file may hold a password (see :mod:`picas.support.files`).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from picas.config.paths import config_path
from picas.errors import ConfigError
from picas.support.files import write_private
from picas.support.yamltext import load_yaml

#: The settings a profile may hold, in the order they are written and shown.
PROFILE_KEYS = ("url", "database", "username", "password", "verify")

#: Top-level keys of the structured file format.
TOP_LEVEL_KEYS = ("default_profile", "profiles")

#: The profile used when neither an option, PICAS_PROFILE nor the file names one.
DEFAULT_PROFILE = "default"

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}


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

    data = load_yaml(text, path, ConfigError)

    if data is None:
        return {}
    checker = _ShapeChecker(path, text)
    if not isinstance(data, dict):
        checker.fail((), f"the top level must be a mapping (key: value lines), not {kind_of(data)}")
    from picas import picas_config  # a picas 1.1.x file (host_url, encrypted_password) is read with its key.dat
    if picas_config.is_classic(data):
        return picas_config.classic_profiles(path, data)

    if "profiles" in data or "default_profile" in data:
        return checker.structured(data)
    return checker.flat(data)


def kind_of(value: Any) -> str:
    """What a YAML value is, in words for an error message ("a list", "a number")."""
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
        import yaml  # only on an error: reading settings without a config file imports no YAML at all
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
            self.fail(("profiles",), f"'profiles' must be a mapping of profile names, not {kind_of(profiles)}")
        result: dict[str, Any] = {"profiles": {}}
        for name, values in profiles.items():
            if not isinstance(name, str) or not name:
                self.fail(("profiles", name), f"profile name {name!r} must be a non-empty string")
            result["profiles"][name] = self._profile(values, ("profiles", name), f"profile '{name}'")
        default = data.get("default_profile")
        if default is not None:
            if not isinstance(default, str):
                self.fail(("default_profile",), f"'default_profile' must be a profile name, not {kind_of(default)}")
            if default not in result["profiles"]:
                self.fail(("default_profile",), f"default_profile '{default}' is not one of the profiles "
                                                f"({profile_names(result['profiles'])})")
            result["default_profile"] = default
        return result

    def flat(self, data: dict[Any, Any]) -> dict[str, Any]:
        return {"profiles": {DEFAULT_PROFILE: self._profile(data, (), "the file")}}

    def _profile(self, values: Any, keys: tuple[Any, ...], what: str) -> dict[str, Any]:
        if values is None:
            return {}
        if not isinstance(values, dict):
            self.fail(keys, f"{what} must be a mapping of settings, not {kind_of(values)}")
        profile: dict[str, Any] = {}
        for key, value in values.items():
            if key not in PROFILE_KEYS:
                self.fail(keys + (key,), f"unknown key '{key}' in {what} (expected: {', '.join(PROFILE_KEYS)})")
            if value is None:
                continue
            if key == "verify":
                if not isinstance(value, (bool, str)):
                    self.fail(keys + (key,), f"'verify' in {what} must be true, false or a CA bundle path, "
                                             f"not {kind_of(value)}")
                profile[key] = parse_verify(value) if isinstance(value, str) else value
            elif not isinstance(value, str):
                self.fail(keys + (key,), f"'{key}' in {what} must be a string, not {kind_of(value)}; "
                                         "put quotes around it")
            else:
                profile[key] = value
        return profile


def profile_names(profiles: Mapping[str, Any]) -> str:
    return ", ".join(sorted(profiles)) if profiles else "there are none"


def parse_verify(value: str | bool) -> bool | str:
    """Read a verify setting written as text: a yes/no word, or else a CA bundle path."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return value


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
    if data.get("format"):  # a picas 1.1.x file stays one, so that 1.1.x still reads it
        from picas import picas_config
        return picas_config.write_classic_profile(target, profile, values)
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
                raise ConfigError(f"'verify' must be true, false or a CA bundle path, not {kind_of(value)}")
            merged[key] = parse_verify(value)
        elif not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, not {kind_of(value)}")
        else:
            merged[key] = value
    profiles[profile] = {key: merged[key] for key in PROFILE_KEYS if key in merged}

    document: dict[str, Any] = {}
    if default_profile is not None:
        document["default_profile"] = default_profile
    document["profiles"] = profiles
    import yaml
    body = yaml.safe_dump(document, default_flow_style=False, sort_keys=False, allow_unicode=True)
    header = "# picas connection settings, written by picas (mode 0600: it may hold a password).\n"
    write_private(target, header + body)
    return target
