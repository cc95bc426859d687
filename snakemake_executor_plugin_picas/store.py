"""A Snakemake run's tokens on the server: written in bulk, read in one query per round, cancelled.

Every request goes through :class:`picas.core.client.CouchClient`; this module
only decides which.  What each costs:

* :meth:`RunStore.submit`: one ``_bulk_docs`` per 1,000 jobs, through
  :func:`picas.pool.push.push` (which never overwrites a token);
* :meth:`RunStore.states`: one view query for the whole run, however many jobs
  are active (:mod:`.runview`);
* :meth:`RunStore.failure`: the token and its two log attachments, only for a
  job that failed;
* :meth:`RunStore.cancel`: the run's tokens with their bodies (one query), then
  one ``_bulk_docs`` that deletes the todo ones and marks the locked ones.

Cancel and the pilots.  A locked token is put into the error state with
``cancelled`` set and a message; nothing else is needed on the pilot's side.
Its pilot's next heartbeat is a 409 (the revision changed); the lease keeper
re-reads the token, finds it no longer locked by itself, and treats it as
lost, as after a scrub: the payload is stopped and no result is written (a
result saved in that moment meets the same 409 and is discarded, with a
note in the token's history).  What wins on a 409 during cancel itself: the
token is read again and the decision made anew, so a todo token a pilot took
in the meantime is marked rather than deleted.  Only tokens whose
``snakemake_run`` is this run's id are ever touched.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Iterable

from picas import defaults
from picas.core import token as tok
from picas.core import views
from picas.core.client import CouchClient
from picas.core.states import State
from picas.errors import Conflict, NotFound
from picas.pilot.payload import safe_name
from picas.pool.push import push
from snakemake_executor_plugin_picas import jobs, runview

__all__ = ["RunStore", "Failure", "CancelReport", "ensure_design", "tail"]

#: Rounds of re-reading after conflicts before cancel gives up on a token (a pilot keeps changing it).
CANCEL_ROUNDS = 5


@dataclass
class Failure:
    """Why a job's token failed, for Snakemake's error message and its aux logs."""

    token_id: str
    message: str
    exit_code: object = None
    host: str = ""
    stage: str = ""
    stdout: bytes = b""
    stderr: bytes = b""

    def summary(self, lines: int = 30) -> str:
        """A few lines for the error message: where it ran, why it failed, and the tail of its stderr."""
        where = f" on {self.host}" if self.host else ""
        stage = f" in {self.stage.replace('_', '-')}" if self.stage else ""
        head = f"picas token {self.token_id} failed{stage}{where} (exit code {self.exit_code}): {self.message}"
        last = tail(self.stderr, lines)
        if not last:
            return head + "\n"
        return f"{head}\nLast {min(lines, len(last.splitlines()))} lines of its stderr:\n{last}\n"


@dataclass
class CancelReport:
    deleted: int = 0
    marked: int = 0
    #: Tokens that kept changing under us (or could not be written): left as they were.
    left: list[str] = field(default_factory=list)


def tail(data: bytes, lines: int) -> str:
    """The last ``lines`` lines of a log, as text."""
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else ""


def ensure_design(client: CouchClient, design: str, body: dict) -> bool:
    """Make ``_design/<design>`` hold ``body``'s views; True if anything was written.

    Safe from many runs at once: a 409 means another run wrote it; it is read
    again and compared, and written only if it still differs.
    """
    for _ in range(5):
        current = client.get_or_none(f"_design/{design}") or {"_id": f"_design/{design}"}
        if all(current.get(key) == value for key, value in body.items()):
            return False
        try:
            client.save({**current, **body})
            return True
        except Conflict:
            continue
    raise Conflict(f"could not write _design/{design}: it kept changing under us")


class RunStore:
    """The tokens of one run (``run_id``) in the database ``client`` points at."""

    def __init__(self, client: CouchClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        #: Status rounds that needed a second request for tokens the view left out (see :meth:`states`).
        self.rereads = 0
        self._designs: set[str] = set()

    def prepare(self) -> None:
        """Deploy the run view (written only when it differs); the first request, so a bad setting shows at once."""
        ensure_design(self.client, runview.DESIGN, runview.design_body())

    def ensure_pilot_design(self, design: str, default: str = defaults.DESIGN) -> None:
        """Create the design document the pilots of a job read, unless it exists (once per run and design).

        The run's default design gets the plain picas views, as ``picas views
        create`` makes them: its pilots take any token.  Any other design that
        a rule names and that does not exist yet gets the condition
        ``doc.design_doc == '<name>'``, so that its pilots take exactly the
        jobs of the rules that name it.  An existing design document is never
        changed: its condition is the operator's.
        """
        if design in self._designs:
            return
        if self.client.get_or_none(f"_design/{design}") is None:
            condition = None if design == default else f"doc.design_doc == {json.dumps(design)}"
            views.deploy(self.client, design, condition)
        self._designs.add(design)

    def submit(self, bodies: list[dict]) -> dict[str, str]:
        """Create the tokens in bulk; returns what went wrong per token id (empty: all created)."""
        report = push(self.client, bodies)
        problems = dict(report.failed)
        for token_id in report.duplicates:
            problems[token_id] = "a token with this id exists already"
        return problems

    def states(self, expected: Iterable[str] = ()) -> dict[str, str]:
        """The state of every token of the run, by token id: one request.

        A token of ``expected`` that the view does not list is read directly
        (all of them in one more request; a token that is really gone stays
        absent).  pouchdb-server can leave a document out of a view answer
        for a moment while a pilot writes it (its index update reads the
        changes feed while the document moves along it); CouchDB does not,
        and then this costs nothing.
        """
        rows = self.client.view(runview.DESIGN, runview.VIEW, key=self.run_id)
        states = {row.id: row.value for row in rows if row.id}
        unlisted = [token_id for token_id in expected if token_id not in states]
        if unlisted:
            self.rereads += 1
            for token_id, doc in self.client.bulk_get(unlisted).items():
                if doc.get(jobs.RUN_FIELD) == self.run_id:
                    states[token_id] = tok.state(doc).value
        return states

    def failure(self, token_id: str) -> Failure:
        """Why a token failed: its last error, exit code, host, failed stage, and its logs."""
        try:
            doc = self.client.get(token_id)
        except NotFound:
            return Failure(token_id, "the token is gone from the database (deleted while the job ran?)")
        errors = doc.get("error")
        last = errors[-1] if isinstance(errors, list) and errors else errors
        message = (last.get("message") if isinstance(last, dict) else last) or "the job exited with an error"
        failure = Failure(token_id, str(message), exit_code=doc.get("exit_code"), host=doc.get("hostname") or "",
                          stage=doc.get("failed_stage") or "")
        attachments = doc.get("_attachments") or {}
        name = safe_name(token_id)
        for suffix in ("out", "err"):
            attachment = f"logs_{name}.{suffix}"
            if attachment in attachments:
                try:
                    data = self.client.get_attachment(token_id, attachment)
                except NotFound:
                    continue
                setattr(failure, "stdout" if suffix == "out" else "stderr", data)
        return failure

    def cancel(self, reason: str, now: float | None = None) -> CancelReport:
        """Delete the run's todo tokens and mark its locked ones cancelled (see the module docstring)."""
        who = tok.PilotIdentity(pilot_id=f"snakemake-run-{self.run_id}")
        report = CancelReport()
        pending: list[str] = []
        for _ in range(CANCEL_ROUNDS):
            rows = self.client.view(runview.DESIGN, runview.VIEW, key=self.run_id, include_docs=True)
            changes = list(_cancellations(rows.rows, who, reason, time.time() if now is None else now))
            if not changes:
                return report
            pending = []
            for body, result in zip(changes, self.client.bulk_save(changes)):
                if result.ok:
                    if body.get("_deleted"):
                        report.deleted += 1
                    else:
                        report.marked += 1
                else:
                    pending.append(body["_id"])  # changed meanwhile (claimed, finished): decide again
            if not pending:
                return report
        report.left = pending
        return report


def _cancellations(rows: Iterable, who: tok.PilotIdentity, reason: str, now: float) -> Iterable[dict]:
    for row in rows:
        doc = row.doc
        if not doc or doc.get("_deleted"):
            continue
        state = tok.state(doc)
        if state is State.TODO:
            yield {"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}
        elif state is State.LOCKED:
            yield tok.fail(doc, who, now, reason, cancelled=int(now))
