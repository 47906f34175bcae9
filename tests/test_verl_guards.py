"""Guards and recipe invariants a GPU run depends on, checked on CPU against verl 0.9.1.

- configurations that silently break IFPO are refused (rollout_rs; scope=batch with verl's
  padding rows), in the trainer and in the estimator;
- the keys the recipes add outside verl's schema are exactly the whitelist;
- every shipped recipe (and the launch scripts' defaults) keeps one micro-batch's fp32 logits
  under the budget, with dynamic batch sizes, FSDP2 and the ascl_sync trainer;
- ascl_sync runs verl's *sync* code paths;
- the trl probe patch applies only where trl lacks the class verl imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("verl")

from hydra import compose, initialize_config_module  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from verl_recipes import guards  # noqa: E402
from verl_recipes.guards import EXTRA_KEYS, ConfigGuardError, extra_keys  # noqa: E402
from verl_recipes.ifpo_estimator import compute_ifpo_advantage  # noqa: E402
from verl_recipes.memory import LOGITS_BUDGET_GB, check_bounds, logits_bounds  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("ascl_ifpo", "ascl_grpo", "ascl_in_context")


def recipe(name: str, *overrides: str):
    with initialize_config_module("verl_recipes.config", version_base=None):
        return compose(name, overrides=list(overrides))


# ---------------------------------------------------------------------------- whitelist


def test_recipes_add_only_the_whitelisted_keys_outside_verls_schema():
    with initialize_config_module("verl.trainer.config", version_base=None):
        base = compose("ppo_trainer")
    for name in RECIPES:
        assert extra_keys(recipe(name), base) == EXTRA_KEYS, name


# ---------------------------------------------------------------------------- IFPO guards


def test_rollout_rs_is_refused_with_ifpo():
    config = recipe("ascl_ifpo", "algorithm.rollout_correction.rollout_rs=token_k1")
    with pytest.raises(ConfigGuardError, match=r"rollout_rs='token_k1' rewrites response_mask"):
        guards.check_config(config)
    guards.check_config(recipe("ascl_grpo", "algorithm.rollout_correction.rollout_rs=token_k1"))
    # The estimator refuses it too (it also runs under verl's plain trainers).
    rewards, mask = torch.ones(4, 3), torch.ones(4, 3, dtype=torch.long)
    with pytest.raises(ConfigGuardError, match="rollout_rs"):
        compute_ifpo_advantage(rewards, mask, np.array(["a", "a", "b", "b"]), config.algorithm)


def _verl_padding_rows(config) -> int:
    """What verl 0.9.1's trainer pads, from its own method (dp size = world / sp)."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    world = config.trainer.nnodes * config.trainer.n_gpus_per_node
    stub = SimpleNamespace(config=config, use_critic=False, global_steps=0)
    multiple = PPOTrainer._get_required_batch_multiple(stub, world)
    return (-config.data.train_batch_size * config.actor_rollout_ref.rollout.n) % multiple


@pytest.mark.parametrize(
    ("batch", "n", "gpus", "mini"),
    [(64, 8, 8, 16), (6, 4, 8, 6), (5, 3, 4, 5), (4, 3, 1, 4), (12, 5, 16, 4)],
)
def test_padding_rows_match_verls_trainer(batch, n, gpus, mini):
    config = recipe(
        "ascl_ifpo",
        f"data.train_batch_size={batch}",
        f"actor_rollout_ref.rollout.n={n}",
        f"trainer.n_gpus_per_node={gpus}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={mini}",
    )
    assert guards.padding_rows(config) == _verl_padding_rows(config)


def test_batch_scope_with_padding_rows_is_refused():
    padded = (
        "data.train_batch_size=5",
        "actor_rollout_ref.rollout.n=3",
        "actor_rollout_ref.actor.ppo_mini_batch_size=5",
    )
    assert guards.padding_rows(recipe("ascl_ifpo", *padded)) > 0
    with pytest.raises(ConfigGuardError, match=r"scope=batch with \d+ padding rows"):
        guards.check_config(recipe("ascl_ifpo", *padded, "algorithm.ifpo.scope=batch"))
    guards.check_config(recipe("ascl_ifpo", *padded))  # scope=group: padding is its own group
    guards.check_config(recipe("ascl_ifpo", "algorithm.ifpo.scope=batch"))  # 512 rows, no pad
    # At estimator time: verl's padding uid ("pad<hex>", padding_utils.py) in a batch-scope batch.
    algorithm = OmegaConf.create({"adv_estimator": "ifpo", "ifpo": {"scope": "batch"}})
    index = np.array(["u1", "u1", "pad0f3a", "pad0f3a"], dtype=object)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(ConfigGuardError, match="2 padding rows"):
        compute_ifpo_advantage(torch.ones(4, 3), mask, index, algorithm)
    compute_ifpo_advantage(torch.ones(4, 3), mask, index, OmegaConf.create({"ifpo": {}}))


