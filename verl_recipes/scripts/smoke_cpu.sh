#!/usr/bin/env bash
# A real `python -m verl.trainer.main_ppo` run of the ascl_ifpo recipe on CPU, no GPU, no vLLM.
#
#   bash verl_recipes/scripts/smoke_cpu.sh [extra hydra overrides...]
#
# 1. warm-starts the tiny random Qwen2 on scripted ASCL episodes (python -m verl_recipes.cpu.warmstart)
#    so that it looks the rules up about half the time,
# 2. writes the parquet files (python -m verl_recipes.prepare_data),
# 3. runs main_ppo with --config-name=ascl_ifpo and the CPU overrides below for ASCL_SMOKE_STEPS
#    steps (default 2): CPU platform (VERL_PLATFORM=cpu), the `hf` rollout, FSDP2 over gloo,
#    one fake Ray GPU, the ascl_sync trainer (logs ifpo/* and ascl/* metrics),
# 4. prints the step metrics and exits non-zero if the run failed or logged fewer steps.
#
# Environment: PYTHON (default: .venv/bin/python if present, else python), ASCL_SMOKE_DIR (work
# folder, default a new temporary one), ASCL_SMOKE_STEPS (2), ASCL_SMOKE_CONFIG (ascl_ifpo),
# ASCL_SMOKE_SEED (0), ASCL_SMOKE_MODEL (skip step 1 and use this model folder), ASCL_SMOKE_N
# (rollouts per prompt, 4; the CI test uses 3: an odd group size makes every group that mixes
# lookups and direct answers unbalanced, so IFPO's weights there always differ from 1, while a
# 2/2 group of 4 gets weight 1 exactly).
# A test harness for the recipe wiring, not a training mode: see verl_recipes/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
WORK="${ASCL_SMOKE_DIR:-$(mktemp -d -t ascl-verl-cpu-XXXXXX)}"
STEPS="${ASCL_SMOKE_STEPS:-2}"
CONFIG="${ASCL_SMOKE_CONFIG:-ascl_ifpo}"
SEED="${ASCL_SMOKE_SEED:-0}"
N="${ASCL_SMOKE_N:-4}"
MICRO=$(( 2 * N ))  # divides the mini-batch of 4 prompts x N rollouts
# Short episodes: one rule of at most 300 characters per lookup, two assistant turns.
ENV_CONFIG='{"top_k": 1, "max_rule_chars": 300, "max_turns": 2}'
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
    "$PYTHON" -m verl_recipes.cpu.warmstart --out "$MODEL" --env-config "$ENV_CONFIG" --seed "$SEED"
fi
echo "== data -> $WORK/data"
"$PYTHON" -m verl_recipes.prepare_data --tasks bundled --out "$WORK/data" \
    --env-config "$ENV_CONFIG" --seed "$SEED"

echo "== main_ppo ($CONFIG, $STEPS steps)"
start=$(date +%s)
"$PYTHON" -m verl.trainer.main_ppo \
    --config-path=pkg://verl_recipes.config --config-name="$CONFIG" \
    data.train_files="$WORK/data/train.parquet" data.val_files="$WORK/data/val.parquet" \
    data.train_batch_size=4 data.max_prompt_length=1024 data.max_response_length=256 \
    data.dataloader_num_workers=0 data.seed="$SEED" \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.model.use_remove_padding=false \
    actor_rollout_ref.model.enable_gradient_checkpointing=false \
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    actor_rollout_ref.actor.strategy=fsdp2 actor_rollout_ref.ref.strategy=fsdp2 \
    actor_rollout_ref.actor.use_torch_compile=false \
    actor_rollout_ref.actor.ppo_mini_batch_size=4 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO" \
    actor_rollout_ref.actor.optim.lr=1e-3 \
    actor_rollout_ref.rollout.name=hf actor_rollout_ref.rollout.n="$N" \
    actor_rollout_ref.rollout.seed="$SEED" \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$MICRO" \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$MICRO" \
    actor_rollout_ref.rollout.agent.num_workers=1 \
    reward.num_workers=1 transfer_queue.backend.SimpleStorage.num_data_storage_units=1 \
    trainer.device=cpu trainer.nnodes=1 trainer.n_gpus_per_node=1 \
    trainer.v1.trainer_mode=ascl_sync \
    trainer.total_training_steps="$STEPS" trainer.total_epochs=1000 \
    trainer.val_before_train=false trainer.test_freq=-1 trainer.save_freq=-1 \
    trainer.default_local_dir="$WORK/checkpoints" \
    trainer.logger='[console,file]' \
    ray_kwargs.ray_init.num_cpus=16 +ray_kwargs.ray_init.num_gpus=1 \
    ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES="\"$MODULES\"" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM=cpu \
    +ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH="\"$PYTHONPATH\"" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="\"$VERL_FILE_LOGGER_PATH\"" \
    hydra.run.dir="$WORK/hydra" \
    "$@"
echo "== main_ppo finished in $(( $(date +%s) - start )) s; metrics: $VERL_FILE_LOGGER_PATH"
ESTIMATOR=$([[ "$CONFIG" == ascl_ifpo ]] && echo ifpo || echo other)
"$PYTHON" -m verl_recipes.cpu.report "$VERL_FILE_LOGGER_PATH" --expect-steps "$STEPS" \
    --estimator "$ESTIMATOR"
