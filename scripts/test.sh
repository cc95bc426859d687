#!/usr/bin/env bash
# Install everything the test suite needs, then run the whole suite.
#
#   bash scripts/test.sh [pytest args...]
#
# 1. the Python package with its test extras (pytest, flake8, plotly for the report) and Snakemake
#    (its executor plugin, snakemake_executor_plugin_picas, is found by module name: tests/snakemake);
# 2. pouchdb-server from npm, into the per-user picas data dir (what 'picas server' uses);
# 3. a real single-node Slurm (Debian packages + daemons), when running as root; the Slurm
#    tests skip without one on a developer's machine, but fail in CI (CI=true);
# 4. pytest over tests/;
# 5. when no pytest args are given: the classic-API and pilot tests on Python 3.9 and 3.13, the ends
#    of the supported range, each in a venv of its own (scripts/test-pythons.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing picas with its test dependencies"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test,snakemake]'

echo "== installing pouchdb-server (npm) if missing"
python3 -m picas server install

# Debian packages the tests need, installed when missing (as root). Without root they are skipped
# locally, and CI (CI=true) fails: a missing component must not pass as a skipped test.
#   need_debs WHAT COMMAND-OR-- PACKAGE...   (COMMAND: a program that proves the packages are there;
#   DEB_OPTS="" installs the recommended packages too)
need_debs() {
    local what=$1 probe=$2
    shift 2
    if [ "$probe" != "--" ] && command -v "$probe" >/dev/null 2>&1; then return 0; fi
    if [ "$probe" = "--" ] && dpkg -s "$@" >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" = 0 ]; then
        echo "== installing $* (Debian) for $what"
        [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${DEB_OPTS---no-install-recommends} "$@" >/dev/null
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: error: CI needs root to install $* for $what" >&2
        exit 1
    else
        echo "== not root and no $*: the tests of $what will be skipped"
    fi
}
# Headless Chromium loads the HTML report and the dashboard (tests/report); its recommended fonts draw the text.
DEB_OPTS="" need_debs "the report tests" chromium chromium
# gfal2 with its file and http plugins (tests/staging).
need_debs "the staging tests" -- python3-gfal2 gfal2-plugin-file gfal2-plugin-http
# strace (the grid sandbox test lists every file a pilot opens) and a C compiler (the grid example's payload).
need_debs "the grid tests" strace strace
need_debs "the grid tests" cc gcc libc6-dev
# Apache CouchDB 3.4 (one node and a 3-node cluster, from the relocatable build in ../shared/couchdb)
# carries its own Erlang but needs these runtime libraries.
need_debs "the CouchDB tests" -- libicu72 libssl3 curl

if [ "$(id -u)" = 0 ]; then
    echo "== starting a single-node Slurm"
    bash scripts/slurm-up.sh
elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: error: CI needs root to install and start Slurm" >&2
    exit 1
else
    echo "== not root: Slurm tests will be skipped unless a Slurm cluster is already reachable"
fi

echo "== running the test suite"
set +e
python3 -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    echo "test.sh: error: pytest collected no tests" >&2
fi

if [ "$#" = 0 ]; then
    echo "== the classic API and the pilot on Python 3.9 and 3.13"
    bash scripts/test-pythons.sh 3.9 3.13 || { [ "$status" != 0 ] || status=1; }
fi
exit "$status"
