#!/bin/bash
# One manifest across 8 Slurm array tasks sharing one output folder on shared storage.
# Each task runs shard SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT.
#   sbatch deploy/slurm-array.sh
#   batch-runner status /shared/out        # merged view, from any node
#SBATCH --job-name=batch-runner
#SBATCH --array=0-7
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH --time=12:00:00
#SBATCH --requeue
set -euo pipefail
# WIRO_API_KEY / WIRO_API_SECRET come from the submitting environment (sbatch --export).
source /shared/batch-runner/.venv/bin/activate
exec batch-runner run /shared/manifests/batch.yaml --out /shared/out --concurrency 4 --log-format json