# ---------------------------------------------------------------------------- one trainer path


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_use_ascl_sync_fsdp2_and_dynamic_batches_within_the_memory_bound(name):
    config = recipe(name)
    assert config.trainer.v1.trainer_mode == "ascl_sync"
    modules = config.ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES
    assert "verl_recipes.trainer" in modules.split(",")
    aro = config.actor_rollout_ref
    assert aro.actor.strategy == aro.ref.strategy == "fsdp2"
    assert aro.actor.use_dynamic_bsz and aro.rollout.log_prob_use_dynamic_bsz
    assert aro.ref.log_prob_use_dynamic_bsz
    assert check_bounds(config) == []
    assert all(b.logits_gb <= LOGITS_BUDGET_GB for b in logits_bounds(config))
    # Without dynamic batches the same recipe is over the bound: the check is not vacuous.
    assert check_bounds(recipe(name, "actor_rollout_ref.actor.use_dynamic_bsz=false"))


def test_launch_script_defaults_stay_within_the_bound():
    # train_single_node.sh's (and train_multi_node.sh's) token budgets, at the longest recipe.
    text = (REPO / "verl_recipes/scripts/train_single_node.sh").read_text()
    assert "MAX_TOKENS_PER_GPU:-12288" in text and "LOGPROB_MAX_TOKENS_PER_GPU:-16384" in text
    config = recipe(
        "ascl_in_context",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=12288",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384",
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=16384",
    )
    assert check_bounds(config) == []
    too_small = recipe("ascl_in_context", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096")
    assert any("below one full sequence" in p for p in check_bounds(too_small))


def test_ascl_sync_trainer_takes_verls_sync_paths():
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

    from verl_recipes.trainer import ASCLSyncTrainer

    trainer = ASCLSyncTrainer(recipe("ascl_ifpo"))
    # verl tests trainer_mode == "sync" for its replay buffer, checkpoints and refills.
    assert trainer.trainer_mode == "sync"
    assert type(trainer.replay_buffer) is ReplayBuffer
    assert not isinstance(trainer.replay_buffer, ReplayBufferAsync)
    with pytest.raises(ConfigGuardError, match="rollout_rs"):
        ASCLSyncTrainer(recipe("ascl_ifpo", "algorithm.rollout_correction.rollout_rs=token_k1"))


# ---------------------------------------------------------------------------- trl probe patch


def _fake_dist(root: Path, name: str, version: str) -> None:
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


PROBE = """
import verl
from verl.utils import import_utils
print("patched" if hasattr(import_utils.is_trl_available, "_ascl_original") else "unpatched")
"""


@pytest.mark.parametrize(
    ("trl", "verl_version", "expected"),
    [
        ("0.27.0", "0.10.0", "unpatched"),  # verl[fsdp]'s own trl: no patch, no verl-version check
        ("1.16.0", None, "patched"),  # trl 1.x (the project's trl extra) on verl 0.9.1
    ],
)
def test_trl_probe_patch_only_where_trl_lacks_the_class(tmp_path, trl, verl_version, expected):
    _fake_dist(tmp_path, "trl", trl)
    if verl_version:
        _fake_dist(tmp_path, "verl", verl_version)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "VERL_USE_EXTERNAL_PLUGINS": "none",
        "VERL_USE_EXTERNAL_MODULES": "verl_recipes.plugin",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected


def test_vllm_worker_extension_imports_with_the_plugin():
    if subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True).returncode:
        pytest.skip("vLLM is not installed here (GPU install: pip install 'verl[vllm,fsdp]')")
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "verl_recipes.plugin"}
    code = "import verl.workers.rollout.vllm_rollout.utils as u; u.vLLMColocateWorkerExtension"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
