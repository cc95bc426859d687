"""The data behind the report's failures section: what failed, where, why, and what was retried or scrubbed.

Counts are over failed *attempts* (an attempt that failed and was retried
counts, even if the token is done now), so a flaky host shows up although
its tokens succeeded elsewhere.  The list of failed tokens is over tokens
in the error state now, each with its id, exit code, host, attempts, last
message and, when the collector fetched it, the tail of its log.  Pure.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from picas.core import token as tok
from picas.report.attempts import Attempt, Outcome, attempts, is_scrub_reason, last_error, number

__all__ = ["MAX_FAILED_ROWS", "failures", "short_message"]

MAX_FAILED_ROWS = 500
TOP = 15
FAILED = (Outcome.ERROR, Outcome.RETRIED)


def short_message(text: str, limit: int = 120) -> str:
    """One line, numbers kept: similar messages group only when they are equal."""
    text = " ".join(str(text or "").split())
    return text[:limit - 3] + "..." if len(text) > limit else text


def _code(value: object) -> str:
    code = tok.parse_exit_code(value)
    return "none" if code is None else str(code)


def failures(docs: list[dict], tries: Iterable[Attempt], log_tails: dict[str, str] | None = None,
             max_rows: int = MAX_FAILED_ROWS, states: list[str] | None = None) -> dict:
    """Failed attempts by exit code, host and message; retries and scrubs; the failed tokens themselves.

    ``states`` may bring each doc's current state (in the order of ``docs``), when known already.
    """
    log_tails = log_tails or {}
    by_code: Counter = Counter()
    by_message: Counter = Counter()
    host_total: Counter = Counter()
    host_failed: Counter = Counter()
    outcomes: Counter = Counter()
    seen = list(tries)
    for attempt in seen:
        outcomes[attempt.outcome.value] += 1
        host = attempt.host or "?"
        if attempt.ended is not None:
            host_total[host] += 1
        if attempt.outcome in FAILED:
            host_failed[host] += 1
            by_code[_code(attempt.exit_code)] += 1
            by_message[short_message(attempt.message) or f"(no message; exit code {_code(attempt.exit_code)})"] += 1
    # A scrub ends an attempt (SCRUBBED, or LOST when its pilot finished after all) with the scrub's reason.
    scrubbed = [a.token for a in seen if a.outcome in (Outcome.SCRUBBED, Outcome.LOST) and is_scrub_reason(a.message)]
    scrub_events = len(scrubbed)
    scrubbed_ids = set(scrubbed)
    for doc in docs:  # tokens of older clients only know how often they were scrubbed
        if not doc.get("history") and int(number(doc.get("scrub_count")) or 0) > 0:
            scrubbed_ids.add(str(doc.get("_id")))
    scrubbed_tokens = len(scrubbed_ids)
    states = states if states is not None else [tok.state(d) for d in docs]
    failed_docs = [d for d, state in zip(docs, states) if state == "error"]
    failed_docs.sort(key=lambda d: -(number(d.get("done")) or 0))
    rows = [_row(doc, log_tails.get(str(doc.get("_id")))) for doc in failed_docs[:max_rows]]
    hosts = sorted(host_total, key=lambda h: (-host_failed[h], h))[:TOP]
    return {
        "by_exit_code": dict(by_code.most_common(TOP)),
        "by_host": {"hosts": hosts, "failed": [host_failed[h] for h in hosts], "total": [host_total[h] for h in hosts]},
        "by_message": by_message.most_common(TOP),
        "attempts": dict(outcomes),
        "retried": outcomes.get(Outcome.RETRIED.value, 0),
        "scrub_events": scrub_events,
        "scrubbed_tokens": scrubbed_tokens,
        "failed_tokens": len(failed_docs),
        "rows": rows,
        "rows_cut": max(0, len(failed_docs) - len(rows)),
    }


def _row(doc: dict, log_tail: str | None) -> dict:
    tries = attempts(doc)
    last = tries[-1] if tries else None
    return {"id": str(doc.get("_id")), "exit_code": _code(doc.get("exit_code")),
            "host": (last.host if last else "") or str(doc.get("hostname") or ""),
            "pilot": last.pilot if last else "", "attempts": int(number(doc.get("attempts")) or len(tries)),
            "scrubs": int(number(doc.get("scrub_count")) or 0), "finished": number(doc.get("done")),
            "message": short_message(last_error(doc) or (last.message if last else ""), 300),
            "log_tail": log_tail}


def failed_ids(docs: Iterable[dict], limit: int) -> list[str]:
    """The error tokens whose log tails are worth fetching: the most recently finished first."""
    failed = [d for d in docs if tok.state(d) == "error"]
    failed.sort(key=lambda d: -(number(d.get("done")) or 0))
    return [str(d.get("_id")) for d in failed[:limit]]
