#!/usr/bin/env bash
# Train on ASCL-v0 with verl on one node: FSDP actor, vLLM async rollout, N GPUs.
#
#   python -m verl_recipes.prepare_data --tasks bundled --out ~/data/ascl/tool
#   MODEL_PATH=Qwen/Qwen2.5-3B-Instruct N_GPUS=8 bash verl_recipes/scripts/train_single_node.sh
#
# Every variable below can be set in the environment; extra arguments are passed to verl as
# Hydra overrides (e.g. trainer.total_training_steps=20, or --cfg job to print the config and
# exit). Defaults fit a 1.5B-8B instruct model on 8x80 GB GPUs; for 7B-8B use ROLLOUT_TP=2 and
# MICRO_BATCH_PER_GPU=2.
set -euo pipefail

PYTHON=${PYTHON:-python3}
RECIPE=${RECIPE:-ascl_ifpo}                      # ascl_ifpo | ascl_grpo | ascl_in_context
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-3B-Instruct}
if [ "$RECIPE" = ascl_in_context ]; then default_data=in_context; else default_data=tool; fi
DATA_DIR=${DATA_DIR:-${ASCL_DATA_DIR:-$HOME/data/ascl}/$default_data}
N_GPUS=${N_GPUS:-8}
NNODES=${NNODES:-1}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-64}         # prompts per step
ROLLOUT_N=${ROLLOUT_N:-8}                        # rollouts per prompt (the IFPO/GRPO group)
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-16}   # prompts per actor update
MICRO_BATCH_PER_GPU=${MICRO_BATCH_PER_GPU:-4}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-}         # unset: the recipe's (ascl_in_context needs more)
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-4096} # all turns and tool results of an episode
ROLLOUT_TP=${ROLLOUT_TP:-1}                      # vLLM tensor parallel size
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.6}
LR=${LR:-1e-6}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-$RECIPE}
LOGGER=${LOGGER:-'["console"]'}

# The plugin registers the "ifpo" estimator and the "ascl_agent" loop; importing it explicitly
# fails loudly where the verl.plugins entry point would fail silently.
export VERL_USE_EXTERNAL_MODULES=${VERL_USE_EXTERNAL_MODULES:-verl_recipes.plugin}

extra_args=()
if [ -n "$MAX_PROMPT_LENGTH" ]; then
  extra_args+=("data.max_prompt_length=$MAX_PROMPT_LENGTH")
fi

exec "$PYTHON" -m verl.trainer.main_ppo \
  --config-path=pkg://verl_recipes.config --config-name="$RECIPE" \
  data.train_files="$DATA_DIR/train.parquet" \
  data.val_files="$DATA_DIR/val.parquet" \
  data.train_batch_size="$TRAIN_BATCH_SIZE" \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  actor_rollout_ref.model.path="$MODEL_PATH" \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE" \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU" \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n="$ROLLOUT_N" \
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
  actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$("$PYTHON" -m verl_recipes.paths agent_loops)" \
  "${extra_args[@]}" \
  trainer.nnodes="$NNODES" \
  trainer.n_gpus_per_node="$N_GPUS" \
  trainer.total_epochs="$TOTAL_EPOCHS" \
  trainer.experiment_name="$EXPERIMENT_NAME" \
  trainer.logger="$LOGGER" \
  "$@"
