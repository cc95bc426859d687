#!/usr/bin/env bash
# Stop the single-node Slurm cluster that scripts/slurm-up.sh started.
#
# Why by pid: other Slurm or munge daemons may run on the same machine; only the
# ones recorded in $PICAS_SLURM_DIR/run/*.pid by slurm-up.sh are stopped.  A
# process that is already gone, or a pidfile that is missing, is not an error.
#
#   scripts/slurm-down.sh            # stop slurmd, slurmctld, munged; keep state and logs
#   scripts/slurm-down.sh --purge    # ... and remove the scratch dir as well
set -uo pipefail

DIR=${PICAS_SLURM_DIR:-/tmp/picas-slurm}
purge=0
for arg in "$@"; do
    case "$arg" in
        --purge) purge=1 ;;
        -h | --help)
            sed -n '2,9p' "$0"
            exit 0
            ;;
        *)
            echo "slurm-down: error: unknown argument '$arg' (only --purge)" >&2
            exit 2
            ;;
    esac
done

log() { echo "slurm-down: $*"; }

running() {
    # running PID: the process exists and is not a zombie waiting for pid 1 to reap it
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

stop() {
    # stop NAME: TERM the recorded pid if it still is NAME, wait, then KILL.
    local name=$1 pidfile="$DIR/run/$1.pid" pid
    if [ ! -s "$pidfile" ]; then
        log "$name: no pidfile, nothing to stop"
        return 0
    fi
    pid=$(cat "$pidfile")
    if ! running "$pid" || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
        log "$name: pid $pid already gone"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        log "$name: pid $pid ignored TERM for 10s, killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

# slurmd first (it reports to slurmctld), munged last (both authenticate through it).
stop slurmd
stop slurmctld
stop munged

if [ "$purge" = 1 ]; then
    rm -rf "$DIR"
    log "removed $DIR"
fi
exit 0
