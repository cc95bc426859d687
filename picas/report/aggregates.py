"""The data behind the report's time plots: progress, throughput, concurrency, distributions.

Pure functions of token documents and their attempts (:mod:`picas.report.attempts`).
Each returns plain JSON-ready data sized by the plot, not by the pool: time
series are binned on a grid of at most :data:`MAX_BINS` intervals and
distributions are histograms with summary figures, so 10^5 tokens cost the
page the same few kilobytes as 10^2.  Times are epoch seconds.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

from picas.core import token as tok
from picas.report.attempts import Attempt, Outcome, created_at, transitions

__all__ = ["MAX_BINS", "Window", "concurrency", "current_counts", "distribution", "distributions", "progress",
           "throughput", "window"]

STATES = ("todo", "locked", "done", "error")
MAX_BINS = 240
#: Interval lengths a time axis may be cut into, in seconds: what a reader can name.
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
              2 * 86400, 7 * 86400, 30 * 86400)
HIST_BINS = 40


@dataclass(frozen=True)
class Window:
    """The time span the plots cover, cut into ``bins`` intervals of ``step`` seconds."""

    start: float
    end: float
    step: float

    @property
    def bins(self) -> int:
        return max(1, math.ceil((self.end - self.start) / self.step))

    def edges(self) -> list[float]:
        return [self.start + i * self.step for i in range(self.bins + 1)]

    def index(self, when: float) -> int | None:
        if when < self.start or when > self.end:
            return None
        return min(self.bins - 1, int((when - self.start) // self.step))


def nice_step(span: float, max_bins: int = MAX_BINS) -> float:
    for step in NICE_STEPS:
        if span / step <= max_bins:
            return float(step)
    return float(math.ceil(span / max_bins / 86400) * 86400)


def window(docs: Iterable[dict], tries: Iterable[Attempt], now: float, since: float | None = None,
           max_bins: int = MAX_BINS) -> Window:
    """From ``since`` (or the first push or claim seen) to ``now``, on a step a reader can name."""
    if since is None:
        times = [t for t in (created_at(d) for d in docs) if t is not None]
        times += [a.claimed for a in tries]
        since = min(times) if times else now - 60
    start = min(since, now - 1)
    step = nice_step(now - start, max_bins)
    start = math.floor(start / step) * step
    return Window(start=start, end=max(now, start + step), step=step)


def current_counts(docs: Iterable[dict], states: Iterable[str] | None = None) -> dict[str, int]:
    """Tokens per state now, as ``picas status`` counts them (``states``: each doc's, when known already)."""
    counts = Counter(states if states is not None else (tok.state(d) for d in docs))
    out = {state: counts.get(state, 0) for state in STATES}
    if counts.get("other"):
        out["other"] = counts["other"]
    return out


def progress(docs: Iterable[dict], win: Window, tries_of: dict[int, list[Attempt]] | None = None) -> dict:
    """Tokens per state at the end of each interval (tokens pushed later are not yet counted).

    ``tries_of`` may map ``id(doc)`` to the token's attempts, when the caller has them already.
    Each change of state is added to the first interval end at or after it and the counts are
    summed up once: no sorting, so 10^5 tokens cost a few hundred milliseconds.
    """
    bins = win.bins
    diff = {state: [0] * bins for state in STATES}
    known = tries_of or {}
    for doc in docs:
        previous = None
        for when, state in transitions(doc, win.start, known.get(id(doc))):
            if state == previous:
                continue
            k = max(0, math.ceil((when - win.start) / win.step) - 1)
            if k < bins:
                if previous in diff:
                    diff[previous][k] -= 1
                if state in diff:
                    diff[state][k] += 1
            previous = state
    series = {}
    for state in STATES:
        total, values = 0, []
        for change in diff[state]:
            total += change
            values.append(total)
        series[state] = values
    return {"times": win.edges()[1:], "series": series}


def throughput(tries: Iterable[Attempt], win: Window) -> dict:
    """Attempts that ended in each interval, by outcome (done, error, retried, scrubbed, lost, released)."""
    kinds = (Outcome.DONE, Outcome.ERROR, Outcome.RETRIED, Outcome.SCRUBBED, Outcome.LOST, Outcome.RELEASED)
    counts = {kind.value: [0] * win.bins for kind in kinds}
    for attempt in tries:
        if attempt.ended is None or attempt.outcome.value not in counts:
            continue
        i = win.index(attempt.ended)
        if i is not None:
            counts[attempt.outcome.value][i] += 1
    series = {name: values for name, values in counts.items() if any(values) or name in ("done", "error", "retried")}
    return {"starts": win.edges()[:-1], "step": win.step, "series": series}


def _step_average(intervals: list[tuple[float, float]], win: Window) -> tuple[list[float], list[int]]:
    """Time-weighted mean and peak of the number of open intervals in each bin (a sweep over start/end events)."""
    net: Counter = Counter()
    for start, stop in intervals:
        if stop > start:
            net[start] += 1
            net[stop] -= 1
    events = sorted(net.items())  # one net change per instant: no zero-length peaks where one ends as one starts
    means, peaks = [0.0] * win.bins, [0] * win.bins
    level, cursor, i = 0, win.start, 0
    edges = win.edges()
    for when, change in events:
        when = min(max(when, win.start), win.end)
        while i < win.bins and edges[i + 1] <= when:
            means[i] += level * (edges[i + 1] - cursor)
            peaks[i] = max(peaks[i], level)
            cursor, i = edges[i + 1], i + 1
        if i < win.bins:
            if when > cursor:  # the level before this event held for a while inside this bin
                means[i] += level * (when - cursor)
                peaks[i] = max(peaks[i], level)
            peaks[i] = max(peaks[i], level + change)
        cursor, level = when, level + change
    while i < win.bins:
        means[i] += level * (edges[i + 1] - cursor)
        peaks[i] = max(peaks[i], level)
        cursor, i = edges[i + 1], i + 1
    width = [edges[k + 1] - edges[k] for k in range(win.bins)]
    return [round(m / w, 3) if w else 0.0 for m, w in zip(means, width)], peaks


def concurrency(tries: Iterable[Attempt], pilot_spans: Iterable[tuple[float, float]], win: Window,
                now: float) -> dict:
    """Tokens held (claimed, running) and pilots alive over time: mean and peak per interval."""
    held = [(a.claimed, a.end_or(now)) for a in tries]
    running_mean, running_peak = _step_average(held, win)
    pilots_mean, pilots_peak = _step_average(list(pilot_spans), win)
    return {"starts": win.edges()[:-1], "step": win.step, "tokens_mean": running_mean, "tokens_peak": running_peak,
            "pilots_mean": pilots_mean, "pilots_peak": pilots_peak}


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def distribution(values: Iterable[float], bins: int = HIST_BINS) -> dict:
    """A histogram (equal bins up to the 99th percentile, the rest in the last bin) and summary figures."""
    ordered = sorted(v for v in values if v is not None and v >= 0)
    if not ordered:
        return {"n": 0}
    top = _quantile(ordered, 0.99) or ordered[-1] or 1.0
    width = top / bins if top > 0 else 1.0
    counts = [0] * bins
    for value in ordered:
        counts[min(bins - 1, int(value / width))] += 1
    return {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), 3), "p50": round(_quantile(ordered, .5), 3),
            "p90": round(_quantile(ordered, .9), 3), "p99": round(_quantile(ordered, .99), 3),
            "max": round(ordered[-1], 3), "width": width, "starts": [round(i * width, 3) for i in range(bins)],
            "counts": counts}


