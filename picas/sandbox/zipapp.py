"""picas and its pure-Python dependencies as one runnable file (a zipapp: ``python3 picas.pyz run``).

A grid worker has no pip, no network but the CouchDB server and no shared
file system, and DIRAC's sandbox store takes at most 10 MiB per job by
default.  One zip file that Python runs directly is the smallest thing that
carries a working ``picas`` there: Python puts the archive itself first on
``sys.path``, so its copies of picas, click, PyYAML and urllib3 are the ones
imported, whatever the node has installed.

The archive is reproducible: entries are sorted and carry a fixed date, so
the same sources give the same bytes, and :func:`build` can reuse an archive
whose content digest has not changed.
"""
from __future__ import annotations

import ast
import hashlib
import io
import os
import stat
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import picas
from picas.errors import PicasError
from picas.sandbox import deps

__all__ = ["MAIN", "Zipapp", "archive", "archive_bytes", "build", "missing_modules", "picas_files"]

#: The archive's entry point.  It checks the interpreter before importing anything that needs 3.9.
MAIN = '''\
"""picas in one file, for pilots on machines where it is not installed (see picas.sandbox)."""
import sys

if sys.version_info < (3, 9):
    sys.stderr.write("picas: error: this picas needs Python 3.9 or newer, not %s\\n" % sys.version.split()[0])
    sys.exit(2)

from picas.cli import main  # noqa: E402

main(prog_name="picas")
'''

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}


@dataclass
class Zipapp:
    """A built archive: where it is, its size and content digest, and the dependency versions inside."""

    path: Path
    size: int
    digest: str
    used: list[str] = field(default_factory=list)


def _views_dir(package: Path) -> Path | None:
    for candidate in (package / "_views", package.parent / "views"):
        if candidate.is_dir():
            return candidate
    return None


def _package_files(package: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for root, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in names:
            path = Path(root) / name
            if path.suffix in (".pyc", ".pyo", ".so"):
                continue
            files[path.relative_to(package.parent).as_posix()] = path
    return files


def sibling_files(name: str) -> dict[str, Path]:
    """A top-level package or module that lies next to picas' own package, as zip names to files; or nothing.

    Such a package ships with picas (the Snakemake executor plugin does, in
    the same wheel) and so travels with it when picas imports it.
    """
    root = Path(picas.__file__).resolve().parent.parent
    if (root / name / "__init__.py").is_file():
        return _package_files(root / name)
    if (root / f"{name}.py").is_file():
        return {f"{name}.py": root / f"{name}.py"}
    return {}


def picas_files() -> dict[str, Path]:
    """The picas package as zip names to files: every module, and the view sources as ``picas/_views``."""
    package = Path(picas.__file__).resolve().parent
    files = _package_files(package)
    views = _views_dir(package)
    if views is not None and not any(name.startswith("picas/_views/") for name in files):
        for path in sorted(views.iterdir()):
            if path.is_file():
                files[f"picas/_views/{path.name}"] = path
    return files


def _metadata_text() -> str:
    try:
        from importlib.metadata import version
        number = version("picas")
    except Exception:  # not installed: the package's own number
        number = picas.__version__
    return f"Metadata-Version: 2.1\nName: picas\nVersion: {number}\n"


def _entries(dep_files: dict[str, Path]) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for name, path in {**dep_files, **picas_files()}.items():
        try:
            entries[name] = path.read_bytes()
        except OSError as exc:
            raise PicasError(f"cannot read {path} for the sandbox: {exc.strerror or exc}") from None
    version = _metadata_text()
    number = version.split("Version: ")[-1].strip()
    entries[f"picas-{number}.dist-info/METADATA"] = version.encode()
    entries["__main__.py"] = MAIN.encode()
    return entries


def _top_level_imports(source: bytes) -> set[str]:
    """Top-level module names a module imports unconditionally (at module level, outside try)."""
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _present(entries: dict[str, bytes]) -> set[str]:
    return {name.split("/")[0].removesuffix(".py") for name in entries}


def imported_names(entries: dict[str, bytes]) -> set[str]:
    """Top-level modules that picas' own modules import unconditionally, at module level (pure)."""
    wanted: set[str] = set()
    for name, data in entries.items():
        if name.startswith("picas/") and name.endswith(".py"):
            wanted |= _top_level_imports(data)
    return wanted - {"__future__"}


def missing_modules(entries: dict[str, bytes]) -> list[str]:
    """Third-party modules picas imports at module level that the archive does not hold.

    picas' requirements are read from its installed metadata, which an
    editable install leaves stale when a dependency is added; this check
    turns that into an error at build time instead of an ImportError on a
    worker node.  Needs ``sys.stdlib_module_names`` (Python 3.10+); on 3.9
    it finds nothing.
    """
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        return []
    present = _present(entries)
    return sorted(n for n in imported_names(entries) if n not in stdlib and n not in present)


def archive_bytes(entries: dict[str, bytes]) -> bytes:
    """The archive as bytes: a ``#!`` line, then the zip with sorted entries and a fixed date (pure)."""
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def archive(*, cache: Path, deps_dir: Path | None = None,
            python: tuple[int, int] = deps.MIN_PYTHON) -> tuple[bytes, list[str]]:
    """The zipapp's bytes, and which dependency versions went in (nothing is written but the pip cache).

    Dependencies come from :func:`picas.sandbox.deps.collect`: installed ones
    when they run on ``python``, else fetched once into ``cache``.
    """
    found = deps.collect(cache, deps_dir, python)
    entries = _entries(found.files)
    for name in sorted(imported_names(entries) - _present(entries)):
        for zip_name, path in sibling_files(name).items():  # shipped next to picas (its wheel, its checkout)
            entries[zip_name] = path.read_bytes()
    missing = missing_modules(entries)
    if missing:
        raise PicasError(f"picas imports {', '.join(missing)}, which its installed metadata does not list",
                         hint="reinstall picas (pip install -e . in a checkout) so its requirements are current")
    return archive_bytes(entries), found.used


def build(output: Path, *, cache: Path, deps_dir: Path | None = None,
          python: tuple[int, int] = deps.MIN_PYTHON) -> Zipapp:
    """Write the zipapp of picas and its dependencies (for ``python`` and later) to ``output``.

    An existing ``output`` with the same bytes is left alone, so a sandbox
    rebuilt every autopilot round does not change on disk.
    """
    data, used = archive(cache=cache, deps_dir=deps_dir, python=python)
    hexdigest = hashlib.sha256(data).hexdigest()
    output = Path(output)
    try:
        unchanged = output.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
        try:
            partial.write_bytes(data)
            partial.chmod(0o755)
            os.replace(partial, output)
        finally:
            if partial.exists():
                partial.unlink()
    return Zipapp(output, len(data), hexdigest, used)
