#!/bin/sh
# picas pilot start script for grid worker nodes (DIRAC runs it as: /bin/sh picas-pilot.sh ARGS).
#
#   sh picas-pilot.sh [--python PATH] [--site-packages] [--index N] [--] [picas run options...]
#
# It runs a picas pilot from the files next to it, and nothing else:
#   picas.pyz          picas with its pure-Python dependencies (a zipapp)
#   picas-pilot.yml    the scoped pilot credential (URL, database, a pilot-only user)
#   picas-setup.sh     optional: shell lines run here before the pilot (e.g. cc -O2 -o prog prog.c)
#   picas-ca.pem       optional: the CA bundle of the CouchDB server
#
# A worker node has no shared file system and no pip, and its python3 may be as old as 3.9
# (EL9).  The interpreter is the one given with --python (e.g. from CVMFS), or the first of
# python3.14 ... python3.9, python3 on PATH that is 3.9 or newer.  picas runs isolated from the
# node's site-packages and PYTHON* variables (-I -S), so only the zipapp's copies are imported;
# --site-packages lets it see the node's own packages too (gfal2 for staging, say), after them.
#
# The pilot's own log (each token it ran, its summary) is picas-pilot.log; the job's stdout
# holds this script's lines and the pilot's summary.  TERM, INT and USR1 are passed on to the
# pilot at once (INT as TERM): it then gives its token back and exits.
#
# Exit codes: the pilot's own; or 2 for a bad option, 3 when no suitable Python is found, 4 when
# a sandbox file is missing, 5 when picas-setup.sh fails.
set -u

here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 4
log="$here/picas-pilot.log"
python=""
index=""
isolation="-I -S"

say() {
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) picas-pilot${index:+[$index]}: $*"
    printf '%s\n' "$line"
    printf '%s\n' "$line" >>"$log"
}

fail() {
    code=$1
    shift
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) picas-pilot${index:+[$index]}: error: $*"
    printf '%s\n' "$line" >&2
    printf '%s\n' "$line" >>"$log"
    exit "$code"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || fail 2 "--python needs a path"; python=$2; shift 2 ;;
        --python=*) python=${1#--python=}; shift ;;
        --site-packages) isolation="-I"; shift ;;
        --index) [ $# -ge 2 ] || fail 2 "--index needs a value"; index=$2; shift 2 ;;
        --index=*) index=${1#--index=}; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done

# A suitable interpreter is Python 3.9 or newer; the check runs it, so a broken one is skipped too.
suitable() {
    "$1" -I -S -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' >/dev/null 2>&1
}

if [ -n "$python" ]; then
    suitable "$python" || fail 3 "--python $python is not a working Python 3.9 or newer"
else
    for name in python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 python3; do
        found=$(command -v "$name" 2>/dev/null) || continue
        if suitable "$found"; then
            python=$found
            break
        fi
    done
    [ -n "$python" ] || fail 3 "no Python 3.9 or newer on PATH (tried python3.14 ... python3.9, python3;" \
        "PATH=${PATH:-}); give one with --python PATH, e.g. from CVMFS"
fi

for file in picas.pyz picas-pilot.yml; do
    [ -f "$here/$file" ] || fail 4 "$file is missing from the sandbox in $here"
done

# Only the sandbox's credential: connection settings the node may carry are dropped.
unset PICAS_HOST_URL PICAS_DATABASE PICAS_USERNAME PICAS_PASSWORD PICAS_PROFILE PICAS_VERIFY
PICAS_CONFIG="$here/picas-pilot.yml"
PICAS_SANDBOX="$here"
export PICAS_CONFIG PICAS_SANDBOX
if [ -n "$index" ]; then
    PICAS_PILOT_INDEX=$index
    export PICAS_PILOT_INDEX
fi
if [ -z "${TMPDIR:-}" ]; then
    TMPDIR="$here/tmp"
    export TMPDIR
fi
mkdir -p "$TMPDIR" "$here/picas-work" || fail 4 "cannot create $TMPDIR or $here/picas-work"

version=$("$python" -I -S -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
say "python $python ($version) on $(uname -n), job ${DIRACJOBID:-?}, sandbox $here"
[ "$isolation" = "-I" ] && say "the node's site-packages are visible to picas (--site-packages)"

if [ -f "$here/picas-setup.sh" ]; then
    say "running picas-setup.sh"
    (cd "$here" && . "$here/picas-setup.sh") >>"$log" 2>&1 || fail 5 "picas-setup.sh failed (see picas-pilot.log)"
fi

pilot_pid=""
signalled=0
forward() {
    signalled=1
    if [ -n "$pilot_pid" ]; then
        kill -s "$1" "$pilot_pid" 2>/dev/null || true
    fi
}
trap 'forward TERM' TERM
# A background command of a non-interactive shell ignores INT, so INT goes on as TERM.
trap 'forward TERM' INT
trap 'forward USR1' USR1

say "starting: picas run $*"
# shellcheck disable=SC2086  # $isolation is one or two flags
"$python" $isolation "$here/picas.pyz" run --workdir "$here/picas-work" "$@" >>"$log" 2>&1 &
pilot_pid=$!
status=""
while :; do
    signalled=0
    wait "$pilot_pid"
    rc=$?
    if [ "$rc" -eq 127 ] && [ -n "$status" ]; then
        break
    fi
    status=$rc
    [ "$signalled" -eq 0 ] && break
done
tail -n 1 "$log"
say "pilot exited with status $status"
exit "$status"
