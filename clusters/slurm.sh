#!/usr/bin/env bash
# sbatch clusters/slurm.sh configs/your-run.yaml
# Ray head on the first node of the allocation, Ray workers on the others,
# then `compound run` on the head joins that cluster through RAY_ADDRESS.
#SBATCH --job-name=compound
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
set -euo pipefail
config=${1:?usage: sbatch clusters/slurm.sh CONFIG.yaml}

nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head=${nodes[0]}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address | awk '{print $1}')
port=6379

srun --nodes=1 --ntasks=1 -w "$head" \
  ray start --head --node-ip-address="$head_ip" --port=$port \
  --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="$SLURM_GPUS_PER_NODE" --block &
sleep 15
for node in "${nodes[@]:1}"; do
  srun --nodes=1 --ntasks=1 -w "$node" \
    ray start --address="$head_ip:$port" \
    --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="$SLURM_GPUS_PER_NODE" --block &
done
sleep 15

RAY_ADDRESS="$head_ip:$port" compound run --config "$config" --out "runs/slurm-$SLURM_JOB_ID"
