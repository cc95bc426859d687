"""The grid sandbox's zipapp: dependency versions for the oldest worker Python, a reproducible archive."""
from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from picas.errors import PicasError
from picas.sandbox import deps, zipapp
from picas.server.local import data_home
from tests.schedulers.dirac_support import require_python39

CACHE = data_home() / "sandbox-deps"


@pytest.mark.parametrize("spec, version, expected", [
    (">=3.10", (3, 9), False),
    (">=3.10", (3, 10), True),
    (">=3.8", (3, 9), True),
    (">=3.7, !=3.9.*", (3, 9), False),
    (">=3.7, !=3.9.*", (3, 10), True),
    ("~=3.9", (3, 12), True),
    ("~=3.9.1", (3, 10), False),
    ("<3.14,>=3.9", (3, 13), True),
    ("", (3, 9), True),
    (None, (3, 9), True),
    (">=8.1", "8.1.8", True),
    (">=8.2", "8.1.8", False),
])
def test_specifiers(spec, version, expected):
    assert deps.allows(spec, version) is expected


def test_requirements_are_read_with_their_markers():
    assert deps.parse_requirement("click>=8.1") == ("click", ">=8.1", "")
    assert deps.parse_requirement("urllib3[socks] >=1.26") == ("urllib3", ">=1.26", "")
    assert deps.parse_requirement("colorama; platform_system == 'Windows'") == (
        "colorama", "", "platform_system == 'Windows'")


def _fake_dist(directory: Path, name: str, version: str, requires_python: str) -> None:
    info = directory / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   f"Requires-Python: {requires_python}\n")
    (directory / name).mkdir()
    (directory / name / "__init__.py").write_text("VALUE = 42\n")
    (directory / name / "_speedups.so").write_bytes(b"\x7fELF")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{name}/_speedups.so,,\n{info.name}/METADATA,,\n"
                                 f"{info.name}/RECORD,,\n")


def test_a_prepared_dependency_directory_is_used_and_checked(tmp_path):
    _fake_dist(tmp_path / "ok", "fakedep", "1.0", ">=3.8")
    found = deps.collect(tmp_path / "cache", tmp_path / "ok", requirements=["fakedep>=1"])
    assert set(found.files) == {"fakedep/__init__.py", "fakedep-1.0.dist-info/METADATA"}  # no compiled part
    assert found.used == [f"fakedep 1.0 (from {tmp_path / 'ok'})"]
    _fake_dist(tmp_path / "new", "fakedep", "2.0", ">=3.10")
    with pytest.raises(PicasError, match="needs Python >=3.10, not 3.9"):
        deps.collect(tmp_path / "cache", tmp_path / "new", requirements=["fakedep>=1"])


def test_a_module_picas_imports_but_does_not_list_is_caught():
    source = b"import os\nimport notalib.sub\ntry:\n    import optional\nexcept ImportError:\n    pass\n"
    entries = {"picas/x.py": source, "click/__init__.py": b""}
    assert zipapp.missing_modules(entries) == ["notalib"]


def test_the_archive_is_reproducible_and_holds_only_pure_python(tmp_path):
    first = zipapp.build(tmp_path / "a" / "picas.pyz", cache=CACHE)
    second = zipapp.build(tmp_path / "b" / "picas.pyz", cache=CACHE)
    assert first.digest == second.digest and first.size == second.size
    assert first.size < 2 * 1024 * 1024
    assert (tmp_path / "a" / "picas.pyz").read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(first.path) as archive:
        names = set(archive.namelist())
    assert {"__main__.py", "picas/cli/__init__.py", "picas/_views/todo.js", "click/core.py", "yaml/__init__.py",
            "urllib3/__init__.py"} <= names
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]
    assert any(n.startswith("picas-") and n.endswith(".dist-info/METADATA") for n in names)
    for line in first.used:  # every dependency runs on 3.9: installed, or fetched for it
        assert "installed" in line or "for Python 3.9" in line, line


def test_the_archive_runs_on_python39_and_refuses_older(tmp_path):
    built = zipapp.build(tmp_path / "picas.pyz", cache=CACHE)
    python39 = require_python39()
    proc = subprocess.run([str(python39), "-I", "-S", str(built.path), "--version"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "picas, version" in proc.stdout, proc.stderr
    old = sorted(Path("/root/.pyenv/versions").glob("3.8.*/bin/python3"))
    if old:
        proc = subprocess.run([str(old[-1]), str(built.path), "--version"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and "needs Python 3.9 or newer" in proc.stderr
