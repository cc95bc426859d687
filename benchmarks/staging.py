#!/usr/bin/env python3
"""Staging throughput: one large file in and out through picas, against gfal-copy and curl on the same file.

usage: staging.py [--size-mb 200] [--rounds 5]

The storage is a real WebDAV server (wsgidav on cheroot, the one the tests use:
tests/staging/davserver.py) on loopback, in a process of its own.  Every
method copies the same file of ``--size-mb`` random bytes:

* in (WebDAV -> local file) and out (local file -> WebDAV, a fresh name each time);
* picas: :class:`picas.staging.transfer.Transfer` through the gfal2 backend and
  through the urllib3 fallback, in this process (``fetch`` with and without the
  adler32 check; ``store``, which always checksums the file it records and
  verifies the size afterwards);
* references: gfal2's own ``filecopy`` from Python in this process, the
  ``gfal-copy`` command (Debian's gfal2-util-scripts), and ``curl``.  The
  commands pay their start-up each time; that cost is measured on a 1-byte file
  and printed, so it can be taken off.

The methods take turns within each round, so load on the machine hits them all
alike; the figure is the median over the rounds, and the minimum is printed
too (on a busy machine it is the better estimate of what a copy costs).
Ratios are picas' median over the fastest reference's median of the same
direction, and likewise for the minima.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from picas.server.local import free_port  # noqa: E402
from picas.staging.backends.gfal import load_gfal2  # noqa: E402
from picas.staging.checksum import file_digests, Checksum  # noqa: E402
from picas.staging.registry import Registry  # noqa: E402
from picas.staging.transfer import Transfer  # noqa: E402
from tests.staging.davserver import DavServer  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


#: gfal-copy looks for a Python that imports gfal2; here that is Debian's own, not the one running picas.
TOOL_ENV = {**os.environ, "GFAL_PYTHONBIN": os.environ.get("GFAL_PYTHONBIN", "/usr/bin/python3")}


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=TOOL_ENV)
    if done.returncode:
        raise SystemExit(f"staging.py: error: {' '.join(argv)} failed: {done.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gfal2 = load_gfal2()
    gfal_copy = shutil.which("gfal-copy")
    curl = shutil.which("curl")

    work = Path(tempfile.mkdtemp(prefix="picas-staging-bench-"))
    server = DavServer(root=work / "storage", port=free_port())
    (work / "storage" / "in").mkdir(parents=True)
    (work / "storage" / "out").mkdir()
    local = work / "local"
    local.mkdir()
    source = local / "data.bin"
    log(f"writing {args.size_mb} MB of random bytes")
    with open(source, "wb") as out:
        for _ in range(args.size_mb):
            out.write(os.urandom(1024 * 1024))
    shutil.copyfile(source, work / "storage" / "in" / "data.bin")
    (work / "storage" / "in" / "tiny.bin").write_bytes(b"x")
    size = source.stat().st_size
    adler = Checksum("adler32", file_digests(source, ["adler32"])["adler32"])
    server.start()
    dav_in, http_in = server.dav("in/data.bin"), f"{server.url}/in/data.bin"
    counter = iter(range(10 ** 6))

    def fresh_out() -> tuple[str, str]:
        name = f"out/{next(counter)}.bin"
        return server.dav(name), f"{server.url}/{name}"

    def fresh_local() -> Path:
        path = local / f"in-{next(counter)}.bin"
        return path

    methods_in: dict[str, Callable[[], object]] = {}
    methods_out: dict[str, Callable[[], object]] = {}
    transfers = {"http": Transfer(Registry(["http", "file"]))}
    if gfal2 is not None:
        transfers["gfal2"] = Transfer(Registry(["gfal2"]))
    for name, transfer in transfers.items():
        methods_in[f"picas {name}"] = lambda t=transfer: t.fetch(dav_in, fresh_local())
        methods_in[f"picas {name} +adler32 check"] = lambda t=transfer: t.fetch(dav_in, fresh_local(), adler)
        methods_out[f"picas {name}"] = lambda t=transfer: t.store(source, fresh_out()[0])
    if gfal2 is not None:
        ctx = gfal2.creat_context()

        def gfal2_copy(src: str, dst: str) -> None:
            params = ctx.transfer_parameters()
            params.create_parent = True
            ctx.filecopy(params, src, dst)
        methods_in["gfal2 filecopy (python)"] = lambda: gfal2_copy(dav_in, f"file://{fresh_local()}")
        methods_out["gfal2 filecopy (python)"] = lambda: gfal2_copy(f"file://{source}", fresh_out()[0])
    if gfal_copy:
        methods_in["gfal-copy"] = lambda: run([gfal_copy, "-f", dav_in, f"file://{fresh_local()}"])
        methods_out["gfal-copy"] = lambda: run([gfal_copy, "-f", f"file://{source}", fresh_out()[0]])
    if curl:
        methods_in["curl"] = lambda: run([curl, "-sSf", "-o", str(fresh_local()), http_in])
        methods_out["curl"] = lambda: run([curl, "-sSf", "-T", str(source), fresh_out()[1]])

    startup = {}
    if gfal_copy:
        startup["gfal-copy"] = statistics.median(
            timed(lambda: run([gfal_copy, "-f", server.dav("in/tiny.bin"), f"file://{fresh_local()}"]))
            for _ in range(3))
    if curl:
        startup["curl"] = statistics.median(
            timed(lambda: run([curl, "-sSf", "-o", str(fresh_local()), f"{server.url}/in/tiny.bin"]))
            for _ in range(3))

    load_at_start = round(os.getloadavg()[0], 2)
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        for number in range(args.rounds):
            log(f"round {number + 1} of {args.rounds}")
            for direction, methods in (("in", methods_in), ("out", methods_out)):
                names = list(methods)
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    samples.setdefault((direction, name), []).append(timed(methods[name]))
                    for leftover in local.glob("in-*.bin"):
                        leftover.unlink()
                for leftover in (work / "storage" / "out").iterdir():
                    leftover.unlink()
    finally:
        server.stop()
        for transfer in transfers.values():
            transfer.close()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for direction in ("in", "out"):
        medians = {name: statistics.median(times) for (d, name), times in samples.items() if d == direction}
        fastest = {name: min(times) for (d, name), times in samples.items() if d == direction}
        references = {name: t for name, t in medians.items() if not name.startswith("picas")}
        best_name = min(references, key=references.get) if references else None
        best_min = min((t for name, t in fastest.items() if not name.startswith("picas")), default=None)
        for name, seconds in medians.items():
            row = {"figure": "staging", "direction": direction, "method": name, "size_mb": args.size_mb,
                   "rounds": args.rounds, "median_s": round(seconds, 3), "min_s": round(fastest[name], 3),
                   "mb_per_s": round(size / 1e6 / seconds, 1),
                   "all_s": [round(t, 3) for t in samples[(direction, name)]], "load_at_start": load_at_start}
            if name.startswith("picas") and best_name:
                row["vs"] = best_name
                row["ratio"] = round(seconds / references[best_name], 3)
                row["ratio_of_minima"] = round(fastest[name] / best_min, 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if startup:
        print(json.dumps({"figure": "staging_startup", "seconds": {k: round(v, 3) for k, v in startup.items()}}))
    print()
    print(f"load average at the start: {load_at_start}")
    print(f"{'dir':<4} {'method':<30} {'median s':>9} {'min s':>7} {'MB/s':>7}  median ratio (ratio of minima) "
          f"to the fastest reference")
    for row in rows:
        ratio = f"{row['ratio']:.2f} ({row['ratio_of_minima']:.2f}) x {row['vs']}" if "ratio" in row else ""
        print(f"{row['direction']:<4} {row['method']:<30} {row['median_s']:>9.3f} {row['min_s']:>7.3f} "
              f"{row['mb_per_s']:>7.1f}  {ratio}")
    for name, seconds in startup.items():
        print(f"start-up of {name} (1-byte file): {seconds:.3f} s per call")


if __name__ == "__main__":
    main()
