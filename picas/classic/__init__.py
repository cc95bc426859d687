"""The classic picas 1.x API: ``clients``, ``documents``, ``actors``, ``iterators``, ``modifiers``,
``executers`` and ``util``.

Each is also importable under its classic path (``picas.clients`` and so on): those paths are
aliases that resolve to the very same module objects, so ``isinstance`` checks, monkeypatching
and ``except`` clauses behave the same whichever path a script used.
"""
