"""Classic import path: ``picas.modifiers`` is the module :mod:`picas.classic.modifiers`, the same object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("picas.classic.modifiers")
