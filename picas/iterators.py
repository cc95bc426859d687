"""Classic import path: ``picas.iterators`` is the module :mod:`picas.classic.iterators`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.iterators")
