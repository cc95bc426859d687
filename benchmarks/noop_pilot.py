#!/usr/bin/env python3
"""One pilot process of this project with a no-op payload: what the claim/complete cycle costs alone.

usage: noop_pilot.py URL DB LOGFILE REPORTFILE [--prefetch K] [--max-tasks N] [--rss-at N,N...]

It is the real :class:`picas.pilot.loop.Pilot` (claims, leases, result saving,
conflict handling) with only :meth:`~picas.pilot.loop.Pilot.execute` replaced:
instead of starting bash, each token is finished with exit code 0 at once,
through the pilot's own ``_result_body`` so the saved body is the one a real
run saves.  Running a process per token would measure fork/exec, not picas.

Each executed token id is appended (and flushed) to LOGFILE *before* the
result is saved, so that a token executed twice shows up twice even if a
pilot dies: duplicates are counted from side effects, not from what the
pilots believe.  At the end the PilotReport (processed, conflicts, requests)
goes to REPORTFILE as JSON, with the resident set size at the requested
token counts when ``--rss-at`` is given (the memory figure).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from picas.core.client import CouchClient
from picas.pilot.payload import ExecResult
from picas.pilot.loop import Pilot, PilotConfig


def rss_kib() -> int:
    """This process's resident set size (VmRSS) in KiB, as the kernel counts it.

    Read here rather than imported from the benchmark helpers so that the
    pilot process loads nothing a real pilot would not.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class NoOpPilot(Pilot):
    """A Pilot whose payload does nothing and succeeds; everything else is the real pilot."""

    def __init__(self, client: CouchClient, config: PilotConfig, log, rss_at: list[int]) -> None:
        super().__init__(client, config, install_signals=False)
        self.log = log
        self.rss_at = sorted(rss_at)
        self.rss: dict[str, int] = {}
        self.executed = 0
        # ExecResult wants log paths; none are written, and the pilot's cleanup ignores missing files.
        self._no_log = self.workroot / "noop-pilot-has-no-logs"

    def execute(self, doc: dict) -> tuple[dict, str]:
        """Record the execution, then finish the token with exit code 0 without running anything."""
        if self.keeper.is_lost(doc["_id"]):
            return doc, "lost"
        self.log.write(doc["_id"] + "\n")
        self.log.flush()
        now = time.time()
        result = ExecResult(exit_code=0, started=now, finished=now, stdout=self._no_log, stderr=self._no_log)
        body = self._result_body(doc, result)
        self.executed += 1
        if self.rss_at and self.executed == self.rss_at[0]:
            self.rss[str(self.rss_at.pop(0))] = rss_kib()
        return body, "finished"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("db")
    parser.add_argument("logfile", type=Path)
    parser.add_argument("reportfile", type=Path)
    parser.add_argument("--prefetch", type=int, default=1, help="tokens claimed per _bulk_docs request")
    parser.add_argument("--max-tasks", type=int, default=None)
    parser.add_argument("--rss-at", default="", help="token counts at which to record VmRSS, e.g. 100,10000")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    rss_at = [int(n) for n in args.rss_at.split(",") if n.strip()]
    # Work directories and the journal go beside the log (one per run, shared by its pilots as on one
    # host), not into the system-wide /tmp/picas-<uid> that real pilots and the test suite use.
    config = PilotConfig(prefetch=args.prefetch, max_tasks=args.max_tasks, attach_logs=False,
                         workdir=args.logfile.resolve().parent / "work")
    started = time.time()
    with open(args.logfile, "a") as log:
        pilot = NoOpPilot(CouchClient(args.url, args.db), config, log, rss_at)
        report = pilot.run()
    args.reportfile.write_text(json.dumps({
        "pilot_id": report.pilot_id, "processed": report.processed, "done": report.done,
        "failed": report.failed, "lost": report.lost, "released": report.released,
        "conflicts": report.conflicts, "requests": report.requests, "reason": report.reason,
        "claim_conflicts": pilot.claimer.stats.conflicts, "view_queries": pilot.claimer.stats.view_queries,
        "stale_rows": pilot.claimer.stats.stale_rows, "scan_queries": pilot.claimer.stats.scan_queries,
        "scanned_rows": pilot.claimer.stats.scanned_rows,
        "process_started": started, "loop_started": report.started, "loop_finished": report.finished,
        "loop_seconds": report.duration, "rss_kib": pilot.rss,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
