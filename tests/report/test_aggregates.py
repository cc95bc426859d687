"""The data behind each plot, computed from token sets built here (new and old-client tokens alike)."""
from __future__ import annotations

import json
import time

import pytest

from picas.core import token as tok
from picas.errors import InvalidInput
from picas.pilot.record import PilotEnd, end_kind
from picas.report import aggregates as agg
from picas.report.attempts import Outcome, attempts, transitions
from picas.report.build import build, since_time
from picas.report.failures import failures
from picas.report.pilots import pilots, summarize
from picas.report.timeline import timeline
from tests.report.tokens import ALICE, BOB, T0, mixed_pool, old_client, pushed, ran


def by_id(docs):
    return {d["_id"]: d for d in docs}


def every_attempt(docs):
    return [a for d in docs for a in attempts(d)]


# ------------------------------------------------------------------ attempts


def test_attempts_follow_the_history():
    docs = by_id(mixed_pool()[0])
    [t1] = attempts(docs["t1"])
    assert (t1.pilot, t1.host, t1.job, t1.outcome) == ("pilot-a", "node1", "77_0", Outcome.DONE)
    assert (t1.claimed, t1.started, t1.finished, t1.run_seconds) == (T0 + 10, T0 + 10, T0 + 30, 20)
    # The pilot's own measure of the run, finer than the whole seconds of started/finished, wins.
    [precise] = attempts({**docs["t1"], "duration": 19.25})
    assert precise.run_seconds == 19.25

    first, second = attempts(docs["t2"])
    assert (first.pilot, first.outcome, str(first.exit_code)) == ("pilot-a", Outcome.RETRIED, "3")
    assert (second.pilot, second.outcome) == ("pilot-b", Outcome.DONE)
    assert first.started is None  # only the last attempt has the payload's own times

    [t3] = attempts(docs["t3"])
    assert t3.outcome == Outcome.ERROR and "cannot read input.dat" in t3.message

    lost, redone = attempts(docs["t4"])
    assert (lost.pilot, lost.outcome, lost.ended) == ("pilot-a", Outcome.SCRUBBED, T0 + 400)
    assert "lease of pilot pilot-a" in lost.message
    assert redone.outcome == Outcome.DONE

    [running] = attempts(docs["t5"])
    assert running.outcome == Outcome.RUNNING and running.ended is None
    assert attempts(docs["t6"]) == []


def test_old_client_tokens_get_one_attempt_from_lock_and_done():
    docs = by_id(mixed_pool()[0])
    [done] = attempts(docs["o1"])
    assert (done.host, done.claimed, done.ended, done.outcome) == ("oldhost", T0 + 5, T0 + 15, Outcome.DONE)
    assert attempts(docs["o2"])[0].outcome == Outcome.ERROR
    assert attempts(docs["o2"])[0].message == "old failure"
    assert attempts(docs["o3"])[0].outcome == Outcome.RUNNING
    assert attempts(docs["o4"]) == []


def test_released_and_discarded_results():
    doc = tok.claim(pushed("r"), ALICE, T0 + 1, 300)
    doc = tok.reset(doc, ALICE, T0 + 2, "stopped by SIGTERM", count_scrub=False)
    doc = tok.claim(doc, BOB, T0 + 3, 300)
    doc = tok.note(doc, ALICE, T0 + 4, "result_discarded", reason="this pilot had lost the lock")
    released, running = attempts(doc)
    assert released.outcome == Outcome.RELEASED and running.outcome == Outcome.RUNNING
    # A pilot that finished after its lease was scrubbed: its attempt counts as lost.
    doc = tok.claim(pushed("s"), ALICE, T0, 10)
    doc = tok.reset(doc, None, T0 + 20, "lease of pilot pilot-a on node1 expired")
    doc = tok.note(doc, ALICE, T0 + 30, "result_discarded", reason="this pilot had lost the lock")
    assert [a.outcome for a in attempts(doc)] == [Outcome.LOST]


def test_staging_events_are_told_apart():
    doc = tok.claim(pushed("st"), ALICE, T0, 300)
    doc = tok.note(doc, ALICE, T0 + 5, "stage_in", duration=4)
    doc = tok.finish({**doc, "started": int(T0 + 5), "finished": int(T0 + 9)}, ALICE, T0 + 9, 0)
    doc = tok.note(doc, ALICE, T0 + 11, "stage_out", duration=2)
    [attempt] = attempts(doc)
    assert attempt.staging == [("stage-in", T0 + 1, T0 + 5), ("stage-out", T0 + 9, T0 + 11)]
    kinds = set(timeline([attempt], T0 + 20)["bars"])
    assert kinds == {"waiting", "stage-in", "stage-out", "done"}
    # As the staging executor writes them: a start and a success (or fail) event per stage.
    doc = tok.claim(pushed("st2"), ALICE, T0, 300)
    for event, at in (("stage_in_start", 1), ("stage_in_success", 4), ("run_start", 4), ("run_success", 9),
                      ("stage_out_start", 9), ("stage_out_fail", 12)):
        doc = tok.note(doc, ALICE, T0 + at, event, seconds=1.0)
    doc = tok.fail(doc, ALICE, T0 + 12, "stage_out failed: upload refused")
    [attempt] = attempts(doc)
    assert attempt.staging == [("stage-in", T0 + 1, T0 + 4), ("stage-out", T0 + 9, T0 + 12)]
    assert attempt.outcome == Outcome.ERROR and "upload refused" in attempt.message


