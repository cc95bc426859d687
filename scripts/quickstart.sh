#!/usr/bin/env bash
# From a fresh machine to a drained pool, with the local server: the README's first command.
#
#   bash scripts/quickstart.sh
#
# Installs picas, starts a local CouchDB-compatible server (pouchdb-server from npm, on first use),
# creates the views, pushes the example commands, runs a pilot, shows the status and one token's log.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

python3 -m pip install --quiet --disable-pip-version-check -e .
step picas server start
step picas views create
step picas push examples/quickstart.txt
step picas run
step picas status
first_done=$(picas tokens list --view done --limit 1 --json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
step picas tokens logs "$first_done"
echo
echo "The local server keeps running: 'picas server stop' stops it."
