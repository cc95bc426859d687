"""Token sets for the report tests, made with the same pure functions the pilots use (and old-client bodies)."""
from __future__ import annotations

from picas.core import token as tok
from picas.pilot import record
from picas.pool.scrub import scrub_decision

T0 = 1_700_000_000.0
ALICE = tok.PilotIdentity("pilot-a", hostname="node1", job_ids=(("slurm_job_id", "77_0"),))
BOB = tok.PilotIdentity("pilot-b", hostname="node2")
SCRUBBER = tok.PilotIdentity("scrubber", hostname="login")


def pushed(token_id: str, at: float | None = T0) -> dict:
    doc = tok.new_token(f"echo {token_id}", token_id)
    if at is not None:
        doc["created_at"] = int(at)
    return doc


def ran(doc: dict, who: tok.PilotIdentity, claimed: float, started: float, finished: float, exit_code: int = 0,
        error: str | None = None) -> dict:
    """Claim, run and finish a token as the pilot does (payload times in started/finished)."""
    body = tok.claim(doc, who, claimed, 300)
    fields = {"started": int(started), "finished": int(finished), "duration": finished - started,
              "hostname": who.hostname}
    if error:
        return tok.fail(body, who, finished, error, exit_code=exit_code, **fields)
    return tok.finish(body, who, finished, exit_code, **fields)


def retried(doc: dict, who: tok.PilotIdentity, at: float, exit_code: int) -> dict:
    return tok.reset(doc, who, at, f"retry after exit code {exit_code}")


def scrubbed(doc: dict, now: float) -> dict:
    body = scrub_decision(doc, now, None, None, SCRUBBER)
    assert body is not None, "the lease had not expired"
    return body


def old_client(token_id: str, state: str, lock: float = 0, done: float = 0, exit_code: object = "",
               host: str = "oldhost") -> dict:
    """A token as picas 1.1.x writes it: no history, no creation time, no pilot id."""
    doc = {"_id": token_id, "type": "token", "lock": int(lock), "done": int(done), "hostname": host,
           "scrub_count": 0, "input": "echo old", "output": {}, "exit_code": exit_code, "error": []}
    if state == "error":
        doc["error"] = [{"message": "old failure", "time": int(done)}]
    return doc


def pilot_record(who: tok.PilotIdentity, started: float, ended: float | None, reason: str = "no more work",
                 design: str = "Monitor", view: str = "todo", lease: float = 300.0) -> dict:
    start = record.start_record(who, started, design=design, view=view, lease_seconds=lease)
    return record.end_record(start, ended, reason) if ended is not None else start


def mixed_pool() -> tuple[list[dict], list[dict]]:
    """A pool that ran: successes, a retried failure, a final failure, a scrub, a running token, old-client tokens."""
    docs = []
    # t1: done by alice at once; waited 10 s in the pool, ran 20 s.
    docs.append(ran(pushed("t1"), ALICE, T0 + 10, T0 + 10, T0 + 30))
    # t2: failed with exit 3 on alice, retried, then done on bob.
    t2 = ran(pushed("t2"), ALICE, T0 + 30, T0 + 31, T0 + 40, exit_code=3)
    t2 = retried(t2, ALICE, T0 + 40, 3)
    docs.append(ran(t2, BOB, T0 + 50, T0 + 50, T0 + 60))
    # t3: failed for good on bob (bad input message), exit 2.
    docs.append(ran(pushed("t3"), BOB, T0 + 20, T0 + 21, T0 + 25, exit_code=2, error="cannot read input.dat"))
    # t4: claimed by alice whose node died; scrubbed when the lease ran out; done by bob later.
    t4 = tok.claim(pushed("t4"), ALICE, T0 + 40, 300)
    t4 = scrubbed(t4, T0 + 400)
    docs.append(ran(t4, BOB, T0 + 410, T0 + 412, T0 + 420))
    # t5: running on bob now.
    docs.append(tok.claim(pushed("t5"), BOB, T0 + 500, 300))
    # t6: still todo, pushed later.
    docs.append(pushed("t6", T0 + 100))
    # old-client tokens: done, error, locked and todo, without history or creation time.
    docs.append(old_client("o1", "done", lock=T0 + 5, done=T0 + 15, exit_code=0))
    docs.append(old_client("o2", "error", lock=T0 + 6, done=T0 + 16, exit_code=1))
    docs.append(old_client("o3", "locked", lock=T0 + 7))
    docs.append(old_client("o4", "todo"))
    pilots = [pilot_record(ALICE, T0 + 5, T0 + 45, "no more work"),
              pilot_record(BOB, T0 + 15, None, design="Bigmem")]
    return docs, pilots
