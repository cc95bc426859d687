"""The client against a real server behind a faulty proxy: lost answers to writes, cookie sessions.

The proxy is the only stand-in here, and it stands for the network, not for
CouchDB: it forwards each request to the real test server and, when told,
drops the server's answer and closes the connection, as a broken network does
after the write reached the server.
"""
import socket

import pytest

from picas.core.client import CouchClient
from picas.errors import Conflict
from tests.helpers import StandInServer, client_for


class AnswerDroppingProxy(StandInServer):
    """Forwards HTTP requests one connection at a time; drops the answers to the next N writes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_writes = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        try:
            while True:
                request = _read_message(conn)
                if not request:
                    return
                upstream.sendall(request)
                answer = _read_message(upstream)
                if request.split(b" ", 1)[0] in (b"PUT", b"POST") and self.drop_writes > 0:
                    self.drop_writes -= 1
                    return  # the write reached the server; its answer is lost
                conn.sendall(answer)
        finally:
            conn.close()
            upstream.close()


def _read_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            while not body.endswith(b"0\r\n\r\n"):
                body += sock.recv(65536)
            return head + b"\r\n\r\n" + body
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def proxy(couch_server):
    port = int(couch_server.url.rsplit(":", 1)[1])
    handle = AnswerDroppingProxy(port)
    yield handle
    handle.close()


def _via(proxy, couch_server, db_name):
    user, password = couch_server.admin
    return CouchClient(f"http://127.0.0.1:{proxy.port}", db_name, username=user, password=password)


def test_a_lost_answer_to_a_write_that_landed_adopts_its_revision(couch_server, db_name, proxy):
    direct = client_for(couch_server, db_name)
    client = _via(proxy, couch_server, db_name)
    doc = client.save({"_id": "t", "n": 1})
    doc["n"] = 2
    proxy.drop_writes = 1
    client.save(doc)
    stored = direct.get("t")
    assert stored["n"] == 2 and doc["_rev"] == stored["_rev"], "the write happened once and we know its revision"
    doc["n"] = 3
    client.save(doc)                                  # and the next write goes on from there
    assert direct.get("t")["n"] == 3


def test_a_lost_answer_when_someone_else_wrote_meanwhile_is_a_conflict(couch_server, db_name, proxy):
    direct = client_for(couch_server, db_name)
    client = _via(proxy, couch_server, db_name)
    doc = client.save({"_id": "t", "n": 1})
    other = direct.get("t")
    other["n"] = 99
    direct.save(other)                                # another client wins the race
    doc["n"] = 2
    proxy.drop_writes = 1
    with pytest.raises(Conflict):
        client.save(doc)
    assert direct.get("t")["n"] == 99


def test_a_lost_answer_to_a_bulk_write_is_resolved_per_document(couch_server, db_name, proxy):
    direct = client_for(couch_server, db_name)
    client = _via(proxy, couch_server, db_name)
    direct.save({"_id": "taken"})
    proxy.drop_writes = 1
    results = client.bulk_save([{"_id": "a"}, {"_id": "b"}])
    assert [r.ok for r in results] == [True, True]
    assert direct.get("a") and direct.get("b")


def test_cookie_sessions_log_in_once(couch_server, db_name):
    user, password = couch_server.admin
    client = CouchClient(couch_server.url, db_name, username=user, password=password, cookie_auth=True)
    client.save({"_id": "c"})
    assert "Authorization" not in client._headers and client.transport.cookies.get("AuthSession")
    assert client.get("c")["_id"] == "c"
