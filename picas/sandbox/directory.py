"""A sandbox directory: every file one grid pilot needs, and nothing that is not its own.

Laid out as DIRAC's InputSandbox names them, relative to the directory:

=====================  ============================================================
``picas-pilot.sh``     the start script (``grid-sandbox/picas-pilot.sh``)
``picas.pyz``          picas and its dependencies (:mod:`picas.sandbox.zipapp`)
``picas-pilot.yml``    the scoped pilot credential (:mod:`picas.pool.credentials`), mode 0600
``picas-ca.pem``       the server's CA bundle, when the connection verifies against one
``picas-setup.sh``     the ``--setup`` lines, run in the sandbox before the pilot
user files             ``--input-file`` files, by their base names
=====================  ============================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from picas.errors import InvalidInput, PicasError
from picas.pool.credentials import PilotCredential, credential_text
from picas.sandbox import deps, zipapp
from picas.support.files import write_private

__all__ = ["CA_BUNDLE", "CREDENTIAL", "DIRAC_LIMIT", "SETUP", "START_SCRIPT", "ZIPAPP", "Sandbox", "contents",
           "prepare", "start_script_source", "write"]

START_SCRIPT = "picas-pilot.sh"
ZIPAPP = "picas.pyz"
CREDENTIAL = "picas-pilot.yml"
CA_BUNDLE = "picas-ca.pem"
SETUP = "picas-setup.sh"
RESERVED = (START_SCRIPT, ZIPAPP, CREDENTIAL, CA_BUNDLE, SETUP, "picas-pilot.log", "picas-pilot.out",
            "picas-pilot.err", "picas-work", "tmp")
#: DIRAC's default ``MaxSandboxSizeMiB``: a bigger sandbox is refused unless the VO raised the limit.
DIRAC_LIMIT = 10 * 1024 * 1024


def start_script_source() -> Path:
    """The start script: packaged inside picas, or ``grid-sandbox/`` of a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_sandbox" / START_SCRIPT, package.parent / "grid-sandbox" / START_SCRIPT):
        if candidate.is_file():
            return candidate
    raise PicasError("the grid start script is missing from this picas installation", hint="reinstall picas")


@dataclass
class Sandbox:
    """A sandbox written to disk: its directory and the file names in InputSandbox order."""

    directory: Path
    files: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes of all its files together, what DIRAC's sandbox limit counts."""
        return sum((self.directory / name).stat().st_size for name in self.files)


def _setup_text(lines: Iterable[str]) -> str:
    body = "\n".join(str(line) for line in lines)
    return ("# Written by picas: run by picas-pilot.sh in the sandbox directory before the pilot starts.\n"
            "set -e\n" + body + "\n")


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def contents(credential: PilotCredential, *, cache: Path, input_files: Iterable[Path] = (),
             setup: Iterable[str] = (), deps_dir: Path | None = None,
             python: tuple[int, int] = deps.MIN_PYTHON) -> dict[str, bytes]:
    """Every file of the sandbox, name to bytes, in InputSandbox order (nothing is written but the pip cache).

    ``credential`` must be a scoped pilot credential (the caller checks it
    with :func:`picas.pool.credentials.check_scoped`): it goes into the
    sandbox as is.  A CA bundle it verifies against is taken along and
    named by its name in the sandbox, since the start script runs the pilot
    in the sandbox directory.
    """
    sources = [Path(p) for p in input_files]
    names = [p.name for p in sources]
    clash = sorted({n for n in names if n in RESERVED or names.count(n) > 1})
    if clash:
        raise InvalidInput(f"input file name {', '.join(clash)} is taken in the sandbox (by picas or twice)",
                           hint="rename the file")
    files: dict[str, bytes] = {START_SCRIPT: _read(start_script_source(), "the start script")}
    files[ZIPAPP] = zipapp.archive(cache=cache, deps_dir=deps_dir, python=python)[0]
    shipped = replace(credential)
    if isinstance(credential.verify, str):
        files[CA_BUNDLE] = _read(Path(credential.verify), "the CA bundle")
        shipped.verify = CA_BUNDLE
    files[CREDENTIAL] = credential_text(shipped).encode()
    setup = list(setup)
    if setup:
        files[SETUP] = _setup_text(setup).encode()
    for source in sources:
        files[source.name] = _read(source, "the input file")
    return files


def write(directory: Path, files: Mapping[str, str | bytes]) -> Sandbox:
    """Write ``files`` into ``directory`` (created if needed); the credential gets mode 0600.

    picas' own optional files (the setup script, the CA bundle) left in the
    directory by an earlier build are removed when this sandbox has none: a
    stale setup script would still run.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (SETUP, CA_BUNDLE):
        if name not in files and (directory / name).exists():
            (directory / name).unlink()
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        if name == CREDENTIAL:
            write_private(directory / name, data.decode())
            continue
        target = directory / name
        if target.exists() and target.read_bytes() == data:
            continue
        target.write_bytes(data)
    return Sandbox(directory, list(files))


def prepare(directory: Path, credential: PilotCredential, **options: object) -> Sandbox:
    """Write a complete sandbox into ``directory``: :func:`contents` then :func:`write`."""
    return write(directory, contents(credential, **options))  # type: ignore[arg-type]
