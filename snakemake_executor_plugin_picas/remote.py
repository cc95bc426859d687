"""Without a shared file system: a job's files travel through a storage folder by picas staging.

With ``--picas-storage-prefix URL`` the workflow directory on the submitting
machine stays what Snakemake sees, and the storage folder is how files reach
the pilots (on the Grid, on a cluster without a common disk):

1. before a job's token is written, its input files are uploaded to
   ``URL/<path>`` (skipped when the storage already holds the same bytes),
   and once per run the workflow sources (Snakefile, scripts, config: the
   archive Snakemake itself builds for remote jobs) go to
   ``URL/.picas-snakemake/sources-<sha256>.tar.xz``;
2. the token's ``stage_in`` brings the archive and the inputs into the pilot's
   empty working directory, with their checksums, and the command unpacks the
   sources there before it runs the job; ``stage_out`` takes the outputs (and
   any log or benchmark file the job wrote) back to ``URL/<path>``;
3. when the token is done, the outputs are downloaded into the workflow
   directory, where Snakemake checks them.

Nothing on the worker runs ``pip install``: the plugin turns off Snakemake's
automatic deployment of storage plugins, and the pilot itself does the
copying (gfal2 where installed, else picas' own WebDAV/HTTP and file
backends; credentials from the pilot's environment, see docs/staging.md).
Files must lie below the workflow directory; directory outputs are not
supported in this mode.
"""
from __future__ import annotations

import hashlib
import posixpath
import shlex
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from picas.errors import InvalidInput
from picas.staging.checksum import DEFAULT_ALGORITHM
from picas.staging.spec import check_relative, check_url
from picas.staging.transfer import Transfer
from snakemake_executor_plugin_picas.jobs import JobSpec

__all__ = ["RemoteFiles", "SourceArchive", "ARCHIVE_NAME", "SOURCES_FOLDER"]

#: The name the sources archive has in the pilot's working directory (removed once unpacked).
ARCHIVE_NAME = ".picas-sources.tar.xz"
#: The storage folder (below the prefix) for the workflow sources of every run.
SOURCES_FOLDER = ".picas-snakemake"
_URL_SAFE = "/-._~!$&'()*+,;=:@"


@dataclass(frozen=True)
class SourceArchive:
    """The workflow sources on the storage: where, and the checksum a pilot verifies."""

    url: str
    checksum: str


def _literal(text: str) -> str:
    """A path or URL as a staging template that means exactly itself (staging fills ``{field}`` in)."""
    return text.replace("{", "{{").replace("}", "}}")


