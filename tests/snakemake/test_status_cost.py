"""A run of 200 jobs costs one status request per round, counted by a relay in front of the real server.

Snakemake (real, 9.x) talks to pouchdb-server through :class:`LoggingRelay`,
which records every request line; the pilots talk to the server directly, so
the relay sees only the executor.  Snakemake's debug output names each status
round with the number of jobs it covered; the relay must have seen exactly
one run-view query per round, rounds with well over a hundred active jobs
among them, and not a single request for one token.

Stand-in: the pilots here are the real pilot loop (:class:`picas.pilot.loop.Pilot`:
claims, leases, result saves) with its payload replaced by one that makes
the job's output file, as the Snakemake job would.  Running 200 real
Snakemake jobs (about 2 s of CPU each) would make this test minutes longer
and test nothing more about status requests.
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from picas.core.client import CouchClient
from picas.pilot.config import PilotConfig
from picas.pilot.loop import Pilot
from picas.pilot.payload import ExecResult, safe_name
from picas.pilot.signals import StopFlags
from snakemake_executor_plugin_picas import runview
from tests.helpers import wait_for
from tests.snakemake.conftest import FAST, start_snakemake
from tests.snakemake.relay import LoggingRelay

JOBS = 200
MANY = f"""
localrules: all

rule all:
    input: expand("out/{{i}}.txt", i=range({JOBS}))

rule make:
    output: "out/{{i}}.txt"
    shell: "echo made > {{output}}"
"""


class MakesOutputs:
    """Stands in for the Snakemake job: writes the job's output file (from the token's wildcards) and exits 0."""

    def __init__(self, flow: Path, logs: Path) -> None:
        self.flow = flow
        self.workdir_root = logs

    def run(self, doc: dict, **_: object) -> ExecResult:
        started = time.time()
        target = self.flow / "out" / f"{doc['wildcards']['i']}.txt"
        target.parent.mkdir(exist_ok=True)
        target.write_text("made\n")
        time.sleep(0.02)
        logs = [self.workdir_root / f"{safe_name(doc['_id'])}.{suffix}" for suffix in ("out", "err")]
        for path in logs:
            path.write_bytes(b"")
        return ExecResult(exit_code=0, started=started, finished=time.time(), stdout=logs[0], stderr=logs[1])

    def cleanup_logs(self, result: ExecResult) -> None:
        for path in (result.stdout, result.stderr):
            path.unlink(missing_ok=True)


@pytest.fixture
def relay(pool):
    handle = LoggingRelay(pool.server.server.port)
    yield handle
    handle.close()


def test_a_run_of_200_jobs_uses_one_status_request_per_round(pool, relay, tmp_path):
    flow = tmp_path / "many"
    flow.mkdir()
    (flow / "Snakefile").write_text(MANY)
    run = start_snakemake(flow, {**pool.env, "PICAS_HOST_URL": relay.url}, "--executor", "picas",
                          "--jobs", str(JOBS), "--verbose", *FAST)
    flags = StopFlags()
    threads = []
    try:
        wait_for(lambda: len(pool.run_tokens()) == JOBS, timeout=600, interval=1, what="Snakemake to submit the jobs")
        logs = tmp_path / "logs"
        logs.mkdir()
        for _ in range(2):
            client = CouchClient(pool.server.url, pool.db, username=pool.client.username,
                                 password=pool.client.password)
            pilot = Pilot(client, PilotConfig(wait=True, prefetch=4, attach_logs=False),
                          executor=MakesOutputs(flow, logs), flags=flags, install_signals=False)
            threads.append(threading.Thread(target=pilot.run, daemon=True))
            threads[-1].start()
        out = run.finish()
    finally:
        flags.requested.set()
        run.stop()
        for thread in threads:
            thread.join(timeout=60)
    assert run.proc.returncode == 0, out[-5000:]
    assert len(list((flow / "out").glob("*.txt"))) == JOBS

    rounds = [int(n) for n in re.findall(r"picas: status round: (\d+) active jobs", out)]
    queries = relay.matching("GET", f"/_design/{runview.DESIGN}/_view/{runview.VIEW}")
    assert len(queries) == len(rounds), "one run-view query per status round"
    assert max(rounds) >= 100 and sum(rounds) >= JOBS, rounds
    assert all("key=" in query for _, _, query in queries)
    # No request ever names a single token: not to write it, not to read its state.
    assert [r for r in relay.requests if "/smk-" in r[1]] == []
    writes = relay.matching("POST", "/_bulk_docs")
    assert 1 <= len(writes) <= 3, "the tokens are written in bulk, not one by one"
    rereads = relay.matching("POST", "/_all_docs")
    assert len(rereads) <= len(rounds) // 4, "a second request in a round is the exception (see RunStore.states)"
