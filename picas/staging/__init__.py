"""Data in and out of pilots: stage-in before a payload runs, stage-out after, through gfal2 or a fallback.

The pieces, each in a module of its own:

* :mod:`~picas.staging.spec` reads a token's ``stage_in``/``stage_out`` fields (pure);
* :mod:`~picas.staging.checksum` adler32 and md5 while bytes stream;
* :mod:`~picas.staging.storage` the backend contract; :mod:`~picas.staging.backends`
  gfal2, WebDAV/HTTP over urllib3, file://; :mod:`~picas.staging.registry` picks one per URL;
* :mod:`~picas.staging.transfer` one file with retries, timeouts, checksums, no overwrite;
* :mod:`~picas.staging.stager` a token's stages, as history events;
* :mod:`~picas.staging.executor` the wrapper around the pilot's executor.

``docs/staging.md`` explains the token fields with an example.
"""
from __future__ import annotations

from picas.staging.errors import (AccessDenied, ChecksumMismatch, DestinationExists, SourceMissing, StageFailed,
                                  StagingError, TransferError, UnsupportedScheme)
from picas.staging.registry import Registry
from picas.staging.storage import RemoteFile, Storage
from picas.staging.transfer import FileResult, Transfer, TransferPolicy

__all__ = ["AccessDenied", "ChecksumMismatch", "DestinationExists", "SourceMissing", "StageFailed", "StagingError",
           "TransferError", "UnsupportedScheme", "Registry", "RemoteFile", "Storage", "FileResult", "Transfer",
           "TransferPolicy"]
