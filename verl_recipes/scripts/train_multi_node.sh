#!/usr/bin/env bash
# Train on ASCL-v0 with verl across several nodes of a running Ray cluster.
#
# 1. On every node: the same Python environment (ascl-env[verl] + verl[vllm,fsdp]), and the
#    data, model and checkpoint folder at the same absolute paths (a shared file system).
# 2. Head node:    ray start --head --port=6379
#    Other nodes:  ray start --address=HEAD_IP:6379
#    (KubeRay / Slurm: see verl_recipes/README.md, "Beyond one machine".)
# 3. Head node:    NNODES=2 N_GPUS=8 MODEL_PATH=... RUN_NAME=... bash verl_recipes/scripts/train_multi_node.sh
#
# verl attaches to the running cluster (RAY_ADDRESS, default "auto") and places FSDP workers and
# vLLM replicas on trainer.nnodes x trainer.n_gpus_per_node GPUs. All variables of
# train_single_node.sh apply (it turns every path absolute; relative paths would resolve on each
# node's own working directory); the defaults here are for a 7B-8B model on 2 x 8 GPUs.
# Tested on one machine as a two-node Ray cluster with the CPU harness:
# tests/test_verl_multi_node.py (slow).
set -euo pipefail

export RAY_ADDRESS=${RAY_ADDRESS:-auto}
export NNODES=${NNODES:-2}
export N_GPUS=${N_GPUS:-8}
export TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-128}
export PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-32}
export MICRO_BATCH_PER_GPU=${MICRO_BATCH_PER_GPU:-2}
export ROLLOUT_TP=${ROLLOUT_TP:-2}
export MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-7B-Instruct}

exec bash "$(dirname "$0")/train_single_node.sh" "$@"
