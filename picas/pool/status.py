"""How a pool is doing: counts per state, throughput, an ETA, and why tokens fail or hang.

Scale is the constraint: a pool may hold 10^6 tokens, and ``picas status``
must still answer in well under two seconds.  So:

* the counts are the ``total_rows`` of the four state views (todo, locked,
  done, error), which the server keeps as index metadata: no document is
  read and no row is counted for them.  The ``overview_total`` reduce would
  give the same numbers in one query, and CouchDB answers it from stored
  reductions; but pouchdb-server computes a reduce by reading every row
  (seconds at 10^5 tokens, tens of seconds at 10^6), so it is not used here.
  Classic scripts that query it still find it deployed;
* the error and locked breakdowns, and the rate, read a bounded *sample* of
  the error, locked and done views (``include_docs``, ``limit``), in the
  same queries that give those counts.  Generated token ids are uniformly
  random (see :mod:`picas.pool.push`), so the first N rows of a view in id order
  are a uniform random sample of its tokens, and the breakdown of the sample
  is an unbiased picture of the whole.  The report says when it is a sample;
* throughput needs time.  :func:`estimate` compares two counts taken ``dt``
  seconds apart (``--watch`` does this on every refresh).  A single
  ``status`` call instead looks at the finish times of a sample of finished
  tokens: the share finished within the last ``window`` seconds, times the
  number finished, is the number finished in that window.

Reading a view brings its index up to date first.  pouchdb-server keeps one
index per view, at roughly a millisecond or two of server time per changed
document: the first ``status`` after a long run, or on a freshly pushed
large pool, waits for those indexes (minutes at 10^6 tokens); later calls
only index what changed since.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from picas import defaults
from picas.core import token as tok
from picas.core.client import CouchClient
from picas.core.states import STATES, State
from picas.pool.tokens import changed_at, job_id
from picas.support.durations import format_duration

DEFAULT_SAMPLE = 200
DEFAULT_WINDOW = 600.0
#: Fewer recent finishes than this in a sample give no rate rather than a wild one.
MIN_RECENT = 5
AGE_BUCKETS = ((600, "<10m"), (3600, "<1h"), (86400, "<1d"), (float("inf"), ">=1d"))


def _state_view(client: CouchClient, design: str, view: str, sample: int) -> tuple[int, list[dict]]:
    """A state's count (the view's ``total_rows``) and up to ``sample`` of its current bodies."""
    result = client.view(design, view, limit=max(sample, 1), include_docs=sample > 0)
    count = result.total_rows if result.total_rows is not None else len(result.rows)
    return count, [row.doc for row in result.rows if row.doc] if sample > 0 else []


def overview(client: CouchClient, design: str = defaults.DESIGN) -> dict[str, int]:
    """Tokens per state; every state is present (0 when empty)."""
    return {state: _state_view(client, design, state, 0)[0] for state in STATES}


@dataclass
class Estimate:
    """Throughput in tokens per second and the seconds left; None where they cannot be known."""

    rate: float | None = None
    eta: float | None = None
    basis: str = ""

    def to_dict(self) -> dict:
        return {"rate": self.rate, "eta": self.eta, "basis": self.basis}


def finished(counts: dict[str, int]) -> int:
    """Tokens that ran to an end, successful or not: what the rate counts."""
    return int(counts.get(State.DONE, 0)) + int(counts.get(State.ERROR, 0))


def remaining(counts: dict[str, int]) -> int:
    """Tokens still to run (todo) or running (locked): what the ETA waits for."""
    return int(counts.get(State.TODO, 0)) + int(counts.get(State.LOCKED, 0))


def time_left(rate: float | None, counts: dict[str, int]) -> float | None:
    """Seconds to finish what is left (todo + locked) at ``rate``; 0 when nothing is left, None if unknown."""
    left = remaining(counts)
    if left == 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return left / rate


def estimate(prev: dict[str, int], cur: dict[str, int], dt: float) -> Estimate:
    """Rate and ETA from two counts taken ``dt`` seconds apart.

    The rate is finished tokens (done + error) per second; tokens put back
    to todo meanwhile make it smaller, never negative.  The ETA is the time
    for today's rate to finish what is left (todo + locked).
    """
    if dt <= 0:
        return Estimate(eta=time_left(None, cur), basis="no time has passed")
    rate = max(0.0, (finished(cur) - finished(prev)) / dt)
    span = f"{dt:.1f}" if dt < 10 else f"{dt:.0f}"
    return Estimate(rate=rate, eta=time_left(rate, cur), basis=f"last {span}s")


def estimate_from_samples(groups: list[tuple[list[float], int]], now: float,
                          window: float = DEFAULT_WINDOW) -> Estimate:
    """Rate from finish times of uniform samples of finished tokens (ETA left to the caller).

    Each group is (finish times of a sample, how many tokens the sample was
    drawn from), e.g. one for done and one for error.  If k of a group's n
    sampled tokens finished within the last ``window`` seconds, about
    ``k / n * N`` of its N tokens did.  If even the oldest sampled finish is
    younger than the window, the pool started recently and the rate is taken
    over that shorter span.  Fewer than :data:`MIN_RECENT` recent finishes
    give no estimate, since one or two would make a wild one.
    """
    groups = [(times, total) for times, total in groups if times and total]
    if not groups or window <= 0:
        return Estimate(basis="nothing finished yet")
    oldest = min(min(times) for times, _ in groups)
    span = max(1.0, min(window, now - oldest))
    recent = [sum(1 for t in times if now - t <= span) for times, _ in groups]
    sampled = sum(len(times) for times, _ in groups)
    if sum(recent) < MIN_RECENT and sum(recent) < sampled:
        return Estimate(basis=f"too few finished in the last {window:.0f}s to tell; try --watch")
    count = sum(k / len(times) * total for k, (times, total) in zip(recent, groups))
    is_sample = any(len(times) < total for times, total in groups)
    return Estimate(rate=count / span, basis=f"last {span:.0f}s" + (", from a sample" if is_sample else ""))


@dataclass
class ErrorBreakdown:
    """Exit codes and messages of (a sample of) the error tokens."""

    sampled: int = 0
    total: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    messages: Counter = field(default_factory=Counter)
    #: The stage staged tokens failed in (``failed_stage``: stage-in, run, stage-out; see picas.staging).
    stages: Counter = field(default_factory=Counter)

    def to_dict(self, top: int = 10) -> dict:
        return {"sampled": self.sampled, "total": self.total,
                "exit_codes": {str(k): v for k, v in self.exit_codes.most_common(top)},
                "messages": dict(self.messages.most_common(top)), "stages": dict(self.stages)}


@dataclass
class LockedBreakdown:
    """Hosts, jobs, ages and expired leases of (a sample of) the locked tokens."""

    sampled: int = 0
    total: int = 0
    hosts: Counter = field(default_factory=Counter)
    ages: Counter = field(default_factory=Counter)
    expired: int = 0
    oldest: float | None = None

    def to_dict(self, top: int = 10) -> dict:
        return {"sampled": self.sampled, "total": self.total, "hosts": dict(self.hosts.most_common(top)),
                "ages": {label: self.ages.get(label, 0) for _, label in AGE_BUCKETS},
                "expired_leases": self.expired, "oldest_seconds": self.oldest}


def last_message(doc: dict) -> str:
    """The latest error message of a token, one line, at most 100 characters."""
    errors = doc.get("error")
    entry = errors[-1] if isinstance(errors, list) and errors else errors
    text = entry.get("message", "") if isinstance(entry, dict) else str(entry or "")
    text = " ".join(text.split())
    return text[:97] + "..." if len(text) > 100 else text


def break_down_errors(docs: list[dict], total: int) -> ErrorBreakdown:
    """Count exit codes and last messages among error tokens (pure)."""
    out = ErrorBreakdown(total=total)
    for doc in docs:
        if tok.state(doc) is not State.ERROR:
            continue  # the view row was stale: it finished or was reset since
        out.sampled += 1
        code = tok.parse_exit_code(doc.get("exit_code"))
        out.exit_codes["none" if code is None else code] += 1
        message = last_message(doc)
        if message:
            out.messages[message] += 1
        if doc.get("failed_stage"):
            out.stages[str(doc["failed_stage"]).replace("_", "-")] += 1
    return out


def age_bucket(age: float) -> str:
    """The coarse age class of a lock, so a breakdown shows stuck tokens at a glance."""
    for limit, label in AGE_BUCKETS:
        if age < limit:
            return label
    return AGE_BUCKETS[-1][1]


def break_down_locked(docs: list[dict], total: int, now: float) -> LockedBreakdown:
    """Count hosts (with their job), lock ages and expired leases among locked tokens (pure)."""
    out = LockedBreakdown(total=total)
    for doc in docs:
        if tok.state(doc) is not State.LOCKED:
            continue
        out.sampled += 1
        host = doc.get("hostname") or "?"
        job = job_id(doc)
        out.hosts[f"{host} (job {job})" if job else host] += 1
        since = changed_at(doc)
        if since is not None:
            age = now - since
            out.ages[age_bucket(age)] += 1
            out.oldest = age if out.oldest is None else max(out.oldest, age)
        if tok.lease_expired(doc, now):
            out.expired += 1
    return out


@dataclass
class PoolStatus:
    """Everything ``picas status`` shows, as data."""

    database: str
    counts: dict[str, int]
    time: float
    estimate: Estimate
    errors: ErrorBreakdown
    locked: LockedBreakdown

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def fraction_done(self) -> float:
        """Finished share of all tokens (done and error both count as finished)."""
        return finished(self.counts) / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {"database": self.database, "time": self.time, "total": self.total, "counts": dict(self.counts),
                "fraction_done": round(self.fraction_done, 6), "rate": self.estimate.rate,
                "eta_seconds": self.estimate.eta, "rate_basis": self.estimate.basis,
                "errors": self.errors.to_dict(), "locked": self.locked.to_dict()}


def finish_times(docs: list[dict]) -> list[float]:
    """The ``done`` timestamps of finished bodies (stale rows without one are skipped)."""
    times = []
    for doc in docs:
        try:
            done = float(doc.get("done") or 0)
        except (TypeError, ValueError):
            continue
        if done > 0:
            times.append(done)
    return times


def snapshot(client: CouchClient, design: str = defaults.DESIGN, sample: int = DEFAULT_SAMPLE,
             window: float = DEFAULT_WINDOW, now: float | None = None, with_rate: bool = True) -> PoolStatus:
    """One look at the pool: counts, a rate and ETA, and the error and locked breakdowns.

    Costs four view queries, three of them reading at most ``sample`` bodies,
    whatever the size of the pool.
    """
    now = time.time() if now is None else now
    counts = {State.TODO: _state_view(client, design, State.TODO, 0)[0]}
    counts[State.ERROR], error_docs = _state_view(client, design, State.ERROR, sample)
    counts[State.LOCKED], locked_docs = _state_view(client, design, State.LOCKED, sample)
    counts[State.DONE], done_docs = _state_view(client, design, State.DONE, sample if with_rate else 0)
    counts = {state: counts[state] for state in STATES}
    rate = Estimate(eta=time_left(None, counts), basis="nothing finished yet" if not finished(counts) else "")
    if with_rate:
        # Done and error are sampled separately, each scaled by its own count.
        groups = [(finish_times(done_docs), counts[State.DONE]), (finish_times(error_docs), counts[State.ERROR])]
        if finished(counts):
            rate = estimate_from_samples(groups, now, window)
            rate.eta = time_left(rate.rate, counts)
    return PoolStatus(database=client.database or "", counts=counts, time=now, estimate=rate,
                      errors=break_down_errors(error_docs, counts[State.ERROR]),
                      locked=break_down_locked(locked_docs, counts[State.LOCKED], now))


def progress_bar(fraction: float, width: int = 30) -> str:
    """A text bar like ``[#####.....]  52% done``."""
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}% done"


