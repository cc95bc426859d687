#!/usr/bin/env python3
"""How fast the ``picas`` command starts: import time of ``picas.cli``, wall time of two help screens.

usage: cli_import.py [--runs 7] [--compare REV]...

For the working tree (and each ``--compare`` git revision, extracted to a
temporary directory with ``git archive``) this prints one JSON line with:

* ``import_us``: ``python -X importtime -c "import picas.cli"``, the cumulative
  microseconds of ``picas.cli`` (median of the runs);
* ``help_s`` and ``status_help_s``: wall seconds of ``python -m picas --help``
  and ``python -m picas status --help`` (median);
* ``modules_help`` and ``modules_status_help``: how many ``picas`` modules each loads.

Every run is a fresh interpreter with the tree first on ``PYTHONPATH``.  The
machine may be busy: compare revisions within one run, not across runs.
This is a benchmark, not a test: it prints figures and asserts nothing
(``tests/cli/test_cli_lazy.py`` checks what is imported).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_COUNT = ("import sys, runpy; sys.argv = ['picas'] + sys.argv[1:]\n"
          "try:\n    runpy.run_module('picas', run_name='__main__')\n"
          "except SystemExit:\n    pass\n"
          "print(sum(1 for m in sys.modules if m == 'picas' or m.startswith('picas.')), file=sys.stderr)")


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PICAS_CONFIG": "/nonexistent/picas-bench-conf.yml"}


def import_us(tree: Path) -> int:
    """Cumulative microseconds of ``import picas.cli`` as ``-X importtime`` reports it."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import picas.cli"], cwd=tree, env=_env(tree),
                            capture_output=True, text=True, check=True)
    for line in result.stderr.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[2] == "picas.cli":
            return int(fields[1])
    raise RuntimeError(f"no picas.cli line in -X importtime output of {tree}")


def wall_s(tree: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "picas", *args], cwd=tree, env=_env(tree), capture_output=True, check=True)
    return time.perf_counter() - started


def modules(tree: Path, *args: str) -> int:
    result = subprocess.run([sys.executable, "-c", _COUNT, *args], cwd=tree, env=_env(tree), capture_output=True,
                            text=True)
    return int(result.stderr.strip().splitlines()[-1])


def measure(tree: Path, label: str, runs: int) -> dict:
    return {
        "figure": "cli_import", "tree": label, "runs": runs,
        "import_us": statistics.median(import_us(tree) for _ in range(runs)),
        "help_s": round(statistics.median(wall_s(tree, "--help") for _ in range(runs)), 4),
        "status_help_s": round(statistics.median(wall_s(tree, "status", "--help") for _ in range(runs)), 4),
        "modules_help": modules(tree, "--help"),
        "modules_status_help": modules(tree, "status", "--help"),
        "load_at_start": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per figure (the median is shown)")
    parser.add_argument("--compare", action="append", default=[], metavar="REV",
                        help="also measure this git revision (repeatable), e.g. 51b264a")
    args = parser.parse_args()
    print(json.dumps(measure(ROOT, "working tree", args.runs)), flush=True)
    for rev in args.compare:
        with tempfile.TemporaryDirectory(prefix="picas-cli-import-") as tmp:
            archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            print(json.dumps(measure(Path(tmp), rev, args.runs)), flush=True)


if __name__ == "__main__":
    main()
