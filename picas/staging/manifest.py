"""The working directory's manifests: md5 of every file after stage-in and after the run, and what went.

Attached to the token as ``setup_md5_checksums.json`` (after stage-in),
``upload_md5_checksums.json`` (after the run, before stage-out) and
``deleted.txt`` (files present after setup and gone after the run), so that
what a payload was given and what it left can be checked later with
``md5sum`` and without the worker node.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from picas.staging.checksum import file_digests

__all__ = ["snapshot", "deleted", "manifest_attachments", "SETUP", "UPLOAD", "DELETED"]

SETUP = "setup_md5_checksums.json"
UPLOAD = "upload_md5_checksums.json"
DELETED = "deleted.txt"


def snapshot(workdir: Path) -> dict[str, str]:
    """``{relative path: md5}`` of every regular file under ``workdir`` (symlinks to files included)."""
    found = {}
    for root, dirs, files in os.walk(workdir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if not path.is_file():
                continue
            try:
                found[path.relative_to(workdir).as_posix()] = file_digests(path, ["md5"])["md5"]
            except OSError:
                continue  # removed while we looked (a straggler of the payload): not part of the result
    return found


def deleted(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files in the setup manifest that are gone after the run."""
    return sorted(set(before) - set(after))


def manifest_attachments(setup: dict[str, str], upload: dict[str, str] | None) -> dict[str, tuple[str, bytes]]:
    """The attachments to put on the token: name -> (content type, bytes)."""
    files = {SETUP: ("application/json", json.dumps(setup, indent=1, sort_keys=True).encode())}
    if upload is not None:
        files[UPLOAD] = ("application/json", json.dumps(upload, indent=1, sort_keys=True).encode())
        gone = deleted(setup, upload)
        files[DELETED] = ("text/plain", "".join(f"{name}\n" for name in gone).encode())
    return files