def render(status: PoolStatus, top: int = 5) -> str:
    """The human form of a status, as ``picas status`` prints it."""
    total = status.total
    lines = [f"Database {status.database}: {total:,} tokens"]
    for state in STATES:
        count = status.counts.get(state, 0)
        share = f"{count / total * 100:5.1f}%" if total else "    -"
        lines.append(f"  {state:<7} {count:>12,}  {share}")
    for state, count in status.counts.items():
        if state not in STATES and count:
            lines.append(f"  {state:<7} {count:>12,}")
    lines.append(progress_bar(status.fraction_done))
    est = status.estimate
    basis = f" ({est.basis})" if est.basis else ""
    rate = f"{est.rate:,.2f} tokens/s{basis}" if est.rate is not None else f"unknown{basis}"
    lines.append(f"Rate: {rate}   ETA: {format_duration(est.eta)}")
    errors = status.errors
    if errors.total:
        scope = "all" if errors.sampled >= errors.total else f"a sample of {errors.sampled:,}"
        codes = ", ".join(f"exit {code}: {n}" for code, n in errors.exit_codes.most_common(top))
        lines.append(f"Errors ({errors.total:,}; {scope}): {codes or 'none readable'}")
        if errors.stages:
            lines.append("  failed in: " + ", ".join(f"{stage} {n}" for stage, n in errors.stages.most_common()))
        for message, n in errors.messages.most_common(top):
            lines.append(f"  {n:>6}  {message}")
    locked = status.locked
    if locked.total:
        scope = "all" if locked.sampled >= locked.total else f"a sample of {locked.sampled:,}"
        lines.append(f"Locked ({locked.total:,}; {scope}): oldest {format_duration(locked.oldest)}, "
                     f"expired leases {locked.expired:,}")
        ages = ", ".join(f"{label} {locked.ages[label]}" for _, label in AGE_BUCKETS if locked.ages.get(label))
        if ages:
            lines.append(f"  by age:  {ages}")
        for host, n in locked.hosts.most_common(top):
            lines.append(f"  {n:>6}  {host}")
    return "\n".join(lines)
