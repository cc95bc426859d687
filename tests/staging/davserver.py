"""A real WebDAV server (wsgidav on cheroot) on loopback, in a process of its own so that tests can kill it.

Run as a script: ``python davserver.py ROOT PORT [--user U --password P] [--rate BYTES_PER_S]``.
It prints ``ready`` once it listens.  ``--rate`` slows every request body and
response body down to that rate, so that a test can kill the server while a
transfer is surely under way; the WebDAV behaviour itself is wsgidav's own.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 64 * 1024


class _SlowInput:
    def __init__(self, stream, rate: float) -> None:
        self.stream, self.rate = stream, rate

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(min(size, CHUNK) if size and size > 0 else CHUNK)
        time.sleep(len(data) / self.rate)
        return data

    def readline(self, *args) -> bytes:
        return self.stream.readline(*args)


def throttled(app, rate: float):
    def wrapper(environ, start_response):
        environ["wsgi.input"] = _SlowInput(environ["wsgi.input"], rate)
        for chunk in app(environ, start_response):
            for start in range(0, len(chunk), CHUNK):
                piece = chunk[start:start + CHUNK]
                time.sleep(len(piece) / rate)
                yield piece
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("port", type=int)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--rate", type=float)
    args = parser.parse_args()
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    config = {"host": "127.0.0.1", "port": args.port, "provider_mapping": {"/": args.root}, "verbose": 0,
              "logging": {"enable": False}, "property_manager": True, "lock_storage": True}
    if args.user:
        config["http_authenticator"] = {"domain_controller": None, "accept_basic": True, "accept_digest": False,
                                        "default_to_digest": False}
        config["simple_dc"] = {"user_mapping": {"*": {args.user: {"password": args.password}}}}
    else:
        config["simple_dc"] = {"user_mapping": {"*": True}}
    app = WsgiDAVApp(config)
    if args.rate:
        app = throttled(app, args.rate)
    server = wsgi.Server(("127.0.0.1", args.port), app, numthreads=4)
    server.prepare()
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve()


@dataclass
class DavServer:
    """A handle on one server process: its URL, its folder on disk, and stop/start for fault tests."""

    root: Path
    port: int
    user: str | None = None
    password: str | None = None
    rate: float | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def dav(self, path: str = "") -> str:
        return f"dav://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self, rate: float | None = None) -> "DavServer":
        self.rate = rate
        argv = [sys.executable, __file__, str(self.root), str(self.port)]
        if self.user:
            argv += ["--user", self.user, "--password", self.password or ""]
        if rate:
            argv += ["--rate", str(rate)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"the WebDAV server did not start: {line} {self.proc.stderr.read()}")
        return self

    def kill(self) -> None:
        """SIGKILL: the server goes away mid-request, as a crashed storage node does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """The server keeps nothing in memory that matters, so stopping it is killing it."""
        self.kill()


if __name__ == "__main__":
    main()
