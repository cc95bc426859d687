#!/usr/bin/env python3
"""The 100-job ``sleep 1`` workflow (examples/snakemake/sleep) on picas pilots against Snakemake's local executor.

usage: snakemake_example.py [--jobs 100] [--pilots 8] [--status-interval 1] [--rounds 1]

Both runs start from a fresh copy of the workflow and are timed from the
start of ``python -m snakemake`` to its end:

* picas: ``snakemake --executor picas --picas-local-pilots 8 --jobs 100
  --seconds-between-status-checks 1`` against a private pouchdb-server (the
  pilots are started and stopped by the run, so their start-up is included);
* local: ``snakemake --jobs 8``, Snakemake's own local executor.

What the comparison shows: every picas job is a remote Snakemake job, so it
starts ``python -m snakemake`` again on its pilot (parsing the workflow and
building its DAG, about 1.5 to 2 s of CPU), where the local executor runs the
rule's shell command in the main process's own DAG.  On a machine with few
cores that start-up, not the one-second sleep, is what the picas figure
measures.  With ``--rounds`` above 1 the two take turns, and the medians are
printed.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import fresh_server, log  # noqa: E402
from picas.core.client import CouchClient  # noqa: E402
from picas.core.views import deploy  # noqa: E402

WORKFLOW = ROOT / "examples" / "snakemake" / "sleep"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(directory: Path, env: dict, args: list[str]) -> tuple[float, float]:
    """Copy the workflow into ``directory``, run Snakemake there; its wall time and CPU time; fail loudly.

    The CPU time is that of Snakemake and everything it waited for: its jobs, and the local pilots
    (which wait for their payloads) with their Snakemake jobs.
    """
    shutil.copytree(WORKFLOW, directory)
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=directory, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    made = len(list((directory / "done").glob("*.txt")))
    if made != int(args[args.index("--config") + 1].split("=")[1]):
        sys.exit(f"snakemake {' '.join(args)} made {made} outputs")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the workflow (each sleeps 1 s)")
    parser.add_argument("--pilots", type=int, default=8, help="local picas pilots, and -j of the local executor")
    parser.add_argument("--status-interval", type=int, default=1, help="--seconds-between-status-checks for picas")
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    config = ["--config", f"count={options.jobs}"]
    picas_args = ["--executor", "picas", "--picas-local-pilots", str(options.pilots), "--jobs", str(options.jobs),
                  "--seconds-between-status-checks", str(options.status_interval), *config]
    local_args = ["--jobs", str(options.pilots), *config]
    times: dict[str, list[float]] = {"picas": [], "local": []}
    cpus: dict[str, list[float]] = {"picas": [], "local": []}
    tmp = Path(tempfile.mkdtemp(prefix="picas-bench-snakemake-"))
    try:
        with fresh_server() as url:
            client = CouchClient(url, "snakemake_bench")
            client.create_db()
            deploy(client)
            env = {**os.environ, "PICAS_HOST_URL": url, "PICAS_DATABASE": "snakemake_bench",
                   "PICAS_CONFIG": str(tmp / "no-conf.yml")}
            for name in ("PICAS_USERNAME", "PICAS_PASSWORD", "PICAS_PROFILE"):
                env.pop(name, None)
            for number in range(options.rounds):
                log(f"round {number + 1}: picas, {options.pilots} local pilots")
                for name, args in (("picas", picas_args), ("local", local_args)):
                    wall, cpu = run(tmp / f"{name}-{number}", env, args)
                    times[name].append(wall)
                    cpus[name].append(cpu)
                    log(f"round {number + 1}: {name} took {wall:.1f} s ({cpu:.0f} s of CPU)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    picas, local = statistics.median(times["picas"]), statistics.median(times["local"])
    load = os.getloadavg()[1]
    print(f"{options.jobs} jobs of 'sleep 1', {os.cpu_count()} cores (5-minute load average at the end: "
          f"{load:.1f}), median of {options.rounds} round(s):")
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    print(f"  picas, {options.pilots} local pilots:        {picas:7.1f} s, {cpu['picas']:5.0f} s of CPU   "
          f"(snakemake {' '.join(picas_args)})")
    print(f"  Snakemake local executor, -j {options.pilots}:  {local:7.1f} s, {cpu['local']:5.0f} s of CPU   "
          f"(snakemake {' '.join(local_args)})")
    print(f"  picas / local: {picas / local:.1f}x")


if __name__ == "__main__":
    main()
