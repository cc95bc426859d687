"""A real headless Chromium, driven through the DevTools protocol over a pipe (no websocket library needed).

Chromium's ``--remote-debugging-pipe`` reads protocol messages from fd 3 and
writes answers and events to fd 4, each a JSON text ended by a NUL byte.
:class:`Browser` opens one page, records every request the page makes, every
console error and uncaught exception, and can evaluate JavaScript and take
screenshots.  Outside requests are also made impossible: every host name
resolves to nothing, except 127.0.0.1 (the dashboard under test).

Locally the tests skip without Chromium; with CI=true a missing Chromium fails.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
         "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe",
         # No network: every name resolves to nothing; literal 127.0.0.1 still works for the dashboard.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1")


def chromium_binary() -> str:
    """The Chromium to use; skips the test locally when there is none, fails in CI."""
    found = os.environ.get("PICAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("headless Chromium is missing in CI: scripts/test.sh must install Debian's 'chromium'")
    pytest.skip("headless Chromium is not installed (apt-get install chromium)")


class Browser:
    """One Chromium process with one page; see the module docstring."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        binary = chromium_binary()
        self.profile = tempfile.mkdtemp(prefix="picas-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # runs in the child: the protocol wants exactly fds 3 and 4
            reader, writer = os.dup(to_browser_r), os.dup(from_browser_w)  # out of the way of 3 and 4 first
            os.dup2(reader, 3)
            os.dup2(writer, 4)

        # pass_fds keeps 3 and 4 open in the child (the rest is closed after fds() has run).
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     preexec_fn=fds, pass_fds=(3, 4),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._answers: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)

    # ------------------------------------------------------------------ protocol
    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict) -> None:
        if "id" in message:
            box = self._answers.get(message["id"])
            if box is not None:
                box.put(message)
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            words = (str(a.get("value", a.get("description"))) for a in params["args"])
            self.errors.append("console: " + " ".join(words))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip())

    def send(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60.0) -> dict:
        with self._lock:
            self._next += 1
            number = self._next
            box: queue.Queue = queue.Queue()
            self._answers[number] = box
        message = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            answer = box.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"Chromium did not answer {method} within {timeout} s") from None
        finally:
            self._answers.pop(number, None)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    # ------------------------------------------------------------------ page
    def evaluate(self, expression: str) -> object:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)

    def wait_for(self, expression: str, timeout: float = 60.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except AssertionError:
                value = None  # the page is between documents
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {expression}; errors: {self.errors}")

    def screenshot(self, path: str | None = None, full_page: bool = False, scale: float = 1.0) -> bytes:
        """A PNG of the viewport (or the whole page), at ``scale``; written to ``path`` when given."""
        width = self.evaluate("document.documentElement.clientWidth")
        height = self.evaluate("document.documentElement.scrollHeight" if full_page else "window.innerHeight")
        params = {"format": "png", "captureBeyondViewport": full_page,
                  "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}}
        data = base64.b64decode(self.send("Page.captureScreenshot", params, session=True)["data"])
        if path:
            with open(path, "wb") as handle:
                handle.write(data)
        return data

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def png_colours(data: bytes, step: int = 7) -> int:
    """How many distinct colours a PNG shows (every ``step``-th pixel): 1 for a blank page.

    A minimal decoder for what Chromium writes (8-bit RGB or RGBA, not
    interlaced), so that the test needs no imaging library.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and not interlace, f"unexpected PNG format {header}"
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    seen = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                upleft = previous[i - channels] if i >= channels else 0
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else upleft)) & 255
        previous = line
        if row % step == 0:
            for x in range(0, width, step):
                seen.add(bytes(line[x * channels:x * channels + 3]))
    return len(seen)
