"""``TokenGenerator``: the empty token of picas 1.x, for scripts that build their tokens from it.

A token made from :meth:`TokenGenerator.get_empty_token` is in the todo
state of every view this package deploys (``type: token``, ``lock`` and
``done`` 0).  New code can also use :class:`picas.classic.documents.Task`,
which fills in the same fields and an id.
"""
from __future__ import annotations

from typing import Any

__all__ = ["TokenGenerator"]

#: The fields of an empty token; copied, never handed out, so no caller can change another's token.
_EMPTY_TOKEN: dict[str, Any] = {"lock": 0, "done": 0, "hostname": "", "scrub_count": 0, "type": "token"}


class TokenGenerator:
    """Makes the standard token body (see the module docstring)."""

    @staticmethod
    def get_empty_token() -> dict[str, Any]:
        """A new todo token without an id or payload: add ``_id`` and your own fields, then save it."""
        return dict(_EMPTY_TOKEN)
