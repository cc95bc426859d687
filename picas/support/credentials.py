"""Credentials inside URLs (``https://user:secret@host``): take them out, or hide them.

Users paste URLs with a password in them, and classic ``picasconfig.py``
files hold such URLs.  picas accepts them, but a password must never show up
in a message, a log, a batch script or ``picas config show``.  So a URL is
split once where it enters (:func:`split_credentials`), and anything that
prints a URL the user gave prints :func:`redact_url` of it.
"""
from __future__ import annotations

import urllib.parse

__all__ = ["REDACTED", "split_credentials", "strip_credentials", "redact_url"]

#: What a hidden password looks like in anything picas prints.
REDACTED = "********"


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(base URL without user:password@, user, password)``, the user and password percent-decoded.

    The base URL keeps scheme, host (IPv6 literals in brackets), port and path
    without its trailing slash; a query or fragment has no meaning on a
    server's base URL and is dropped.  A malformed port raises ValueError.
    """
    parts = urllib.parse.urlsplit(url)
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host + (f":{port}" if port else "")
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return clean, username, password


def strip_credentials(url: str) -> str:
    """The base URL without ``user:password@`` (see :func:`split_credentials`)."""
    return split_credentials(url)[0]


def redact_url(url: str | None) -> str | None:
    """The URL as given, with only its password replaced by ``********`` (the user name stays readable).

    A password with an unescaped ``/``, ``?`` or ``#`` in it (generated
    passwords have them) ends the authority early for a URL parser; such a
    URL does not work, and the error that says so must still not show the
    password.  So when the first segment reads ``user:something`` that is no
    port, everything up to the last ``@`` counts as the user information.
    """
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min([i for i in (rest.find(c) for c in "/?#") if i != -1], default=len(rest))
    if "@" in rest[:end]:
        at = rest.rfind("@", 0, end)
    else:
        first = rest[:end]
        _, colon, after = first.partition(":")
        if "@" not in rest or not colon or after.isdigit():
            return url
        at = rest.rfind("@")
    userinfo, remainder = rest[:at], rest[at + 1:]
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{REDACTED}@{remainder}"
