"""picas as a Snakemake executor: ``snakemake --executor picas`` turns jobs into tokens that pilots run.

Snakemake finds this plugin by its module name (``snakemake_executor_plugin_``
+ ``picas``) and reads three attributes: ``common_settings``, ``Executor`` and
``ExecutorSettings``.  They live in :mod:`.executor`, which needs Snakemake's
plugin interface (Python 3.11 or later), and are loaded here only when asked
for.  That keeps the pure parts of the plugin (the settings as data, the token
bodies, the view, the profile) importable on every Python picas supports, so
``picas snakemake profile`` works without Snakemake installed.

The pieces:

* :mod:`.settings`: the plugin's options, as data (the executor and
  ``picas snakemake profile`` both read them);
* :mod:`.jobs`: a Snakemake job as a token body (pure);
* :mod:`.runview`: the design document that lists a run's tokens by run id, and
  what each state means to Snakemake (pure);
* :mod:`.store`: a run's tokens on the server: write in bulk, one status query
  per round, the failure logs, cancel;
* :mod:`.remote`: without a shared file system, inputs, outputs and the
  workflow sources travel through picas staging;
* :mod:`.pilots`: local pilots for the length of a run;
* :mod:`.executor`: the Snakemake executor itself.

``docs/snakemake.md`` explains how to use it.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Executor", "ExecutorSettings", "common_settings"]

_LAZY = frozenset(__all__)


def __getattr__(name: str) -> Any:
    # Loaded on first use (PEP 562): Snakemake's registry asks for these names right after the import.
    if name in _LAZY:
        try:
            from snakemake_executor_plugin_picas import executor
        except ImportError as exc:
            if not exc.name or not exc.name.startswith("snakemake"):
                raise
            raise ImportError(f"the picas executor plugin needs Snakemake 8 or later (Python 3.11 or later): "
                              f"pip install 'picas[snakemake]' ({exc})", name=exc.name) from exc
        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
