"""One transport shared by many threads: answers never cross, and the cookie jar stays whole.

A stand-in server (``HTTPStandIn``) echoes each request's path, so a
thread that got another thread's answer would see it, and sets a new
cookie with every answer, so the jar changes while other threads read it
to build their ``Cookie`` headers.  Thread switches are made very frequent
for the test so that unlocked access would be caught in the act.
"""
from __future__ import annotations

import json
import sys
import threading

import pytest

from picas.core.http import Transport
from tests.core import test_transport
from tests.core.test_transport import HTTPStandIn, SeenRequest

stand_in, no_proxies = test_transport.stand_in, test_transport.no_proxies  # the fixtures, shared

THREADS = 8
REQUESTS = 100


def echo_with_a_new_cookie(request: SeenRequest):
    path = request.line.split(" ")[1]
    name = path.strip("/").replace("/", "-")
    return 200, {"Set-Cookie": f"{name}=v{name}; Path=/"}, json.dumps({"path": path}).encode()


@pytest.fixture
def frequent_thread_switches():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_threads_sharing_a_transport_get_their_own_answers_and_all_cookies(stand_in, no_proxies,
                                                                           frequent_thread_switches):
    server = stand_in(HTTPStandIn(echo_with_a_new_cookie))
    transport = Transport(f"http://127.0.0.1:{server.port}", pool_size=4)
    failures: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for number in range(REQUESTS):
                path = f"/t{thread}/r{number}"
                answer = transport.request("GET", path).json()
                assert answer == {"path": path}, f"{path} got the answer to {answer['path']}"
        except BaseException as exc:  # reported below, whatever it is
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, f"{len(failures)} threads failed, the first with {failures[0]!r}"
    expected = {f"t{t}-r{n}": f"vt{t}-r{n}" for t in range(THREADS) for n in range(REQUESTS)}
    assert transport.cookies == expected, "no cookie was lost"
    for request in server.requests:
        pairs = [pair.split("=", 1) for pair in request.headers.get("cookie", "").split("; ") if pair]
        assert all(expected.get(name) == value for name, value in pairs), "every Cookie header is well-formed"
