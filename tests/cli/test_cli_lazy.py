"""The ``picas`` command loads only what the invoked command needs.

Each check runs the command in a fresh interpreter (a test process has
imported everything already) and reads ``sys.modules`` at its end: which
packages were imported is behaviour, and it is what decides how fast
``picas --help`` starts on a slow shared file system.  No timing is asserted;
``benchmarks/cli_import.py`` prints the times.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from picas.cli import COMMANDS, load_command, main

ROOT = Path(__file__).resolve().parents[2]
#: What no command but its own should pull in.
HEAVY = ("picas.server", "picas.schedulers", "picas.pilot")

_PROBE = """
import json, sys
from picas.cli import main
try:
    main(args=sys.argv[1:], prog_name="picas")
except SystemExit:
    pass
finally:
    sys.stdout.flush()
    print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def imported_by(*args: str, env: dict | None = None) -> tuple[set[str], subprocess.CompletedProcess]:
    """Run ``picas ARGS`` in a fresh interpreter; the modules it imported, and the process."""
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env={**os.environ, "PICAS_CONFIG": "/nonexistent/conf.yml", **(env or {})})
    marker = result.stderr.rindex("MODULES ")
    return set(json.loads(result.stderr[marker + len("MODULES "):])), result


def _loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.mark.parametrize("args", [("--help",), ("status", "--help")])
def test_help_imports_neither_server_schedulers_nor_pilot(args) -> None:
    modules, result = imported_by(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage: picas" in result.stdout
    for package in HEAVY:
        assert not _loaded(modules, package), f"picas {' '.join(args)} imported {_loaded(modules, package)}"


def test_top_level_help_imports_no_command_module() -> None:
    modules, result = imported_by("--help")
    assert [m for m in modules if m.startswith("picas.cli.")] == []
    for name in COMMANDS:
        assert f"\n  {name} " in result.stdout, f"{name} is listed"


def test_status_against_a_real_pool_imports_neither_server_schedulers_nor_pilot(couch_server, db_name) -> None:
    user, password = couch_server.admin
    env = {"PICAS_HOST_URL": couch_server.url, "PICAS_DATABASE": db_name, "PICAS_USERNAME": user,
           "PICAS_PASSWORD": password}
    subprocess.run([sys.executable, "-m", "picas", "views", "create"], env={**os.environ, **env,
                   "PICAS_CONFIG": "/nonexistent/conf.yml"}, check=True, capture_output=True, cwd=ROOT, timeout=120)
    modules, result = imported_by("status", env=env)
    assert result.returncode == 0, result.stderr
    assert "tokens" in result.stdout, "status really ran and printed the pool"
    for package in HEAVY:
        assert not _loaded(modules, package), f"picas status imported {_loaded(modules, package)}"


def test_an_unknown_command_is_a_usage_error() -> None:
    _, result = imported_by("no-such-command")
    assert "No such command 'no-such-command'" in result.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_command_loads_and_its_help_line_is_its_own(name) -> None:
    command = load_command(name)
    assert isinstance(command, click.Command) and command.name == name
    assert COMMANDS[name].short_help == command.get_short_help_str(limit=1000), \
        "the line 'picas --help' shows must be the command's own short help"
    assert main.get_command(click.Context(main), name) is command
