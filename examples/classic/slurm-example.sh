#!/bin/bash
#SBATCH --job-name=picas-example
#SBATCH --array=0-5
#SBATCH --output=picas-example-%A_%a.out
#
# Run local-example.py as a Slurm job array: each of the six array tasks takes
# tokens until the todo view is empty.  Submit it from this directory (the
# tokens' logs and outputs are written where the job starts):
#
#     sbatch slurm-example.sh
#
# Load the Python environment that has picas here, for example:
#     source "$HOME/venvs/picas/bin/activate"
#     module load Python/3.11
#
# Slurm sends SIGTERM at the time limit (or on scancel): the actor then stops
# the running process_task.sh, puts its token back to todo and exits cleanly.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
exec python3 local-example.py "$@"
