"""Pure parts behind the pool commands: parsing pushes, durations, selection rules and estimates.

No server: these pin down the rules the CLI tests then exercise end to end.
"""
from __future__ import annotations

import re
from collections import Counter

import pytest

from picas.pool import tokens as pool
from picas.pool import push
from picas.pool import status
from picas.errors import InvalidInput
from picas.core.token import new_token


def test_generated_ids_are_prefixed_uniform_hex():
    ids = {push.new_token_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"token_[0-9a-f]{16}", i) for i in ids)
    first = Counter(i[len("token_")] for i in ids)
    assert set(first) == set("0123456789abcdef")  # every start character is used: pilots spread out


def test_lines_skip_blanks_and_comments():
    bodies = push.tokens_from_lines(["echo 1\n", "   \n", "# note\n", "  sim --x 2  \n"])
    assert bodies == [{"input": "echo 1"}, {"input": "sim --x 2"}]


def test_data_list_and_mapping():
    assert push.tokens_from_data([{"input": "a"}, {"_id": "t2", "input": "b"}]) == [
        {"input": "a"}, {"_id": "t2", "input": "b"}]
    assert push.tokens_from_data({"t1": {"input": "a"}}) == [{"_id": "t1", "input": "a"}]
    assert push.tokens_from_data(None) == []


@pytest.mark.parametrize("data, words", [
    ([{"input": "a"}, "echo"], "item 2"),
    ([{"input": "a", "_rev": "1-x"}], "_rev"),
    ({"t1": {"_rev": "1-x"}}, "'t1'"),
    ([{"_deleted": True}], "_deleted"),
    ({"_bad": {"input": "a"}}, "reserved"),
    ({"t1": {"_id": "t2"}}, "different"),
    ("just text", "expected a list"),
    ([{"_id": 5}], "non-empty strings"),
])
def test_data_errors_name_the_item(data, words):
    with pytest.raises(InvalidInput, match=re.escape(words)):
        push.tokens_from_data(data)


def test_body_without_input_warns_but_passes():
    warnings = []
    assert push.tokens_from_data([{"x": 1}], warn=warnings.append) == [{"x": 1}]
    assert warnings and "item 1" in warnings[0]


def test_sweep_cross_product_keeps_other_braces():
    bodies = push.expand_sweep(["x=1..3", "y=a,b"], "awk '{print $1}' --x {x} --y {y} ${HOME}")
    assert len(bodies) == 6
    assert bodies[0] == {"input": "awk '{print $1}' --x 1 --y a ${HOME}", "parameters": {"x": 1, "y": "a"}}
    expected = {f"{x} --y {y} ${{HOME}}" for x in (1, 2, 3) for y in "ab"}
    assert {b["input"].split("--x ")[1] for b in bodies} == expected


def test_sweep_ranges():
    assert push.parse_param("x=1..10:3") == ("x", [1, 4, 7, 10])
    assert push.parse_param("x=3..1") == ("x", [3, 2, 1])
    assert push.parse_param("n=001..003") == ("n", ["001", "002", "003"])
    assert push.parse_param("s=-1..1") == ("s", [-1, 0, 1])
    assert push.parse_param("y=only") == ("y", ["only"])
    assert push.sweep_size(["x=1..100", "y=a,b"]) == 200


@pytest.mark.parametrize("params, command, words", [
    (["x"], "run {x}", "NAME=VALUES"),
    (["x=1..5:0"], "run {x}", "step"),
    (["x=a,,b"], "run {x}", "empty value"),
    (["x=1..2", "x=3..4"], "run {x}", "more than once"),
    (["x=1..2"], "run", "does not appear"),
    (["1x=1"], "run {1x}", "NAME=VALUES"),
])
def test_sweep_errors(params, command, words):
    with pytest.raises(InvalidInput, match=words):
        push.expand_sweep(params, command)


def test_make_token_is_idempotent_and_keeps_fields():
    token = push.make_token({"input": "echo", "cores": 4})
    assert token["_id"].startswith("token_") and token["cores"] == 4 and token["lock"] == 0
    assert push.make_token(token) == token
    assert push.make_token({"_id": "mine", "input": "x"})["_id"] == "mine"


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400), ("45", 45),
    ("1.5h", 5400), ("2H", 7200),
])
def test_durations(text, seconds):
    assert pool.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "h", "1h 2q", "-5"])
def test_bad_durations(text):
    with pytest.raises(InvalidInput):
        pool.parse_duration(text)


def test_qualifies_by_state_and_age():
    now = 10_000
    locked = new_token("x", "t", lock=now - 100)
    error = new_token("x", "e", lock=now - 500, done=now - 300, exit_code=1)
    todo = new_token("x", "u")
    assert pool.qualifies(locked, "locked", 50, now)
    assert not pool.qualifies(locked, "locked", 200, now)
    assert not pool.qualifies(locked, "error", None, now)
    assert pool.qualifies(error, "error", 200, now)  # age counts from the finish, not the lock
    assert not pool.qualifies(error, "error", 400, now)
    assert not pool.qualifies(todo, None, 1, now)  # todo tokens carry no time
    assert not pool.qualifies({**error, "_deleted": True}, None, None, now)
    assert pool.token_row(error, now)["age"] == 300


def test_estimate_from_two_samples():
    prev = {"todo": 100, "locked": 10, "done": 0, "error": 0}
    cur = {"todo": 70, "locked": 10, "done": 25, "error": 5}
    est = status.estimate(prev, cur, 10.0)
    assert est.rate == 3.0 and est.eta == pytest.approx(80 / 3)
    assert status.estimate(cur, prev, 10.0).rate == 0.0  # a reset never gives a negative rate
    assert status.estimate(prev, cur, 0).rate is None
    assert status.estimate(prev, {"done": 5}, 5).eta == 0.0


def test_estimate_from_samples_scales_by_population():
    now = 100_000.0
    # 1000 of 10,000 done tokens sampled; 100 of the sample finished in the last 600 s -> ~1000 tokens in 600 s.
    times = [now - 10] * 100 + [now - 5000] * 900
    est = status.estimate_from_samples([(times, 10_000)], now, 600)
    assert est.rate == pytest.approx(1000 / 600)
    assert "sample" in est.basis
    # A pool that started 100 s ago: the rate is over 100 s, not the 600 s window.
    est = status.estimate_from_samples([([now - 100, now - 50, now - 1] * 5, 15)], now, 600)
    assert est.rate == pytest.approx(15 / 100)
    assert status.estimate_from_samples([([now - 10, now - 9000], 2)], now, 600).rate is None


def test_breakdowns_and_bar():
    now = 50_000
    errors = [new_token("x", f"e{i}", lock=1, done=2, exit_code=code, error=[{"message": msg}])
              for i, (code, msg) in enumerate([(1, "boom"), (1, "boom"), (127, "not found"), ("", "lost")])]
    out = status.break_down_errors(errors + [new_token("x", "t")], 4)
    assert out.sampled == 4 and out.exit_codes == Counter({1: 2, 127: 1, "none": 1})
    assert out.messages["boom"] == 2
    locked = [new_token("x", "l1", lock=now - 30, hostname="n1", lease_until=now - 1, slurm_job_id="7"),
              new_token("x", "l2", lock=now - 7200, hostname="n2", lease_until=now + 60)]
    out = status.break_down_locked(locked, 2, now)
    assert out.expired == 1 and out.hosts == Counter({"n1 (job 7)": 1, "n2": 1})
    assert out.ages["<10m"] == 1 and out.ages["<1d"] == 1 and out.oldest == 7200
    assert status.progress_bar(0.52, width=10) == "[#####.....]  52% done"
