"""Several pilots in one process: ``picas run --slots N``.

A pilot spends most of its life waiting (for its payload, for the server);
its own work per token is a few milliseconds of Python.  N pilot *processes*
on one node each pay for an interpreter, their imports and their first
requests (about 0.3 s of CPU each), and they race each other for the last
tokens of the pool.  N *slots* are N complete pilots (each its own identity,
lease keeper, journal and working directories, so each token still has
exactly one holder) running as threads of one process:

* the start-up is paid once;
* their claimers share a :class:`~picas.core.siblings.Siblings`, so no two
  slots write a claim for the same token, and none retries a revision a
  sibling has already won;
* one signal handler (in the main thread; handlers only set the shared flags)
  stops every slot: each stops its payload (TERM, grace, KILL) and gives its
  tokens back, exactly as a lone pilot does.

Payloads still run as processes of their own, so N slots run N payloads at
once; give the job N cores.  The Python work of all slots shares one core
(the interpreter lock), which at a few milliseconds per token serves hundreds
of tokens per second.
"""
from __future__ import annotations

import threading
from typing import Callable

from picas.core.siblings import Siblings
from picas.pilot.loop import Pilot
from picas.pilot.report import PilotReport
from picas.pilot.signals import StopFlags

__all__ = ["run_slots"]

#: How often the main thread wakes while it waits for the slots (a signal is handled at once anyway).
_JOIN_TICK = 0.5


def run_slots(make_pilot: Callable[[int, StopFlags, Siblings], Pilot], slots: int,
              flags: StopFlags | None = None) -> list[PilotReport]:
    """Run ``slots`` pilots as threads of this process until every one has stopped; their reports, in slot order.

    ``make_pilot(index, flags, siblings)`` builds the pilot of one slot; it
    must pass both on (``Pilot(..., flags=flags, siblings=siblings,
    install_signals=False)``).  The stop handlers are installed here, when
    called from the main thread.

    If a slot fails with an exception, the others are asked to stop (they
    give their tokens back) and the first exception is raised here once all
    have ended, so the caller reports one error.
    """
    flags = flags if flags is not None else StopFlags()
    flags.install()
    siblings = Siblings()
    pilots = [make_pilot(index, flags, siblings) for index in range(slots)]
    reports: list[PilotReport | None] = [None] * slots
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            reports[index] = pilots[index].run()
        except BaseException as exc:  # noqa: B902 - handed to the main thread, raised there
            errors.append(exc)
            flags.requested.set()  # the siblings stop and give their tokens back

    threads = [threading.Thread(target=one, args=(index,), name=f"picas-slot-{index}", daemon=True)
               for index in range(slots)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(_JOIN_TICK)  # short waits: the main thread must stay free to run the handlers
    finally:
        flags.restore()
    if errors:
        raise errors[0]
    return [report for report in reports if report is not None]
