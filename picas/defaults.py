"""Every default picas uses, defined once.

The library, the CLI's ``--help`` texts and the scheduler scripts all read these names, so
a default changes in one place.  Durations are seconds.
"""
from __future__ import annotations

#: The classic picas design document, whose views (todo, locked, done, error, ...) pilots read.
DESIGN = "Monitor"
#: The view pilots claim from.
VIEW = "todo"

#: How often a pilot renews the lease on the tokens it holds.
HEARTBEAT = 60.0
#: A lease lasts this many heartbeats: a pilot may miss a few renewals before it counts as dead.
LEASE_FACTOR = 5.0
#: Seconds between SIGTERM and SIGKILL when a payload's process group is stopped.
GRACE = 10.0
#: How long a pilot waits out an unreachable server before it gives up.
OUTAGE_TIMEOUT = 600.0
#: The longest sleep between two polls of an empty pool (``--wait``).
POLL_MAX = 30.0
#: Rows a claimer reads per window of the todo view.
CLAIM_WINDOW = 10
#: Bytes of a payload's stdout and of its stderr kept (head and tail) and attached to its token.
LOG_CAP = 10 * 1024 * 1024

#: Seconds before its walltime that a batch system warns a pilot (Slurm ``--signal=B:USR1@N``).
SIGNAL_GRACE = 120
