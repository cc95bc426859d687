"""The report as data: every section's aggregates, and notes on what could not be shown or was sampled.

:func:`build` is the one entry point that turns a pool's tokens and pilot
records into the JSON document the page draws (and the dashboard serves).
It is pure: the caller passes the time, the documents and any log tails.
"""
from __future__ import annotations

import datetime
import time
from typing import Iterable

from picas.core import token as tok
from picas.errors import InvalidInput

from picas.report import aggregates as agg
from picas.report.attempts import Attempt, attempts, created_at, has_history, number
from picas.report.failures import failures
from picas.report.pilots import pilot_spans, pilots, summarize
from picas.report.timeline import MAX_BARS, timeline
from picas.support.durations import parse_duration

__all__ = ["build", "since_time"]

SCHEMA = 1


def _heartbeats(tokens: Iterable[dict]) -> dict[str, float]:
    """The latest heartbeat per pilot among the tokens it holds: its last sign of life."""
    out: dict[str, float] = {}
    for doc in tokens:
        pilot, beat = doc.get("pilot"), number(doc.get("heartbeat"))
        if pilot and beat:
            out[str(pilot)] = max(out.get(str(pilot), 0.0), beat)
    return out


def _notes(tokens: list[dict], summaries: list, tl: dict, fail: dict, pil: dict, since: float | None,
           tails: int) -> list[str]:
    notes = []
    claimed = [d for d in tokens if number(d.get("lock"))]
    old = sum(1 for d in claimed if not has_history(d))
    if old:
        notes.append(f"{old:,} of {len(claimed):,} claimed tokens carry no history (written by older clients): each "
                     f"shows at most one attempt, taken from its lock and done times; their earlier attempts, "
                     f"retries, scrubs and the waiting/running split are not shown.")
    uncreated = sum(1 for d in tokens if created_at(d) is None)
    if uncreated:
        notes.append(f"{uncreated:,} of {len(tokens):,} tokens carry no creation time (pushed by older clients): "
                     f"they count as todo from the start of the progress plot and have no wait time.")
    unrecorded = sum(1 for s in summaries if not s.has_record)
    if unrecorded:
        notes.append(f"{unrecorded:,} of {len(summaries):,} pilots left no pilot record (older clients, or the "
                     f"record could not be written): their life is taken from their first claim to their last "
                     f"finish, their class is unknown, and how they ended is not known.")
    if tl["shown_attempts"] < tl["total_attempts"]:
        notes.append(f"The timeline is a sample: {tl['shown_lanes']:,} of {tl['total_lanes']:,} pilot lanes, "
                     f"{tl['shown_attempts']:,} of {tl['total_attempts']:,} attempts (whole lanes, at most "
                     f"{MAX_BARS:,} bars). Every other plot counts all attempts.")
    if fail["rows_cut"]:
        notes.append(f"The failed-token table lists the {len(fail['rows']):,} most recent of "
                     f"{fail['failed_tokens']:,} failed tokens.")
    if fail["failed_tokens"]:
        notes.append(f"{tails:,} of the {fail['failed_tokens']:,} failed tokens show the end of their log: only the "
                     f"most recent failures are looked at (--log-tails), and an empty or missing log shows nothing.")
    if pil["rows_cut"]:
        notes.append(f"The pilot table lists the {len(pil['rows']):,} most recent of {pil['count']:,} pilots.")
    if since is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        notes.append(f"Only attempts that ended (or still run) after {when} are counted; the current counts "
                     f"cover every token.")
    return notes


def since_time(text: str, now: float) -> float:
    """``--since``: a duration back from ``now`` (``2h``, ``1d``) or a date and time (``2024-05-01 12:00``).

    A date and time without a zone is local time, as an operator types it.
    """
    value = str(text).strip()
    try:
        return now - parse_duration(value)
    except InvalidInput:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"cannot read --since {text!r}",
                           hint="give a duration back from now (30m, 2h, 1d) or a date and time (2024-05-01 12:00)")
    if moment.tzinfo is None:
        return time.mktime(moment.timetuple()) + moment.microsecond / 1e6
    return moment.timestamp()


def build(tokens: list[dict], pilot_records: list[dict], *, now: float, since: float | None = None,
          title: str = "", source: str = "", scope: str = "", log_tails: dict[str, str] | None = None,
          tries_of: dict[int, list[Attempt]] | None = None) -> dict:
    """Everything the page shows, as JSON-ready data (see the module docstring).

    ``tries_of`` may bring each token's attempts, keyed by ``id()`` of its
    body, when the reader parsed them already (:class:`picas.report.collect.Pool`).
    """
    log_tails = log_tails or {}
    known = tries_of or {}
    tries_of = {id(doc): known[id(doc)] if id(doc) in known else attempts(doc) for doc in tokens}  # each read once
    every: list[Attempt] = [a for found in tries_of.values() for a in found]
    tries = every if since is None else [a for a in every if a.end_or(now) >= since]
    win = agg.window(tokens, tries, now, since)
    summaries = summarize(pilot_records, every, now, _heartbeats(tokens))
    class_of = {s.pilot: s.klass for s in summaries if s.klass}
    states = [tok.state(doc) for doc in tokens]
    tl = timeline(tries, now)
    fail = failures(tokens, tries, log_tails, states=states)
    pil = pilots(summaries)
    return {
        "schema": SCHEMA,
        "meta": {"title": title or "picas report", "source": source, "scope": scope, "generated": now,
                 "since": since, "tokens": len(tokens), "attempts": len(tries), "pilots": len(summaries),
                 "step": win.step, "start": win.start, "end": win.end},
        "counts": agg.current_counts(tokens, states),
        "progress": agg.progress(tokens, win, tries_of),
        "throughput": agg.throughput(tries, win),
        "concurrency": agg.concurrency(tries, pilot_spans(summaries), win, now),
        "timeline": tl,
        "distributions": agg.distributions(tokens, tries, class_of),
        "failures": fail,
        "pilots": pil,
        "notes": _notes(tokens, summaries, tl, fail, pil, since, len(log_tails)),
    }
