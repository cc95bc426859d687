"""Scrubbing: give tokens held by dead pilots back to the pool, in bulk.

A live pilot renews the lease of each token it holds (see :mod:`picas.pilot.lease`).
A token whose ``lease_until`` lies in the past therefore belongs to a pilot
that died, hung, or lost the server for longer than the lease.  Tokens locked
by older clients carry no lease; for them only the lock's age can tell, and
only when the operator says how old is too old (``older_than``).

The ``expired`` view is keyed by the time each claim runs out, so one range
query (``endkey=now``) finds every candidate without scanning the pool; pages
of it come with the current bodies (``include_docs``) and go back in
``_bulk_docs`` batches: scrubbing 10,000 tokens takes tens of requests, not
tens of thousands.

Each body is checked again before it is written, and written with its own
revision.  A 409 means the token changed after we read it — its pilot renewed
the lease or finished it — and the pilot wins: the token is re-read and
scrubbed only if it still qualifies.  A token scrubbed ``max_attempts`` times
already goes to error with the reason, instead of looping forever.

On a cluster (:mod:`picas.core.replicas`) a token with conflicting leaves is
settled before it is judged: a later attempt outranks an earlier one, an
ending of an attempt its lock, so the lease judged is the one that counts.  A
reset answered 202 (stored by fewer copies than the write quorum) is counted
as done: the only writer it can race is the token's pilot, whose lease ran
out, and when the copies meet the reset outranks that pilot's lock, which the
pilot finds out at its next renewal.  With ``settle_conflicts`` every
conflicted document of the database is settled first, so a run leaves no
``_conflicts`` behind ('picas scrub' does this).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.core.replicas import current as stored, replicas_of, settle_all, settle_body

EXPIRED_VIEW = "expired"


@dataclass
class ScrubReport:
    reset: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    skipped: int = 0
    requests: int = 0
    #: Documents whose conflicting leaves were settled (``settle_conflicts``).
    settled: int = 0

    @property
    def total(self) -> int:
        return len(self.reset) + len(self.errored)


def scrub_decision(doc: dict, now: float, older_than: float | None, max_attempts: int | None,
                   who: tok.PilotIdentity | None) -> dict | None:
    """The scrubbed body for one token, or None if it does not qualify (pure)."""
    if not tok.lease_expired(doc, now, older_than):
        return None
    holder = f"pilot {doc.get('pilot')} on {doc.get('hostname') or 'an unknown host'}" if doc.get("pilot") \
        else f"host {doc.get('hostname') or 'unknown'}"
    if doc.get("lease_until") is not None:
        why = f"lease of {holder} expired at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(doc['lease_until']))} UTC"
    else:
        why = f"locked by {holder} for more than {older_than:g} s without a lease"
    scrubs = int(doc.get("scrub_count") or 0)
    if max_attempts is not None and scrubs >= max_attempts:
        return tok.fail(doc, who, now, f"{why}; already scrubbed {scrubs} times (--max-attempts {max_attempts}), "
                                       f"so it goes to error instead of back to todo")
    return tok.reset(doc, who, now, why)


def scrub_expired(client: CouchClient, *, design: str = "Monitor", now: float | None = None,
                  older_than: float | None = None, max_attempts: int | None = None, dry_run: bool = False,
                  batch: int = 1000, limit: int | None = None, who: tok.PilotIdentity | None = None,
                  progress: Callable[[int], None] | None = None, settle_conflicts: bool = False) -> ScrubReport:
    """Reset (or fail) every token whose claim ran out before ``now``; see the module docstring."""
    now = time.time() if now is None else now
    report = ScrubReport()
    before = client.stats["requests"]
    pending: list[dict] = []
    if settle_conflicts and not dry_run and replicas_of(client).clustered:
        report.settled = settle_all(client, who)

    def flush() -> None:
        if not pending:
            return
        if not dry_run:
            for body, result in zip(pending, client.bulk_save(pending)):
                if result.ok:
                    _count(report, body)
                elif result.conflict:
                    _retry_one(client, body["_id"], now, older_than, max_attempts, who, report)
        else:
            for body in pending:
                _count(report, body)
        if progress:
            progress(len(pending))
        pending.clear()

    for row in client.iter_view(design, EXPIRED_VIEW, page_size=batch, endkey=now, include_docs=True,
                                conflicts=True):
        doc = settle_body(client, row.doc, who) if not dry_run else row.doc
        body = scrub_decision(doc, now, older_than, max_attempts, who) if doc else None
        if body is None:
            report.skipped += 1
            continue
        pending.append(body)
        if len(pending) >= batch:
            flush()
        if limit is not None and report.total + len(pending) >= limit:
            break
    flush()
    report.requests = client.stats["requests"] - before
    return report


def _count(report: ScrubReport, body: dict) -> None:
    (report.reset if tok.state(body) == "todo" else report.errored).append(body["_id"])


def _retry_one(client: CouchClient, token_id: str, now: float, older_than: float | None,
               max_attempts: int | None, who: tok.PilotIdentity | None, report: ScrubReport) -> None:
    current = stored(client, token_id, who)
    body = scrub_decision(current, now, older_than, max_attempts, who) if current else None
    if body is None:
        report.skipped += 1  # its pilot renewed or finished it: the pilot wins
        return
    result = client.bulk_save([body])[0]
    if result.ok:
        _count(report, body)
    else:
        report.skipped += 1
