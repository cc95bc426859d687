"""The classic picas 1.x API: ``clients``, ``documents``, ``actors``, ``iterators``, ``modifiers``,
``executers`` and ``util``.

Each is also importable under its classic path (``picas.clients`` and so on): those paths are
aliases that resolve to the very same module objects, so ``isinstance`` checks, monkeypatching
and ``except`` clauses behave the same whichever path a script used.

How an actor runs is split by concern: :mod:`~picas.classic.actor_pilot` (a real client: the
pilot loop), :mod:`~picas.classic.actor_classic` (a duck-typed database: the 1.x algorithm
through its methods), :mod:`~picas.classic.supervise` (one ``process_task`` call under a
watchdog) and :mod:`~picas.classic.conflicts` (which exceptions mean a 409).  The other 1.1.x
modules (``picas_config``, ``crypto``, ``generators``, ``srm``, ...) live at the top level,
where 1.1.x scripts import them.
"""
