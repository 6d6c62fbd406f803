#!/usr/bin/env bash
# sbatch clusters/slurm.sh CONFIG.yaml [compound run options...]
# A Ray cluster across the allocation (head on the first node, one worker on each other node, each a
# `ray start --block` under srun), then `compound run` on the head against it; on exit it ends only the
# Ray processes this job started (never `ray stop`, which would end every Ray of yours on the node).
# Every node needs the same Python environment: `pip install 'compound[vllm]'` (on a shared disk or per node).
#SBATCH --job-name=compound
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --time=24:00:00
set -euo pipefail
config=${1:?usage: sbatch clusters/slurm.sh CONFIG.yaml [compound run options...]}
shift
# Run output: the driver (this script, on the head) writes the run directory; put it on a disk every
# node shares (the submit directory usually is), so the curator's checkpoints (RUN_DIR/curator, or
# distributed.checkpoint_uri) are reachable from whichever node Ray places the curator on.
run_dir=${COMPOUND_OUT:-$SLURM_SUBMIT_DIR/runs/slurm-$SLURM_JOB_ID}

# Token auth: a token of this job's own, passed to every srun step through the environment.
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=${RAY_AUTH_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(32))')}
export RAY_AUTH_TOKEN

nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head=${nodes[0]}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address | awk '{print $1}')
port=$((20000 + SLURM_JOB_ID % 10000))   # a port of this job's own, should nodes be shared after all
export RAY_ADDRESS="$head_ip:$port"
gpus=${SLURM_GPUS_PER_TASK:-0}

started=()
teardown() {
  # SIGTERM to our srun steps reaches their `ray start --block`, which takes its node's Ray down
  if ((${#started[@]})); then
    kill -TERM "${started[@]}" 2>/dev/null || true
    wait "${started[@]}" 2>/dev/null || true
  fi
}
trap teardown EXIT

srun --nodes=1 --ntasks=1 -w "$head" \
  ray start --head --block --node-ip-address="$head_ip" --port="$port" \
  --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="$gpus" &
started+=($!)

# wait (bounded) until the cluster has $1 live nodes; the token and RAY_ADDRESS come from the environment
wait_for_nodes() {
  python - "$1" <<'PY'
import sys, time
import ray

want, deadline = int(sys.argv[1]), time.monotonic() + 300
while True:
    try:
        ray.init(logging_level="ERROR", log_to_driver=False)
        alive = sum(n["Alive"] for n in ray.nodes())
        ray.shutdown()
    except Exception:  # the head is not up yet
        alive = 0
    if alive >= want:
        break
    if time.monotonic() > deadline:
        sys.exit(f"only {alive} of {want} Ray nodes came up within 300 s")
    time.sleep(3)
PY
}
wait_for_nodes 1

workers=$((SLURM_JOB_NUM_NODES - 1))
if ((workers > 0)); then
  srun --nodes="$workers" --ntasks="$workers" --exclude="$head" \
    ray start --block --address="$RAY_ADDRESS" \
    --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="$gpus" &
  started+=($!)
  wait_for_nodes "$SLURM_JOB_NUM_NODES"
fi

compound run --config "$config" --out "$run_dir" "$@"
