"""The data behind the report's pilots section: what each pilot did, how busy it was, how it ended.

A pilot is known from its record (:mod:`picas.pilot.record`: start, end, how
it ended) and from the attempts that name it.  Pilots of older clients, or
whose record could not be written, are known from their attempts alone: their
life is taken as their first claim to their last end, and how they ended is
unknown.  A pilot with a start record, no end and nothing heard from it for
longer than its lease (its tokens' heartbeats, its own attempts) is *lost*:
killed, out of memory, or its node went away.  Pure.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from picas.pilot.record import PilotEnd
from picas.report.attempts import Attempt, Outcome, number

__all__ = ["PilotSummary", "MAX_PILOT_ROWS", "class_name", "pilot_spans", "pilots", "summarize"]

MAX_PILOT_ROWS = 1000
#: How long a pilot without an end record may stay silent before it counts as lost, when its lease is unknown.
DEFAULT_LOST_AFTER = 600.0
UNKNOWN = "unknown"


@dataclass
class PilotSummary:
    pilot: str
    host: str = ""
    job: str = ""
    klass: str = ""
    started: float | None = None
    ended: float | None = None
    end: str = UNKNOWN
    reason: str = ""
    done: int = 0
    failed: int = 0
    other: int = 0
    busy: float = 0.0
    last_seen: float | None = None
    has_record: bool = False
    spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def life(self) -> float:
        if self.started is None or self.ended is None:
            return 0.0
        return max(0.0, self.ended - self.started)

    def to_dict(self) -> dict:
        life = self.life
        return {"pilot": self.pilot, "host": self.host, "job": self.job, "class": self.klass,
                "started": self.started, "ended": self.ended, "end": self.end, "reason": self.reason,
                "done": self.done, "failed": self.failed, "other": self.other, "busy_seconds": round(self.busy, 3),
                "life_seconds": round(life, 3), "busy_fraction": round(min(1.0, self.busy / life), 4) if life else None,
                "idle_seconds": round(max(0.0, life - self.busy), 3) if life else None, "record": self.has_record}


def class_name(record: dict) -> str:
    """The pilot class a record belongs to: its design document, and its view when that is not todo."""
    design = str(record.get("design") or "?")
    view = str(record.get("view") or "todo")
    return design if view == "todo" else f"{design}/{view}"


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for start, stop in sorted(spans):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def summarize(records: Iterable[dict], tries: Iterable[Attempt], now: float,
              heartbeats: dict[str, float] | None = None) -> list[PilotSummary]:
    """One summary per pilot seen in a record or an attempt."""
    heartbeats = heartbeats or {}
    found: dict[str, PilotSummary] = {}
    lease: dict[str, float] = {}
    for record in records:
        pilot = str(record.get("pilot") or "")
        if not pilot:
            continue
        summary = found.setdefault(pilot, PilotSummary(pilot))
        summary.has_record = True
        summary.host = str(record.get("host") or "")
        jobs = record.get("job_ids") or {}
        summary.job = str(next(iter(jobs.values()), "")) if isinstance(jobs, dict) else ""
        summary.klass = class_name(record)
        summary.started = number(record.get("started"))
        summary.ended = number(record.get("ended"))
        summary.reason = str(record.get("reason") or "")
        summary.end = str(record.get("end") or (PilotEnd.RUNNING.value if summary.ended is None else UNKNOWN))
        lease[pilot] = number(record.get("lease_seconds")) or DEFAULT_LOST_AFTER
    done, failed, not_own = Outcome.DONE, (Outcome.ERROR, Outcome.RETRIED), (Outcome.SCRUBBED, Outcome.LOST)
    for attempt in tries:
        summary = found.get(attempt.pilot)
        if summary is None:
            summary = found[attempt.pilot] = PilotSummary(attempt.pilot, host=attempt.host)
        summary.host = summary.host or attempt.host
        summary.job = summary.job or attempt.job
        outcome = attempt.outcome
        if outcome is done:
            summary.done += 1
        elif outcome in failed:
            summary.failed += 1
        else:
            summary.other += 1
        begin = attempt.started if attempt.started is not None else attempt.claimed
        stop = attempt.finished if attempt.finished is not None else attempt.end_or(now)
        summary.spans.append((begin, max(begin, stop)))
        # A sign of life is what the pilot itself wrote: its claims and the ends it recorded (not a scrub's).
        own_end = attempt.ended is not None and outcome not in not_own
        seen = attempt.ended if own_end else attempt.claimed
        summary.last_seen = max(summary.last_seen or seen, seen)
    for pilot, summary in found.items():
        if heartbeats.get(pilot):
            summary.last_seen = max(summary.last_seen or 0.0, heartbeats[pilot])
        if not summary.has_record:
            summary.started = min((s for s, _ in summary.spans), default=None)
            summary.ended = max((e for _, e in summary.spans), default=None)
            summary.klass = ""
            continue
        if summary.ended is None:
            last = max(summary.last_seen or 0.0, summary.started or 0.0)
            if now - last > 2 * lease.get(pilot, DEFAULT_LOST_AFTER):
                summary.end, summary.ended = PilotEnd.LOST.value, last
            else:
                summary.end, summary.ended = PilotEnd.RUNNING.value, now
    for summary in found.values():
        # Busy within the pilot's life: a claim it never finished (it died) ends when the pilot did.
        low, high = summary.started or 0.0, summary.ended if summary.ended is not None else now
        clipped = [(max(a, low), min(b, high)) for a, b in summary.spans]
        summary.busy = _union_length([(a, b) for a, b in clipped if b > a])
    return sorted(found.values(), key=lambda s: (s.started or 0.0, s.pilot))


def pilot_spans(summaries: Iterable[PilotSummary]) -> list[tuple[float, float]]:
    """When each pilot was alive, for the concurrency plot."""
    return [(s.started, s.ended) for s in summaries if s.started is not None and s.ended is not None]


def pilots(summaries: list[PilotSummary], max_rows: int = MAX_PILOT_ROWS) -> dict:
    """Pilot counts by how they ended, busy fractions, and a table of (at most ``max_rows``) pilots."""
    ends = Counter(s.end for s in summaries)
    fractions = [s.to_dict()["busy_fraction"] for s in summaries]
    bins = [0] * 10
    for value in fractions:
        if value is not None:
            bins[min(9, int(value * 10))] += 1
    per_class: dict[str, int] = defaultdict(int)
    for s in summaries:
        per_class[s.klass or "(no pilot record)"] += 1
    rows = [s.to_dict() for s in summaries[-max_rows:]]
    return {"count": len(summaries), "with_record": sum(1 for s in summaries if s.has_record),
            "ends": dict(ends.most_common()), "busy_bins": bins, "classes": dict(per_class),
            "idle_seconds": round(sum(r["idle_seconds"] or 0 for r in (s.to_dict() for s in summaries)), 1),
            "rows": rows, "rows_cut": max(0, len(summaries) - len(rows))}
