#!/usr/bin/env bash
# A real `python -m verl.trainer.main_ppo` run of the ascl_ifpo recipe on CPU, no GPU, no vLLM,
# started through the GPU launch script (train_single_node.sh, or train_multi_node.sh when
# ASCL_SMOKE_NNODES > 1) with CPU overrides, so the GPU path's script and trainer run too.
#
#   bash verl_recipes/scripts/smoke_cpu.sh [extra hydra overrides...]
#
# 1. warm-starts the tiny random Qwen2 on scripted ASCL episodes (python -m verl_recipes.cpu.warmstart)
#    so that it looks the rules up about half the time,
# 2. writes the parquet files (python -m verl_recipes.prepare_data),
# 3. runs the launch script for ASCL_SMOKE_STEPS steps (default 2) with the recipe's trainer
#    (ascl_sync: ifpo/* and ascl/* metrics), dynamic batch sizes and FSDP2, plus the CPU
#    overrides below: CPU platform (VERL_PLATFORM=cpu), the `hf` rollout, gloo, one fake Ray GPU
#    per node; validation runs once before training (ASCL_SMOKE_VAL_ROWS validation prompts),
# 4. prints the step and validation metrics and exits non-zero if the run failed or logged fewer
#    steps or no validation.
#
# Environment: PYTHON (default: .venv/bin/python if present, else python), ASCL_SMOKE_DIR (work
# folder; default a new temporary one, removed on exit unless ASCL_SMOKE_KEEP=1),
# ASCL_SMOKE_STEPS (2), ASCL_SMOKE_CONFIG (ascl_ifpo), ASCL_SMOKE_SEED (0), ASCL_SMOKE_MODEL
# (skip step 1 and use this model folder), ASCL_SMOKE_N (rollouts per prompt, 4; the CI test
# uses 3: an odd group size makes every group that mixes lookups and direct answers unbalanced,
# so IFPO's weights there always differ from 1, while a 2/2 group of 4 gets weight 1 exactly),
# ASCL_SMOKE_VAL_ROWS (6; 0 turns validation off), ASCL_SMOKE_NNODES (1; 2 attaches to the Ray
# cluster at RAY_ADDRESS through train_multi_node.sh, one fake GPU per node),
# ASCL_SMOKE_PROFILE (balanced; drifted: the warm start of the IFPO study, which looks the rules
# up on ~90 % of prompts of every kind and then tends to refuse; see verl_recipes.cpu.warmstart),
# ASCL_SMOKE_TASKS (task spec of the warm start and the data; bundled), ASCL_SMOKE_BATCH
# (prompts per step, 4), ASCL_SMOKE_RESPONSE_LENGTH (256), ASCL_SMOKE_LR (actor lr, 1e-3),
# ASCL_SMOKE_WARMSTART_STEPS (200; drifted: 400), ASCL_SMOKE_ENV_CONFIG (ASCLConfig JSON of the episodes;
# the drifted profile defaults to the study's), ASCL_SMOKE_MAX_TOKENS (tokens per training and
# log-prob micro-batch, 2560).
# A test harness for the recipe wiring, not a training mode: see verl_recipes/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
if [[ -n "${ASCL_SMOKE_DIR:-}" ]]; then
    WORK="$ASCL_SMOKE_DIR"
else
    WORK="$(mktemp -d -t ascl-verl-cpu-XXXXXX)"
    if [[ "${ASCL_SMOKE_KEEP:-0}" != 1 ]]; then
        # Our own temporary folder (model, data, checkpoints, metrics): removed on any exit.
        trap 'rm -rf -- "$WORK"' EXIT
    fi
fi
STEPS="${ASCL_SMOKE_STEPS:-2}"
CONFIG="${ASCL_SMOKE_CONFIG:-ascl_ifpo}"
SEED="${ASCL_SMOKE_SEED:-0}"
N="${ASCL_SMOKE_N:-4}"
VAL_ROWS="${ASCL_SMOKE_VAL_ROWS:-6}"
NNODES="${ASCL_SMOKE_NNODES:-1}"
PROFILE="${ASCL_SMOKE_PROFILE:-balanced}"
if [[ "$PROFILE" == drifted ]]; then
    # The IFPO study's tasks and episodes (verl_recipes.cpu.warmstart.DRIFTED_*).
    read_drifted() { PYTHONPATH="$ROOT" "$PYTHON" -c "import verl_recipes.cpu.warmstart as w; print(w.DRIFTED_$1)"; }
    DEFAULT_TASKS="$(read_drifted TASKS)"
    DEFAULT_ENV_CONFIG="$(read_drifted ENV_CONFIG)"
else
    DEFAULT_TASKS=bundled
    # Short episodes: one rule of at most 300 characters per lookup, two assistant turns.
    DEFAULT_ENV_CONFIG='{"top_k": 1, "max_rule_chars": 300, "max_turns": 2}'