def test_transitions_end_in_the_current_state():
    docs = by_id(mixed_pool()[0])
    assert [s for _, s in transitions(docs["t2"], T0)] == ["todo", "locked", "todo", "locked", "done"]
    assert transitions(docs["o4"], T0 - 5) == [(T0 - 5, "todo")]
    assert [s for _, s in transitions(docs["o3"], T0)] == ["todo", "locked"]


# ------------------------------------------------------------------ time plots


def test_progress_counts_each_token_in_its_state_at_each_time():
    docs, _ = mixed_pool()
    win = agg.Window(T0, T0 + 600, 60)
    prog = agg.progress(docs, win)
    assert prog["times"][0] == T0 + 60 and prog["times"][-1] == T0 + 600
    first = {s: prog["series"][s][0] for s in agg.STATES}
    # At T0+60: t1 done, t2 done, t3 error, t4 locked by alice, t5 todo; t6 not pushed yet;
    # old tokens: o1 done, o2 error, o3 locked, o4 todo (unknown creation: todo from the start).
    assert first == {"todo": 2, "locked": 2, "done": 3, "error": 2}
    last = {s: prog["series"][s][-1] for s in agg.STATES}
    assert last == agg.current_counts(docs) == {"todo": 2, "locked": 2, "done": 4, "error": 2}


def test_throughput_splits_by_outcome_per_interval():
    docs, _ = mixed_pool()
    out = agg.throughput(every_attempt(docs), agg.Window(T0, T0 + 600, 60))
    assert out["step"] == 60 and len(out["starts"]) == 10
    assert out["series"]["done"][:2] == [2, 1]   # o1, t1 ; t2
    assert out["series"]["error"][0] == 2        # t3, o2
    assert out["series"]["retried"][0] == 1      # t2's first attempt
    assert out["series"]["scrubbed"][6] == 1     # t4 at T0+400
    assert sum(out["series"]["done"]) == 4


def test_concurrency_is_time_weighted_with_peaks():
    docs = [ran(pushed("a"), ALICE, T0, T0, T0 + 30), ran(pushed("b"), BOB, T0 + 15, T0 + 15, T0 + 30)]
    out = agg.concurrency(every_attempt(docs), [(T0, T0 + 60)], agg.Window(T0, T0 + 60, 30), T0 + 60)
    assert out["tokens_mean"] == [1.5, 0.0] and out["tokens_peak"] == [2, 0]
    assert out["pilots_mean"] == [1.0, 1.0] and out["pilots_peak"] == [1, 1]


def test_window_picks_a_nameable_step_and_bounds_the_bins():
    win = agg.window([pushed("x", T0)], [], T0 + 86400)
    assert win.step in agg.NICE_STEPS and win.bins <= agg.MAX_BINS and win.start <= T0


def test_distributions_per_pilot_class():
    docs, records = mixed_pool()
    tries = every_attempt(docs)
    summaries = summarize(records, tries, T0 + 520)
    out = agg.distributions(docs, tries, {s.pilot: s.klass for s in summaries if s.klass})
    assert out["classes"] == ["(no pilot record)", "Bigmem", "Monitor"]
    # Monitor (alice): t1 ran 20 s, t2's first attempt 10 s (claim to end); t4's scrubbed attempt is no run.
    # Waits count from push to the first claim: t1 10 s, t2 30 s, t4 40 s (first claimed by alice).
    assert out["run"]["Monitor"]["n"] == 2 and out["run"]["Monitor"]["max"] == 20
    assert out["wait"]["Monitor"]["n"] == 3 and out["wait"]["Monitor"]["p50"] == 30
    # Old-client tokens have run times (lock to done) but no wait: no creation time.
    assert out["run"]["(no pilot record)"]["n"] == 2 and out["wait"]["(no pilot record)"]["n"] == 0
    hist = out["run"]["Bigmem"]
    assert sum(hist["counts"]) == hist["n"] == 3


# ------------------------------------------------------------------ failures, pilots, timeline


def test_failures_by_code_host_message_with_retries_scrubs_and_log_tails():
    docs, _ = mixed_pool()
    out = failures(docs, every_attempt(docs), {"t3": "line 1\nno such file"})
    assert out["by_exit_code"] == {"3": 1, "2": 1, "1": 1}
    assert dict(zip(out["by_host"]["hosts"], out["by_host"]["failed"])) == {"node1": 1, "node2": 1, "oldhost": 1}
    assert dict(out["by_message"]) == {"cannot read input.dat": 1, "old failure": 1,
                                       "(no message; exit code 3)": 1}
    assert out["retried"] == 1 and out["scrub_events"] == 1 and out["scrubbed_tokens"] == 1
    assert out["failed_tokens"] == 2
    rows = {r["id"]: r for r in out["rows"]}
    assert rows["t3"]["log_tail"] == "line 1\nno such file" and rows["t3"]["exit_code"] == "2"
    assert rows["o2"]["host"] == "oldhost" and rows["o2"]["log_tail"] is None
    assert failures(docs, every_attempt(docs), max_rows=1)["rows_cut"] == 1


