"""What can go wrong while data is staged, as branches of the one picas error tree.

Every transfer error says whether trying again may help (``transient``): a
connection that dropped or a server that answered 503 may work on the next
try; a missing source, a refused login or a checksum that disagrees will not,
and retrying them only delays the token's error and costs the storage.
"""
from __future__ import annotations

from picas.errors import PicasError


class StagingError(PicasError):
    """Data could not be brought to or taken from a pilot's working directory."""

    exit_code = 21


class UnsupportedScheme(StagingError):
    """No storage backend installed here handles this URL scheme; the message names the package that would."""

    exit_code = 22


class TransferError(StagingError):
    """One operation on a storage failed; ``transient`` says whether another try may succeed."""

    def __init__(self, message: str, *, url: str = "", transient: bool = True, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.transient = transient


class SourceMissing(TransferError):
    """The file to copy does not exist."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message, url=url, transient=False)


class DestinationExists(TransferError):
    """The destination holds a different file, and the entry does not ask for it to be overwritten."""

    hint = "add \"overwrite\": true to the stage_out entry to replace it"

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message, url=url, transient=False)


class AccessDenied(TransferError):
    """The storage refused the credentials from the environment (or got none)."""

    hint = ("set X509_USER_PROXY, BEARER_TOKEN(_FILE) or a ~/.netrc entry for the host in the "
            "pilot's environment; credentials never come from the token")

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message, url=url, transient=False)


class ChecksumMismatch(TransferError):
    """The bytes that arrived do not have the checksum they should have."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message, url=url, transient=False)


class StageFailed(StagingError):
    """A stage (stage-in or stage-out) of one token failed on one file; ``stage`` and ``file`` say where."""

    def __init__(self, stage: str, file: str, cause: Exception) -> None:
        label = stage.replace("_", "-")
        super().__init__(f"{label} failed for {file}: {cause}")
        self.stage = stage
        self.file = file
        self.cause = cause
