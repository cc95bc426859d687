"""A picas conflict is also couchdb-python's ResourceConflict (and NotFound its ResourceNotFound).

Scripts written for picas 1.x catch couchdb-python's classes.  picas does
not depend on couchdb-python: the extra base class is added when (and only
if) ``couchdb.http`` is loaded, before or after picas.  These tests need
couchdb-python installed (it is in the test extra).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from picas.documents import Task
from picas.errors import Conflict, DatabaseNotFound, NotFound, PicasError
from tests.classic.mockdb import require_couchdb_http


def test_a_real_409_is_caught_by_couchdb_pythons_except_clause(classic):
    couchdb_http = require_couchdb_http()
    task = classic.save(Task({"_id": "t1"}))
    stale = Task(dict(task.value))
    classic.save(task)
    try:
        classic.save(stale)
    except couchdb_http.ResourceConflict as exc:
        caught = exc
    assert isinstance(caught, Conflict) and isinstance(caught, PicasError) and caught.exit_code == Conflict.exit_code
    with pytest.raises(couchdb_http.ResourceNotFound):
        classic["no-such-doc"]
    assert issubclass(DatabaseNotFound, couchdb_http.ResourceNotFound) and issubclass(NotFound, PicasError)


@pytest.mark.parametrize("first", ["picas", "couchdb"])
def test_either_import_order(first):
    require_couchdb_http()
    imports = ["import picas.errors as errors", "import couchdb.http as http"]
    if first == "couchdb":
        imports.reverse()
    code = "\n".join(imports + [
        "try:\n    raise errors.Conflict('lost a race')",
        "except http.ResourceConflict as exc:\n    print('caught', exc)",
        "print(issubclass(errors.TokenNotFound, http.ResourceNotFound))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["caught lost a race (another client changed the document; re-read it and "
                                       "try again)", "True"]


def test_without_couchdb_python_nothing_is_imported_or_required():
    code = ("import sys\nsys.modules['couchdb'] = None  # as if it were not installed\n"
            "import picas.errors as errors, picas.clients\n"
            "print(errors.Conflict.__mro__[1].__name__, [m for m in sys.modules if m.startswith('couchdb.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PicasError", "[]"]


def test_picas_does_not_import_couchdb_python_itself():
    require_couchdb_http()
    code = "import sys, picas.errors, picas.clients, picas.actors\nprint('couchdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
