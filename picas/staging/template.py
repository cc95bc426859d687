"""Staging for pushed tokens: one template of stage_in/stage_out entries, filled in for every token.

``picas push --stage-in URL PATH --stage-out PATH URL`` adds the same
staging to every token it makes from a command file or a ``--param`` sweep.
In a sweep, ``{name}`` of each parameter is filled in at push time, as in
the command (``--param run=1..100 --stage-in davs://se/in/{run}.dat in.dat``);
``{token_id}`` and the token's other fields are filled in by the pilot.  Every
token is checked before anything is written, so a template that does not fit
(an unknown ``{field}``, a password in a URL) fails the push, not the pilots.
A body that brings its own ``stage_in``/``stage_out`` (a JSON or YAML file)
keeps them.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Iterable

from picas.errors import InvalidInput
from picas.staging.spec import plan_for

__all__ = ["StagingTemplate"]

#: Stands in for the id a token gets when pushed, while the template is checked.
_PROBE_ID = "token_0000000000000000"


def _fill(value: object, parameters: dict) -> object:
    if isinstance(value, str):
        for name, setting in parameters.items():
            value = re.sub(r"\{" + re.escape(name) + r"\}", lambda _m, s=setting: str(s), value)
        return value
    if isinstance(value, list):
        return [_fill(item, parameters) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, parameters) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class StagingTemplate:
    """The staging fields to add to each pushed token."""

    stage_in: tuple[tuple[str, str], ...] = ()
    stage_out: tuple[tuple[str, str], ...] = ()
    on_failure: bool = False

    @property
    def empty(self) -> bool:
        return not self.stage_in and not self.stage_out

    def fields(self) -> dict:
        found: dict = {}
        if self.stage_in:
            found["stage_in"] = [{"src": src, "dst": dst} for src, dst in self.stage_in]
        if self.stage_out:
            found["stage_out"] = [{"src": src, "dst": dst} for src, dst in self.stage_out]
        if self.on_failure:
            found["stage_out_on_failure"] = True
        return found

    def apply(self, body: dict, where: str = "a token") -> dict:
        """``body`` with the staging fields added (sweep parameters filled in), checked as the pilot will."""
        if self.empty:
            return body
        fields = _fill(copy.deepcopy(self.fields()), body.get("parameters") or {})
        staged = {**fields, **body} if any(name in body for name in ("stage_in", "stage_out")) else {**body, **fields}
        try:
            plan_for({**staged, "_id": staged.get("_id") or _PROBE_ID})
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        return staged

    def checked(self, bodies: Iterable[dict], listed: int, sweep: list[tuple[str, list]] = (),
                command: str | None = None) -> Iterable[dict]:
        """The bodies with staging added; every one is checked here, before the caller writes any.

        ``bodies`` starts with ``listed`` bodies read from files (all checked
        now), followed by the bodies of a sweep over ``sweep`` (name, values):
        those are checked now one parameter value at a time, the other
        parameters at their first value, which covers every value without
        making the whole cross product twice.  The sweep's bodies then follow
        lazily.
        """
        if self.empty:
            return bodies
        iterator = iter(bodies)
        head = [self.apply(body, f"token {number}")
                for number, body in enumerate(itertools.islice(iterator, listed), 1)]
        first = {name: values[0] for name, values in sweep if values}
        for name, values in sweep:
            for value in values:
                self.apply({"input": command, "parameters": {**first, name: value}},
                           f"the sweep token with {name}={value}")
        rest = (self.apply(body, f"token {number}") for number, body in enumerate(iterator, listed + 1))
        return itertools.chain(head, rest)
