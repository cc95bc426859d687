"""http(s):// and dav(s):// URLs through urllib3: the fallback when gfal2 is not installed.

``dav://`` means ``http://`` and ``davs://`` means ``https://``, as in gfal2.
Files stream in 1 MiB chunks both ways, so a file of any size costs little
memory; a download is checksummed on the way.  Uploads create the missing
parent folders (MKCOL), go to a hidden temporary name and are then renamed
(MOVE, ``Overwrite: F`` unless overwriting: the server refuses atomically if
the name is taken), so a broken connection or a dead server never leaves half
a file under the real name; a server without MOVE gets a direct PUT with
``If-None-Match: *``, and a failed one is deleted again.
Redirects (dCache sends reads and writes to a pool) are followed here rather
than by urllib3, so that a file body is rewound and credentials are chosen
for the host redirected to.

Credentials come from :mod:`picas.staging.credentials`: a ``~/.netrc`` entry
for the host (basic auth), else a bearer token over TLS; an X.509 proxy is
offered as the client certificate, and the grid CA directory is trusted on
top of the system's CAs.
"""
from __future__ import annotations

import base64
import binascii
import os
import ssl
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError

from picas.errors import PicasError
from picas.staging import credentials
from picas.staging.checksum import Hasher, normalize
from picas.staging.errors import AccessDenied, DestinationExists, SourceMissing, StagingError, TransferError
from picas.staging.storage import Cancel, RemoteFile, Storage, check_progress, pump
from picas.support.credentials import redact_url

__all__ = ["WebDavStorage", "http_url", "parse_digest"]

_SCHEMES = {"http": "http", "https": "https", "dav": "http", "davs": "https"}
_REDIRECTS = (301, 302, 303, 307, 308)
_PROPFIND = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
             b'<D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>')
_DAV = "{DAV:}"
#: Bytes per socket read and write: large enough to keep the per-chunk Python cost small, small enough
#: that the server keeps sending while a chunk is written to disk.
_NET_CHUNK = 256 * 1024


def http_url(url: str) -> str:
    """The http(s) URL of a dav(s) URL (others unchanged)."""
    scheme, rest = url.split(":", 1)
    return _SCHEMES.get(scheme.lower(), scheme) + ":" + rest


def _parent(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    parent = path.rsplit("/", 1)[0] + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parent, "", ""))


def parse_digest(header: str, algorithm: str) -> str | None:
    """The ``algorithm`` value of an RFC 3230 ``Digest`` header, as canonical hex; None if absent or malformed.

    dCache and XRootD answer ``adler32=0a3f11c2``; md5 comes in base64, as the RFC has it.
    """
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() != algorithm or not value:
            continue
        try:
            if algorithm == "md5" and len(value) != 32:
                value = base64.b64decode(value, validate=True).hex()
            return normalize(algorithm, value)
        except (ValueError, binascii.Error, PicasError):
            return None
    return None


def _finish(response, complete: bool) -> None:
    """Give the connection back; one whose answer was not read to the end is closed, never reused."""
    if not complete:
        response.close()
    response.release_conn()


class _Body:
    """A file body that checks the deadline and the cancel flag at every block urllib3 reads."""

    def __init__(self, handle, deadline: float, cancel: Cancel | None, url: str) -> None:
        self.handle, self.deadline, self.cancel, self.url = handle, deadline, cancel, url

    def read(self, size: int = -1) -> bytes:
        check_progress(self.deadline, self.cancel, f"uploading to {redact_url(self.url)}", self.url)
        return self.handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()


