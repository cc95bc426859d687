"""The data behind the report's timeline: one lane per pilot, one bar per token attempt.

Lanes are grouped by batch job (a Slurm array task, a DIRAC job) when the
pilot ran in one, else by host, so the pilots of one node or one job sit
together.  Each attempt is drawn as up to three kinds of segment: waiting
(claimed, but its payload not started yet: a prefetched token), staging
(stage-in/stage-out, when the token's history has them) and running, the
last coloured by how the attempt ended.

A browser draws a few thousand bars smoothly, not 10^5; above ``max_bars``
attempts whole lanes are sampled (a fixed, id-based choice, so two reports
of the same pool show the same pilots) and the data says how many were left
out.  Pure.
"""
from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Iterable

from picas.report.attempts import Attempt

__all__ = ["MAX_BARS", "timeline"]

MAX_BARS = 4000


def _groups(tries: list[Attempt]) -> dict[str, str]:
    """Each pilot's group: its batch job when any of its attempts knows it (only the latest one of a token
    carries the job id), else its host."""
    jobs: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for attempt in tries:
        if attempt.job:
            jobs.setdefault(attempt.pilot, attempt.job)
        if attempt.host:
            hosts.setdefault(attempt.pilot, attempt.host)
    return {pilot: f"job {jobs[pilot]}" if pilot in jobs else hosts.get(pilot, "unknown host")
            for pilot in {a.pilot for a in tries}}


def _segments(attempt: Attempt, now: float) -> list[tuple[str, float, float]]:
    out = []
    begin = attempt.claimed
    # Token times are whole seconds: a start within a second of the claim is no wait worth drawing.
    if attempt.started is not None and attempt.started > attempt.claimed + 1:
        out.append(("waiting", attempt.claimed, attempt.started))
        begin = attempt.started
    for kind, start, stop in attempt.staging:
        out.append((kind, start, max(start, stop)))
    stop = attempt.finished if attempt.finished is not None else attempt.end_or(now)
    out.append((attempt.outcome.value, begin, max(begin, stop)))
    return out


def timeline(tries: Iterable[Attempt], now: float, max_bars: int = MAX_BARS) -> dict:
    """Lanes, and per segment kind the bars: lane index, start, end, token id (see the module docstring)."""
    tries = list(tries)
    group_of = _groups(tries)
    lanes: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for attempt in tries:
        lanes[(group_of[attempt.pilot], attempt.pilot or "unknown pilot")].append(attempt)
    total = sum(len(v) for v in lanes.values())
    chosen = list(lanes)
    if total > max_bars:
        # Whole lanes, in an order fixed by their names: a sample that is the same on every run.
        order = sorted(lanes, key=lambda key: zlib.crc32("/".join(key).encode()))
        chosen, budget = [], 0
        for key in order:
            if chosen and budget + len(lanes[key]) > max_bars:
                continue
            chosen.append(key)
            budget += len(lanes[key])
    chosen.sort(key=lambda key: (key[0], min(a.claimed for a in lanes[key]), key[1]))
    bars: dict[str, dict[str, list]] = defaultdict(lambda: {"lane": [], "start": [], "end": [], "token": []})
    shown = 0
    for index, key in enumerate(chosen):
        for attempt in sorted(lanes[key], key=lambda a: a.claimed):
            shown += 1
            for kind, start, stop in _segments(attempt, now):
                bar = bars[kind]
                bar["lane"].append(index)
                bar["start"].append(round(start, 3))
                bar["end"].append(round(stop, 3))
                bar["token"].append(attempt.token)
    return {"lanes": [f"{group} · {pilot}" for group, pilot in chosen], "groups": [group for group, _ in chosen],
            "bars": dict(bars), "shown_attempts": shown, "total_attempts": total,
            "shown_lanes": len(chosen), "total_lanes": len(lanes)}
