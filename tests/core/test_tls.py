"""The client over TLS, against the real test server behind a TLS terminator.

pouchdb-server speaks plain HTTP only, so a small terminator (the stand-in
here) accepts TLS with a self-signed certificate for 127.0.0.1
(``tests/data/tls-test-cert.pem``, valid until 2126) and passes the bytes on
to the real server.  Everything past the handshake is the real CouchDB API.
"""
import socket
import ssl
import threading
from pathlib import Path

import pytest

from picas.core.client import CouchClient
from picas.errors import PicasError, ServerUnavailable
from tests.helpers import StandInServer

DATA = Path(__file__).parent / "data"
CERT = DATA / "tls-test-cert.pem"
KEY = DATA / "tls-test-key.pem"


class TLSTerminator(StandInServer):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(CERT, KEY)
        super().__init__()

    def handle(self, raw: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # a client that rejected our certificate
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=_pump, args=(upstream, secure), daemon=True).start()
        _pump(secure, upstream)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.close()
            except OSError:
                pass


@pytest.fixture
def tls_url(couch_server):
    terminator = TLSTerminator(couch_server.server.port)
    yield f"https://127.0.0.1:{terminator.port}"
    terminator.close()


def test_a_ca_bundle_verifies_the_server(tls_url, couch_server, db_name):
    user, password = couch_server.admin
    client = CouchClient(tls_url, db_name, username=user, password=password, verify=str(CERT))
    saved = client.save({"_id": "over-tls", "value": 1})
    assert client.get("over-tls") == saved


def test_an_unknown_certificate_is_one_clear_error(tls_url, db_name):
    client = CouchClient(tls_url, db_name, verify=True)  # system CAs do not know our test certificate
    with pytest.raises(ServerUnavailable) as caught:
        client.db_info()
    assert "TLS verification" in str(caught.value) and "--ca-bundle" in caught.value.hint


def test_insecure_skips_verification(tls_url, couch_server, db_name):
    user, password = couch_server.admin
    client = CouchClient(tls_url, db_name, username=user, password=password, verify=False)
    assert client.db_info()["db_name"] == db_name


def test_a_missing_ca_bundle_is_named(tmp_path):
    with pytest.raises(PicasError) as caught:
        CouchClient("https://127.0.0.1:6984", "db", verify=str(tmp_path / "nowhere.pem"))
    assert "nowhere.pem" in str(caught.value) and "--ca-bundle" in caught.value.hint
