"""Storage credentials, found in the pilot's environment the way grid tools find them.

Never in a token: every member of a database can read its tokens.  The
places looked at are the ones gfal2, davix, curl and the WLCG token
discovery rules use, so a grid job's usual setup works unchanged:

* X.509 proxy: ``$X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``;
  trusted CAs: ``$X509_CERT_DIR``, else ``/etc/grid-security/certificates``
  (added to the system's CAs);
* bearer token (WLCG discovery): ``$BEARER_TOKEN``, the file
  ``$BEARER_TOKEN_FILE``, ``$XDG_RUNTIME_DIR/bt_u<uid>``, ``/tmp/bt_u<uid>``;
  sent over TLS only;
* user and password for one host: ``$NETRC`` or ``~/.netrc`` (as curl).
"""
from __future__ import annotations

import netrc
import os
from pathlib import Path

from picas.staging.errors import StagingError

__all__ = ["bearer_token", "x509_proxy", "ca_dir", "netrc_login"]


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def bearer_token(environ: dict | None = None) -> str | None:
    """The bearer token of the WLCG discovery rules, or None."""
    env = os.environ if environ is None else environ
    if env.get("BEARER_TOKEN", "").strip():
        return env["BEARER_TOKEN"].strip()
    candidates = []
    if env.get("BEARER_TOKEN_FILE"):
        candidates.append(Path(env["BEARER_TOKEN_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / f"bt_u{_uid()}")
    candidates.append(Path(f"/tmp/bt_u{_uid()}"))
    for path in candidates:
        try:
            token = path.read_text().strip()
        except OSError:
            continue
        if token:
            return token
    return None


def x509_proxy(environ: dict | None = None) -> str | None:
    """The path of the X.509 proxy (certificate and key in one file), or None."""
    env = os.environ if environ is None else environ
    path = env.get("X509_USER_PROXY") or f"/tmp/x509up_u{_uid()}"
    return path if os.path.isfile(path) else None


def ca_dir(environ: dict | None = None) -> str | None:
    """The grid CA directory, or None (then only the system's CAs are trusted)."""
    env = os.environ if environ is None else environ
    path = env.get("X509_CERT_DIR") or "/etc/grid-security/certificates"
    return path if os.path.isdir(path) else None


def netrc_login(host: str, environ: dict | None = None) -> tuple[str, str] | None:
    """(user, password) for ``host`` from the netrc file, or None; a malformed file is an error naming it."""
    env = os.environ if environ is None else environ
    path = env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        raise StagingError(f"cannot read the netrc file {path}: {exc}") from None
    if not entry:
        return None
    login, _, password = entry
    return (login or "", password or "")
