"""Credentials come from the environment as grid tools find them, never from a token."""
from __future__ import annotations

import os

import pytest

from picas.staging import credentials
from picas.staging.backends.webdav import WebDavStorage
from picas.staging.errors import StagingError


def test_bearer_token_discovery_order(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / f"bt_u{os.getuid()}").write_text("from-runtime-dir")
    assert credentials.bearer_token({"BEARER_TOKEN": " direct ", "BEARER_TOKEN_FILE": str(token_file)}) == "direct"
    assert credentials.bearer_token({"BEARER_TOKEN_FILE": str(token_file), "XDG_RUNTIME_DIR": str(runtime)}) \
        == "from-file"
    assert credentials.bearer_token({"XDG_RUNTIME_DIR": str(runtime)}) == "from-runtime-dir"


def test_proxy_and_netrc(tmp_path):
    proxy = tmp_path / "x509up"
    proxy.write_text("not really a proxy")
    assert credentials.x509_proxy({"X509_USER_PROXY": str(proxy)}) == str(proxy)
    assert credentials.x509_proxy({"X509_USER_PROXY": str(tmp_path / "absent")}) is None
    netrc = tmp_path / "netrc"
    netrc.write_text("machine se.example.org login alice password s3cret\n")
    netrc.chmod(0o600)
    assert credentials.netrc_login("se.example.org", {"NETRC": str(netrc)}) == ("alice", "s3cret")
    assert credentials.netrc_login("other.example.org", {"NETRC": str(netrc)}) is None
    netrc.write_text("machine\n")
    with pytest.raises(StagingError, match="cannot read the netrc file"):
        credentials.netrc_login("se.example.org", {"NETRC": str(netrc)})


def test_the_http_backend_sends_a_bearer_token_over_tls_only_and_prefers_a_netrc_login(tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine basic.example.org login bob password pw\n")
    netrc.chmod(0o600)
    storage = WebDavStorage(environ={"BEARER_TOKEN": "tok", "NETRC": str(netrc)})
    assert storage._auth("https://se.example.org/x") == {"Authorization": "Bearer tok"}
    assert storage._auth("http://se.example.org/x") == {}
    assert storage._auth("https://basic.example.org/x")["Authorization"].startswith("Basic ")
