#!/usr/bin/env python3
"""Build picas.pyz, picas with its pure-Python dependencies in one file, for a sandbox of your own.

    python3 grid-sandbox/build-zipapp.py [--output picas.pyz] [--python 3.9] [--deps-dir DIR]

'picas submit dirac' builds the same file itself; this script is for writing your own JDL or
batch job around it.  The dependencies are the installed ones when they run on --python (the
oldest Python of the worker nodes), else versions that do, fetched once with pip into
picas' data directory (or taken from --deps-dir, made with 'pip install --target DIR ...').
Run it with the Python that has picas installed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("picas.pyz"), help="where to write it [picas.pyz]")
    parser.add_argument("--python", default="3.9", help="the oldest Python it must run on [3.9]")
    parser.add_argument("--deps-dir", type=Path, help="dependencies prepared with pip install --target DIR")
    args = parser.parse_args()
    try:
        major, minor = (int(part) for part in args.python.split(".")[:2])
    except ValueError:
        parser.error(f"--python must look like 3.9, not {args.python!r}")

    from picas.errors import PicasError
    from picas.sandbox import zipapp
    from picas.server.local import data_home

    try:
        built = zipapp.build(args.output, cache=data_home() / "sandbox-deps", deps_dir=args.deps_dir,
                             python=(major, minor))
    except PicasError as exc:
        print(f"build-zipapp: error: {exc}", file=sys.stderr)
        return 1
    print(f"{built.path}: {built.size / 1024:.0f} KiB, sha256 {built.digest[:16]}...")
    for line in built.used:
        print(f"  {line}")
    print(f"run it with: python3 {built.path} run --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
