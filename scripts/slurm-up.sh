#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster on this machine, for tests and demos.
#
# Why: picas submits pilots with sbatch, and the only honest test of that is a
# real slurmctld + slurmd.  This script makes one on a fresh Debian 12 machine,
# as root, without systemd (CI machines and containers have none), and is safe
# to run again: whatever already runs with the same configuration is kept.
#
#   scripts/slurm-up.sh            # install if needed, start, wait until idle
#   scripts/slurm-down.sh          # stop the daemons started here (by pid)
#
# Environment:
#   PICAS_SLURM_DIR      scratch dir for conf, state, spool, logs, pids (default /tmp/picas-slurm)
#   PICAS_SLURM_CPUS     CPUs the node advertises (default 8, more than the real cores on
#                        purpose, so several array tasks run at once; SlurmdParameters=config_overrides)
#   PICAS_SLURM_TIMEOUT  seconds to wait for the node to become idle (default 60)
#
# The configuration is installed as /etc/slurm/slurm.conf (unless a foreign one is
# there already), so sbatch/squeue/scancel find it without SLURM_CONF.
set -euo pipefail

DIR=${PICAS_SLURM_DIR:-/tmp/picas-slurm}
CPUS=${PICAS_SLURM_CPUS:-8}
TIMEOUT=${PICAS_SLURM_TIMEOUT:-60}
CONF="$DIR/slurm.conf"
ETC_CONF=/etc/slurm/slurm.conf
MARKER="# written by picas scripts/slurm-up.sh"
START=$(date +%s.%N)

log() { echo "slurm-up: $*"; }
die() {
    echo "slurm-up: error: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
export PATH="/usr/local/sbin:/usr/sbin:/sbin:$PATH"

# --- 1. packages ------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if ! installed slurm-wlm || ! installed munge; then
    log "installing slurm-wlm and munge (apt-get)"
    # Keep package scripts from starting daemons through init scripts: this script
    # starts them itself, with its own configuration, and records their pids.
    policy_created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_ok=1
    apt-get update -qq || apt_ok=0
    if [ "$apt_ok" = 1 ]; then
        apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || apt_ok=0
    fi
    [ "$policy_created" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$apt_ok" = 1 ] || die "apt-get could not install slurm-wlm and munge"
else
    log "slurm-wlm and munge already installed"
fi

for tool in munged munge unmunge slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$tool" >/dev/null || die "'$tool' not found after installing slurm-wlm and munge"
done

mkdir -p "$DIR"/{state,spool,log,run}
chmod 755 "$DIR"

pid_running() {
    # pid_running PID: the process exists and is not a zombie (a killed daemon stays
    # a zombie until pid 1 reaps it, which is slow in some containers).
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

alive() {
    # alive PIDFILE NAME: the pid in PIDFILE runs and is the program NAME
    # (a stale pidfile may name a pid that was reused by something else).
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && pid_running "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# --- 2. munge -----------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

if munge_works; then
    log "munged already running"
else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do
        munge_works && break
        sleep 0.1
    done
    munge_works || die "munged started but 'munge -n | unmunge' fails (see /var/log/munge/munged.log)"
    # Only a munged started here is recorded, so slurm-down.sh never stops someone else's.
    cp /run/munge/munged.pid "$DIR/run/munged.pid"
fi

# --- 3. slurm.conf --------------------------------------------------------------------
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cat >"$CONF.new" <<EOF
$MARKER
# Single-node cluster for picas tests; scratch dir $DIR
ClusterName=picas
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
ReturnToService=2
KillWait=5
MinJobAge=300
InactiveLimit=0
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

conf_changed=0
if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then
    rm -f "$CONF.new"
else
    mv "$CONF.new" "$CONF"
    conf_changed=1
fi

mkdir -p /etc/slurm
if [ -f "$ETC_CONF" ] && ! head -n 1 "$ETC_CONF" | grep -qF "$MARKER"; then
    log "warning: $ETC_CONF exists and was not written by picas: left alone;" \
        "export SLURM_CONF=$CONF to use this cluster"
    etc_installed=0
else
    cmp -s "$CONF" "$ETC_CONF" 2>/dev/null || cp "$CONF" "$ETC_CONF"
    etc_installed=1
fi
export SLURM_CONF="$CONF"

# --- 4. daemons -------------------------------------------------------------------------
stop_daemon() {
    # stop_daemon NAME: stop a daemon of ours (by its pidfile) so it restarts with the new conf
    local pidfile="$DIR/run/$1.pid" pid
    alive "$pidfile" "$1" || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        pid_running "$pid" || break
        sleep 0.1
    done
    pid_running "$pid" && kill -9 "$pid" 2>/dev/null
    rm -f "$pidfile"
}

if [ "$conf_changed" = 1 ]; then
    stop_daemon slurmd
    stop_daemon slurmctld
fi

if alive "$DIR/run/slurmctld.pid" slurmctld; then
    log "slurmctld already running (pid $(cat "$DIR/run/slurmctld.pid"))"
else
    log "starting slurmctld"
    rm -f "$DIR/run/slurmctld.pid"
    slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
fi
if alive "$DIR/run/slurmd.pid" slurmd; then
    log "slurmd already running (pid $(cat "$DIR/run/slurmd.pid"))"
else
    log "starting slurmd"
    rm -f "$DIR/run/slurmd.pid"
    slurmd -f "$CONF" -N localhost || die "slurmd did not start; see $DIR/log/slurmd.log"
fi

# --- 5. wait until the node takes jobs ----------------------------------------------------
deadline=$(($(date +%s) + TIMEOUT))
state=""
resumed=0
while :; do
    state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | fail*)
            # A node that went away (a previous teardown) comes back as down: resume it once.
            if [ "$resumed" = 0 ]; then
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi
            ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "slurm-up: error: node not idle after ${TIMEOUT}s (sinfo state: '${state:-no answer}')" >&2
        for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
            echo "--- last lines of $f" >&2
            tail -n 15 "$f" >&2 2>/dev/null || true
        done
        exit 1
    fi
    sleep 0.2
done

for name in slurmctld slurmd; do
    alive "$DIR/run/$name.pid" "$name" || die "$name is not running; see $DIR/log/$name.log"
done

elapsed=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
log "cluster up in ${elapsed}s: node localhost is $state, partition 'debug' (default), CPUs=$CPUS"
pids="slurmctld $(cat "$DIR/run/slurmctld.pid"), slurmd $(cat "$DIR/run/slurmd.pid")"
if [ -s "$DIR/run/munged.pid" ]; then
    pids="$pids, munged $(cat "$DIR/run/munged.pid")"
else
    pids="$pids (munged was running already: not ours to stop)"
fi
log "pids in $DIR/run: $pids"
if [ "$etc_installed" = 1 ]; then
    log "configuration installed at $ETC_CONF: sbatch, squeue, scancel, sinfo work without SLURM_CONF"
else
    log "use it with: export SLURM_CONF=$CONF"
fi
log "logs in $DIR/log; finished jobs are listed in $DIR/log/jobcomp.log; stop with scripts/slurm-down.sh"
