"""A local journal of results not yet saved, so an outage or a crash loses none of them.

Before a pilot sends a finished token to the server it appends the body to
the journal; once the server has it, it appends a tombstone.  A pilot that
starts with a journal left by an earlier one (same host, same working
directory root) sends the pending results first.  Lines are JSON, appended and
flushed one at a time, so a pilot killed mid-write loses at most the line it
was writing, never an earlier one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from picas.support.procgroup import process_alive


class Journal:
    """Append-only record of pending results, keyed by token id."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._pending: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if entry.get("saved"):
                    self._pending.pop(entry["id"], None)
                elif "body" in entry:
                    self._pending[entry["id"]] = entry["body"]
        self._rewrite()

    def _rewrite(self) -> None:
        if not self._pending:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for token_id, body in self._pending.items():
                handle.write(json.dumps({"id": token_id, "body": body}) + "\n")
        os.replace(tmp, self.path)

    def _append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def add(self, body: dict) -> None:
        self._pending[body["_id"]] = body
        self._append({"id": body["_id"], "body": body})

    def done(self, token_id: str) -> None:
        if self._pending.pop(token_id, None) is not None:
            self._append({"id": token_id, "saved": True})
            if not self._pending:
                self.path.unlink(missing_ok=True)

    def pending(self) -> list[dict]:
        return list(self._pending.values())

    def adopt_orphans(self, prefix: str) -> int:
        """Take over the journals of pilots on this host that are gone; returns how many results came.

        Journal names are ``<prefix><pid>-<random>.jsonl`` (the pilot id); a
        journal whose pid no longer runs belongs to a pilot that died during
        an outage.  It is renamed before it is read, so two pilots starting at
        once never both adopt it.
        """
        adopted = 0
        for path in sorted(self.path.parent.glob(f"{prefix}*.jsonl")):
            if path == self.path:
                continue
            pid = path.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and process_alive(int(pid)):
                continue
            claimed = path.with_name(f".adopting-{os.getpid()}-{path.name}")
            try:
                os.rename(path, claimed)
            except OSError:
                continue  # another pilot took it first
            for body in Journal(claimed).pending():
                self.add(body)
                adopted += 1
            claimed.unlink(missing_ok=True)
        return adopted
