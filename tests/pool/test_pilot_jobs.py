"""The pilot-job registry: its pure rules, and its document on the real test server.

The registry knows no batch system: it asks the scheduler each entry names.
Here that is mostly the ledger scheduler of tests/schedulers/second_scheduler.py,
a second scheduler defined by the tests and registered at run time (not a
mock of a real service: it proves the registry works with any backend); the
real Slurm is exercised in tests/schedulers/test_slurm_pilots.py.  The
database is the real test server, because the registry's 409 handling only
means something against a real one.
"""
from __future__ import annotations

import threading
import time

import pytest

from picas import schedulers
from picas.core import token as tok
from picas.pool import registry
from picas.schedulers.base import JobState, JobStatus, PilotRequest
from tests.helpers import client_for, overview
from tests.schedulers.second_scheduler import LedgerScheduler, ledger  # noqa: F401

P, R, D, C, U = JobState.PENDING, JobState.RUNNING, JobState.DONE, JobState.CANCELLED, JobState.UNKNOWN


def registry_request(count: int) -> PilotRequest:
    return PilotRequest(count=count, pilot_args=["--design-doc", "Monitor", "--view", "todo"])


def entry(job_id: str, cls: str = "Monitor", submitted: float = 1000.0, array: int = 1,
          scheduler: str = "ledger") -> dict:
    design, _, view = cls.partition("/")
    return {"job_id": job_id, "scheduler": scheduler, "design": design, "view": view or "todo", "class": cls,
            "array": array, "submitted": submitted}


# --- pure registry rules --------------------------------------------------------------------


def test_merge_keeps_everyone_and_the_newest_entry_wins():
    merged = registry.merge_entries([entry("1"), entry("2", array=2)], [entry("2", array=5), entry("3")])
    assert [(e["job_id"], e["array"]) for e in merged] == [("1", 1), ("2", 5), ("3", 1)]
    assert registry.without(merged, ["2", "9"]) == [entry("1"), entry("3")]


def test_the_same_id_under_two_schedulers_is_two_jobs():
    merged = registry.merge_entries([entry("7", scheduler="a")], [entry("7", scheduler="b")])
    assert [e["scheduler"] for e in merged] == ["a", "b"]
    assert registry.without(merged, ["7"], "a") == [entry("7", scheduler="b")]
    assert list(registry.by_scheduler(merged)) == ["a", "b"]


def test_entries_for_one_array_or_one_id_per_pilot():
    [array] = registry.entries_for(["55"], "x", "D", "v", count=4, resources={"slots": 2}, submitted=5)
    assert (array["array"], array["class"], array["resources"], array["via"]) == (4, "D/v", {"slots": 2}, "submit")
    each = registry.entries_for(["a", "b", "c"], "x", "Monitor", "todo", count=3, via="autopilot")
    assert [(e["job_id"], e["array"], e["class"]) for e in each] == [("a", 1, "Monitor"), ("b", 1, "Monitor"),
                                                                     ("c", 1, "Monitor")]


def test_active_counts_per_job_and_class():
    statuses = [JobStatus("10", "10_0", R), JobStatus("10", "10_1", D), JobStatus("10", "10_[2-4]", P, 3),
                JobStatus("11", "11", P), JobStatus("99", "99_0", R), JobStatus("12", "12", U)]
    assert registry.active_per_job(statuses) == {"10": 4, "11": 1, "99": 1}
    entries = [entry("10", "Monitor"), entry("11", "MultiCore"), entry("12", "MultiCore")]
    assert registry.active_per_class(entries, statuses) == {"Monitor": 4, "MultiCore": 1}
    assert registry.split_running(statuses) == (["10_0", "99_0"], ["10_[2-4]", "11"])


def test_stale_ids_need_both_no_unfinished_pilot_and_age():
    entries = [entry("1", submitted=0), entry("2", submitted=0), entry("3", submitted=990), entry("4", submitted=0),
               entry("5", submitted=0)]
    statuses = [JobStatus("2", "2_[0-3]", P, 4), JobStatus("4", "4", C), JobStatus("5", "5", U)]
    assert registry.stale_ids(entries, statuses, now=1000, older_than=100) == ["1", "4"], \
        "2 is queued, 3 is young, 5 is in a state nobody knows: kept"


