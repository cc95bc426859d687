"""The autopilot: look at the pool, submit just enough pilots, say why.

One round (:func:`run_round`) is what ``picas autopilot`` does when cron starts
it: for every pilot class (:mod:`picas.schedulers.classes`: a design document
and view, with its own scheduler resources) it counts the todo tokens, counts
the pilots of that class already pending or running (the registry of
:mod:`picas.pool.registry`, asked of the scheduler once), lets
:func:`picas.schedulers.planning.plan_submissions` decide how many new pilots
each class gets within ``--max-pilots``, submits one job per class that gets
any, records them, and returns a :class:`Round` whose ``line`` is the one log
line that says what was decided and why.

The scheduler is any :class:`~picas.schedulers.base.Scheduler`; the autopilot
counts and submits only that scheduler's pilots.  Because pilots already
queued count against both the work and the limit, running a round twice in a
row does not double-submit: the second round sees the first one's pilots.
:func:`run_loop` repeats rounds for ``--loop``; its signal handlers only set a
flag, the loop checks it between rounds.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from picas import defaults
from picas.core.client import CouchClient
from picas.errors import InvalidInput, PicasError, SchedulerError, ViewNotFound
from picas.pilot.signals import StopFlags
from picas.pool import registry
from picas.schedulers.base import PilotRequest, Scheduler
from picas.schedulers.classes import PilotClass, class_options
from picas.schedulers.planning import explain_plan, plan_submissions

__all__ = ["Round", "run_loop", "run_round", "todo_count"]


def todo_count(client: CouchClient, cls: PilotClass) -> int:
    """Tokens waiting for pilots of ``cls``.

    The todo view is counted with the ``overview_total`` reduce (one cheap
    request on millions of tokens); another view, or a design document
    without that view, by its number of rows.
    """
    if cls.view == defaults.VIEW:
        try:
            rows = client.view(cls.design, "overview_total", group=True).rows
            return int(sum(row.value for row in rows if row.key == "todo"))
        except ViewNotFound:
            pass
    answer = client.view(cls.design, cls.view, limit=1, reduce=False)
    return int(answer.total_rows if answer.total_rows is not None else len(answer.rows))


@dataclass
class Round:
    """What one autopilot round saw, decided and did; ``line`` says it in one line."""

    time: float
    work: dict[str, int]
    active: dict[str, int]
    max_pilots: int
    plan: dict[str, int]
    submitted: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    dry_run: bool = False
    line: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _line(result: Round, tokens_per_pilot: int) -> str:
    text = explain_plan(result.work, result.active, result.max_pilots, result.plan, tokens_per_pilot)
    if result.submitted:
        ids: dict[str, list[str]] = {}
        for entry in result.submitted:
            ids.setdefault(entry["class"], []).append(str(entry["job_id"]))
        text += "; jobs: " + ", ".join(f"{name} {' '.join(job_ids)}" for name, job_ids in ids.items())
    if result.errors:
        text += "; FAILED: " + "; ".join(result.errors)
    return ("dry run, would " + text) if result.dry_run else text


def run_round(client: CouchClient, classes: list[PilotClass], scheduler: Scheduler,
              options: Mapping[str, Any] | None = None, *, max_pilots: int,
              tokens_per_pilot: int = defaults.TOKENS_PER_PILOT, pilot_args: Iterable[str] = (),
              env: Mapping[str, str] | None = None, config_file: Path | None = None, cwd: str | None = None,
              dry_run: bool = False,
              prune_after: float = registry.PRUNE_AFTER, now: float | None = None) -> Round:
    """One autopilot round: count, plan, submit, record; see the module docstring.

    ``options`` are the values of the scheduler's options (each class's
    resources go on top), ``pilot_args`` the ``picas run`` options every
    pilot gets, ``env`` the variables that tell the pilots where the pool is
    and ``config_file`` the file they read their password from
    (:func:`picas.pilot.credentials.pilot_environment`).

    Every class's active count includes pilots of classes no longer
    configured, through the total that ``max_pilots`` bounds.  A failing
    submission for one class does not stop the others: its message lands in
    ``errors`` (and in ``line``) and nothing is recorded for it.  The
    scheduler failing to list its jobs, or the server being away, raises:
    without knowing what is queued no safe plan can be made.
    """
    if not classes:
        raise InvalidInput("the autopilot needs at least one pilot class")
    now = time.time() if now is None else now
    pilot_args = list(pilot_args)
    options = dict(options or {})
    entries = registry.jobs(client, scheduler.name)
    statuses = scheduler.query([str(e["job_id"]) for e in entries]) if entries else []
    pruned: list[str] = []
    if not dry_run and entries:
        pruned = registry.prune(client, prune_after, scheduler=scheduler.name, statuses=statuses, now=now)
    active = registry.active_per_class(entries, statuses)
    active = {name: count for name, count in active.items() if count}
    work = {cls.name: todo_count(client, cls) for cls in classes}
    for cls in classes:
        active.setdefault(cls.name, 0)
    plan = plan_submissions(work, active, max_pilots, tokens_per_pilot)
    result = Round(time=now, work=work, active=active, max_pilots=max_pilots, plan=plan, pruned=pruned,
                   dry_run=dry_run)
    for cls in classes:
        count = plan.get(cls.name, 0)
        if not count:
            continue
        request = PilotRequest(count=count, pilot_args=["--design-doc", cls.design, "--view", cls.view, *pilot_args],
                               env=dict(env or {}), options=class_options(options, cls, scheduler.options),
                               config_file=config_file)
        submission = scheduler.build(request)
        if dry_run:
            continue
        try:
            job_ids = scheduler.submit(submission, cwd=cwd)
        except SchedulerError as exc:
            result.errors.append(f"{cls.name}: {exc}")
            continue
        new = registry.entries_for(job_ids, scheduler.name, cls.design, cls.view, count=count,
                                   resources=submission.resources, via="autopilot")
        result.submitted.extend(new)
        try:
            registry.record(client, new)
        except PicasError as exc:
            result.errors.append(f"{cls.name}: submitted job {' '.join(job_ids)} but could not record it: {exc}")
    result.line = _line(result, tokens_per_pilot)
    return result


def run_loop(round_fn: Callable[[], Any], interval: float, *, flags: StopFlags | None = None,
             on_error: Callable[[PicasError], None] | None = None, max_rounds: int | None = None) -> int:
    """Run ``round_fn`` every ``interval`` seconds until SIGTERM/SIGINT; returns the number of rounds.

    The handlers (:class:`~picas.pilot.signals.StopFlags`) only set a flag: a
    signal never interrupts a round halfway between submitting and recording the
    job.  A round that fails (the server away for a moment, the scheduler
    timing out) is reported through ``on_error`` and the loop goes on: a service
    should outlive a transient outage.
    """
    own = flags is None
    flags = flags or StopFlags().install()
    rounds = 0
    try:
        while not flags:
            try:
                round_fn()
            except PicasError as exc:
                if on_error is None:
                    raise
                on_error(exc)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            flags.requested.wait(interval)
    finally:
        if own:
            flags.restore()
    return rounds
