"""The pure-Python dependencies a sandbox carries, in versions that run on the oldest worker Python.

A worker node may only have Python 3.9 (EL9), while the submitting machine
may have installed the newest click and urllib3, which need 3.10 or later.
So for every requirement of picas (read from its installed metadata) the
installed distribution is used only when its ``Requires-Python`` admits the
oldest target version; otherwise the newest version that does is fetched
once with pip (a pure-Python wheel for that Python version, else the Python files of
its CPython wheel) into a
cache, or taken from a directory the user prepared (``--deps-dir``: the
result of ``pip install --target DIR ...``) on a machine without PyPI.

Compiled parts are left out: a zipapp cannot import a C extension, and the
libraries used here have pure-Python fallbacks (PyYAML without ``_yaml``).
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from picas.errors import PicasError

__all__ = ["DepFiles", "MIN_PYTHON", "collect", "parse_requirement", "allows"]

#: The oldest Python the sandbox must run on (EL9's python3).
MIN_PYTHON = (3, 9)

#: File suffixes that never go into a zipapp: compiled code (not importable from a zip) and caches.
_SKIP_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".pyc", ".pyo", ".c", ".h", ".pyx")

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(\(?[^;]*?\)?)\s*(?:;(.*))?$")


def parse_requirement(text: str) -> tuple[str, str, str]:
    """``"click>=8.1; python_version<'4'"`` → ``("click", ">=8.1", "python_version<'4'")`` (pure)."""
    match = _REQ.match(text)
    if not match:
        raise PicasError(f"cannot read the requirement {text!r}")
    spec = match.group(2).strip().strip("()").strip()
    return match.group(1), spec, (match.group(3) or "").strip()


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.strip().split("."):
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)


def _pad(a: tuple[int, ...], n: int) -> tuple[int, ...]:
    return a + (0,) * (n - len(a))


def allows(spec: str | None, version: tuple[int, ...] | str) -> bool:
    """Whether a version specifier such as ``">=3.8, !=3.9.*"`` admits ``version`` (pure).

    Used for ``Requires-Python`` against the target Python and for a
    requirement (``click>=8.1``) against a cached version.  Covers the
    operators packages use (``>= > <= < == != ~=``, with ``.*`` wildcards
    for ``==``/``!=``) on release numbers; an empty specifier admits
    everything.
    """
    if isinstance(version, str):
        version = _version(version)
    if not spec:
        return True
    for clause in spec.split(","):
        clause = clause.strip()
        if not clause:
            continue
        match = re.match(r"^(~=|==|!=|<=|>=|<|>|===)\s*(.+)$", clause)
        if not match:
            raise PicasError(f"cannot read the Requires-Python clause {clause!r}")
        op, text = match.groups()
        if text.endswith(".*"):
            prefix = _version(text[:-2])
            same = _pad(version, len(prefix))[:len(prefix)] == prefix
            if (op == "==" and not same) or (op == "!=" and same):
                return False
            continue
        want = _version(text)
        n = max(len(want), len(version))
        have, want_p = _pad(version, n), _pad(want, n)
        if op == "~=":
            if have < want_p or _pad(version, len(want))[:len(want) - 1] != want[:-1]:
                return False
        elif not {"==": have == want_p, "===": have == want_p, "!=": have != want_p, "<=": have <= want_p,
                  ">=": have >= want_p, "<": have < want_p, ">": have > want_p}[op]:
            return False
    return True


@dataclass
class DepFiles:
    """The files of the dependencies: zip name (``click/core.py``) to the file on disk, and what was used."""

    files: dict[str, Path] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)  # "click 8.1.8 (fetched for Python 3.9)", ...


def _requirements() -> list[str]:
    try:
        requires = metadata.requires("picas") or []
    except metadata.PackageNotFoundError:
        raise PicasError("picas is not installed, so its dependencies are unknown",
                         hint="install it with 'pip install picas' (or 'pip install -e .' in a checkout)") from None
    return [r for r in requires if not parse_requirement(r)[2]]  # extras and platform-specific ones stay out


def _wanted(path: PurePosixPath) -> bool:
    if not path.parts or path.parts[0] in ("..", "bin") or path.parts[0].endswith((".data",)):
        return False
    if "__pycache__" in path.parts or path.suffix in _SKIP_SUFFIXES:
        return False
    if path.parts[0].endswith(".dist-info"):
        return path.name == "METADATA"
    return True


def _from_distribution(dist: metadata.Distribution) -> dict[str, Path]:
    base = Path(str(dist.locate_file("")))
    files: dict[str, Path] = {}
    for entry in dist.files or []:
        rel = PurePosixPath(str(entry).replace(os.sep, "/"))
        if _wanted(rel):
            files[str(rel)] = base / Path(*rel.parts)
    return files


def _find_in(directory: Path, name: str) -> metadata.Distribution | None:
    """A dependency installed into ``directory`` with ``pip install --target``, or None."""
    if not directory.is_dir():
        return None
    for dist in metadata.distributions(path=[str(directory)]):
        if _normal(dist.metadata["Name"] or "") == _normal(name):
            return dist
    return None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: Where a project ships no pure-Python wheel (PyYAML), a CPython wheel of the target version is
#: taken instead and only its Python files are kept (``_SKIP_SUFFIXES`` drops the compiled parts):
#: the platform then does not matter, so any common one will do.
_CPYTHON_PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_17_aarch64",
                      "manylinux2014_aarch64")


def _pip_target(name: str, spec: str, target: Path, wheel_flags: list[str]) -> tuple[bool, str]:
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", *wheel_flags, "--target", str(target), f"{name}{spec}"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    detail = " ".join(line.strip() for line in proc.stderr.splitlines()
                      if line.strip() and not line.startswith("WARNING"))[-400:]
    return proc.returncode == 0, detail


def _fetch(name: str, spec: str, target: Path, python: tuple[int, int]) -> None:
    """pip installs the newest wheel of ``name`` that runs on ``python`` into ``target``.

    A pure-Python wheel first; failing that, a CPython wheel for that version, of which
    only the Python files travel (a zipapp cannot import the compiled part anyway, and the
    libraries picas needs fall back to pure Python without it).
    """
    dotted = ".".join(map(str, python))
    pure = ["--implementation", "py", "--abi", "none", "--platform", "any", "--python-version", dotted]
    cpython = ["--implementation", "cp", "--abi", f"cp{python[0]}{python[1]}", "--python-version", dotted]
    for platform in _CPYTHON_PLATFORMS:
        cpython += ["--platform", platform]
    ok, detail = _pip_target(name, spec, target, pure)
    if not ok:
        ok, detail = _pip_target(name, spec, target, cpython)
    if not ok:
        raise PicasError(f"could not fetch a version of {name}{spec} that runs on Python {dotted}: "
                         f"{detail or 'pip failed'}",
                         hint=f"on a machine with PyPI run: pip install --target DIR --python-version {dotted} "
                              f"--only-binary=:all: --no-deps '{name}{spec}', then pass --deps-dir DIR")


def _fetch_compatible(name: str, spec: str, target: Path, python: tuple[int, int],
                      attempts: int = 5) -> metadata.Distribution:
    """:func:`_fetch` until the wheel's own Requires-Python admits ``python``.

    pip filters versions by the ``data-requires-python`` an index announces;
    a mirror or find-links directory that does not announce it hands out the
    newest wheel whatever it needs.  Each wheel that turns out too new is
    excluded by version and pip is asked again.
    """
    excluded: list[str] = []
    for _ in range(attempts):
        if target.exists():
            shutil.rmtree(target)
        _fetch(name, spec + "".join(f",!={v}" for v in excluded) if spec else
               ",".join(f"!={v}" for v in excluded), target, python)
        dist = _find_in(target, name)
        if dist is None:
            raise PicasError(f"pip reported success but {name} is not in {target}")
        if allows(dist.metadata["Requires-Python"], python):
            return dist
        excluded.append(dist.version)
    shutil.rmtree(target, ignore_errors=True)
    raise PicasError(f"found no version of {name}{spec} for Python {'.'.join(map(str, python))} "
                     f"(pip offered {', '.join(excluded)}, which need a newer Python)",
                     hint="prepare one with pip install --target DIR and pass --deps-dir DIR")


def collect(cache: Path, deps_dir: Path | None = None, python: tuple[int, int] = MIN_PYTHON,
            requirements: Iterable[str] | None = None) -> DepFiles:
    """The files of every dependency of picas in a version that runs on ``python`` and later.

    For each requirement, in this order: ``deps_dir`` when given and holding
    it; the installed distribution when its Requires-Python admits
    ``python``; the pip cache ``cache/py<major><minor>/<name>``, fetched on
    first use.  Dependencies of dependencies are followed when they carry no
    environment marker (click's colorama is for Windows only).
    """
    result = DepFiles()
    dotted = ".".join(map(str, python))
    queue = list(_requirements() if requirements is None else requirements)
    seen: set[str] = set()
    while queue:
        name, spec, _ = parse_requirement(queue.pop(0))
        if _normal(name) in seen:
            continue
        seen.add(_normal(name))
        dist = _find_in(deps_dir, name) if deps_dir is not None else None
        if dist is not None:
            needs = dist.metadata["Requires-Python"]
            if not allows(needs, python):
                raise PicasError(f"{deps_dir} has {name} {dist.version}, which needs Python {needs}, not {dotted}",
                                 hint=f"put a version of {name} that runs on Python {dotted} there")
            result.used.append(f"{name} {dist.version} (from {deps_dir})")
        else:
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                dist = None
            if dist is not None and allows(dist.metadata["Requires-Python"], python):
                result.used.append(f"{name} {dist.version} (installed)")
            else:
                why = "the installed one needs a newer Python" if dist is not None else "not installed"
                target = cache / f"py{python[0]}{python[1]}" / _normal(name)
                dist = _find_in(target, name)
                if dist is not None and not (allows(spec, dist.version)
                                             and allows(dist.metadata["Requires-Python"], python)):
                    shutil.rmtree(target)  # fetched for an older requirement of picas
                    dist = None
                if dist is None:
                    dist = _fetch_compatible(name, spec, target, python)
                result.used.append(f"{name} {dist.version} (for Python {dotted}: {why})")
        files = _from_distribution(dist)
        result.files.update(files)
        for req in dist.requires or []:
            if not parse_requirement(req)[2]:
                queue.append(req)
    return result