def test_summarize_states():
    statuses = [JobStatus("1", "1_0", R), JobStatus("1", "1_[1-2]", P, 2), JobStatus("2", "2_[0-1]", P, 2),
                JobStatus("3", "3", D)]
    rows = {r["job_id"]: r for r in registry.summarize([entry("1"), entry("2"), entry("3")], statuses)}
    assert (rows["1"]["running"], rows["1"]["pending"], rows["1"]["state"]) == (1, 2, "running")
    assert (rows["2"]["active"], rows["2"]["state"]) == (2, "queued")
    assert rows["3"]["state"] == registry.RowState.FINISHED and f"{rows['3']['state']:<9}|" == "finished |"
    assert registry.summarize([entry("1")], None)[0]["state"] == "unknown"


# --- the registry document -------------------------------------------------------------------


@pytest.fixture
def client(couch_server, db_name):
    handle = client_for(couch_server, db_name)
    yield handle
    handle.close()


def test_record_from_many_writers_at_once_loses_nothing(client):
    def writer(n: int) -> None:
        own = client.copy()
        for i in range(5):
            registry.record(own, [entry(f"{n}{i:02d}", submitted=n * 100 + i)])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [e["job_id"] for e in registry.jobs(client)]
    assert sorted(ids) == sorted(f"{n}{i:02d}" for n in range(1, 9) for i in range(5))
    registry.forget(client, ["100", "801"])
    assert len(registry.jobs(client)) == 38
    doc = client.get(registry.DOC_ID)
    assert doc["type"] == "pilot_jobs"


def test_registry_is_not_a_token(client):
    registry.record(client, [entry("5")])
    client.bulk_save([tok.new_token("true", "token_x")])
    assert overview(client) == {"todo": 1}
    assert [row.id for row in client.view("Monitor", "todo")] == ["token_x"]


def test_forget_on_an_empty_registry_writes_nothing(client):
    assert registry.forget(client, ["1"]) == []
    assert client.get_or_none(registry.DOC_ID) is None


@pytest.mark.usefixtures("ledger")
def test_prune_and_summary_ask_the_scheduler_of_each_entry(client):
    ids = LedgerScheduler().submit(LedgerScheduler().build(registry_request(3)))
    LedgerScheduler.set_state("Running", [ids[2]])
    LedgerScheduler.set_state("Done", [ids[0]])
    now = time.time()
    registry.record(client, [entry(ids[0], submitted=now - 7200), entry(ids[1], submitted=now - 10),
                             entry(ids[2], submitted=now - 7200)])
    LedgerScheduler.jobs.pop(ids[1])  # the scheduler forgot it, but it is young: kept
    assert registry.prune(client, 3600) == [ids[0]]
    assert sorted(e["job_id"] for e in registry.jobs(client)) == sorted(ids[1:])
    rows = registry.pilot_summary(client)
    assert [(r["job_id"], r["state"], r["scheduler"]) for r in rows] == [(ids[2], "running", "ledger")]
    assert len(registry.pilot_summary(client, include_finished=True)) == 2


@pytest.mark.usefixtures("ledger")
def test_two_schedulers_in_one_registry(client):
    class Other(LedgerScheduler):
        """A scheduler with a ledger of its own, which has never seen the ledger's jobs."""

        name = "other"
        jobs: dict = {}

    schedulers.register("other", Other)
    try:
        [mine] = LedgerScheduler().submit(LedgerScheduler().build(registry_request(1)))
        registry.record(client, [entry(mine), entry(mine, scheduler="other", submitted=999)])
        rows = registry.pilot_summary(client, include_finished=True)
        assert [(r["scheduler"], r["state"]) for r in rows] == [("other", "finished"), ("ledger", "queued")], \
            "each entry is asked of its own scheduler"
        assert registry.prune(client, 0) == [mine] and [e["scheduler"] for e in registry.jobs(client)] == ["ledger"]
    finally:
        schedulers.unregister("other")


@pytest.mark.usefixtures("ledger")
def test_status_works_where_a_scheduler_is_missing(client):
    registry.record(client, [entry("1", scheduler="nowhere"), entry("2", scheduler="ledger")])
    rows = {r["job_id"]: r for r in registry.pilot_summary(client, include_finished=True)}
    assert rows["1"]["state"] == "unknown" and "unknown scheduler 'nowhere'" in rows["1"]["error"]
    assert rows["2"]["state"] == "finished" and "error" not in rows["2"]
