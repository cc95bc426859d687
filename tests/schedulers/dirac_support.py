"""What the DIRAC tests share: DIRAC's own JDL tools, and the stand-in DIRAC client commands.

DIRACCommon (``pip install DIRACCommon``; GPL-3.0, Python 3.11 or later) is
DIRAC's own code for reading JDL and expanding parametric jobs.  It is a
test-only tool: picas never imports it.  Locally the tests that need it skip
when it is missing; with CI=true they fail, because then scripts/test.sh did
not install the test extra.

A DIRAC server cannot run here, so ``picas submit dirac``, ``picas pilots``
and ``picas autopilot`` talk to *stand-ins* of ``dirac-wms-job-submit``,
``dirac-wms-job-status`` and ``dirac-wms-job-kill`` (tests/schedulers/dirac_standin/):
they expand the JDL with DIRACCommon, run each job's sandbox locally in a
temporary directory, and answer in DIRAC's formats.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parent / "dirac_standin"


def require_diraccommon():
    """DIRACCommon's JDL module, or a skip (a failure when CI=true)."""
    try:
        from DIRACCommon.Core.Utilities import JDL
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"DIRACCommon is missing in CI ({exc}): scripts/test.sh must install the test extra")
        pytest.skip(f"DIRACCommon is not installed ({exc}); pip install DIRACCommon (Python 3.11+)")
    return JDL


def parse_jdl(text: str):
    """The JDL as DIRAC's ``loadJDLAsCFG`` reads it (a CFG); fails the test when DIRAC refuses it."""
    jdl = require_diraccommon()
    result = jdl.loadJDLAsCFG(text)
    assert result["OK"], f"DIRAC refuses the JDL: {result.get('Message')}\n{text}"
    return result["Value"][0]


def expand_jdl(text: str) -> list[str]:
    """The JDLs of the single jobs DIRAC makes of a parametric JDL (``generateParametricJobs``)."""
    require_diraccommon()
    from DIRACCommon.Core.Utilities.ClassAd.ClassAdLight import ClassAd
    from DIRACCommon.WorkloadManagementSystem.Utilities.ParametricJob import generateParametricJobs

    result = generateParametricJobs(ClassAd(text))
    assert result["OK"], f"DIRAC cannot expand the JDL: {result.get('Message')}"
    return result["Value"]
