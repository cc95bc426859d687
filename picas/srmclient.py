"""The picas 1.1.x ``srmclient`` module: download the files of a dict in parallel threads.

A thin layer over :mod:`picas.srm` (and so over picas' own transfers): the
values of ``files`` are storage paths under the default host, as in 1.1.x.
Differences from 1.1.2: a failed download raises :class:`picas.srm.SRMError`
naming the files, after every file was tried, instead of ending its thread.
"""
from __future__ import annotations

import logging
import queue
from typing import Mapping

from picas import srm

__all__ = ["download", "Downloader"]

log = logging.getLogger("picas")


def download(files: Mapping[str, str], threads: int = 10) -> list[str]:
    """Download every path in ``files.values()`` into the current directory; returns the local paths."""
    paths = srm.download_many(list(files.values()), poolsize=threads)
    log.info("Download work done: %d file(s)", len(paths))
    return paths


class Downloader(srm.Downloader):
    """A download thread over a queue of paths (see :class:`picas.srm.Downloader`)."""

    def __init__(self, q: queue.Queue) -> None:
        super().__init__(q, logging.getLogger("picas.srmclient"))
