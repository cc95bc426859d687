"""Classic import path: ``picas.documents`` is the module :mod:`picas.classic.documents`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.documents")
