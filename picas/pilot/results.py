"""Saving a pilot's results: what wins when the stored token changed meanwhile.

A pilot writes a token it finished (or gives back) with :func:`save_result`, or
several at once with :func:`save_results`.  A 409 never loses a result silently:
the stored token decides.  While this pilot still owns it, the result is merged
onto the current body and saved again; once someone else owns it, the loss is
noted in the token's history and the owner's state is left alone.

On a cluster "the stored token" is the token with its conflicting leaves
settled (:func:`picas.core.replicas.current`): a later attempt outranks this
one, an ending of this attempt outranks its lock, and a result outranks a reset
written at the same moment, so a result is never hidden under a losing leaf.
A result answered 202 (stored by fewer copies than the write quorum) is
saved: while this pilot holds the token nobody else writes it but a scrub
after the lease ran out or an operator, and a result outranks such a reset of
the same attempt when the copies meet.
"""
from __future__ import annotations

import time

from picas.core import token as tok
from picas.core.client import CouchClient
from picas.core.merge import merge_result
from picas.core.replicas import current as stored
from picas.core.states import HistoryEvent, SaveOutcome
from picas.errors import Conflict, PilotError

__all__ = ["save_result", "save_results"]


def save_result(client: CouchClient, body: dict, who: tok.PilotIdentity, attempts: int = 10,
                base: dict | None = None) -> SaveOutcome:
    """Write a token this pilot finished or gives back; returns SAVED or LOST.

    On a 409 the stored token decides what wins.  If this pilot still owns it
    (only a heartbeat or a user's annotation came in between), our result is
    merged onto the current body and saved again: the result wins, the rest of
    the current body is kept.  If another pilot owns it now, or it was reset or
    deleted, the current owner wins; we add a history note saying that a result
    was discarded, without changing the token's state.  ``base`` is the body
    the result was computed on (see :func:`picas.core.merge.merge`).
    """
    for _ in range(attempts):
        try:
            client.save(body)
            return SaveOutcome.SAVED
        except Conflict:
            current = stored(client, body["_id"], who)
            if current is not None and tok.owned_by(current, who.pilot_id):
                body = merge_result(current, body, base)
                base = current
                continue
            if current is not None:
                noted = tok.note(current, who, time.time(), HistoryEvent.RESULT_DISCARDED,
                                 reason="this pilot had lost the lock", exit_code=body.get("exit_code"))
                try:
                    client.save(noted)
                except Conflict:
                    pass  # the new owner wrote first; the note is best effort, the owner's state is not
            return SaveOutcome.LOST
    raise Conflict(f"could not save '{body['_id']}': it kept changing ({attempts} tries)")


def save_results(client: CouchClient, bodies: list[dict], who: tok.PilotIdentity,
                 bases: dict[str, dict | None] | None = None) -> list[SaveOutcome]:
    """Save several results in one ``_bulk_docs`` request; per-document conflicts as in :func:`save_result`."""
    bases = bases or {}
    if len(bodies) == 1:
        return [save_result(client, bodies[0], who, base=bases.get(bodies[0]["_id"]))]
    outcomes = []
    for body, result in zip(bodies, client.bulk_save(bodies)):
        if result.ok:
            outcomes.append(SaveOutcome.SAVED)
        elif result.conflict:
            outcomes.append(save_result(client, body, who, base=bases.get(body["_id"])))
        else:
            raise PilotError(f"the server refused the result of '{body['_id']}': {result.error} {result.reason}")
    return outcomes
