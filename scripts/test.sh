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

# Headless Chromium (Debian's package) loads the HTML report and the dashboard in tests/report.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing headless Chromium (Debian) for the report tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: error: CI needs root to install chromium for the report tests" >&2
        exit 1
    else
        echo "== not root and no chromium: the report's browser tests will be skipped"
    fi
fi

# gfal2 from Debian (python3-gfal2 with its file and http plugins) for the staging tests in tests/staging.
if ! dpkg -s python3-gfal2 gfal2-plugin-file gfal2-plugin-http >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing gfal2 (Debian) for the staging tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3-gfal2 gfal2-plugin-file gfal2-plugin-http >/dev/null
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: error: CI needs root to install gfal2 for the staging tests" >&2
        exit 1
    else
        echo "== not root and no gfal2: the staging tests that need it will be skipped"
    fi
fi

# strace (the grid sandbox test lists every file a pilot opens) and a C compiler (the grid example's payload).
if ! command -v strace >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing strace and gcc (Debian) for the grid tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strace gcc libc6-dev >/dev/null
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: error: CI needs root to install strace and gcc for the grid tests" >&2
        exit 1
    else
        echo "== not root and no strace or cc: the grid tests that need them will be skipped"
    fi
fi

# Apache CouchDB 3.4 (single node and a 3-node cluster, from the relocatable build in ../shared/couchdb)
# needs these Debian runtime libraries; the build carries its own Erlang.
if ! dpkg -s libicu72 libssl3 curl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing the CouchDB runtime packages (Debian) for the CouchDB tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libicu72 libssl3 curl >/dev/null
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: error: CI needs root to install libicu72 libssl3 curl for the CouchDB tests" >&2
        exit 1
    else
        echo "== not root and no libicu72/libssl3/curl: the CouchDB tests will be skipped"
    fi
fi

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
