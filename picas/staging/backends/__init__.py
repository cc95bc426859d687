"""Storage backends (see :mod:`picas.staging.storage` for the contract): gfal2, WebDAV/HTTP, file."""
