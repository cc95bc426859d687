"""One file in and out through :class:`Transfer`, against the real WebDAV server, with each backend.

Covers stage-in with a correct and a wrong checksum, a missing source, an
upload verified by reading it back over plain HTTP, skipping an unchanged
output, no overwrite unless asked, and storage that dies in the middle of a
transfer: retries, then an error, and nothing lost (no partial file under a
real name, the source intact, the next try after the storage is back works).
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import zlib

import pytest
import urllib3

from picas.staging.checksum import Checksum
from picas.staging.errors import ChecksumMismatch, DestinationExists, SourceMissing, TransferError
from picas.staging.registry import Registry
from picas.staging.transfer import Transfer, TransferPolicy
from tests.helpers import wait_for
from tests.staging.conftest import start_dav

FAST = TransferPolicy(attempts=3, base_delay=0.1, max_delay=0.3, base_timeout=30.0)


@pytest.fixture
def transfer(registry: Registry) -> Transfer:
    return Transfer(registry, FAST)


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


def put_on_server(folder, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_stage_in_with_the_right_checksum(transfer, dav, area, tmp_path):
    name, folder = area
    data = os.urandom(700_001)
    put_on_server(folder, "in.dat", data)
    result = transfer.fetch(dav.dav(f"{name}/in.dat"), tmp_path / "work" / "in.dat",
                            Checksum.parse(f"adler32:{adler(data).upper()}"), algorithms=("md5",))
    assert (tmp_path / "work" / "in.dat").read_bytes() == data
    assert result.size == len(data) and result.digests["md5"] == hashlib.md5(data).hexdigest()
    transfer.fetch(dav.dav(f"{name}/in.dat"), tmp_path / "again.dat", Checksum("md5", hashlib.md5(data).hexdigest()))
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["in.dat"]


def test_stage_in_with_a_wrong_checksum_leaves_nothing(transfer, dav, area, tmp_path):
    name, folder = area
    put_on_server(folder, "in.dat", b"the real content")
    with pytest.raises(ChecksumMismatch, match="but the token expects 00000001"):
        transfer.fetch(dav.dav(f"{name}/in.dat"), tmp_path / "in.dat", Checksum.parse("adler32:1"))
    assert list(tmp_path.iterdir()) == []


def test_a_missing_source_fails_at_once(transfer, dav, area, tmp_path, caplog):
    name, _ = area
    with caplog.at_level(logging.WARNING, "picas.staging"):
        with pytest.raises(SourceMissing, match="does not exist"):
            transfer.fetch(dav.dav(f"{name}/nothing.dat"), tmp_path / "x")
    assert "try 2" not in caplog.text  # not worth retrying
    assert list(tmp_path.iterdir()) == []


def test_stage_out_is_verified_by_reading_it_back(transfer, dav, area, tmp_path):
    name, _ = area
    data = os.urandom(2_000_003)
    local = tmp_path / "out.dat"
    local.write_bytes(data)
    url = dav.dav(f"{name}/results/out.dat")
    result = transfer.store(local, url)
    assert not result.skipped and result.checksum() == f"adler32:{adler(data)}"
    back = urllib3.request("GET", f"{dav.url}/{name}/results/out.dat")
    assert back.status == 200 and back.data == data
    assert transfer.remote_checksum(url) == adler(data)
    assert transfer.holds(url, len(data), Checksum("adler32", adler(data)))
    assert not transfer.holds(url, len(data), Checksum("adler32", "00000000"))
    assert transfer.listdir(dav.dav(f"{name}/results/")) == ["out.dat"]
    transfer.delete(url)
    transfer.delete(url)  # nothing there is fine
    assert transfer.stat(url) is None and transfer.listdir(dav.dav(f"{name}/results/")) == []


def test_an_unchanged_output_is_skipped_and_a_changed_one_needs_overwrite(transfer, dav, area, tmp_path):
    name, folder = area
    local = tmp_path / "out.txt"
    local.write_text("version 1")
    url = dav.dav(f"{name}/out.txt")
    assert not transfer.store(local, url).skipped
    mtime = os.stat(folder / "out.txt").st_mtime_ns
    again = transfer.store(local, url)
    assert again.skipped and again.checksum() == f"adler32:{adler(b'version 1')}"
    assert os.stat(folder / "out.txt").st_mtime_ns == mtime  # not uploaded again
    local.write_text("version 2")
    with pytest.raises(DestinationExists, match="different content"):
        transfer.store(local, url)
    assert (folder / "out.txt").read_text() == "version 1"
    transfer.store(local, url, overwrite=True)
    assert (folder / "out.txt").read_text() == "version 2"


# --------------------------------------------------------------------------- storage going away

SIZE = 12 * 1024 * 1024
RATE = 3 * 1024 * 1024  # bytes/s: the transfer surely runs for a few seconds, so the kill lands inside it


def _in_background(action):
    outcome = {}

    def run():
        try:
            outcome["result"] = action()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def test_storage_dying_mid_download_retries_then_fails_and_loses_nothing(registry, tmp_path, caplog):
    server = start_dav(tmp_path / "store", rate=RATE)
    data = os.urandom(SIZE)
    put_on_server(server.root, "big.dat", data)
    work = tmp_path / "work"
    transfer = Transfer(registry, FAST)
    try:
        with caplog.at_level(logging.WARNING, "picas.staging"):
            thread, outcome = _in_background(
                lambda: transfer.fetch(server.dav("big.dat"), work / "big.dat", Checksum("adler32", adler(data))))
            wait_for(lambda: _size(work / ".big.dat.picas-part") > 1024 * 1024, timeout=60, what="a download")
            server.kill()
            thread.join(120)
        assert isinstance(outcome.get("error"), TransferError), outcome
        assert "gave up after 3 tries" in str(outcome["error"])
        assert "try 2 of 3" in caplog.text
        assert list(work.iterdir()) == []  # no partial file, nothing under the real name
        assert (server.root / "big.dat").read_bytes() == data
        server.start()  # the storage is back: the next try works
        transfer.fetch(server.dav("big.dat"), work / "big.dat", Checksum("adler32", adler(data)))
        assert (work / "big.dat").read_bytes() == data
    finally:
        server.stop()


def test_storage_dying_mid_upload_retries_then_fails_and_loses_nothing(registry, tmp_path, caplog):
    server = start_dav(tmp_path / "store", rate=RATE)
    data = os.urandom(SIZE)
    local = tmp_path / "big.dat"
    local.write_bytes(data)
    url = server.dav("out/big.dat")
    transfer = Transfer(registry, FAST)

    def uploading() -> bool:
        folder = server.root / "out"
        return folder.is_dir() and any(_size(p) > 1024 * 1024 for p in folder.iterdir())
    try:
        with caplog.at_level(logging.WARNING, "picas.staging"):
            thread, outcome = _in_background(lambda: transfer.store(local, url))
            wait_for(uploading, timeout=60, what="an upload")
            server.kill()
            thread.join(120)
        assert isinstance(outcome.get("error"), TransferError), outcome
        assert "gave up after 3 tries" in str(outcome["error"])
        assert "try 2 of 3" in caplog.text
        assert local.read_bytes() == data  # the local file is untouched
        assert not (server.root / "out" / "big.dat").exists()  # no half file under the real name
        server.start(rate=None)
        result = transfer.store(local, url)  # not refused: nothing is in the way
        assert not result.skipped
        assert (server.root / "out" / "big.dat").read_bytes() == data
    finally:
        server.stop()
