"""A second scheduler, defined here by the tests and registered at run time.

It is not a stand-in for a real batch system and mocks no service: it is a
small but complete :class:`~picas.schedulers.base.Scheduler` of its own, an
in-memory ledger of jobs, that picas' generic code has never heard of.  Its
purpose is to prove the interface: the autopilot, the pilot-job registry and
``picas submit|pilots|status|autopilot`` must work with it through
``picas.schedulers.register`` alone.  It differs from Slurm where a grid
backend does: one job id per pilot (like a DIRAC parametric job), state names
of its own (``Waiting``, ``Running``, ``Done``, ``Killed``...), its own
options, and no way to signal a running pilot.

Tests change job states with :meth:`LedgerScheduler.set_state`, standing in
for time passing on a batch system.
"""
from __future__ import annotations

import json
from typing import Any, ClassVar, Iterator, Sequence

import pytest

from picas import schedulers
from picas.errors import SchedulerError
from picas.pilot.options import Option
from picas.schedulers.base import JobState, JobStatus, PilotRequest, Scheduler, Submission


class LedgerScheduler(Scheduler):
    """Jobs kept in a class-level dict; every submitted pilot is its own job, first ``Waiting``."""

    name = "ledger"
    title = "Ledger"
    options = (
        Option("queue", "Queue the pilots wait in.", default="main"),
        Option("lanes", "Lanes per pilot.", "int", minimum=1, per_class=True),
        Option("notes", "A note for the pilots (repeatable).", multiple=True, per_class=True),
    )
    states = {"Waiting": JobState.PENDING, "Running": JobState.RUNNING, "Stalled": JobState.RUNNING,
              "Done": JobState.DONE, "Crashed": JobState.FAILED, "Killed": JobState.CANCELLED}

    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    next_id: ClassVar[int] = 9000
    fail: ClassVar[str | None] = None

    @classmethod
    def reset(cls) -> None:
        cls.jobs = {}
        cls.next_id = 9000
        cls.fail = None

    @classmethod
    def set_state(cls, state: str, job_ids: Sequence[str] | None = None) -> None:
        for job_id in job_ids if job_ids is not None else list(cls.jobs):
            cls.jobs[job_id]["state"] = state

    def build(self, request: PilotRequest) -> Submission:
        text = json.dumps({"pilots": request.count, "run": request.pilot_args, "env": request.env,
                           "options": request.options}, sort_keys=True, indent=1)
        return Submission(count=request.count, files={"pilots.json": text + "\n"}, main="pilots.json",
                          resources=self.describe(request.options))

    def submit(self, submission: Submission, *, cwd: str | None = None) -> list[str]:
        if type(self).fail:
            raise SchedulerError(type(self).fail)
        description = json.loads(submission.text)
        ids = []
        for _ in range(description["pilots"]):
            type(self).next_id += 1
            job_id = f"L{type(self).next_id}"
            type(self).jobs[job_id] = {"state": "Waiting", "description": description}
            ids.append(job_id)
        return ids

    def query(self, job_ids: Sequence[str]) -> list[JobStatus]:
        return [JobStatus(job_id, job_id, self.map_state(self.jobs[job_id]["state"]), 1, self.jobs[job_id]["state"])
                for job_id in job_ids if job_id in self.jobs]

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            if job_id in self.jobs and self.map_state(self.jobs[job_id]["state"]).active:
                self.jobs[job_id]["state"] = "Killed"


@pytest.fixture
def ledger() -> Iterator[type[LedgerScheduler]]:
    """The ledger scheduler, registered as ``ledger`` for one test, with an empty ledger."""
    LedgerScheduler.reset()
    schedulers.register("ledger", LedgerScheduler)
    yield LedgerScheduler
    schedulers.unregister("ledger")
    LedgerScheduler.reset()
