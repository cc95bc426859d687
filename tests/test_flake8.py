"""The code base stays flake8-clean (configuration in .flake8)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_flake8_is_clean():
    names = ("picas", "snakemake_executor_plugin_picas", "tests", "benchmarks", "examples", "grid-sandbox")
    targets = [str(ROOT / name) for name in names if (ROOT / name).exists()]
    proc = subprocess.run([sys.executable, "-m", "flake8", *targets], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
