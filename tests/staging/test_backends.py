"""Each storage backend against real storage: the WebDAV server (urllib3 and gfal2), and plain files."""
from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest

from picas.server.local import free_port
from picas.staging.backends.local import FileStorage
from picas.staging.errors import AccessDenied, DestinationExists, SourceMissing, TransferError, UnsupportedScheme
from picas.staging.registry import Registry
from picas.staging.transfer import Transfer
from tests.helpers import wait_for
from tests.staging.conftest import require_gfal2

T = 30.0


def test_the_registry_chooses_by_scheme_and_names_the_package_for_an_unknown_one(backend_name, registry):
    assert registry.for_url("dav://h/x").name == backend_name
    assert registry.for_url("https://h/x").name == backend_name
    with pytest.raises(UnsupportedScheme) as caught:
        registry.for_url("root://eos.example.org//eos/x")
    message = str(caught.value)
    assert "'root://'" in message and "gfal2-plugin-xrootd" in message
    assert caught.value.exit_code != 0


def test_a_file_goes_up_and_comes_back_identical(registry, dav, area, tmp_path):
    name, folder = area
    data = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    url = dav.dav(f"{name}/deep/er/up.bin")
    storage = registry.for_url(url)
    assert storage.stat(url, T) is None
    storage.put(local, url, False, T)  # creates deep/er/ (MKCOL)
    assert (folder / "deep" / "er" / "up.bin").read_bytes() == data
    assert not [p for p in (folder / "deep" / "er").iterdir() if p.name != "up.bin"], "a temporary file stayed"
    info = storage.stat(url, T)
    assert info.size == len(data) and not info.is_dir
    assert storage.stat(dav.dav(f"{name}/deep/"), T).is_dir
    back = tmp_path / "back.bin"
    digests = storage.get(url, back, T, ("adler32",))
    assert back.read_bytes() == data
    assert digests in ({}, {"adler32": f"{zlib.adler32(data):08x}"})
    assert b"".join(storage.read(url, T)) == data
    assert storage.listdir(dav.dav(f"{name}/deep/er/"), T) == ["up.bin"]
    assert storage.checksum(url, "adler32", T) is None  # wsgidav keeps no checksums


def test_no_overwrite_unless_asked(registry, dav, area, tmp_path):
    name, folder = area
    folder.mkdir()
    (folder / "x.txt").write_text("theirs")
    local = tmp_path / "x.txt"
    local.write_text("mine!")
    url = dav.dav(f"{name}/x.txt")
    storage = registry.for_url(url)
    with pytest.raises(DestinationExists):
        storage.put(local, url, False, T)
    assert (folder / "x.txt").read_text() == "theirs"
    storage.put(local, url, True, T)
    assert (folder / "x.txt").read_text() == "mine!"


def test_missing_files_and_folders(registry, dav, area, tmp_path):
    name, folder = area
    url = dav.dav(f"{name}/absent.dat")
    storage = registry.for_url(url)
    assert storage.stat(url, T) is None
    with pytest.raises(SourceMissing):
        storage.get(url, tmp_path / "x", T)
    storage.delete(url, T)  # absent is fine
    storage.mkdir(dav.dav(f"{name}/a/b/c/"), T)
    storage.mkdir(dav.dav(f"{name}/a/b/c/"), T)  # present is fine
    assert (folder / "a" / "b" / "c").is_dir()


def test_basic_auth_comes_from_netrc_in_the_environment(backend_name, dav_auth, tmp_path):
    server, environ = dav_auth
    names = ["gfal2"] if backend_name == "gfal2" else ["http"]
    local = tmp_path / "f.txt"
    local.write_text("secret data")
    url = server.dav(f"auth-{backend_name}/f.txt")
    without = Registry(names, environ={}).for_url(url)
    with pytest.raises(AccessDenied, match="401"):
        without.put(local, url, False, T)
    with_login = Registry(names, environ=environ).for_url(url)
    with_login.put(local, url, False, T)
    assert (server.root / f"auth-{backend_name}" / "f.txt").read_text() == "secret data"
    assert with_login.stat(url, T).size == len("secret data")


@pytest.mark.parametrize("kind", ["builtin", "gfal2"])
def test_file_urls(kind, tmp_path):
    if kind == "gfal2":
        require_gfal2()
    storage = Registry(["gfal2"] if kind == "gfal2" else ["file"], environ={}).for_url("file:///x")
    src = tmp_path / "a b.txt"
    src.write_bytes(b"hello")
    url = "file://" + str(tmp_path / "out dir" / "a%20b.txt").replace(" ", "%20")
    storage.put(src, url, False, T)
    assert (tmp_path / "out dir" / "a b.txt").read_bytes() == b"hello"
    assert storage.stat(url, T).size == 5
    with pytest.raises(DestinationExists):
        storage.put(src, url, False, T)
    storage.get(url, tmp_path / "copy", T)
    assert (tmp_path / "copy").read_bytes() == b"hello"
    assert sorted(os.listdir(tmp_path / "out dir")) == ["a b.txt"]
    storage.delete(url, T)
    assert storage.stat(url, T) is None
    assert isinstance(Registry(["file"], environ={}).for_url(url), FileStorage)


def test_a_plain_http_server_without_webdav_serves_stage_in(registry, tmp_path):
    """Python's own http.server answers PROPFIND with 501: the size then comes from HEAD."""
    served = tmp_path / "served"
    served.mkdir()
    data = os.urandom(300_000)
    (served / "f.bin").write_bytes(data)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=served,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/f.bin"
        storage = registry.for_url(url)
        wait_for(lambda: _answers(storage, url), timeout=30, what="http.server")
        assert storage.stat(url, T).size == len(data)
        assert storage.stat(f"http://127.0.0.1:{port}/absent", T) is None
        Transfer(registry).fetch(url, tmp_path / "got.bin")
        assert (tmp_path / "got.bin").read_bytes() == data
    finally:
        proc.kill()
        proc.wait()


def _answers(storage, url: str) -> bool:
    try:
        return storage.stat(url, 2.0) is not None
    except TransferError:
        return False


@pytest.mark.parametrize("scheme", ["file", "dav"])
def test_a_transfer_ends_when_cancelled_or_past_its_deadline(scheme, dav, area, tmp_path):
    """The built-in backends check the cancel flag and the deadline at every chunk, in both directions."""
    name, _ = area
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(2 * 1024 * 1024))
    url = dav.dav(f"{name}/big.bin") if scheme == "dav" else (tmp_path / "remote" / "big.bin").as_uri()
    reg = Registry(["http", "file"], environ={})
    try:
        storage = reg.for_url(url)
        with pytest.raises(TransferError, match="was cancelled"):
            storage.put(local, url, False, T, cancel=lambda: True)
        with pytest.raises(TransferError, match="took longer than its timeout"):
            storage.put(local, url, False, -1.0)
        assert storage.stat(url, T) is None, "nothing under the real name after a broken upload"
        storage.put(local, url, False, T)
        with pytest.raises(TransferError, match="was cancelled"):
            storage.get(url, tmp_path / "back.bin", T, ("adler32",), cancel=lambda: True)
        with pytest.raises(TransferError, match="took longer than its timeout"):
            storage.get(url, tmp_path / "back.bin", -1.0, ("adler32",))
    finally:
        reg.close()
