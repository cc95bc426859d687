"""The autopilot's planner: how many pilots per class, and the line that says why (pure)."""
from __future__ import annotations

import math
import random

import pytest

from picas.errors import InvalidInput
from picas.schedulers.planning import explain_plan, plan_submissions


# --- plan_submissions ------------------------------------------------------------------------


def test_plan_zero_without_work() -> None:
    assert plan_submissions({"A": 0, "B": 0}, {}, 10) == {"A": 0, "B": 0}
    assert plan_submissions({}, {"A": 3}, 10) == {}
    assert "no todo tokens" in explain_plan({"A": 0}, {}, 10)


def test_plan_covers_need_when_room() -> None:
    assert plan_submissions({"A": 25, "B": 4}, {}, 100) == {"A": 3, "B": 1}
    assert plan_submissions({"A": 25, "B": 4}, {}, 100, tokens_per_pilot=1) == {"A": 25, "B": 4}


def test_plan_respects_max_and_is_proportional() -> None:
    plan = plan_submissions({"A": 300, "B": 100}, {}, 8)
    assert plan == {"A": 6, "B": 2}
    # Pilots already active count towards the class's share.
    assert plan_submissions({"A": 100, "B": 100}, {"A": 5}, 10) == {"A": 0, "B": 5}
    # Active pilots of classes without work still take slots.
    assert plan_submissions({"A": 100}, {"old": 9}, 10) == {"A": 1}
    assert plan_submissions({"A": 100}, {"A": 12}, 10) == {"A": 0}


def test_second_round_does_not_double_submit() -> None:
    work = {"MultiCore": 57, "SingleCore": 230, "Gpu": 3}
    first = plan_submissions(work, {}, 20)
    assert sum(first.values()) == 20
    assert plan_submissions(work, first, 20) == {"MultiCore": 0, "SingleCore": 0, "Gpu": 0}
    roomy = plan_submissions(work, {}, 1000)
    assert plan_submissions(work, roomy, 1000) == {"MultiCore": 0, "SingleCore": 0, "Gpu": 0}
    assert "cover the todo tokens" in explain_plan(work, roomy, 1000)
    assert "pilot limit" in explain_plan(work, first, 20)


def test_plan_invariants_on_many_inputs() -> None:
    rng = random.Random(20240611)
    for _ in range(500):
        names = rng.sample(["A", "B", "C", "D", "E"], rng.randint(0, 5))
        work = {n: rng.choice([0, 0, 1, 9, 10, 11, rng.randint(0, 2000)]) for n in names}
        active = {n: rng.randint(0, 15) for n in rng.sample(["A", "B", "C", "X"], rng.randint(0, 4))}
        max_pilots = rng.randint(0, 60)
        per = rng.choice([1, 5, 10, 100])
        plan = plan_submissions(work, active, max_pilots, per)
        assert plan == plan_submissions(dict(reversed(list(work.items()))), active, max_pilots, per)
        assert set(plan) == set(work)
        assert all(v >= 0 for v in plan.values())
        assert sum(plan.values()) <= max(0, max_pilots - sum(active.values()))
        for name, todo in work.items():
            if todo == 0:
                assert plan[name] == 0
            assert plan[name] <= max(0, math.ceil(todo / per) - active.get(name, 0))
        # Feeding the plan back as active pilots never asks for more.
        after = {n: active.get(n, 0) + plan.get(n, 0) for n in set(active) | set(plan)}
        again = plan_submissions(work, after, max_pilots, per)
        assert sum(again.values()) == 0
        line = explain_plan(work, active, max_pilots, plan, per)
        assert "\n" not in line and line.startswith("submit")


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(InvalidInput):
        plan_submissions({"A": 1}, {}, -1)
    with pytest.raises(InvalidInput):
        plan_submissions({"A": 1}, {}, 5, tokens_per_pilot=0)
    with pytest.raises(InvalidInput):
        plan_submissions({"A": -1}, {}, 5)


def test_explain_plan_names_the_classes() -> None:
    line = explain_plan({"A": 300, "B": 100}, {}, 8)
    assert line == "submit 8 pilots (A 6, B 2): 0 active of max 8; todo: A 300, B 100"
