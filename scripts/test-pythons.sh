#!/usr/bin/env bash
# Run the classic-API and pilot tests on the oldest and the newest Python picas supports.
#
#   bash scripts/test-pythons.sh [VERSION...]      # default: 3.9 3.13 (or $PICAS_TEST_PYTHONS)
#
# picas supports Python 3.9 to 3.13, as picas 1.1.x did, while the main suite runs on one
# interpreter.  The classic API (what 1.1.x scripts import) and the pilot are what users run on
# old worker nodes and new laptops alike, so they are tested on both ends of the range:
#
# 1. the interpreter comes from pyenv ($PYENV_ROOT/versions/X.Y.*, newest patch release) or
#    from pythonX.Y on PATH; without one the version is skipped with a warning, or, with
#    CI=true, the script fails: CI must test what the package promises;
# 2. each version gets a venv of its own under ~/.cache/picas/test-venvs with picas installed
#    from this checkout (editable) with its test extra;
# 3. both versions run at the same time (the tests mostly wait on servers and processes), each
#    with `pytest tests/classic tests/pilot -m "not slow"`: the slow fault tests (killed pilots,
#    server restarts) exercise no Python-version-specific code and run on the main interpreter.
#
# A version's log is printed in full only when its tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
    versions=("$@")
else
    read -ra versions <<< "${PICAS_TEST_PYTHONS:-3.9 3.13}"
fi
venv_root="${XDG_CACHE_HOME:-$HOME/.cache}/picas/test-venvs"
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"

find_python() {
    local version=$1 candidate
    candidate=$(ls -d "$pyenv_root/versions/$version".* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$candidate" ] && [ -x "$candidate/bin/python" ]; then
        echo "$candidate/bin/python"
    elif command -v "python$version" >/dev/null 2>&1; then
        command -v "python$version"
    fi
}

pids=()
names=()
logs=()
status=0
for version in "${versions[@]}"; do
    python=$(find_python "$version")
    if [ -z "$python" ]; then
        if [ "${CI:-}" = "true" ]; then
            echo "test-pythons.sh: error: no Python $version (looked in $pyenv_root/versions and on PATH)" >&2
            status=1
            continue
        fi
        echo "test-pythons.sh: warning: no Python $version here; skipping it" >&2
        continue
    fi
    venv="$venv_root/py$version"
    echo "== Python $version ($python): venv $venv"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
    log=$(mktemp "${TMPDIR:-/tmp}/picas-test-py$version.XXXXXX")
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" tests/classic tests/pilot >"$log" 2>&1 &
    pids+=("$!")
    names+=("$version")
    logs+=("$log")
done

for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
        echo "== Python ${names[$i]}: $(tail -n 1 "${logs[$i]}")"
    else
        echo "== Python ${names[$i]}: FAILED; its log:" >&2
        cat "${logs[$i]}" >&2
        status=1
    fi
    rm -f "${logs[$i]}"
done
exit "$status"
