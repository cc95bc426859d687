"""Classic import path: ``picas.util`` is the module :mod:`picas.classic.util`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.util")