def test_pilots_busy_idle_and_how_they_ended():
    docs, records = mixed_pool()
    summaries = {s.pilot: s for s in summarize(records, every_attempt(docs), T0 + 520)}
    alice = summaries["pilot-a"]
    assert (alice.end, alice.klass, alice.job) == ("no work", "Monitor", "77_0")
    assert alice.done == 1 and alice.failed == 1 and alice.other == 1  # t1; t2 retried; t4 scrubbed
    assert summaries["pilot-b"].end == "running" and summaries["pilot-b"].klass == "Bigmem"
    old = summaries["oldhost"]
    assert not old.has_record and old.end == "unknown" and old.started == T0 + 5
    # Much later, bob has not been heard of for more than two leases: lost.
    later = {s.pilot: s for s in summarize(records, every_attempt(docs), T0 + 5000)}
    assert later["pilot-b"].end == PilotEnd.LOST.value and later["pilot-b"].ended == T0 + 500
    out = pilots(list(summaries.values()))
    assert out["count"] == 3 and out["with_record"] == 2 and out["ends"]["no work"] == 1
    row = next(r for r in out["rows"] if r["pilot"] == "pilot-a")
    assert row["life_seconds"] == 40 and 0 < row["busy_fraction"] <= 1
    assert row["idle_seconds"] == pytest.approx(40 - row["busy_seconds"])


def test_end_kinds_from_the_loop_reasons():
    assert end_kind("no more work") == PilotEnd.NO_WORK
    assert end_kind("reached --max-time 3600 s") == PilotEnd.WALLTIME
    assert end_kind("reached --max-tasks 5") == PilotEnd.MAX_TASKS
    assert end_kind("stopped by SIGTERM") == PilotEnd.SIGNAL
    assert end_kind("whatever", crashed=True) == PilotEnd.CRASHED


def test_timeline_lanes_grouped_by_job_or_host_and_sampled_above_the_budget():
    docs, _ = mixed_pool()
    out = timeline(every_attempt(docs), T0 + 520)
    assert out["shown_attempts"] == out["total_attempts"] == 10
    # One lane per pilot, although only alice's latest attempt of a token carries her job id.
    assert sorted(out["lanes"]) == ["job 77_0 · pilot-a", "node2 · pilot-b", "oldhost · oldhost"]
    assert set(out["bars"]) >= {"done", "error", "retried", "scrubbed", "running", "waiting"}
    many = [ran(pushed(f"m{i}"), tok.PilotIdentity(f"p{i % 50}", hostname=f"h{i % 7}"), T0 + i, T0 + i, T0 + i + 1)
            for i in range(500)]
    sampled = timeline(every_attempt(many), T0 + 600, max_bars=100)
    assert sampled["total_attempts"] == 500 and 0 < sampled["shown_attempts"] <= 100
    assert sampled["shown_lanes"] < sampled["total_lanes"] == 50
    assert sampled == timeline(every_attempt(many), T0 + 600, max_bars=100)  # the same sample every time


# ------------------------------------------------------------------ the whole report


def test_build_says_what_it_could_not_show_for_old_clients():
    docs, records = mixed_pool()
    data = build(docs, records, now=T0 + 520, title="t")
    json.dumps(data, allow_nan=False)
    notes = " ".join(data["notes"])
    assert "3 of 8 claimed tokens carry no history" in notes
    assert "4 of 10 tokens carry no creation time" in notes
    assert "1 of 3 pilots left no pilot record" in notes
    assert data["counts"] == {"todo": 2, "locked": 2, "done": 4, "error": 2}


def test_build_of_only_old_client_tokens_and_of_an_empty_pool():
    old = [old_client(f"o{i}", "done", lock=T0 + i, done=T0 + i + 3, exit_code=0) for i in range(5)]
    data = build(old, [], now=T0 + 100)
    assert data["counts"]["done"] == 5 and data["pilots"]["count"] == 1
    assert sum(data["throughput"]["series"]["done"]) == 5
    empty = build([], [], now=T0)
    assert empty["counts"] == {"todo": 0, "locked": 0, "done": 0, "error": 0} and empty["timeline"]["lanes"] == []


def test_since_keeps_later_attempts_only():
    docs, records = mixed_pool()
    data = build(docs, records, now=T0 + 520, since=T0 + 300)
    # t4's scrubbed attempt (ended +400) and its redo (+420), and the two still running (t5, o3).
    assert data["meta"]["attempts"] == 4
    assert sum(data["throughput"]["series"]["done"]) == 1
    assert data["counts"]["done"] == 4


def test_since_time_reads_durations_and_dates():
    now = time.time()
    assert since_time("2h", now) == now - 7200
    assert since_time("2024-05-01T12:00:00+00:00", now) == 1714564800
    with pytest.raises(InvalidInput):
        since_time("yesterday-ish", now)
