"""Classic import path: ``picas.actors`` is the module :mod:`picas.classic.actors`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.actors")
