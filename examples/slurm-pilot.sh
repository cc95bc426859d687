#!/bin/bash
# A picas pilot array for Slurm, annotated.
#
# This is what
#
#   picas submit slurm --array 8 --time 4:00:00 --partition normal --mem 2G \
#       --setup 'module load Python/3.11' --setup 'source $HOME/venvs/picas/bin/activate' \
#       --max-time 3h --scrub-expired --dry-run
#
# prints, with comments added.  You can submit it as it is (`sbatch slurm-pilot.sh`),
# but `picas submit slurm` also records the job id in the database, so that
# `picas status`, `picas pilots list` and `picas pilots cancel` know about it and the
# autopilot counts it.
#
# To keep your own changes and still let picas fill in the options, make it a
# template (`picas submit slurm --template my-pilot.sh ...`): replace the #SBATCH
# block with ${sbatch_lines}, the setup lines with ${setup}, the exports with
# ${env}, and everything from "pilot_pid=" to the end with ${run_pilot}
# (or put ${pilot_command} wherever you start the pilot yourself).  Any other $
# in the template is left to bash.

# --- What the pilots ask Slurm for: one line per `picas submit slurm` option ---------
#SBATCH --job-name=picas-pilot
# Eight pilots, each one array task.  Each runs until the pool is empty or its time is up.
#SBATCH --array=0-7
# One log per pilot: %A is the array job id, %a the task id (relative to where you submit).
#SBATCH --output=picas-pilot-%A_%a.out
#SBATCH --time=4:00:00
#SBATCH --partition=normal
#SBATCH --mem=2G
# Slurm sends USR1 to this script 120 s (--signal-grace) before the walltime.  The
# script passes it to the pilot, which stops its payload, puts the token back to
# todo (another pilot will do it) and exits 0, instead of being killed mid-token.
#SBATCH --signal=B:USR1@120
# Your own lines (--sbatch-line), e.g.:
# #SBATCH --constraint=avx2

# --- Setup lines (--setup): whatever the node needs before picas can run ---------------
module load Python/3.11
source $HOME/venvs/picas/bin/activate

# --- How the pilot reaches the database ------------------------------------------------
# No password is ever written here: Slurm stores batch scripts where admins (and
# `scontrol write batch_script`) can read them.  The pilot reads it from PICAS_CONFIG,
# a file only you can read (mode 0600): your own config file when the password is in
# it (`picas init`), or else a private profile picas writes for the pilots
# (slurm-pilots.yml next to your config file, or --pilot-config FILE).  That file must
# be on a file system the compute nodes see, as home directories usually are.
export PICAS_HOST_URL=https://couch.example.org:6984
export PICAS_DATABASE=run42
export PICAS_USERNAME=alice
export PICAS_CONFIG=$HOME/.config/picas/conf.yml
export PICAS_PROFILE=default

# --- Run the pilot, passing USR1 and TERM on to it at once --------------------------------
# Bash runs a trap only after the foreground command returns, so the pilot runs in
# the background and the script waits for it: a signal then interrupts `wait` at
# once, the trap forwards it, and the script waits again until the pilot has given
# its token back.  `scancel` and the time limit send TERM, which is handled the same way.
# Each token the pilot takes records slurm_job_id (<array job>_<task>) and
# slurm_array_task_id, so you can find the log of the pilot that ran it.
pilot_pid=""
signalled=0
forward() {
    signalled=1
    if [ -n "$pilot_pid" ]; then
        kill -s "$1" "$pilot_pid" 2>/dev/null || true
    fi
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

# Options after `run` come from `picas submit slurm`, which takes every option of
# `picas run` (see `picas run --help`); durations are written in seconds:
# --max-time 3h (10800) stops taking new tokens after 3 hours, well inside the walltime;
# --scrub-expired lets the pilots reset tokens whose pilot died (lease expired).
picas run --design-doc Monitor --view todo --max-time=10800 --scrub-expired=300 &
pilot_pid=$!
status=""
while :; do
    signalled=0
    wait "$pilot_pid"
    rc=$?
    # 127: the pilot was already collected by an earlier wait; its status is kept.
    if [ "$rc" -eq 127 ] && [ -n "$status" ]; then
        break
    fi
    status=$rc
    # A wait interrupted by a forwarded signal: wait again for the pilot to finish.
    if [ "$signalled" -eq 0 ]; then
        break
    fi
done
exit "$status"
