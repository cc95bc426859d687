"""Batch systems that run pilots, found by name: ``get("slurm")`` → the Slurm backend's class.

Generic code never imports a backend module: it asks this registry by the
name a user typed (``picas submit slurm``) or a registry entry stored
(``"scheduler": "slurm"``), and the backend's module is imported only then.
A backend is a :class:`~picas.schedulers.base.Scheduler` subclass; the ones
shipped with picas are listed in :data:`BUILTIN` as ``module:Class`` paths,
and :func:`register` adds one at run time (a site's own batch system, a test's).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Union

from picas.errors import InvalidInput

if TYPE_CHECKING:
    from picas.schedulers.base import Scheduler

__all__ = ["BUILTIN", "create", "get", "names", "register", "unregister"]

#: The backends that come with picas: name → ``"module:Class"``, imported on first use.
BUILTIN: dict[str, str] = {
    "slurm": "picas.schedulers.slurm:SlurmScheduler",
    "dirac": "picas.schedulers.dirac:DiracScheduler",
}

_registered: dict[str, Union[str, "type[Scheduler]"]] = {}
_loaded: dict[str, "type[Scheduler]"] = {}


def register(name: str, scheduler: str | type[Scheduler]) -> None:
    """Make ``scheduler`` (a class, or a ``"module:Class"`` path imported on first use) known as ``name``.

    A registered name hides a built-in one of the same name until
    :func:`unregister`.
    """
    _registered[name] = scheduler
    _loaded.pop(name, None)


def unregister(name: str) -> None:
    """Forget a scheduler added with :func:`register` (a built-in one comes back)."""
    _registered.pop(name, None)
    _loaded.pop(name, None)


def names() -> list[str]:
    """The names of every known scheduler, sorted; nothing is imported."""
    return sorted({*BUILTIN, *_registered})


def _load(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def get(name: str) -> type[Scheduler]:
    """The scheduler class called ``name``, its module imported now if it was not yet.

    Raises :class:`~picas.errors.InvalidInput` for a name nobody registered.
    """
    if name in _loaded:
        return _loaded[name]
    target = _registered.get(name, BUILTIN.get(name))
    if target is None:
        raise InvalidInput(f"unknown scheduler {name!r} (known: {', '.join(names())})")
    from picas.schedulers.base import Scheduler

    cls = _load(target) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise TypeError(f"scheduler {name!r} is {cls!r}, not a Scheduler subclass")
    _loaded[name] = cls
    return cls


def create(name: str, **kwargs: Any) -> Scheduler:
    """An instance of the scheduler called ``name`` (``kwargs`` go to its constructor)."""
    return get(name)(**kwargs)
