"""The classic examples in examples/classic/, run as a picas 1.x user runs them, against the real test server.

The walk-through: ``picas-cli init`` stores the settings (password encrypted
with a new key.dat), ``picasconfig.py`` reads them back, ``createViews.py``
makes the views, ``pushTokens.py quickExample.txt`` pushes three tokens and
``local-example.py`` runs them all, attaching their logs.  Each step is a
separate process in a copy of the examples directory, with its own HOME,
exactly as typed in a shell.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.schedulers.slurm import count_active
from tests.slurm_fixture import slurm_cluster  # noqa: F401 - the fixture, used by name below

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "classic"
QUICK_INPUTS = ["echo 'this is token 1'", "echo 'this is token 2'", "echo 'this is token 3'"]


def _picas_cli() -> list[str]:
    """This interpreter's ``picas-cli`` script, or the module behind it when the package was installed without it."""
    script = Path(sys.executable).parent / "picas-cli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "picas.apps.picas_cli"]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A shell environment of a fresh user: own HOME, no PICAS_* settings, this Python first on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PICAS_")}
    env.pop("XDG_CONFIG_HOME", None)
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of examples/classic/ to work in (the examples write their logs where they run)."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


def sh(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one command as typed in a shell; it must succeed."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def configure(couch_server, db_name: str, examples: Path, env: dict[str, str]) -> CouchClient:
    """Step 1: picas-cli init, as the walk-through says; returns an admin client for checking."""
    user, password = couch_server.admin
    sh(_picas_cli() + ["init", "--host-url", couch_server.url, "--database", db_name, "--username", user,
                       "--password", password], examples, env)
    home = Path(env["HOME"])
    conf = (home / ".config" / "picas" / "conf.yml").read_text()
    assert password not in conf and "encrypted_password: " in conf  # stored encrypted, as 1.1.x does
    assert (home / ".config" / "picas" / "key.dat").stat().st_mode & 0o077 == 0
    return CouchClient(couch_server.url, db_name, username=user, password=password)


def tokens(client: CouchClient) -> dict[str, dict]:
    return {row.id: row.doc for row in client.all_docs(include_docs=True).rows if row.doc.get("type") == "token"}


def test_quick_walk_through(couch_server, db_name, examples, user_env):
    client = configure(couch_server, db_name, examples, user_env)
    python = sys.executable

    sh([python, "createViews.py"], examples, user_env)
    design = client.get("_design/Monitor")
    assert set(design["views"]) == {"todo", "locked", "done", "error", "overview_total"}

    pushed = sh([python, "pushTokens.py", "quickExample.txt"], examples, user_env)
    assert "Pushed 3 of 3 tokens" in pushed.stdout
    assert sorted(doc["input"] for doc in tokens(client).values()) == QUICK_INPUTS
    assert {row.key: row.value for row in client.view("Monitor", "overview_total", group=True)} == {"todo": 3}

    run = sh([python, "local-example.py"], examples, user_env)
    assert run.stdout.count("Working on token") == 3, run.stdout

    docs = tokens(client)
    assert sorted(docs) == ["token_0", "token_1", "token_2"]
    for token_id, doc in docs.items():
        assert tok.state(doc) == "done", doc
        assert doc["exit_code"] == 0 and doc["lock"] > 0 and doc["done"] > 0
        out, err = f"logs_{token_id}.out", f"logs_{token_id}.err"
        assert set(doc["_attachments"]) == {out, err}
        log_text = client.get_attachment(token_id, out).decode()
        assert doc["input"].split("'")[1] in log_text  # the echo ran: "this is token N"
        assert (examples / out).read_text() == log_text
    assert {row.key: row.value for row in client.view("Monitor", "overview_total", group=True)} == {"done": 3}

    # The pool is empty now: a second run finds nothing to do and ends at once.
    again = sh([python, "local-example.py"], examples, user_env)
    assert "Working on token" not in again.stdout


def test_a_failing_token_is_retried_then_left_in_error(couch_server, db_name, examples, user_env):
    client = configure(couch_server, db_name, examples, user_env)
    python = sys.executable
    (examples / "mixed.txt").write_text("echo fine\nexit 3\n")
    sh([python, "createViews.py"], examples, user_env)
    sh([python, "pushTokens.py", "mixed.txt"], examples, user_env)
    sh([python, "local-example.py"], examples, user_env)
    docs = {doc["input"]: doc for doc in tokens(client).values()}
    assert tok.state(docs["echo fine"]) == "done"
    failed = docs["exit 3"]
    assert tok.state(failed) == "error" and failed["exit_code"] == 3
    assert failed["scrub_count"] == 2  # max_scrub=2: tried three times in all
    assert "failed with exit code 3" in client.get_attachment(failed["_id"], f"logs_{failed['_id']}.err").decode()


def test_long_running_example_tokens(couch_server, db_name, examples, user_env):
    """createTokens makes the fractal parameters; process_task.sh runs fractals.py for such a token."""
    made = sh(["./createTokens"], examples, user_env)
    params = Path(made.stdout.strip())
    try:
        lines = params.read_text().splitlines()
    finally:
        params.unlink()
    assert len(lines) == 48 and lines[0] == "-q 0.100 -d 100 -m 100" and lines[-1] == "-q 0.260 -d 1600 -m 1900"
    bad = subprocess.run(["./createTokens", "-q", "zero"], cwd=examples, env=user_env, capture_output=True, text=True)
    assert bad.returncode == 2 and "positive whole number" in bad.stderr

    client = configure(couch_server, db_name, examples, user_env)
    python = sys.executable
    (examples / "small.txt").write_text(lines[0] + "\n")  # the smallest token: well under a second
    sh([python, "createViews.py"], examples, user_env)
    sh([python, "pushTokens.py", "small.txt"], examples, user_env)
    sh([python, "local-example.py"], examples, user_env)
    (doc,) = tokens(client).values()
    assert tok.state(doc) == "done" and doc["exit_code"] == 0
    image = (examples / f"output_{doc['_id']}").read_bytes()
    assert image.startswith(b"P5 100 100 255\n") and len(image) == len(b"P5 100 100 255\n") + 100 * 100


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_example_runs_the_tokens_as_an_array(couch_server, db_name, examples, user_env):
    client = configure(couch_server, db_name, examples, user_env)
    python = sys.executable
    sh([python, "createViews.py"], examples, user_env)
    sh([python, "pushTokens.py", "quickExample.txt"], examples, user_env)
    # As the walk-through says, from the examples directory; two array tasks instead of six.
    submitted = sh(["sbatch", "--parsable", "--array=0-1", "slurm-example.sh"], examples, user_env)
    job_id = submitted.stdout.strip().splitlines()[-1].split(";")[0]
    deadline = time.monotonic() + 180
    while count_active([job_id]):
        assert time.monotonic() < deadline, f"job {job_id} still active after 180 s"
        time.sleep(0.5)
    logs = "".join(path.read_text() for path in examples.glob("picas-example-*.out"))
    docs = tokens(client)
    assert all(tok.state(doc) == "done" for doc in docs.values()), logs
    assert logs.count("Working on token") == 3, logs
    assert all(f"logs_{token_id}.out" in doc["_attachments"] for token_id, doc in docs.items())
