#!/usr/bin/env bash
# Train on ASCL-v0 with verl on one node: FSDP2 actor, vLLM async rollout, N GPUs.
#
#   BENCH_DATA=/path/to/benchmark/files RUN_NAME=qwen3b-ifpo-1 \
#     MODEL_PATH=Qwen/Qwen2.5-3B-Instruct N_GPUS=8 bash verl_recipes/scripts/train_single_node.sh
#
# Every variable below can be set in the environment; extra arguments are passed to verl as
# Hydra overrides (e.g. trainer.total_training_steps=20, or --cfg job to print the config and
# exit). Defaults fit a 1.5B-8B instruct model on 8x80 GB GPUs; for 7B-8B use ROLLOUT_TP=2.
#
# Before main_ppo starts, the script prints the run name, the checkpoint folder and whether the
# run RESUMES from it (verl's resume_mode=auto resumes any checkpoint in that folder: a new
# RUN_NAME is a new folder), and the number of training steps. When DATA_DIR has no
# train.parquet it writes one: the training mixture over BENCH_DATA (prepare_data --mixture)
# if set, else the bundled tasks (a small set: a warning says how few steps it gives). Prompts
# that do not fit MAX_PROMPT_LENGTH with the tool schema are dropped then (and refused later).
set -euo pipefail

PYTHON=${PYTHON:-python3}
RECIPE=${RECIPE:-ascl_ifpo}                      # ascl_ifpo | ascl_grpo | ascl_in_context
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-3B-Instruct}
if [ "$RECIPE" = ascl_in_context ]; then default_data=in_context; else default_data=tool; fi
DATA_DIR=${DATA_DIR:-${ASCL_DATA_DIR:-$HOME/data/ascl}/$default_data}
BENCH_DATA=${BENCH_DATA:-}                       # benchmark files for the training mixture
N_GPUS=${N_GPUS:-8}
NNODES=${NNODES:-1}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-64}         # prompts per step
ROLLOUT_N=${ROLLOUT_N:-8}                        # rollouts per prompt (the IFPO/GRPO group)
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-16}   # prompts per actor update
MICRO_BATCH_PER_GPU=${MICRO_BATCH_PER_GPU:-4}    # used only with use_dynamic_bsz=false
MAX_TOKENS_PER_GPU=${MAX_TOKENS_PER_GPU:-12288}  # dynamic batch: tokens per training micro-batch
LOGPROB_MAX_TOKENS_PER_GPU=${LOGPROB_MAX_TOKENS_PER_GPU:-16384}  # and per log-prob micro-batch
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-}         # unset: the recipe's (ascl_in_context needs more)
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-4096} # all turns and tool results of an episode
ROLLOUT_NAME=${ROLLOUT_NAME:-vllm}               # vllm | sglang | hf (verl_recipes.cpu)
ROLLOUT_TP=${ROLLOUT_TP:-1}                      # vLLM tensor parallel size
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.6}
LR=${LR:-1e-6}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
RUN_NAME=${RUN_NAME:-${EXPERIMENT_NAME:-$RECIPE-$(date +%Y%m%d-%H%M%S)}}
PROJECT_NAME=${PROJECT_NAME:-ascl}
CHECKPOINT_DIR=${CHECKPOINT_DIR:-${ASCL_CHECKPOINT_ROOT:-$HOME/ascl_checkpoints}/$PROJECT_NAME/$RUN_NAME}
RESUME_MODE=${RESUME_MODE:-auto}                 # auto | disable | resume_path
LOGGER=${LOGGER:-'["console"]'}

# Absolute paths: Ray workers on other nodes do not share the driver's working directory.
abspath() { if [[ "$1" = /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
DATA_DIR=$(abspath "$DATA_DIR")
CHECKPOINT_DIR=$(abspath "$CHECKPOINT_DIR")
if [ -e "$MODEL_PATH" ]; then MODEL_PATH=$(abspath "$MODEL_PATH"); fi

# The plugin registers the "ifpo" estimator and the "ascl_agent" loop, verl_recipes.trainer the
# ascl_sync trainer; importing them explicitly fails loudly where the verl.plugins entry point
# would fail silently.
export VERL_USE_EXTERNAL_MODULES=${VERL_USE_EXTERNAL_MODULES:-verl_recipes.plugin,verl_recipes.trainer}

config_only=false
total_steps=""
for arg in "$@"; do
  case "$arg" in
    --cfg|--info|--help|-h) config_only=true ;;
    trainer.total_training_steps=*) total_steps=${arg#*=} ;;
  esac
done
prompt_limit=${MAX_PROMPT_LENGTH:-$([ "$RECIPE" = ascl_in_context ] && echo 4096 || echo 2048)}

if [ "$config_only" = false ]; then
  if [ ! -f "$DATA_DIR/train.parquet" ]; then
    rules_mode=$([ "$RECIPE" = ascl_in_context ] && echo in_context || echo tool)
    if [ -n "$BENCH_DATA" ]; then source_args=(--mixture "$BENCH_DATA"); else source_args=(--tasks bundled); fi
    echo "== data: writing $DATA_DIR (${source_args[*]}, rules $rules_mode)"
    "$PYTHON" -m verl_recipes.prepare_data "${source_args[@]}" --rules-mode "$rules_mode" \
      --out "$DATA_DIR" --tokenizer "$MODEL_PATH" --max-prompt-length "$prompt_limit" --drop-overlong
  fi
  echo "== $("$PYTHON" -m verl_recipes.preflight plan --run-name "$RUN_NAME" \
    --checkpoint-dir "$CHECKPOINT_DIR" --resume-mode "$RESUME_MODE" \
    --train-files "$DATA_DIR/train.parquet" --train-batch-size "$TRAIN_BATCH_SIZE" \
    --total-epochs "$TOTAL_EPOCHS" ${total_steps:+--total-steps "$total_steps"} | sed '2,$s/^/== /')"
fi

exec "$PYTHON" -m verl.trainer.main_ppo \
  --config-path=pkg://verl_recipes.config --config-name="$RECIPE" \
  data.train_files="$DATA_DIR/train.parquet" \
  data.val_files="$DATA_DIR/val.parquet" \
  data.train_batch_size="$TRAIN_BATCH_SIZE" \
  data.max_prompt_length="$prompt_limit" \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  actor_rollout_ref.model.path="$MODEL_PATH" \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE" \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU" \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU" \
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu="$LOGPROB_MAX_TOKENS_PER_GPU" \
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu="$LOGPROB_MAX_TOKENS_PER_GPU" \
  actor_rollout_ref.rollout.name="$ROLLOUT_NAME" \
  actor_rollout_ref.rollout.n="$ROLLOUT_N" \
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
  actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$("$PYTHON" -m verl_recipes.paths agent_loops)" \
  ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES="\"$VERL_USE_EXTERNAL_MODULES\"" \
  trainer.nnodes="$NNODES" \
  trainer.n_gpus_per_node="$N_GPUS" \
  trainer.total_epochs="$TOTAL_EPOCHS" \
  trainer.project_name="$PROJECT_NAME" \
  trainer.experiment_name="$RUN_NAME" \
  trainer.default_local_dir="$CHECKPOINT_DIR" \
  trainer.resume_mode="$RESUME_MODE" \
  trainer.logger="$LOGGER" \
  "$@"
