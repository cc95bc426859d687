"""``PicasConfig``: the picas 1.1.x configuration file, and one file for both picas generations.

picas 1.1.x keeps its settings in ``~/.config/picas/conf.yml`` with four
keys, the password encrypted with the key in ``~/.config/picas/key.dat``
(see :mod:`picas.crypto`)::

    host_url: https://picas.example.org:6984
    database: mydb
    username: alice
    encrypted_password: gAAAAABm...

``picas init`` (this package) writes the same path in its own format, with
profiles (see :mod:`picas.config`).  Both are read by both:

* :class:`PicasConfig` (what 1.1.x scripts and their ``picasconfig.py``
  use) reads a 1.1.x file as it is, and a file written by ``picas init``,
  whose profile it presents with the 1.1.x keys: ``config['host_url']``,
  ``config['encrypted_password']`` (decryptable with
  :func:`picas.crypto.decrypt_password`), and so on;
* the ``picas`` commands read a 1.1.x file through :func:`classic_profiles`,
  which :func:`picas.config.load_file` calls for a file in that format, and
  ``picas config show`` names the format it read (:func:`format_label`).

Writing keeps a file in the format it has, so a 1.1.x installation sharing
the home directory goes on reading it: :class:`PicasConfig` and
``picas-cli`` update a ``picas init`` file through :func:`picas.config.write_profile`,
and ``picas init`` on a 1.1.x file writes the 1.1.x format
(:func:`write_classic_profile`).

Differences from 1.1.2: the file is written with mode 0600 in one atomic
step; ``~/.config`` is created when missing; progress goes to the ``picas``
logger instead of being printed; validation needs no ``jsonschema``;
:meth:`PicasConfig.change_couchdb_password` keeps the user document's roles
(1.1.2 sent ``roles: []``, which a non-admin user may not do) and raises
:class:`~picas.errors.PicasError` subclasses instead of ``ValueError``.
"""
from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from picas import config as settings_file
from picas import crypto
from picas.errors import ConfigError, PicasError
from picas.support.files import write_private

log = logging.getLogger("picas")

__all__ = ["PICAS_CONFIG_SCHEMA", "CLASSIC_KEYS", "CLASSIC_FORMAT", "PROFILES_FORMAT", "PicasConfig",
           "PicasConfigSchemaError", "ConfigFileMissing", "is_classic", "classic_profiles", "format_label",
           "read_classic", "write_classic", "write_classic_profile"]

#: The keys of a 1.1.x file, in the order they are written.
CLASSIC_KEYS = ("host_url", "database", "username", "encrypted_password")
#: What ``picas config show`` says about each format.
CLASSIC_FORMAT = "picas 1.1.x format (host_url, encrypted_password + key.dat)"
PROFILES_FORMAT = "picas profiles format"

#: The 1.1.x schema, for reference and for tools that validate with jsonschema themselves.
PICAS_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host_url": {"type": "string", "default": "http://localhost:5984", "description": "URL of the CouchDB server"},
        "database": {"type": "string", "default": "mypicasdb", "description": "Name of the CouchDB database"},
        "username": {"type": "string", "default": None, "description": "Username for CouchDB"},
        "encrypted_password": {"type": "string", "default": None,
                               "description": "Fernet-encrypted password for CouchDB (key in key.dat)"},
    },
    "required": list(CLASSIC_KEYS),
    "additionalProperties": False,
}


class PicasConfigSchemaError(ConfigError):
    """A 1.1.x configuration does not have the four string keys it needs (and no others)."""

    hint = "fix the file, or write it again with 'picas-cli init'"

    @property
    def message(self) -> str:  # 1.1.x exposed the text as .message
        return str(self)


class ConfigFileMissing(ConfigError, FileNotFoundError):
    """There is no configuration file (also a FileNotFoundError, as in 1.1.x)."""

    hint = "create it with 'picas-cli init' or 'picas init'"


# --------------------------------------------------------------------------- the 1.1.x format, as data
def is_classic(data: Any) -> bool:
    """Whether parsed YAML is a 1.1.x file: a mapping with ``host_url`` or ``encrypted_password``, no profiles."""
    return (isinstance(data, Mapping) and not {"profiles", "default_profile"} & set(data)
            and bool({"host_url", "encrypted_password"} & set(data)))


