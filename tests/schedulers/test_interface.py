"""The scheduler interface itself: the registry of backends, JobState, and generic code that names none.

The backend used here besides Slurm is the ledger scheduler of
second_scheduler.py, defined by the tests and registered at run time (not a
mock of a real service).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from picas import schedulers
from picas.errors import InvalidInput, SchedulerError
from picas.schedulers.base import JobState, PilotRequest, Scheduler, one_line
from picas.schedulers.slurm import SlurmScheduler
from tests.schedulers.second_scheduler import LedgerScheduler, ledger  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]

#: Modules that must work with any scheduler, so must never name one (the registry table of
#: picas/schedulers/__init__.py is where names meet modules).
GENERIC = ["picas/schedulers/base.py", "picas/schedulers/autopilot.py", "picas/schedulers/classes.py",
           "picas/schedulers/planning.py", "picas/cli/status_cmd.py", "picas/cli/pilots_cmd.py",
           "picas/cli/submit_cmd.py", "picas/cli/autopilot_cmd.py", "picas/pilot/options.py",
           "picas/pilot/credentials.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "picas/pool").glob("*.py"))]


def _code_words(path: Path) -> list[str]:
    """Every name, attribute, imported module and string the code of ``path`` uses; docstrings and comments aside."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.alias):
            words.append(node.name)
        elif isinstance(node, ast.ImportFrom):
            words.append(node.module or "")
    return words


@pytest.mark.parametrize("path", GENERIC)
def test_generic_code_names_no_backend(path):
    """Generic code may explain itself with examples, but its code never names a backend or its programs."""
    named = sorted({name for word in _code_words(ROOT / path)
                    for name in (*schedulers.BUILTIN, "squeue", "sbatch", "scancel", "dirac-wms")
                    if re.search(rf"\b{re.escape(name)}\b", word, re.IGNORECASE)})
    assert named == [], f"{path} names {', '.join(named)} in its code"


def test_the_listed_generic_modules_do_not_even_mention_a_backend():
    """What ``grep -i slurm`` shows for the modules the architecture issue names: nothing."""
    paths = ["picas/schedulers/autopilot.py", "picas/cli/status_cmd.py", "picas/cli/pilots_cmd.py",
             "picas/pool/registry.py"]
    found = [path for path in paths if re.search(r"slurm|squeue|sbatch|scancel", (ROOT / path).read_text(), re.I)]
    assert found == []


def test_backends_are_found_by_name_and_imported_only_then():
    code = ("import sys, picas.schedulers as s; names = s.names(); "
            "print('slurm' in names, 'picas.schedulers.slurm' in sys.modules, 'picas.schedulers.base' in sys.modules); "
            "cls = s.get('slurm'); print(cls.__name__, 'picas.schedulers.slurm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["True", "False", "False", "SlurmScheduler", "True"]
    with pytest.raises(InvalidInput, match=r"unknown scheduler 'nope' \(known: .*slurm"):
        schedulers.get("nope")


@pytest.mark.usefixtures("ledger")
def test_a_scheduler_registered_at_run_time():
    assert "ledger" in schedulers.names() and schedulers.get("ledger") is LedgerScheduler
    assert isinstance(schedulers.create("ledger", timeout=5), LedgerScheduler)
    schedulers.register("slurm-too", "picas.schedulers.slurm:SlurmScheduler")
    try:
        assert schedulers.get("slurm-too") is SlurmScheduler
    finally:
        schedulers.unregister("slurm-too")
    assert "slurm-too" not in schedulers.names()
    schedulers.register("broken", "picas.errors:PicasError")
    try:
        with pytest.raises(TypeError, match="not a Scheduler subclass"):
            schedulers.get("broken")
    finally:
        schedulers.unregister("broken")


def test_job_states():
    assert [s.value for s in JobState] == ["pending", "running", "done", "failed", "cancelled", "unknown"]
    assert {s for s in JobState if s.active} == {JobState.PENDING, JobState.RUNNING}
    assert {s for s in JobState if s.finished} == {JobState.DONE, JobState.FAILED, JobState.CANCELLED}
    assert f"{JobState.RUNNING}|{JobState.DONE:>6}" == "running|  done" and JobState("failed") is JobState.FAILED
    assert LedgerScheduler.map_state("stalled") is JobState.RUNNING
    assert LedgerScheduler.map_state("Teleported") is JobState.UNKNOWN


def test_the_base_class_demands_the_essentials_and_refuses_signals():
    with pytest.raises(TypeError, match="abstract"):
        Scheduler()  # type: ignore[abstract]
    scheduler = LedgerScheduler()
    with pytest.raises(SchedulerError, match="Ledger cannot send a signal") as caught:
        scheduler.signal(["L1"], "USR1")
    assert caught.value.exit_code == 11
    submission = scheduler.build(PilotRequest(count=2, options={"queue": "q", "lanes": 3, "notes": ["x"]}))
    assert submission.resources == {"lanes": 3}, "per-class options that are set, lists left out"
    assert scheduler.dry_run(submission, {}) == submission.text and submission.main == "pilots.json"


def test_one_line_keeps_the_programs_own_words():
    stderr = ("sbatch: error: invalid partition specified: nope\n"
              "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert one_line(stderr) == ("sbatch: error: invalid partition specified: nope; "
                                "Batch job submission failed: Invalid partition name specified")
    assert one_line("", "") == "no message"
