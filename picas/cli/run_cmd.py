"""``picas run``: run pilots on this machine.

One pilot runs in this process; with ``--slots N``, N pilots run in it as
threads (:mod:`picas.pilot.slots`).  With ``-j N`` this process becomes a small
supervisor: it starts N pilot processes, forwards stop signals to them (its
own handlers only set a flag, like the pilots'), waits for them and adds up
their summaries.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from picas.cli.options import connection_options, make_client
from picas.config import Settings
from picas.pilot.loop import Pilot, PilotReport
from picas.pilot.report import combine
from picas.pilot.options import PILOT_OPTIONS, click_options, pilot_config
from picas.pilot.signals import StopFlags


def _printer(quiet: bool, prefix: str = ""):
    def on_event(kind: str, doc: dict, info: dict) -> None:
        if quiet and kind not in ("outage", "lost"):
            return
        if kind == "start":
            return
        token_id = doc.get("_id", "")
        if kind in ("done", "error", "retry"):
            detail = f"exit {doc.get('exit_code')}  {doc.get('duration', 0):.2f}s"
            if doc.get("timed_out"):
                detail += "  timed out"
        elif kind == "outage":
            detail = f"server unreachable, retrying in {info.get('retry_in', 0):.0f}s: {info.get('error')}"
        elif kind == "scrubbed":
            detail = f"reset {info.get('reset')} and failed {info.get('errored')} tokens with expired leases"
        elif kind == "released":
            detail = f"given back ({info.get('outcome')})"
        elif kind == "lost":
            detail = "lost its lock (scrubbed elsewhere); result discarded"
        else:
            detail = ""
        click.echo(f"{prefix}{kind:<8} {token_id}  {detail}".rstrip(), err=kind in ("outage", "lost"))
    return on_event


def _summary(report: dict) -> str:
    rate = report["processed"] / report["duration"] if report["duration"] > 0 else 0.0
    return (f"{report['processed']} tokens in {report['duration']:.1f}s ({rate:.1f}/s): {report['done']} done, "
            f"{report['failed']} failed, {report['retried']} retried, {report['released']} given back, "
            f"{report['lost']} lost; stopped: {report['reason']}")


def _report_dict(report: PilotReport) -> dict:
    return {**dataclasses.asdict(report), "duration": report.duration}


@click.command("run")
@connection_options
@click_options(PILOT_OPTIONS)
@click.option("--summary-file", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
def run(settings: Settings, summary_file: Path | None, **values: Any) -> None:
    """Run a pilot: take tokens, run their input, save the results, until the pool is empty.

    Each token's input runs through bash (a string) or as an argument list,
    in its own working directory, with PICAS_TOKEN_ID set.  Its stdout and
    stderr are attached to the token.  SIGTERM, SIGINT or SIGUSR1 stop the
    payload and give the token back; the pilot then exits 0.

    \b
    Examples:
      picas run                              # drain the todo view, then exit
      picas run -j 4 --max-time 2h           # four pilots for at most two hours
      picas run --slots 16                   # sixteen payloads at once from one process
      picas run --design-doc MultiCore --token-timeout 30m --retries 2
      picas run --wait --scrub-expired       # a long-lived pilot that heals the pool
    """
    if values["jobs"] > 1:
        sys.exit(_supervise(values["jobs"], summary_file))
    client = make_client(settings)
    config = pilot_config(values)
    prefix = f"[{os.environ['PICAS_PILOT_INDEX']}] " if os.environ.get("PICAS_PILOT_INDEX") else ""
    slots = values["slots"]
    if slots > 1:
        from picas.pilot.slots import run_slots

        def make_pilot(index: int, flags: StopFlags, siblings: Any) -> Pilot:
            return Pilot(client, config, flags=flags, siblings=siblings, install_signals=False,
                         on_event=_printer(values["quiet"], f"{prefix}[slot {index}] "))

        report = combine([_report_dict(r) for r in run_slots(make_pilot, slots)], pilots=slots)
    else:
        pilot = Pilot(client, config, on_event=_printer(values["quiet"], prefix))
        report = _report_dict(pilot.run())
    if summary_file:
        summary_file.write_text(json.dumps(report))
    else:
        click.echo(_summary(report))


def _supervise(jobs: int, summary_file: Path | None) -> int:
    """Start ``jobs`` pilot processes with this command's arguments, forward signals, sum the reports."""
    args = sys.argv[1:]
    child_args = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-j", "--jobs"):
            skip = True
            continue
        if arg.startswith("--jobs=") or (arg.startswith("-j") and arg[2:].isdigit()):
            continue
        child_args.append(arg)
    flags = StopFlags().install()
    tmp = Path(tempfile.mkdtemp(prefix="picas-run-"))
    procs = []
    for index in range(jobs):
        env = {**os.environ, "PICAS_PILOT_INDEX": str(index)}
        procs.append(subprocess.Popen([sys.executable, "-m", "picas", *child_args,
                                       "--summary-file", str(tmp / f"{index}.json")], env=env))
    forwarded = 0
    while any(p.poll() is None for p in procs):
        wanted = 2 if flags.forced.is_set() else 1 if flags.requested.is_set() else 0
        while forwarded < wanted:
            # A second signal is forwarded as a second signal: the pilots then stop without grace.
            sig = getattr(signal, flags.signal_name or "SIGTERM")
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(sig)
            forwarded += 1
        time.sleep(0.2)
    flags.restore()
    reports = []
    for index in range(jobs):
        path = tmp / f"{index}.json"
        if path.exists():
            reports.append(json.loads(path.read_text()))
    total = combine(reports, pilots=jobs)
    if summary_file:
        summary_file.write_text(json.dumps(total))
    else:
        click.echo(_summary(total))
    failures = [p.returncode for p in procs if p.returncode]
    if failures:
        click.echo(f"picas: error: {len(failures)} of {jobs} pilots failed (exit codes {sorted(set(failures))})",
                   err=True)
        return failures[0]
    return 0
