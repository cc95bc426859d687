"""A server that redirects (a reverse proxy sending http to https) is one clear error, never a traceback.

pouchdb-server does not redirect, so a stand-in server (``HTTPStandIn``)
answers every request with a redirect, as nginx does with
``return 301 https://$host$request_uri``.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from picas.core.client import CouchClient
from picas.errors import ConfigError
from tests.core import test_transport
from tests.core.test_transport import HTTPStandIn, SeenRequest

stand_in, no_proxies = test_transport.stand_in, test_transport.no_proxies  # the fixtures, shared


def redirect_to(base: str, status: int = 301):
    def answer(request: SeenRequest):
        path = request.line.split(" ")[1]
        return status, {"Location": base + path, "Content-Type": "text/html"}, b"<html>Moved</html>"
    return answer


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_config_error_naming_the_target(status, stand_in, no_proxies):
    server = stand_in(HTTPStandIn(redirect_to("https://couch.example.org:6984", status)))
    client = CouchClient(f"http://127.0.0.1:{server.port}", "tokens")
    with pytest.raises(ConfigError) as caught:
        client.save({"_id": "t1", "value": 1})
    message = str(caught.value)
    assert f"HTTP {status}" in message and "https://couch.example.org:6984/tokens/t1" in message
    assert "use https://couch.example.org:6984 as the server URL" in message
    assert len(server.requests) == 1, "a redirected write is neither followed nor retried"


def test_a_redirect_under_a_path_prefix_suggests_the_prefix(stand_in, no_proxies):
    server = stand_in(HTTPStandIn(redirect_to("https://couch.example.org")))
    client = CouchClient(f"http://127.0.0.1:{server.port}/couchdb", "tokens")
    with pytest.raises(ConfigError) as caught:
        client.db_info()
    assert "use https://couch.example.org/couchdb as the server URL" in str(caught.value)


def test_picas_status_against_a_redirecting_server_prints_one_error_line(stand_in, no_proxies, tmp_path):
    server = stand_in(HTTPStandIn(redirect_to("https://couch.example.org:6984")))
    env = {name: value for name, value in __import__("os").environ.items() if not name.startswith("PICAS_")}
    env.update(PICAS_CONFIG=str(tmp_path / "none.yml"), PICAS_HOST_URL=f"http://127.0.0.1:{server.port}",
               PICAS_DATABASE="tokens")
    done = subprocess.run([sys.executable, "-m", "picas", "status"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == ConfigError.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("picas: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert "redirects" in lines[0] and "https://couch.example.org:6984" in lines[0]
