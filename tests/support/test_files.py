"""picas.support.files: a private file is 0600 from the start and replaced whole or not at all."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from picas.support.files import write_private


def test_a_new_file_and_its_directory_are_private(tmp_path: Path) -> None:
    target = tmp_path / "new" / "conf.yml"
    write_private(target, "password: s3cret\n")
    assert target.read_text() == "password: s3cret\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_an_existing_file_is_replaced_and_made_private(tmp_path: Path) -> None:
    target = tmp_path / "conf.yml"
    target.write_text("old\n")
    target.chmod(0o644)
    write_private(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "conf.yml"
    target.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_private(target, "half \ud800 written")  # a lone surrogate cannot be encoded
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.yml"]
