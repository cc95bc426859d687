"""The pilot's collaborators can be replaced, and carried results come back through the call, not a side channel.

Each stand-in here wraps or replaces one real part (the claimer, the
executor, the journal) and the pilot runs against a real server.
"""
from __future__ import annotations

import time
from pathlib import Path

from picas.core import token as tok
from picas.core.claim import Carried, Claimer
from picas.errors import ServerUnavailable
from picas.pilot.journal import Journal
from picas.pilot.loop import Pilot, PilotConfig
from picas.pilot.payload import ExecResult
from tests.helpers import client_for, overview, push


class RecordingExecutor:
    """Runs no process: answers exit code 0 with empty logs, and remembers which tokens it ran."""

    def __init__(self, root: Path) -> None:
        self.workdir_root = root
        self.ran: list[str] = []

    def run(self, doc: dict, *, timeout=None, should_stop=lambda: False, should_force=lambda: False) -> ExecResult:
        self.ran.append(doc["_id"])
        self.workdir_root.mkdir(parents=True, exist_ok=True)
        out, err = self.workdir_root / "out", self.workdir_root / "err"
        out.write_bytes(b"")
        err.write_bytes(b"")
        now = time.time()
        return ExecResult(exit_code=0, started=now, finished=now, stdout=out, stderr=err)

    def cleanup_logs(self, result: ExecResult) -> None:
        pass


class NoCarry:
    """A claim source that never writes the carried results: the pilot must save them itself."""

    def __init__(self, claimer: Claimer) -> None:
        self.claimer = claimer
        self.offered = 0

    def claim_batch(self, k: int, *, carry: Carried | None = None) -> list[dict]:
        self.offered += len(carry.bodies) if carry else 0
        return self.claimer.claim_batch(k)


class FailsAfterCarrying:
    """Writes the carried results with the claim, then reports the server unreachable, ``failures`` times."""

    def __init__(self, claimer: Claimer, failures: int) -> None:
        self.claimer = claimer
        self.failures = failures
        self.carried_saved = 0
        self.saved_before_failure: list[str] = []

    def claim_batch(self, k: int, *, carry: Carried | None = None) -> list[dict]:
        claimed = self.claimer.claim_batch(k, carry=carry)
        self.carried_saved += sum(1 for _, result in (carry.results if carry else []) if result.ok)
        if self.failures and carry and carry.results:
            self.failures -= 1
            self.saved_before_failure += [body["_id"] for body, result in carry.results if result.ok]
            for doc in claimed:  # give the claims back, as a lost answer would leave them to a scrub
                self.claimer.client.save(tok.reset(doc, None, time.time(), "test", count_scrub=False))
            raise ServerUnavailable("the answer to the claim was lost")
        return claimed


def _pilot(client, tmp_path, **parts) -> Pilot:
    return Pilot(client, PilotConfig(workdir=tmp_path / "work", outage_timeout=60), install_signals=False, **parts)


def test_an_injected_executor_runs_every_token(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    ids = push(client, ["this would fail in bash"] * 4)
    executor = RecordingExecutor(tmp_path / "exec")
    report = _pilot(client, tmp_path, executor=executor).run()
    assert sorted(executor.ran) == sorted(ids)
    assert report.done == 4 and overview(client) == {"done": 4}


def test_results_a_claim_source_did_not_carry_are_saved_by_the_pilot(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["true"] * 3)
    probe = _pilot(client, tmp_path)
    source = NoCarry(probe.claimer)
    report = _pilot(client, tmp_path, claimer=source, executor=RecordingExecutor(tmp_path / "exec")).run()
    assert source.offered >= 2, "the pilot offered its results to the claim"
    assert report.done == 3 and overview(client) == {"done": 3}


def test_carried_results_saved_before_the_claim_failed_are_counted_once(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, ["true"] * 3)
    probe = _pilot(client, tmp_path)
    source = FailsAfterCarrying(probe.claimer, failures=1)
    report = _pilot(client, tmp_path, claimer=source, executor=RecordingExecutor(tmp_path / "exec")).run()
    assert source.carried_saved >= 1, "a result went with a claim whose answer was then lost"
    assert report.processed == 3 and report.done == 3, "each result counted once, none lost"
    assert overview(client) == {"done": 3}
    for token_id in source.saved_before_failure:  # pushed, locked, done: the retried claim did not write it again
        assert client.get(token_id)["_rev"].startswith("3-")


def test_an_injected_journal_is_the_one_the_pilot_reads_and_writes(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    [token_id] = push(client, ["true"])
    who = tok.PilotIdentity("crashed-pilot")
    finished = tok.finish(client.get(token_id), who, time.time(), 0)  # a result a crashed pilot journaled
    journal = Journal(tmp_path / "elsewhere" / "journal-mine.jsonl")
    journal.add(finished)
    report = _pilot(client, tmp_path, journal=journal, executor=RecordingExecutor(tmp_path / "exec")).run()
    assert tok.state(client.get(token_id)) == "done", "the pending result was saved at start"
    assert journal.pending() == [] and not journal.path.exists()
    assert report.processed == 0, "nothing was left to claim"