class RemoteFiles:
    """Maps workflow paths to storage URLs below ``prefix`` and moves files between the two."""

    def __init__(self, prefix: str, workdir: Path, transfer: Transfer | None = None,
                 fetcher: Transfer | None = None) -> None:
        prefix = prefix.rstrip("/") + "/"
        check_url(prefix + "x", "--picas-storage-prefix")
        self.prefix = prefix
        self.workdir = Path(workdir)
        #: Uploads happen where Snakemake submits jobs, downloads in its status thread: each gets its own
        #: transfer (backends such as a gfal2 context are not to be shared between threads).
        self.transfer = transfer or Transfer()
        self.fetcher = fetcher or Transfer()
        #: Files known to be on the storage with the bytes they have here: path -> (size, mtime_ns).
        self._synced: dict[str, tuple[int, int]] = {}
        self._checksums: dict[str, str] = {}
        self._sources: SourceArchive | None = None

    # ------------------------------------------------------------------ names (pure)
    def relative(self, path: str, what: str) -> str:
        """A workflow path as a clean relative path; InvalidInput for one outside the workflow directory."""
        candidate = Path(path)
        if candidate.is_absolute():
            try:
                candidate = candidate.resolve().relative_to(self.workdir.resolve())
            except ValueError:
                raise InvalidInput(f"{what} {path} lies outside the workflow directory {self.workdir}; without a "
                                   f"shared file system every file must lie below it") from None
        try:
            return check_relative(candidate.as_posix(), what)
        except InvalidInput:
            raise InvalidInput(f"{what} {path} lies outside the workflow directory {self.workdir}; without a "
                               f"shared file system every file must lie below it") from None

    def url(self, relpath: str) -> str:
        return self.prefix + urllib.parse.quote(relpath, safe=_URL_SAFE)

    def stage_fields(self, spec: JobSpec) -> dict:
        """The token's ``stage_in`` (sources, inputs) and ``stage_out`` (outputs; logs when written)."""
        if self._sources is None:
            raise RuntimeError("upload_sources() comes first")
        stage_in = [{"src": _literal(self._sources.url), "dst": ARCHIVE_NAME, "checksum": self._sources.checksum}]
        for path in spec.inputs:
            rel = self.relative(path, "the input")
            entry = {"src": _literal(self.url(rel)), "dst": _literal(rel)}
            if rel in self._checksums:
                entry["checksum"] = self._checksums[rel]
            stage_in.append(entry)
        stage_out = [{"src": _literal(self.relative(path, "the output")),
                      "dst": _literal(self.url(self.relative(path, "the output"))), "overwrite": True}
                     for path in spec.outputs]
        stage_out += [{"src": _literal(self.relative(path, "the log")),
                       "dst": _literal(self.url(self.relative(path, "the log"))), "overwrite": True,
                       "optional": True}
                      for path in spec.extra_outputs]
        return {"stage_in": _unique(stage_in, "dst"), "stage_out": _unique(stage_out, "src")}

    @staticmethod
    def command(python: str, exec_job: str) -> str:
        """The token's input: unpack the workflow sources into the working directory, then run the job."""
        archive = shlex.quote(ARCHIVE_NAME)
        return f"{python} -m tarfile -e {archive} . && rm -f {archive} && {exec_job}"

    # ------------------------------------------------------------------ transfers
    def upload_sources(self, write_archive: Callable[[Path], None]) -> SourceArchive:
        """Upload the workflow sources once per run (named by content, so reruns of the same sources share it)."""
        if self._sources is None:
            with tempfile.TemporaryDirectory(prefix="picas-sources-") as tmp:
                path = Path(tmp) / "sources.tar.xz"
                write_archive(path)
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                url = f"{self.prefix}{SOURCES_FOLDER}/sources-{digest}.tar.xz"
                result = self.transfer.store(path, url, overwrite=True)
                self._sources = SourceArchive(url, result.checksum())
        return self._sources

    def upload_inputs(self, spec: JobSpec) -> int:
        """Put the job's input files on the storage (unless they are there already); returns how many were sent."""
        sent = 0
        for path in spec.inputs:
            rel = self.relative(path, "the input")
            local = self.workdir / rel
            if local.is_dir():
                raise InvalidInput(f"the input {path} is a directory; without a shared file system picas stages "
                                   f"files only")
            stat = local.stat()
            if self._synced.get(rel) == (stat.st_size, stat.st_mtime_ns):
                continue
            result = self.transfer.store(local, self.url(rel), overwrite=True)
            sent += 0 if result.skipped else 1
            self._remember(rel, local, result.checksum())
        return sent

    def fetch_outputs(self, spec: JobSpec) -> None:
        """Download a finished job's outputs (and its logs, if it wrote any) into the workflow directory."""
        for path in spec.outputs:
            self._fetch(self.relative(path, "the output"))
        for path in spec.extra_outputs:
            rel = self.relative(path, "the log")
            if self.fetcher.stat(self.url(rel)) is not None:
                self._fetch(rel)

    def _fetch(self, rel: str) -> None:
        local = self.workdir / rel
        result = self.fetcher.fetch(self.url(rel), local, algorithms=(DEFAULT_ALGORITHM,))
        self._remember(rel, local, result.checksum())

    def _remember(self, rel: str, local: Path, checksum: str) -> None:
        stat = local.stat()
        self._synced[rel] = (stat.st_size, stat.st_mtime_ns)
        self._checksums[rel] = checksum

    def close(self) -> None:
        self.transfer.close()
        self.fetcher.close()


def _unique(entries: list[dict], key: str) -> list[dict]:
    """Entries without repeats of ``key`` (a file named twice, e.g. as input of two rules of a group)."""
    seen: set[str] = set()
    kept = []
    for entry in entries:
        name = posixpath.normpath(entry[key])
        if name not in seen:
            seen.add(name)
            kept.append(entry)
    return kept
