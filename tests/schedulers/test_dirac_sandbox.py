"""The grid sandbox end to end, as a worker node would run it: Python 3.9, nothing but the sandbox.

``picas submit dirac --dry-run --output DIR`` writes the JDL and its sandbox.
Exactly the files the JDL's InputSandbox names are copied into an empty
directory, and the first pilot's ``Executable`` runs with its ``Arguments``
under ``env -i``: PATH has a Python 3.9 as its only Python, HOME is empty,
DIRACJOBID is set.  It drains a real pouchdb-server pool of 20 tokens.
strace lists every file the job opened or executed: none may lie outside the
sandbox but the interpreter's standard library and the system's own files.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from picas.cli import main
from picas.pool import registry
from tests.helpers import client_for, overview, push
from tests.schedulers.dirac_support import (PYTHON39, admin_env, credential_file, expand_jdl, parse_jdl,
                                            worker_path)

#: Files a job may read outside its sandbox: the system's own (loader, libc, locale, users, time zone).
SYSTEM = ("/usr/lib/", "/lib/", "/lib64/", "/usr/lib64/", "/etc/", "/proc/", "/sys/", "/dev/",
          "/usr/share/locale/", "/usr/share/zoneinfo/", "/bin/", "/usr/bin/")
_OPENED = re.compile(r'\b(?:open|openat|openat2|execve)\((?:AT_FDCWD, )?"([^"]*)"')


def _strace() -> str | None:
    found = shutil.which("strace")
    if found is None and os.environ.get("CI", "").lower() == "true":
        pytest.fail("strace is missing in CI: scripts/test.sh installs it")
    return found


def _dry_run(server, db_name, tmp_path, *extra: str):
    cred = credential_file(server, db_name, tmp_path / "pilots.yml")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["submit", "dirac", "--credential", str(cred), "--pilots", "4", "--dry-run",
                                       "--output", str(out), *extra], env=admin_env(server, db_name),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_dry_run_writes_the_jdl_and_exactly_its_sandbox(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    extra = tmp_path / "fractal.c"
    extra.write_text("int main(void) { return 0; }\n")
    out, printed = _dry_run(couch_server, db_name, tmp_path, "--input-file", str(extra), "--setup", "cc -o f fractal.c")
    assert f"cd {out.absolute()} && dirac-wms-job-submit pilot.jdl" in printed
    cfg = parse_jdl((out / "pilot.jdl").read_text())
    names = cfg.getOption("InputSandbox", [])
    assert sorted(os.listdir(out)) == sorted([*names, "pilot.jdl"])
    assert {"picas-pilot.sh", "picas.pyz", "picas-pilot.yml", "picas-setup.sh", "fractal.c"} == set(names)
    assert oct((out / "picas-pilot.yml").stat().st_mode & 0o777) == "0o600"
    # No operator secret travels: the admin password is in none of the files, the zipapp included.
    admin_password = couch_server.admin[1].encode()
    for name in names:
        assert admin_password not in (out / name).read_bytes(), name
    size = sum((out / name).stat().st_size for name in names)
    assert size < 2 * 1024 * 1024, f"the sandbox is {size} bytes"
    assert registry.jobs(client) == []  # a dry run records nothing


def test_sandbox_drains_the_pool_on_python39_reading_nothing_outside(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    push(client, [f"echo token {i}; echo \"python: $(command -v python3)\"" for i in range(20)])
    out, _ = _dry_run(couch_server, db_name, tmp_path)
    text = (out / "pilot.jdl").read_text()
    names = parse_jdl(text).getOption("InputSandbox", [])
    job = parse_jdl(expand_jdl(text)[0])  # the first pilot, as DIRAC expands the parametric job

    worker = tmp_path / "worker"
    worker.mkdir()
    for name in names:
        shutil.copyfile(out / name, worker / name)
    home = tmp_path / "home"
    home.mkdir()
    path = worker_path(tmp_path / "node")
    argv = [job.getOption("Executable"), *shlex.split(job.getOption("Arguments"))]
    command = ["env", "-i", f"PATH={path}", f"HOME={home}", "DIRACJOBID=4711", *argv]
    strace = _strace()
    trace = tmp_path / "trace"
    if strace:
        command = [strace, "-f", "-qq", "-e", "trace=open,openat,openat2,execve", "-e", "status=successful",
                   "-o", str(trace), *command]
    proc = subprocess.run(command, cwd=worker, capture_output=True, text=True, timeout=600)
    log = (worker / "picas-pilot.log").read_text() if (worker / "picas-pilot.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{log}"
    assert "(3.9." in proc.stdout, proc.stdout  # the start script says which interpreter it chose
    assert "20 tokens" in proc.stdout and "20 done" in proc.stdout

    assert overview(client) == {"done": 20}
    tokens = [row.doc for row in client.all_docs(include_docs=True).rows if row.doc.get("type") == "token"]
    assert len(tokens) == 20 and {t.get("dirac_job_id") for t in tokens} == {"4711"}
    assert list(home.iterdir()) == []

    if strace:
        prefix = str(PYTHON39.resolve().parents[1])  # .../versions/3.9.18
        allowed = (str(worker), str(tmp_path / "node"), f"{prefix}/lib/python3.9", f"{prefix}/lib/libpython",
                   f"{prefix}/bin/", *SYSTEM)
        opened = {m.group(1) for m in map(_OPENED.search, trace.read_text().splitlines()) if m}
        outside = sorted(p for p in opened
                         if (p.startswith("/") and not p.startswith(allowed)) or "site-packages" in p)
        assert outside == [], f"the job read files outside its sandbox: {outside}"
        assert any(p.endswith("picas.pyz") for p in opened)


def test_submit_without_dirac_is_one_error_line(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    cred = credential_file(couch_server, db_name, tmp_path / "pilots.yml")
    env = {**os.environ, **admin_env(couch_server, db_name), "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "picas", "submit", "dirac", "--credential", str(cred), "-n", "2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 11, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("picas: error: dirac-wms-job-submit not found"), proc.stderr
    assert registry.jobs(client) == []


def test_a_person_s_credentials_never_go_into_a_sandbox(couch_server, db_name, tmp_path):
    client_for(couch_server, db_name)
    result = CliRunner().invoke(main, ["submit", "dirac", "-n", "1", "--dry-run", "--output", str(tmp_path / "o")],
                                env=admin_env(couch_server, db_name))
    assert result.exit_code == 10 and "pilot credential" in result.output
    assert not (tmp_path / "o").exists()
