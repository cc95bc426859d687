"""How many pilots the autopilot submits per pilot class, and the one line that says why (pure).

Nothing here knows a batch system: the counts come from the pool (todo
tokens per class) and from the pilot-job registry (pilots still pending or
running per class, whatever the scheduler), and the answer is a number of
pilots per class.
"""
from __future__ import annotations

import heapq
import math
from fractions import Fraction
from typing import Mapping

from picas import defaults
from picas.errors import InvalidInput

__all__ = ["explain_plan", "plan_submissions"]


def _check_counts(counts: Mapping[str, int], what: str) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{what} for {name!r} must be a count of 0 or more, got {value!r}")


def plan_submissions(work: Mapping[str, int], active: Mapping[str, int], max_pilots: int,
                     tokens_per_pilot: int = defaults.TOKENS_PER_PILOT) -> dict[str, int]:
    """How many new pilots to submit per pilot class (design document).

    ``work`` holds the todo-token count per class, ``active`` the pilots
    already pending or running per class.  The answer has one entry per class
    in ``work`` and obeys, so that repeated autopilot rounds converge instead
    of piling up pilots:

    * a class with no todo tokens gets none;
    * a class never gets more than its work needs: active + new is at most
      ``ceil(todo / tokens_per_pilot)``, so pilots already queued count;
    * all active pilots (any class) plus the new ones never exceed
      ``max_pilots``;
    * when slots are short they go where the work is: one at a time to the
      class with the most todo tokens per pilot (D'Hondt), so the totals end up
      proportional to the work; ties go to more work, then to the name, so the
      plan is deterministic.
    """
    if not isinstance(max_pilots, int) or max_pilots < 0:
        raise InvalidInput(f"max_pilots must be 0 or more, got {max_pilots!r}")
    if not isinstance(tokens_per_pilot, int) or tokens_per_pilot < 1:
        raise InvalidInput(f"tokens_per_pilot must be at least 1, got {tokens_per_pilot!r}")
    _check_counts(work, "the todo count")
    _check_counts(active, "the active pilot count")

    plan = {name: 0 for name in work}
    slots = max_pilots - sum(active.values())
    current = {name: active.get(name, 0) for name in work}
    need = {name: math.ceil(todo / tokens_per_pilot) for name, todo in work.items()}
    # Max-heap on todo tokens per pilot once one more is added; then more work; then name.
    heap = [(-Fraction(work[n], current[n] + 1), -work[n], n) for n in work if current[n] < need[n]]
    heapq.heapify(heap)
    while slots > 0 and heap:
        _, _, name = heapq.heappop(heap)
        plan[name] += 1
        current[name] += 1
        slots -= 1
        if current[name] < need[name]:
            heapq.heappush(heap, (-Fraction(work[name], current[name] + 1), -work[name], name))
    return plan


def explain_plan(work: Mapping[str, int], active: Mapping[str, int], max_pilots: int,
                 plan: Mapping[str, int] | None = None, tokens_per_pilot: int = defaults.TOKENS_PER_PILOT) -> str:
    """One line telling a person why the autopilot submits what it submits.

    ``plan`` defaults to :func:`plan_submissions` of the same arguments.
    """
    if plan is None:
        plan = plan_submissions(work, active, max_pilots, tokens_per_pilot)
    total_new = sum(plan.values())
    total_active = sum(active.values())
    total_todo = sum(work.values())
    todo_text = ", ".join(f"{name} {count}" for name, count in sorted(work.items()) if count) or "none"
    state = f"{total_active} active of max {max_pilots}; todo: {todo_text}"
    if total_new:
        parts = ", ".join(f"{name} {count}" for name, count in sorted(plan.items()) if count)
        return f"submit {total_new} pilot{'s' if total_new != 1 else ''} ({parts}): {state}"
    if total_todo == 0:
        reason = "no todo tokens"
    elif total_active >= max_pilots:
        reason = "already at the pilot limit"
    else:
        reason = f"the active pilots cover the todo tokens (1 pilot per {tokens_per_pilot} tokens)"
    return f"submit nothing, {reason}: {state}"
