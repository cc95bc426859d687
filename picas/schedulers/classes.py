"""Pilot classes: which tokens a kind of pilot drains, and the scheduler resources it asks for.

The autopilot keeps pilots queued per class.  Classes come from ``--class``
options or a YAML file (``--classes``):

* ``--class SPEC``: ``DESIGN[/VIEW][:key=value,key=value...]``, e.g.
  ``Monitor`` or ``MultiCore:cpus-per-task=4,mem=8G,time=04:00:00``;
* ``--classes FILE``: a YAML list of mappings with ``design``, ``view`` and
  the same keys; repeatable options take a list::

      - design: Monitor
      - design: MultiCore
        cpus-per-task: 4
        mem: 8G
        sbatch-lines: ["--constraint=avx2"]
        setup: ["module load gromacs"]

The keys a class may set are the scheduler's options marked ``per_class``
(:attr:`picas.schedulers.base.Scheduler.options`), named with dashes
(underscores work too), so each backend brings its own: Slurm's
``cpus-per-task``, DIRAC's ``site``.  A class's keys override the command's
own options for that class only; repeatable ones are added to them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from picas import defaults
from picas.errors import ConfigError, InvalidInput, PicasError
from picas.pilot.options import Option
from picas.pool.registry import class_name
from picas.support.yamltext import load_yaml

__all__ = ["PilotClass", "class_keys", "class_options", "load_classes", "parse_class"]


@dataclass
class PilotClass:
    """One kind of pilot: which tokens it drains and what it asks its scheduler for.

    ``resources`` holds values of the scheduler's per-class options, by
    option name (``{"cpus_per_task": 4}``); what it does not set falls back
    to the command's options, then to the batch system's defaults.
    """

    design: str = defaults.DESIGN
    view: str = defaults.VIEW
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return class_name(self.design, self.view)


def class_keys(options: Sequence[Option]) -> dict[str, Option]:
    """The keys a pilot class may set: the per-class options, by their dashed name."""
    return {opt.key: opt for opt in options if opt.per_class}


def _resource(values: dict[str, Any], keys: Mapping[str, Option], key: str, value: Any, where: str,
              error: type[PicasError]) -> None:
    opt = keys.get(key.strip().replace("_", "-"))
    if opt is None:
        known = ", ".join(["design", "view", *keys])
        raise error(f"{where}: unknown key '{key}' (known: {known})")
    values[opt.name] = opt.parse(value, where, error)


def parse_class(spec: str, options: Sequence[Option] = ()) -> PilotClass:
    """``DESIGN[/VIEW][:key=value,...]`` → :class:`PilotClass`, its keys checked against ``options`` (pure).

    Example: ``MultiCore:cpus-per-task=4,mem=8G`` drains the todo view of the
    MultiCore design document with 4-core pilots.
    """
    head, _, tail = spec.strip().partition(":")
    design, _, view = head.partition("/")
    if not design.strip():
        raise InvalidInput(f"--class {spec!r}: no design document name",
                           hint="use e.g. --class MultiCore:cpus-per-task=4")
    keys = class_keys(options)
    resources: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in tail.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidInput(f"--class {spec!r}: '{item}' is not key=value",
                               hint="use e.g. --class MultiCore:cpus-per-task=4,mem=8G")
        _resource(resources, keys, key, value.strip(), f"--class {spec!r}", InvalidInput)
    return PilotClass(design.strip(), view.strip() or defaults.VIEW, resources)


def load_classes(path: Path, options: Sequence[Option] = ()) -> list[PilotClass]:
    """Read pilot classes from a YAML file (see the module docstring for its shape)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the classes file: {exc}") from None
    data = load_yaml(text, path, ConfigError)
    if isinstance(data, dict) and "classes" in data:
        data = data["classes"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: expected a list of classes (mappings with at least 'design')")
    keys = class_keys(options)
    classes = []
    for index, item in enumerate(data, 1):
        where = f"{path}: class {index}"
        if not isinstance(item, dict) or not item.get("design"):
            raise ConfigError(f"{where}: must be a mapping with a 'design' key")
        resources: dict[str, Any] = {}
        for key, value in item.items():
            if key not in ("design", "view") and value is not None:
                _resource(resources, keys, str(key), value, where, ConfigError)
        classes.append(PilotClass(str(item["design"]), str(item.get("view") or defaults.VIEW), resources))
    names = [c.name for c in classes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: class {', '.join(duplicates)} is listed twice")
    return classes


def class_options(base: Mapping[str, Any], cls: PilotClass, options: Sequence[Option] = ()) -> dict[str, Any]:
    """The scheduler option values for pilots of ``cls``: the base with the class on top (pure).

    A repeatable option (``setup``, ``sbatch-lines``) gets the class's items
    after the base's; any other the class sets replaces the base's value.
    The base is not changed.
    """
    multiple = {opt.name for opt in options if opt.multiple}
    merged = {name: list(value) if isinstance(value, (list, tuple)) else value for name, value in base.items()}
    for name, value in cls.resources.items():
        if name in multiple:
            merged[name] = [*(merged.get(name) or ()), *value]
        else:
            merged[name] = value
    return merged