class WebDavStorage(Storage):
    """http, https, dav and davs through urllib3 (a WebDAV server, dCache, XRootD's HTTP door...)."""

    name = "http"

    def __init__(self, environ: dict | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self._pool: urllib3.PoolManager | None = None
        self._folders: set[str] = set()

    def schemes(self) -> frozenset[str]:
        return frozenset(_SCHEMES)

    # ------------------------------------------------------------------ plumbing
    def _manager(self) -> urllib3.PoolManager:
        if self._pool is None:
            context = ssl.create_default_context()
            try:
                ca_dir = credentials.ca_dir(self.environ)
                if ca_dir:
                    context.load_verify_locations(capath=ca_dir)
                proxy = credentials.x509_proxy(self.environ)
                if proxy:
                    context.load_cert_chain(proxy)
            except (OSError, ssl.SSLError) as exc:
                raise StagingError(f"cannot load the grid certificates: {exc}",
                                   hint="check X509_USER_PROXY and X509_CERT_DIR") from None
            self._pool = urllib3.PoolManager(num_pools=8, maxsize=2, ssl_context=context, blocksize=_NET_CHUNK,
                                             headers={"User-Agent": "picas-staging"})
        return self._pool

    def _auth(self, url: str) -> dict:
        parts = urllib.parse.urlsplit(url)
        login = credentials.netrc_login(parts.hostname or "", self.environ)
        if login:
            pair = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        if parts.scheme == "https":
            token = credentials.bearer_token(self.environ)
            if token:
                return {"Authorization": f"Bearer {token}"}
        return {}

    def _request(self, method: str, url: str, timeout: float, *, headers: dict | None = None, body=None,
                 stream: bool = False) -> urllib3.BaseHTTPResponse:
        """One request, following redirects; connection trouble becomes a transient TransferError."""
        target = http_url(url)
        read_timeout = max(1.0, timeout)
        for _ in range(6):
            if hasattr(body, "seek"):
                body.seek(0)
            try:
                response = self._manager().urlopen(
                    method, target, body=body, headers={**(headers or {}), **self._auth(target)},
                    redirect=False, retries=False, preload_content=not stream,
                    timeout=urllib3.Timeout(connect=min(30.0, read_timeout), read=read_timeout))
            except TransferError:
                raise
            except Urllib3SSLError as exc:
                raise TransferError(f"TLS failed with {redact_url(url)}: {exc}", url=url, transient=False,
                                    hint="set X509_CERT_DIR to the grid CA directory") from None
            except (Urllib3Error, OSError) as exc:
                raise TransferError(f"{method} {redact_url(url)} failed: {type(exc).__name__}: {exc}",
                                    url=url) from None
            if response.status in _REDIRECTS and response.headers.get("Location"):
                response.drain_conn()
                target = urllib.parse.urljoin(target, response.headers["Location"])
                if response.status == 303:
                    method, body = "GET", None
                continue
            return response
        raise TransferError(f"{method} {redact_url(url)}: too many redirects", url=url, transient=False)

    @staticmethod
    def _fail(response, url: str, what: str) -> TransferError:
        status = response.status
        reason = f"{what} {redact_url(url)}: HTTP {status} {response.reason or ''}".rstrip()
        if status == 404:
            return SourceMissing(f"{reason} (no such file)", url=url)
        if status in (401, 403):
            return AccessDenied(reason, url=url)
        if status == 412:
            return DestinationExists(f"{redact_url(url)} already exists", url=url)
        transient = status >= 500 or status in (408, 425, 429)
        return TransferError(reason, url=url, transient=transient)

    # ------------------------------------------------------------------ the contract
    def stat(self, url: str, timeout: float) -> RemoteFile | None:
        response = self._request("PROPFIND", url, timeout, headers={"Depth": "0", "Content-Type": "application/xml"},
                                 body=_PROPFIND)
        if response.status == 404:
            return None
        if response.status in (400, 405, 501):  # not a WebDAV server: plain HTTP knows files only
            response = self._request("HEAD", url, timeout)
            if response.status == 404:
                return None
            if response.status != 200:
                raise self._fail(response, url, "HEAD")
            length = response.headers.get("Content-Length")
            return RemoteFile(size=int(length) if length and length.isdigit() else None)
        if response.status != 207:
            raise self._fail(response, url, "PROPFIND")
        return self._parse_stat(response.data, url)

    @staticmethod
    def _parse_stat(data: bytes, url: str) -> RemoteFile:
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise TransferError(f"PROPFIND {redact_url(url)}: unreadable answer ({exc})", url=url) from None
        response = root.find(f"{_DAV}response")
        prop = response.find(f".//{_DAV}prop") if response is not None else None
        if prop is None:
            raise TransferError(f"PROPFIND {redact_url(url)}: the answer has no properties", url=url)
        is_dir = prop.find(f"{_DAV}resourcetype/{_DAV}collection") is not None
        length = prop.findtext(f"{_DAV}getcontentlength") or "0"
        return RemoteFile(size=0 if is_dir else int(length.strip() or 0), is_dir=is_dir)

    def get(self, url: str, path, timeout: float, algorithms: tuple[str, ...] = (),
            cancel: Cancel | None = None) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        hashers = [Hasher(name) for name in dict.fromkeys(algorithms)]
        response = self._request("GET", url, timeout, stream=True)
        complete = False
        try:
            if response.status != 200:
                response.drain_conn()
                complete = True
                raise self._fail(response, url, "GET")
            with open(path, "wb") as out:
                pump(response.stream(_NET_CHUNK, decode_content=False), out, hashers, deadline, cancel,
                     f"downloading {redact_url(url)}", url)
            complete = True
        except (Urllib3Error, OSError) as exc:
            raise TransferError(f"downloading {redact_url(url)} broke off: {type(exc).__name__}: {exc}",
                                url=url) from None
        finally:
            _finish(response, complete)
        return {hasher.algorithm: hasher.hexdigest() for hasher in hashers}

    def put(self, path, url: str, overwrite: bool, timeout: float, cancel: Cancel | None = None) -> None:
        """PUT under a temporary name in the destination folder, then MOVE into place.

        So a connection that breaks (or a server that dies) mid-upload leaves
        at most a hidden ``.name.picas-XXXXXXXX`` file, never half a file
        under the real name that a later run would take for the output.
        MOVE with ``Overwrite: F`` refuses atomically when the name is taken.
        A server without MOVE gets a direct PUT (``If-None-Match: *``).
        """
        Path(path).stat()
        parent = _parent(url)
        self.mkdir(parent, timeout)
        name = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        temp = parent + f".{name}.picas-{uuid.uuid4().hex[:8]}"
        self._upload(path, temp, True, timeout, cancel)
        try:
            moved = self._move(temp, url, overwrite, timeout)
        except BaseException:
            self._remove_partial(temp, timeout)
            raise
        if not moved:
            self._remove_partial(temp, timeout)
            if overwrite:
                self.delete(url, timeout)  # dCache refuses to overwrite in place; gfal2 deletes first too
            self._upload(path, url, overwrite, timeout, cancel)

    def _move(self, src: str, dst: str, overwrite: bool, timeout: float) -> bool:
        """MOVE ``src`` to ``dst``; False when the server does not do MOVE."""
        headers = {"Destination": http_url(dst), "Overwrite": "T" if overwrite else "F"}
        response = self._request("MOVE", src, timeout, headers=headers)
        if response.status in (200, 201, 204):
            return True
        if response.status in (405, 501):
            return False
        raise self._fail(response, dst, "MOVE to")

    def _upload(self, path, url: str, overwrite: bool, timeout: float, cancel: Cancel | None) -> None:
        size = Path(path).stat().st_size
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        if not overwrite:
            headers["If-None-Match"] = "*"
        for attempt in range(2):
            with open(path, "rb") as handle:
                body = _Body(handle, time.monotonic() + timeout, cancel, url)
                try:
                    response = self._request("PUT", url, timeout, headers=headers, body=body)
                except TransferError:
                    self._remove_partial(url, timeout)
                    raise
            if response.status in (200, 201, 204):
                return
            if response.status == 409 and attempt == 0:  # the parent folder went away since we made it
                self._folders.discard(_parent(url))
                self.mkdir(_parent(url), timeout)
                continue
            error = self._fail(response, url, "PUT")
            if not isinstance(error, DestinationExists):
                self._remove_partial(url, timeout)
            raise error

    def _remove_partial(self, url: str, timeout: float) -> None:
        try:
            self.delete(url, min(timeout, 30.0))
        except StagingError:
            pass  # the storage is away; the stager knows a failed upload leaves nothing it counts on

    def checksum(self, url: str, algorithm: str, timeout: float) -> str | None:
        """The storage's own checksum through RFC 3230 ``Want-Digest`` (dCache, XRootD, EOS), or None."""
        response = self._request("HEAD", url, timeout, headers={"Want-Digest": algorithm})
        if response.status != 200:
            raise self._fail(response, url, "HEAD")
        return parse_digest(response.headers.get("Digest") or "", algorithm)

    def read(self, url: str, timeout: float) -> Iterator[bytes]:
        response = self._request("GET", url, timeout, stream=True)
        complete = False
        try:
            if response.status != 200:
                response.drain_conn()
                complete = True
                raise self._fail(response, url, "GET")
            try:
                yield from response.stream(_NET_CHUNK, decode_content=False)
            except (Urllib3Error, OSError) as exc:
                raise TransferError(f"reading {redact_url(url)} broke off: {exc}", url=url) from None
            complete = True
        finally:
            _finish(response, complete)

    def delete(self, url: str, timeout: float) -> None:
        response = self._request("DELETE", url, timeout)
        if response.status not in (200, 202, 204, 404):
            raise self._fail(response, url, "DELETE")

    def mkdir(self, url: str, timeout: float) -> None:
        """MKCOL, and on 409 (no parent) the parent first; known folders are not asked about again."""
        url = url if url.endswith("/") else url + "/"
        if url in self._folders or urllib.parse.urlsplit(url).path in ("", "/"):
            return
        response = self._request("MKCOL", url, timeout)
        if response.status == 409:
            self.mkdir(_parent(url), timeout)
            response = self._request("MKCOL", url, timeout)
        # 405: it exists already (or the server makes no folders, and the PUT will say more).
        if response.status not in (200, 201, 405, 501):
            raise self._fail(response, url, "MKCOL")
        self._folders.add(url)

    def listdir(self, url: str, timeout: float) -> list[str]:
        url = url if url.endswith("/") else url + "/"
        response = self._request("PROPFIND", url, timeout, headers={"Depth": "1", "Content-Type": "application/xml"},
                                 body=_PROPFIND)
        if response.status != 207:
            raise self._fail(response, url, "PROPFIND")
        own = urllib.parse.unquote(urllib.parse.urlsplit(http_url(url)).path).rstrip("/")
        names = []
        for href in ET.fromstring(response.data).iter(f"{_DAV}href"):
            path = urllib.parse.unquote(urllib.parse.urlsplit(href.text or "").path).rstrip("/")
            if path and path != own:
                names.append(path.rsplit("/", 1)[-1])
        return sorted(names)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()
            self._pool = None
        self._folders.clear()
