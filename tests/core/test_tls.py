"""The client over TLS, against the real test server behind a TLS terminator.

pouchdb-server speaks plain HTTP only, so a small terminator (the stand-in
here) accepts TLS with a self-signed certificate for 127.0.0.1
(``tests/data/tls-test-cert.pem``, valid until 2126) and passes the bytes on
to the real server.  Everything past the handshake is the real CouchDB API.
"""
import json
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from picas.core.client import CouchClient
from picas.errors import PicasError, ServerUnavailable
from tests.core.test_transport import splice
from tests.helpers import StandInServer, pilot_env

DATA = Path(__file__).parent.parent / "data"
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
        splice(secure, socket.create_connection(("127.0.0.1", self.upstream_port)))


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


# ---------------------------------------------------------------------- CA directories

def hashed_ca_directory(directory: Path, *certificates: Path) -> Path:
    """A CA directory as grid sites keep one: each CA under its subject-hash name (``openssl rehash``)."""
    directory.mkdir()
    for certificate in certificates:
        shutil.copy(certificate, directory / certificate.name)
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    return directory


def test_a_ca_directory_verifies_the_server(tls_url, couch_server, db_name, tmp_path):
    ca_dir = hashed_ca_directory(tmp_path / "certificates", CERT)
    assert any(p.is_symlink() for p in ca_dir.iterdir()), "openssl made the hash link"
    user, password = couch_server.admin
    client = CouchClient(tls_url, db_name, username=user, password=password, verify=str(ca_dir))
    saved = client.save({"_id": "over-tls", "value": 1})
    assert client.get("over-tls") == saved


def test_a_ca_directory_without_our_ca_refuses_the_server(tls_url, db_name, tmp_path):
    # The directory is really what verifies: without the hash link the same file is not found.
    ca_dir = tmp_path / "certificates"
    ca_dir.mkdir()
    shutil.copy(CERT, ca_dir / CERT.name)
    client = CouchClient(tls_url, db_name, verify=str(ca_dir))
    with pytest.raises(ServerUnavailable) as caught:
        client.db_info()
    assert "TLS verification" in str(caught.value)


@pytest.mark.parametrize("how", ["--ca-bundle", "verify: in the config file", "PICAS_VERIFY"])
def test_the_command_line_takes_a_ca_directory(how, tls_url, couch_server, db_name, tmp_path):
    ca_dir = hashed_ca_directory(tmp_path / "certificates", CERT)
    env = pilot_env(couch_server, db_name, PICAS_HOST_URL=tls_url)
    args = [sys.executable, "-m", "picas", "db", "info", "--json"]
    if how == "--ca-bundle":
        args += ["--ca-bundle", str(ca_dir)]
    elif how == "PICAS_VERIFY":
        env["PICAS_VERIFY"] = str(ca_dir)
    else:
        conf = tmp_path / "conf.yml"
        conf.write_text(f"profiles:\n  default:\n    verify: {ca_dir}\n")
        env["PICAS_CONFIG"] = str(conf)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == db_name