def _problems(config: Any, anonymous_ok: bool = False) -> list[str]:
    """What is wrong with a 1.1.x configuration (empty when nothing)."""
    if not isinstance(config, Mapping):
        return [f"the configuration must be a mapping of {', '.join(CLASSIC_KEYS)}"]
    problems = [f"unknown key '{key}' (expected: {', '.join(CLASSIC_KEYS)})" for key in config
                if key not in CLASSIC_KEYS]
    for key in CLASSIC_KEYS:
        value = config.get(key)
        if value is None and anonymous_ok and key in ("username", "encrypted_password"):
            continue
        if key not in config or value is None:
            problems.append(f"'{key}' is missing")
        elif not isinstance(value, str):
            problems.append(f"'{key}' must be a string, not {type(value).__name__}")
    return problems


def read_classic(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a 1.1.x file as a profile (``url``, ``database``, ``username``, ``password``).

    The password is decrypted with the key file (see
    :func:`picas.crypto.default_key_path`); every problem is a
    :class:`~picas.errors.ConfigError` that names the file.
    """
    problems = _problems(data)
    if problems:
        raise PicasConfigSchemaError(f"{path}: not a valid picas 1.1.x config file: {'; '.join(problems)}")
    try:
        password = crypto.decrypt_password(data["encrypted_password"]).decode("utf-8")
    except ConfigError as exc:
        raise type(exc)(f"{path}: {exc}", hint=exc.hint) from None
    return {"url": data["host_url"], "database": data["database"], "username": data["username"],
            "password": password}


def classic_profiles(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`picas.config.load_file` returns for a 1.1.x file: its settings as the profile ``default``."""
    return {"profiles": {settings_file.DEFAULT_PROFILE: read_classic(Path(path), data)}, "format": CLASSIC_FORMAT}


def format_label(data: Mapping[str, Any]) -> str:
    """How ``picas config show`` names the format of a file read by :func:`picas.config.load_file`."""
    if not data:
        return "no file"
    return str(data.get("format") or PROFILES_FORMAT)


def _dump(config: Mapping[str, Any]) -> str:
    body = {key: config[key] for key in CLASSIC_KEYS if key in config}
    return yaml.safe_dump(body, default_flow_style=False, sort_keys=False)


def write_classic(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a 1.1.x file (validated first) with mode 0600, atomically."""
    problems = _problems(config)
    if problems:
        raise PicasConfigSchemaError(f"{path}: refusing to write an invalid picas 1.1.x config: {'; '.join(problems)}")
    path = Path(path).expanduser()
    write_private(path, _dump(config))
    return path


def _encrypt(password: str | bytes, key_path: Path | None = None) -> str:
    """Encrypt with the key file, making one (0600) if there is none, as 1.1.x's init did."""
    crypto.generate_and_save_key(key_path, skip_if_exists=True)
    return crypto.encrypt_password(password, crypto.read_key(key_path)).decode("ascii")


def write_classic_profile(path: Path, profile: str, values: Mapping[str, Any]) -> Path:
    """``picas init`` on a 1.1.x file: update it in the 1.1.x format, so that 1.1.x goes on reading it.

    A 1.1.x file holds one server, without TLS settings: another profile
    name or a ``verify`` setting cannot be kept in it, and is refused with
    what to do instead.  ``None`` values keep what the file has.
    """
    path = Path(path).expanduser()
    if profile != settings_file.DEFAULT_PROFILE or values.get("verify") not in (None, True):
        what = f"profile '{profile}'" if profile != settings_file.DEFAULT_PROFILE else "a TLS 'verify' setting"
        raise ConfigError(f"{path} is a picas 1.1.x config file, which holds one server and cannot hold {what}",
                          hint="keep the new settings in another file (--config FILE, or PICAS_CONFIG), "
                               "or move the 1.1.x file aside and run 'picas init' again")
    current = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    config = dict(current) if is_classic(current) else {}
    for ours, theirs in (("url", "host_url"), ("database", "database"), ("username", "username")):
        if values.get(ours) is not None:
            config[theirs] = values[ours]
    if values.get("password") is not None:
        config["encrypted_password"] = _encrypt(values["password"])
    return write_classic(path, config)


# --------------------------------------------------------------------------- PicasConfig
class PicasConfig:
    """The configuration of picas 1.1.x scripts: ``PicasConfig().config['host_url']`` and so on.

    ``config_path`` defaults to the file ``picas`` uses
    (``~/.config/picas/conf.yml``, or ``$PICAS_CONFIG``).  After
    :meth:`load_config`, ``config`` holds the four 1.1.x keys whatever the
    file's format, ``format`` says which it was and ``profile`` which profile
    of a ``picas init`` file was read (``$PICAS_PROFILE``, else its default).
    """

    def __init__(self, config_path: str | os.PathLike | None = None, load: bool = True) -> None:
        self.config_path = str(config_path) if config_path is not None else str(settings_file.config_path())
        self.config: dict[str, Any] = {}
        self.format: str | None = None
        self.profile: str | None = None
        if load:
            self.load_config()

    @property
    def path(self) -> Path:
        return Path(os.path.expanduser(self.config_path))

    def __str__(self) -> str:
        if not self.config:
            return "PicasConfig: No configuration loaded"
        shown = dict(self.config)
        if shown.get("encrypted_password"):
            shown["encrypted_password"] = "***masked***"
        return "PicasConfig:\n" + yaml.safe_dump(shown, default_flow_style=False, indent=2)

    # ------------------------------------------------------------------ reading
    def validate_config(self, config: Mapping[str, Any] | None = None) -> None:
        """Check a 1.1.x configuration (default: the loaded one); :class:`PicasConfigSchemaError` if wrong."""
        problems = _problems(self.config if config is None else config,
                             anonymous_ok=config is None and self.format == PROFILES_FORMAT)
        if problems:
            raise PicasConfigSchemaError(f"configuration validation failed: {'; '.join(problems)}")
        log.debug("configuration validation passed")

    def load_config(self) -> None:
        """Read the file (either format) into ``config``; :class:`ConfigFileMissing` if there is none."""
        path = self.path
        log.info("Loading the picas configuration from %s", path)
        if not path.exists():
            raise ConfigFileMissing(f"configuration file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the configuration: {exc}") from None
        if is_classic(data) or not isinstance(data, Mapping):
            self.format, self.profile = CLASSIC_FORMAT, None
            self.config = dict(data) if isinstance(data, Mapping) else {}
            if not isinstance(data, Mapping):
                raise PicasConfigSchemaError(f"{path}: the configuration must be a mapping of "
                                             f"{', '.join(CLASSIC_KEYS)}")
            self.validate_config()
            return
        self._load_profile(path)

    def _load_profile(self, path: Path) -> None:
        """Present the chosen profile of a ``picas init`` file with the 1.1.x keys."""
        loaded = settings_file.load_file(path)
        profiles = loaded.get("profiles", {})
        name = os.environ.get(settings_file.PROFILE_ENV) or loaded.get("default_profile") \
            or settings_file.DEFAULT_PROFILE
        if name not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"{path}: there is no profile '{name}' (profiles: {known})",
                              hint="set PICAS_PROFILE to one of them, or run 'picas init'")
        values = profiles[name]
        self.format, self.profile = PROFILES_FORMAT, name
        password = values.get("password")
        if password is None:
            encrypted = None
        elif crypto.default_key_path(path).exists():
            encrypted = crypto.encrypt_password(password, crypto.read_key(crypto.default_key_path(path))).decode()
        else:
            # No key file: encrypt with a key made in memory for this process, which decrypt_password also
            # tries, rather than writing a key file as a side effect of reading.
            encrypted = crypto.encrypt_password(password, crypto.session_key()).decode()
        self.config = {"host_url": values.get("url"), "database": values.get("database"),
                       "username": values.get("username"), "encrypted_password": encrypted}
        self.validate_config()

    def password(self) -> str | None:
        """The password in plain text (None when there is none)."""
        encrypted = self.config.get("encrypted_password")
        return crypto.decrypt_password(encrypted).decode("utf-8") if encrypted else None

    # ------------------------------------------------------------------ writing
    def save_config(self, args: Any) -> None:
        """Store ``args.host_url``, ``args.database``, ``args.username`` and ``args.password`` (asked if None)."""
        password = args.password
        if password is None:
            password = getpass.getpass(f"enter the CouchDB password for the account '{args.username}' "
                                       f"and database '{args.database}': ")
        self._store({"url": args.host_url, "database": args.database, "username": args.username,
                     "password": password.decode("utf-8") if isinstance(password, bytes) else password})

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write a 1.1.x configuration (the four keys) to the file, keeping the file's format."""
        problems = _problems(config)
        if problems:
            raise PicasConfigSchemaError(f"configuration validation failed: {'; '.join(problems)}")
        if self._existing_format() == PROFILES_FORMAT:
            self._store({"url": config["host_url"], "database": config["database"], "username": config["username"],
                         "password": crypto.decrypt_password(config["encrypted_password"]).decode("utf-8")})
            return
        write_classic(self.path, config)
        self.config, self.format = dict(config), CLASSIC_FORMAT
        log.info("Wrote the configuration to %s", self.path)

    def _existing_format(self) -> str | None:
        if not self.path.exists():
            return None
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        if not data or is_classic(data):
            return CLASSIC_FORMAT
        return PROFILES_FORMAT

    def _store(self, values: dict[str, Any]) -> None:
        """Write url/database/username/password in the file's format (1.1.x for a new file)."""
        if self._existing_format() == PROFILES_FORMAT:
            profile = self.profile or os.environ.get(settings_file.PROFILE_ENV) or \
                settings_file.load_file(self.path).get("default_profile") or settings_file.DEFAULT_PROFILE
            settings_file.write_profile(self.path, profile, values)
            log.info("Wrote profile '%s' of %s", profile, self.path)
            self.load_config()
            return
        config = {"host_url": values["url"], "database": values["database"], "username": values["username"],
                  "encrypted_password": _encrypt(values["password"])}
        self.write_config(config)

    # ------------------------------------------------------------------ passwords
    def change_couchdb_password(self, uri: str, username: str, old_password: str | bytes,
                                new_password: str | bytes) -> None:
        """Set a new password for ``username`` on the CouchDB server at ``uri`` (their ``_users`` document).

        The user's own credentials are used; the document keeps its roles
        and other fields, only the password changes.
        """
        from picas.core.client import CouchClient  # the HTTP client is needed only here

        old = old_password.decode("utf-8") if isinstance(old_password, bytes) else old_password
        new = new_password.decode("utf-8") if isinstance(new_password, bytes) else new_password
        client = CouchClient(uri, "_users", username=username, password=old)
        try:
            doc_id = f"org.couchdb.user:{username}"
            try:
                user = client.get(doc_id)
            except PicasError as exc:
                raise type(exc)(f"cannot read the user document of '{username}' on {client.url}: {exc}") from None
            user = {key: value for key, value in user.items()
                    if key not in ("derived_key", "salt", "iterations", "password_scheme", "pbkdf2_prf")}
            user["password"] = new
            client.request("PUT", f"/_users/{quote(doc_id, safe=':')}", json_body=user, retry_ok=False,
                           context=f"changing the password of '{username}'")
        finally:
            client.close()
        log.info("Password of '%s' changed on %s", username, client.url)

    def change_password(self, args: Any) -> None:
        """Change the password on the server and then in the file (``args.new_password``, asked if None)."""
        if not self.config:
            self.load_config()
        if not self.config.get("encrypted_password"):
            raise ConfigError(f"{self.path}: no password is stored, so there is none to change",
                              hint="store one first with 'picas-cli init'")
        new_password = args.new_password
        if new_password is None:
            new_password = getpass.getpass(f"enter the new CouchDB password for the account "
                                           f"'{self.config['username']}' and database '{self.config['database']}': ")
        if isinstance(new_password, bytes):
            new_password = new_password.decode("utf-8")
        old_password = self.password() or ""
        self.change_couchdb_password(uri=self.config["host_url"], username=self.config["username"],
                                     old_password=old_password, new_password=new_password)
        self._store({"url": self.config["host_url"], "database": self.config["database"],
                     "username": self.config["username"], "password": new_password})
