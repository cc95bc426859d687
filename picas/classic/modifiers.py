"""Classic token modifiers: change a token's state fields in place, for scripts that manage tokens by hand.

They only edit the body they are given; saving it (with the revision it was
read at, so that a concurrent change is detected as a conflict) is up to the
caller.  The semantics are those of picas 1.x, field for field:

* ``lock`` sets ``lock`` to now and records the host and batch job id;
* ``unlock`` sets ``lock`` back to 0 and forgets the job id;
* ``close`` sets ``done`` to now (``exit_code`` then decides done or error);
* ``unclose`` sets ``done`` back to 0;
* ``scrub`` counts one more scrub and unlocks;
* ``set_error`` sets ``lock = done = 99``.

A modifier accepts a plain dict or a :class:`picas.classic.documents.Document`.
"""
from __future__ import annotations

import socket
from typing import Any, MutableMapping

from picas.pilot import jobid
from picas.classic.util import seconds

TokenLike = MutableMapping[str, Any]


class TokenModifier:
    """The interface of a token modifier; subclasses implement the state changes."""

    def __init__(self, timeout: int = 86400) -> None:
        #: Seconds after which a lock counts as stale (for scrubbing tools that consult it).
        self.timeout = timeout

    def lock(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Lock function not implemented.")

    def unlock(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Unlock function not implemented.")

    def close(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Close function not implemented.")

    def unclose(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Unclose function not implemented.")

    def add_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Add_output function not implemented.")

    def scrub(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Scrub function not implemented.")

    def set_error(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("set_error function not implemented.")


class BasicTokenModifier(TokenModifier):
    """Modifies a token document directly (see the module docstring for each change)."""

    def __init__(self, timeout: int = 86400) -> None:
        super().__init__(timeout)

    def lock(self, token: TokenLike) -> TokenLike:
        jobid.add_job_id(token)
        token["hostname"] = socket.gethostname()
        token["lock"] = seconds()
        return token

    def unlock(self, token: TokenLike) -> TokenLike:
        jobid.remove_job_id(token)
        token["hostname"] = socket.gethostname()
        token["lock"] = 0
        return token

    def close(self, token: TokenLike) -> TokenLike:
        token["done"] = seconds()
        return token

    def unclose(self, token: TokenLike) -> TokenLike:
        token["done"] = 0
        jobid.remove_job_id(token)
        return token

    def add_output(self, token: TokenLike, output: dict) -> TokenLike:
        """Merge ``output`` into the token's top-level fields (classic: not into ``token['output']``)."""
        token.update(output)
        return token

    def scrub(self, token: TokenLike) -> TokenLike:
        token["scrub_count"] = (token["scrub_count"] if "scrub_count" in token else 0) + 1
        return self.unlock(token)

    def set_error(self, token: TokenLike) -> TokenLike:
        token["lock"] = 99
        token["done"] = 99
        return token


class NestedTokenModifier(TokenModifier):
    """Applies the basic changes to a token nested inside a larger record.

    ``ref`` names the token: a key of the record, or a list whose elements
    after the first form the path to it (the first element names the record
    itself and is skipped, as in classic picas).
    """

    def __init__(self, timeout: int = 86400) -> None:
        super().__init__(timeout)
        self.tokenmodifier = BasicTokenModifier(timeout)

    def get_token(self, ref: Any, record: TokenLike) -> TokenLike:
        if isinstance(ref, list):
            token = record
            for key in ref[1:]:
                token = token[key]
            return token
        return record[ref]

    # Classic private name, kept for subclasses that call it.
    _get_token = get_token

    def _update_record(self, ref: Any, record: TokenLike, token: TokenLike) -> TokenLike:
        if isinstance(ref, list):
            parent = record
            for key in ref[1:-1]:
                parent = parent[key]
            parent[ref[-1]] = token
        else:
            record[ref] = token
        return record

    def _apply(self, change: str, ref: Any, record: TokenLike, *args: Any) -> TokenLike:
        token = getattr(self.tokenmodifier, change)(self.get_token(ref, record), *args)
        return self._update_record(ref, record, token)

    def lock(self, ref: Any, record: TokenLike) -> TokenLike:
        return self._apply("lock", ref, record)

    def unlock(self, ref: Any, record: TokenLike) -> TokenLike:
        return self._apply("unlock", ref, record)

    def close(self, ref: Any, record: TokenLike) -> TokenLike:
        return self._apply("close", ref, record)

    def unclose(self, ref: Any, record: TokenLike) -> TokenLike:
        return self._apply("unclose", ref, record)

    def add_output(self, ref: Any, record: TokenLike, output: dict) -> TokenLike:
        return self._apply("add_output", ref, record, output)

    def scrub(self, ref: Any, record: TokenLike) -> TokenLike:
        return self._apply("scrub", ref, record)

    def set_error(self, ref: Any, record: TokenLike) -> TokenLike:
        return self._apply("set_error", ref, record)
