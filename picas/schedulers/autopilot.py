"""The autopilot: look at the pool, submit just enough pilots, say why.

One round (:func:`run_round`) is what ``picas autopilot`` does when cron starts
it: for every pilot class (a design document and view, with its own Slurm
resources) it counts the todo tokens, counts the pilots of that class already
pending or running (the job registry of :mod:`picas.pool.registry`, asked of
squeue once), lets :func:`picas.schedulers.slurm.plan_submissions` decide how many new
pilots each class gets within ``--max-pilots``, submits one array per class
that gets any, records them, and returns a :class:`Round` whose ``line`` is the
one log line that says what was decided and why.

Because pilots already queued count against both the work and the limit,
running a round twice in a row does not double-submit: the second round sees
the first one's pilots in squeue.  :func:`run_loop` repeats rounds for
``--loop``; its signal handlers only set a flag, the loop checks it between
rounds.

Pilot classes come from ``--class`` options or a YAML file (``--classes``):

* ``--class SPEC``: ``DESIGN[/VIEW][:key=value,key=value...]``, e.g.
  ``Monitor`` or ``MultiCore:cpus-per-task=4,mem=8G,time=04:00:00``;
* ``--classes FILE``: a YAML list of mappings with the same keys, plus
  ``design``, ``view``, ``sbatch-lines`` and ``setup`` (lists)::

      - design: Monitor
      - design: MultiCore
        cpus-per-task: 4
        mem: 8G
        sbatch-lines: ["--constraint=avx2"]
        setup: ["module load gromacs"]

Resource keys: ``cpus-per-task``, ``mem``, ``time``, ``partition``,
``account``, ``qos`` (underscores work too).  A class's keys override the
command's own options for that class only.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from picas.pool import registry as pilot_jobs
from picas.schedulers import slurm
from picas.core.client import CouchClient
from picas.errors import ConfigError, InvalidInput, PicasError, SchedulerError, ViewNotFound
from picas.pilot.signals import StopFlags

__all__ = [
    "PilotClass",
    "Round",
    "class_options",
    "load_classes",
    "parse_class",
    "run_loop",
    "run_round",
    "todo_count",
]

#: Resource keys a class may set, with the SbatchOptions field and the type of each.
RESOURCE_KEYS: dict[str, tuple[str, type]] = {
    "cpus-per-task": ("cpus_per_task", int),
    "mem": ("mem", str),
    "time": ("time", str),
    "partition": ("partition", str),
    "account": ("account", str),
    "qos": ("qos", str),
}
_LIST_KEYS = {"sbatch-lines": "sbatch_lines", "setup": "setup"}


@dataclass
class PilotClass:
    """One kind of pilot: which tokens it drains and what it asks Slurm for.

    ``None`` resources fall back to the command's options, then to the
    cluster's defaults.
    """

    design: str = "Monitor"
    view: str = "todo"
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch_lines: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return pilot_jobs.class_name(self.design, self.view)


def _resource(cls_values: dict[str, Any], key: str, value: Any, where: str,
              error: type[PicasError] = ConfigError) -> None:
    norm = key.strip().replace("_", "-")
    if norm in RESOURCE_KEYS:
        attr, kind = RESOURCE_KEYS[norm]
        try:
            converted = kind(value)
        except (TypeError, ValueError):
            raise error(f"{where}: {norm} must be {'a whole number' if kind is int else 'text'}, "
                        f"got {value!r}") from None
        if kind is int and converted < 1:
            raise error(f"{where}: {norm} must be at least 1, got {value!r}")
        cls_values[attr] = converted
    elif norm in _LIST_KEYS:
        items = value if isinstance(value, list) else [value]
        cls_values[_LIST_KEYS[norm]] = [str(item) for item in items]
    else:
        known = ", ".join([*RESOURCE_KEYS, *_LIST_KEYS])
        raise error(f"{where}: unknown key '{key}' (known: design, view, {known})")


def parse_class(spec: str) -> PilotClass:
    """``DESIGN[/VIEW][:key=value,...]`` → :class:`PilotClass` (pure).

    Example: ``MultiCore:cpus-per-task=4,mem=8G`` drains the todo view of the
    MultiCore design document with 4-core pilots.
    """
    head, _, tail = spec.strip().partition(":")
    design, _, view = head.partition("/")
    if not design.strip():
        raise InvalidInput(f"--class {spec!r}: no design document name",
                           hint="use e.g. --class MultiCore:cpus-per-task=4")
    values: dict[str, Any] = {"design": design.strip(), "view": view.strip() or "todo"}
    for item in filter(None, (part.strip() for part in tail.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidInput(f"--class {spec!r}: '{item}' is not key=value",
                               hint="use e.g. --class MultiCore:cpus-per-task=4,mem=8G")
        _resource(values, key, value.strip(), f"--class {spec!r}", InvalidInput)
    return PilotClass(**values)


def load_classes(path: Path) -> list[PilotClass]:
    """Read pilot classes from a YAML file (see the module docstring for its shape)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the classes file: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    if isinstance(data, dict) and "classes" in data:
        data = data["classes"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: expected a list of classes (mappings with at least 'design')")
    classes = []
    for index, item in enumerate(data, 1):
        where = f"{path}: class {index}"
        if not isinstance(item, dict) or not item.get("design"):
            raise ConfigError(f"{where}: must be a mapping with a 'design' key")
        values: dict[str, Any] = {"design": str(item["design"]), "view": str(item.get("view") or "todo")}
        for key, value in item.items():
            if key not in ("design", "view") and value is not None:
                _resource(values, str(key), value, where)
        classes.append(PilotClass(**values))
    names = [c.name for c in classes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: class {', '.join(duplicates)} is listed twice")
    return classes


def class_options(base: slurm.SbatchOptions, cls: PilotClass, count: int,
                  pilot_args: Iterable[str] = ()) -> slurm.SbatchOptions:
    """The SbatchOptions of ``count`` pilots of ``cls``: the base with the class's resources on top (pure)."""
    changes: dict[str, Any] = {"array": count}
    for attr, _ in RESOURCE_KEYS.values():
        value = getattr(cls, attr)
        if value is not None:
            changes[attr] = value
    changes["extra_sbatch"] = [*base.extra_sbatch, *cls.sbatch_lines]
    changes["setup"] = [*base.setup, *cls.setup]
    changes["pilot_args"] = ["--design-doc", cls.design, "--view", cls.view, *pilot_args]
    changes["env"] = dict(base.env)
    return dataclasses.replace(base, **changes)


def todo_count(client: CouchClient, cls: PilotClass) -> int:
    """Tokens waiting for pilots of ``cls``.

    The todo view is counted with the ``overview_total`` reduce (one cheap
    request on millions of tokens); another view, or a design document
    without that view, by its number of rows.
    """
    if cls.view == "todo":
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
    text = slurm.explain_plan(result.work, result.active, result.max_pilots, result.plan, tokens_per_pilot)
    if result.submitted:
        text += "; jobs: " + ", ".join(f"{e['class']} {e['job_id']}" for e in result.submitted)
    if result.errors:
        text += "; FAILED: " + "; ".join(result.errors)
    return ("dry run, would " + text) if result.dry_run else text


def run_round(client: CouchClient, classes: list[PilotClass], base: slurm.SbatchOptions, *, max_pilots: int,
              tokens_per_pilot: int = 10, pilot_args: Iterable[str] = (), template: str | None = None,
              cwd: str | None = None, dry_run: bool = False, prune_after: float = pilot_jobs.PRUNE_AFTER,
              submit: Callable[..., str] = slurm.submit,
              queued: Callable[[list[str]], Mapping[str, str]] = slurm.queued_jobs,
              now: float | None = None) -> Round:
    """One autopilot round: count, plan, submit, record; see the module docstring.

    Every class's active count includes pilots of classes no longer
    configured, through the total that ``max_pilots`` bounds.  A failing
    sbatch for one class does not stop the others: its message lands in
    ``errors`` (and in ``line``) and nothing is recorded for it.  squeue
    failing, or the server being away, raises: without knowing what is queued
    no safe plan can be made.
    """
    if not classes:
        raise InvalidInput("the autopilot needs at least one pilot class")
    now = time.time() if now is None else now
    pilot_args = list(pilot_args)
    entries = pilot_jobs.jobs(client, "slurm")
    states = queued([str(e["job_id"]) for e in entries]) if entries else {}
    pruned: list[str] = []
    if not dry_run and entries:
        pruned = pilot_jobs.prune(client, prune_after, states=states, now=now)
    active = pilot_jobs.active_per_class(entries, states)
    active = {name: count for name, count in active.items() if count}
    work = {cls.name: todo_count(client, cls) for cls in classes}
    for cls in classes:
        active.setdefault(cls.name, 0)
    plan = slurm.plan_submissions(work, active, max_pilots, tokens_per_pilot)
    result = Round(time=now, work=work, active=active, max_pilots=max_pilots, plan=plan, pruned=pruned,
                   dry_run=dry_run)
    for cls in classes:
        count = plan.get(cls.name, 0)
        if not count:
            continue
        opts = class_options(base, cls, count, pilot_args)
        script = slurm.build_sbatch_script(opts, template)
        if dry_run:
            continue
        try:
            job_id = submit(script, cwd=cwd)
        except SchedulerError as exc:
            result.errors.append(f"{cls.name}: {exc}")
            continue
        entry = pilot_jobs.entry_for(job_id, opts, cls.design, cls.view, via="autopilot")
        result.submitted.append(entry)
        try:
            pilot_jobs.record(client, [entry])
        except PicasError as exc:
            result.errors.append(f"{cls.name}: submitted job {job_id} but could not record it: {exc}")
    result.line = _line(result, tokens_per_pilot)
    return result


def run_loop(round_fn: Callable[[], Any], interval: float, *, flags: StopFlags | None = None,
             on_error: Callable[[PicasError], None] | None = None, max_rounds: int | None = None) -> int:
    """Run ``round_fn`` every ``interval`` seconds until SIGTERM/SIGINT; returns the number of rounds.

    The handlers (:class:`~picas.pilot.signals.StopFlags`) only set a flag: a
    signal never interrupts a round halfway between sbatch and recording the
    job.  A round that fails (the server away for a moment, squeue timing
    out) is reported through ``on_error`` and the loop goes on: a service
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
