"""picas.support.credentials: a password in a URL is taken out where it enters and never printed."""
from __future__ import annotations

import pytest

from picas.support.credentials import REDACTED, redact_url, split_credentials, strip_credentials


def test_split_takes_user_and_password_out_and_decodes_them() -> None:
    clean, user, password = split_credentials("https://al%40ice:p%3Aw%2Fd@couch.example.org:6984/prefix/")
    assert (clean, user, password) == ("https://couch.example.org:6984/prefix", "al@ice", "p:w/d")


def test_split_keeps_ipv6_brackets_and_drops_query_and_fragment() -> None:
    assert split_credentials("http://u:p@[::1]:5984/?x=1#f") == ("http://[::1]:5984", "u", "p")
    assert strip_credentials("http://127.0.0.1:5984") == "http://127.0.0.1:5984"
    assert split_credentials("http://h")[1:] == (None, None)


def test_split_refuses_a_bad_port() -> None:
    with pytest.raises(ValueError):
        split_credentials("http://u:p@h:notaport/")


@pytest.mark.parametrize("url, shown", [
    ("http://alice:s3cret@h:5984/db", f"http://alice:{REDACTED}@h:5984/db"),
    ("https://u:p@[::1]:6984", f"https://u:{REDACTED}@[::1]:6984"),
    ("http://u:se/cr?e#t@h:5984/", f"http://u:{REDACTED}@h:5984/"),  # unescaped / ? # in the password
    ("http://u:pw@h/path@x", f"http://u:{REDACTED}@h/path@x"),
    ("http://alice@h", "http://alice@h"),  # no password: nothing to hide
    ("http://h:5984/db@x", "http://h:5984/db@x"),  # an @ in the path is no password
    ("not a url", "not a url"),
    ("", ""),
    (None, None),
])
def test_redact_hides_only_the_password(url, shown) -> None:
    assert redact_url(url) == shown
    if url and "s3cret" in url:
        assert "s3cret" not in redact_url(url)
