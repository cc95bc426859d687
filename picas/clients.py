"""Classic import path: ``picas.clients`` is the module :mod:`picas.classic.clients`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.clients")
