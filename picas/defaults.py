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
#: Tokens a pilot claims per request (``--prefetch``).
PREFETCH = 1
#: Times a failed token is put back to todo before it stays in error (``--retries``).
RETRIES = 0
#: How often a pilot resets tokens with expired leases when ``--scrub-expired`` is given without a value.
SCRUB_EVERY = 300.0

#: The batch scheduler ``picas autopilot`` and ``picas pilots cancel JOB`` use unless told otherwise.
SCHEDULER = "slurm"
#: Seconds a scheduler command (sbatch, squeue, dirac-wms-job-submit...) may take before picas gives up on it.
SCHEDULER_TIMEOUT = 60.0
#: The job name pilots are submitted with, so the batch system's own tools can find them.
PILOT_JOB_NAME = "picas-pilot"
#: Most pilots the autopilot keeps queued or running at once, all classes together.
MAX_PILOTS = 10
#: The autopilot gives a pilot class at most one pilot per this many todo tokens.
TOKENS_PER_PILOT = 10
#: Seconds between autopilot rounds with ``--loop``.
AUTOPILOT_INTERVAL = 300.0
#: Seconds after submission before a finished pilot job is dropped from the registry.
PRUNE_AFTER = 24 * 3600.0
