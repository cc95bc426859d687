"""Classic import path: ``picas.executers`` is the module :mod:`picas.classic.executers`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.executers")