fi
TASKS="${ASCL_SMOKE_TASKS:-$DEFAULT_TASKS}"
ENV_CONFIG="${ASCL_SMOKE_ENV_CONFIG:-$DEFAULT_ENV_CONFIG}"
MAX_TOKENS="${ASCL_SMOKE_MAX_TOKENS:-2560}"
BATCH="${ASCL_SMOKE_BATCH:-4}"
RESPONSE_LENGTH="${ASCL_SMOKE_RESPONSE_LENGTH:-256}"
LR="${ASCL_SMOKE_LR:-1e-3}"
WARMSTART_STEPS="${ASCL_SMOKE_WARMSTART_STEPS:-$([[ "$PROFILE" == drifted ]] && echo 400 || echo 200)}"
if (( BATCH % 2 )); then echo "ASCL_SMOKE_BATCH must be even, got $BATCH" >&2; exit 2; fi
MICRO=$(( 2 * N ))  # divides the mini-batch of BATCH prompts x N rollouts
MODULES="verl_recipes.cpu.plugin,verl_recipes.plugin,verl_recipes.trainer"
mkdir -p "$WORK"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export VERL_PLATFORM=cpu VERL_USE_EXTERNAL_MODULES="$MODULES"
export VERL_FILE_LOGGER_PATH="$WORK/metrics.jsonl"
export RAY_DEDUP_LOGS=0 TOKENIZERS_PARALLELISM=false
rm -f "$VERL_FILE_LOGGER_PATH"

MODEL="${ASCL_SMOKE_MODEL:-}"
if [[ -z "$MODEL" ]]; then
    MODEL="$WORK/model"
    echo "== warm start -> $MODEL"
    if [[ "$PROFILE" == drifted ]]; then
        # Every task of the spec, sampled through the env afterwards: the printed rates.
        warm=(--profile drifted --tasks "$TASKS" --per-kind 0 --batch-size 8 --compact-tools
              --probe-samples 1)
    else
        warm=(--profile "$PROFILE" --tasks "$TASKS")
    fi
    "$PYTHON" -m verl_recipes.cpu.warmstart --out "$MODEL" --env-config "$ENV_CONFIG" \
        --seed "$SEED" --steps "$WARMSTART_STEPS" "${warm[@]}"
fi
echo "== data -> $WORK/data"
"$PYTHON" -m verl_recipes.prepare_data --tasks "$TASKS" --out "$WORK/data" \
    --env-config "$ENV_CONFIG" --seed "$SEED"

# What the launch script takes from the environment.
export PYTHON RECIPE="$CONFIG" MODEL_PATH="$MODEL" DATA_DIR="$WORK/data" NNODES N_GPUS=1 \
    TRAIN_BATCH_SIZE="$BATCH" ROLLOUT_N="$N" PPO_MINI_BATCH_SIZE="$BATCH" \
    MICRO_BATCH_PER_GPU="$MICRO" MAX_TOKENS_PER_GPU="$MAX_TOKENS" \
    LOGPROB_MAX_TOKENS_PER_GPU="$MAX_TOKENS" \
    MAX_PROMPT_LENGTH=1024 MAX_RESPONSE_LENGTH="$RESPONSE_LENGTH" ROLLOUT_NAME=hf ROLLOUT_TP=1 \
    LR="$LR" \
    TOTAL_EPOCHS=1000 RUN_NAME="smoke-$CONFIG" CHECKPOINT_DIR="$WORK/checkpoints" \
    RESUME_MODE=disable LOGGER='[console,file]'
if (( NNODES > 1 )); then
    LAUNCH="$ROOT/verl_recipes/scripts/train_multi_node.sh"
    # Attach to the running cluster (RAY_ADDRESS): its nodes bring their own (fake) GPUs.
    ray_resources=(ray_kwargs.ray_init.num_cpus=null)
else
    LAUNCH="$ROOT/verl_recipes/scripts/train_single_node.sh"
    ray_resources=(ray_kwargs.ray_init.num_cpus=16 +ray_kwargs.ray_init.num_gpus=1)
fi
if (( VAL_ROWS > 0 )); then
    validation=(trainer.val_before_train=true data.val_max_samples="$VAL_ROWS")
else
    validation=(trainer.val_before_train=false)
fi

echo "== main_ppo ($CONFIG, $STEPS steps, $NNODES node(s), via $(basename "$LAUNCH"))"
start=$(date +%s)
bash "$LAUNCH" \
    data.dataloader_num_workers=0 data.seed="$SEED" \
    actor_rollout_ref.model.use_remove_padding=false \
    actor_rollout_ref.model.enable_gradient_checkpointing=false \
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    actor_rollout_ref.actor.use_torch_compile=false \
    actor_rollout_ref.rollout.seed="$SEED" \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$MICRO" \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$MICRO" \
    actor_rollout_ref.rollout.agent.num_workers=1 \
    reward.num_workers=1 transfer_queue.backend.SimpleStorage.num_data_storage_units=1 \
    trainer.device=cpu \
    trainer.total_training_steps="$STEPS" \
    "${validation[@]}" trainer.test_freq=-1 trainer.save_freq=-1 \
    "${ray_resources[@]}" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM=cpu \
    +ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH="\"$PYTHONPATH\"" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="\"$VERL_FILE_LOGGER_PATH\"" \
    hydra.run.dir="$WORK/hydra" \
    "$@"
echo "== main_ppo finished in $(( $(date +%s) - start )) s; metrics: $VERL_FILE_LOGGER_PATH"
ESTIMATOR=$([[ "$CONFIG" == ascl_ifpo ]] && echo ifpo || echo other)
"$PYTHON" -m verl_recipes.cpu.report "$VERL_FILE_LOGGER_PATH" --expect-steps "$STEPS" \
    --estimator "$ESTIMATOR" $( (( VAL_ROWS > 0 )) && echo --expect-validation )
