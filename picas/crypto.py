"""Passwords encrypted at rest, compatible with the files picas 1.1.x writes.

picas 1.1.x keeps the CouchDB password in ``~/.config/picas/conf.yml`` as
``encrypted_password``: a Fernet token (AES-128-CBC with an HMAC-SHA256, from
the `cryptography <https://cryptography.io>`_ package) made with the key in
``~/.config/picas/key.dat``, a urlsafe-base64 Fernet key that only its owner
can read.  The same files work here, both ways: a key and a password made by
1.1.x decrypt here, and what this module writes decrypts in 1.1.x.

This protects the password from someone who sees the config file alone
(a shared screen, a backup, a pasted config); whoever can read both files
can decrypt it, so the key file is created with mode 0600 (a new directory 0700).

``cryptography`` is an optional dependency (``pip install 'picas[crypto]'``):
it is a compiled package, which the Grid sandbox of ``picas submit`` cannot
carry, and a pilot never needs it (it gets its credentials from the
environment).  Without it every function here raises a
:class:`~picas.errors.ConfigError` that says how to install it.

The functions keep their 1.1.x names and arguments
(:func:`generate_and_save_key`, :func:`read_key`, :func:`encrypt_password`,
:func:`decrypt_password`, which take and return bytes).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Union

from picas.errors import ConfigError
from picas.support.files import write_private

log = logging.getLogger("picas")

__all__ = ["CRYPTO_KEY_PATH", "KEY_FILE_ENV", "CryptoUnavailable", "KeyFileMissing", "WrongKey",
           "default_key_path", "generate_and_save_key", "read_key", "encrypt_password", "decrypt_password"]

#: The key file picas 1.1.x uses (expanded when this module is imported, as 1.1.x did).
CRYPTO_KEY_PATH = os.path.expanduser("~/.config/picas/key.dat")
_IMPORTED_KEY_PATH = CRYPTO_KEY_PATH

#: Environment variable naming another key file (for tests and for machines with several keys).
KEY_FILE_ENV = "PICAS_KEY_FILE"

PathLike = Union[str, "os.PathLike[str]"]
BytesOrStr = Union[bytes, str]

#: Keys made in memory by :func:`session_key` in this process (never written anywhere); see decrypt_password.
_session_keys: list[bytes] = []


class CryptoUnavailable(ConfigError):
    """The ``cryptography`` package is not installed."""

    hint = "install it with: pip install 'picas[crypto]' (or pip install cryptography)"


class KeyFileMissing(ConfigError, FileNotFoundError):
    """The key file is not there (also a FileNotFoundError, as in 1.1.x)."""

    hint = ("copy key.dat from the machine where the password was encrypted, "
            "or store the password again with 'picas-cli init' (or 'picas init')")


class WrongKey(ConfigError):
    """An encrypted password does not decrypt with the key file: it was made with another key."""

    hint = ("the key file must be the one 'picas-cli init' used when it stored the password; "
            "store the password again with 'picas-cli init' (or 'picas init')")


def _fernet() -> Any:
    try:
        from cryptography import fernet
    except ImportError:
        raise CryptoUnavailable("encrypted passwords (encrypted_password, key.dat) need the 'cryptography' "
                                "package, which is not installed") from None
    return fernet


def default_key_path(config_file: PathLike | None = None) -> Path:
    """The key file to use: ``$PICAS_KEY_FILE``, else ``key.dat`` beside ``config_file`` if that exists,
    else ``~/.config/picas/key.dat`` (the 1.1.x place, also for a conf.yml kept elsewhere).

    Assigning :data:`CRYPTO_KEY_PATH` (as 1.1.x scripts may do) is honoured too.
    """
    explicit = os.environ.get(KEY_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    if CRYPTO_KEY_PATH != _IMPORTED_KEY_PATH:
        return Path(CRYPTO_KEY_PATH).expanduser()
    if config_file is not None:
        beside = Path(config_file).expanduser().parent / "key.dat"
        if beside.exists():
            return beside
    return Path("~/.config/picas/key.dat").expanduser()


def generate_and_save_key(key_path: PathLike | None = None, skip_if_exists: bool = True,
                          overwrite: bool | None = None) -> Path:
    """Make a new random key and store it in ``key_path`` (mode 0600, directory 0700); returns the path.

    An existing key is kept when ``skip_if_exists`` (the default): replacing
    it makes every password encrypted with it unreadable.  Otherwise
    ``overwrite`` decides; left at None, the user is asked on a terminal (as
    1.1.x did) and the key is kept when there is no terminal to ask.
    """
    fernet = _fernet()
    path = Path(key_path).expanduser() if key_path is not None else default_key_path()
    if path.exists():
        if skip_if_exists:
            log.info("Key already exists at %s; keeping it", path)
            return path
        if overwrite is None:
            overwrite = sys.stdin.isatty() and input(
                f"Overwrite the key in {path}? Passwords encrypted with it can then no longer be read (y/N) "
            ).strip().lower() == "y"
        if not overwrite:
            log.info("Not overwriting the key in %s", path)
            return path
    write_private(path, fernet.Fernet.generate_key().decode("ascii"))
    log.info("Wrote a new key to %s", path)
    return path


def read_key(key_path: PathLike | None = None) -> bytes:
    """The key in ``key_path`` (default: :func:`default_key_path`); :class:`KeyFileMissing` if there is none."""
    path = Path(key_path).expanduser() if key_path is not None else default_key_path()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: no key file, so the encrypted password cannot be read") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key file: {exc}") from None


def _as_bytes(value: BytesOrStr) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def encrypt_password(password: BytesOrStr, key: BytesOrStr | None = None) -> bytes:
    """The Fernet token of ``password`` made with ``key`` (default: the key file's); bytes, as in 1.1.x."""
    fernet = _fernet()
    secret = _as_bytes(key) if key is not None else read_key()
    try:
        return fernet.Fernet(secret).encrypt(_as_bytes(password))
    except ValueError as exc:
        raise ConfigError(f"not a valid key ({exc})",
                          hint="a key file holds 44 urlsafe-base64 characters; make a new one with 'picas-cli init'"
                          ) from None


def session_key() -> bytes:
    """A key made in memory for this process, for passwords that were stored in plain text.

    :class:`picas.picas_config.PicasConfig` uses it to offer an
    ``encrypted_password`` for a profile written by ``picas init`` when there
    is no key file, without writing one; :func:`decrypt_password` tries it
    after the key file.
    """
    if not _session_keys:
        _session_keys.append(_fernet().Fernet.generate_key())
    return _session_keys[0]


def decrypt_password(encrypted: BytesOrStr, key: BytesOrStr | None = None) -> bytes:
    """The password inside a Fernet token, as bytes (``.decode()`` it, as 1.1.x scripts do).

    Without ``key`` the key file is used, and then the keys this process
    made with :func:`session_key`.  :class:`WrongKey` if none of them fits.
    """
    fernet = _fernet()
    if key is not None:
        keys = [_as_bytes(key)]
    else:
        keys = []
        try:
            keys.append(read_key())
        except KeyFileMissing:
            if not _session_keys:
                raise
        keys.extend(_session_keys)
    try:
        return fernet.MultiFernet([fernet.Fernet(k) for k in keys]).decrypt(_as_bytes(encrypted))
    except fernet.InvalidToken:
        where = "the given key" if key is not None else str(default_key_path())
        raise WrongKey(f"the encrypted password does not decrypt with {where}") from None
    except ValueError as exc:
        raise ConfigError(f"not a valid key ({exc})") from None