def distributions(docs: Iterable[dict], tries: Iterable[Attempt], class_of: dict[str, str],
                  unknown: str = "(no pilot record)") -> dict:
    """Run times of finished attempts and wait times (push to first claim), per pilot class.

    ``class_of`` maps a pilot id to its class (the design document, and the
    view when it is not todo); attempts of pilots without a record fall in
    ``unknown``.  A token's wait belongs to the class of the pilot that first
    claimed it.  Tokens without a creation time have no wait.
    """
    run: dict[str, list[float]] = defaultdict(list)
    wait: dict[str, list[float]] = defaultdict(list)
    first: dict[str, Attempt] = {}
    for attempt in tries:
        if attempt.token not in first or attempt.claimed < first[attempt.token].claimed:
            first[attempt.token] = attempt
        if attempt.outcome in (Outcome.DONE, Outcome.ERROR, Outcome.RETRIED):
            seconds = attempt.run_seconds
            if seconds is not None:
                run[class_of.get(attempt.pilot, unknown)].append(seconds)
    for doc in docs:
        created = created_at(doc)
        attempt = first.get(str(doc.get("_id")))
        if created is not None and attempt is not None:
            wait[class_of.get(attempt.pilot, unknown)].append(max(0.0, attempt.claimed - created))
    classes = sorted(set(run) | set(wait))
    return {"classes": classes, "run": {c: distribution(run.get(c, [])) for c in classes},
            "wait": {c: distribution(wait.get(c, [])) for c in classes}}
