"""Classic import path: ``picas.jobid`` is the module :mod:`picas.pilot.jobid`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.pilot.jobid")
