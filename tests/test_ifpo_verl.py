"""The "ifpo" estimator inside real verl 0.9.1, on CPU: registry, entry point, trainer helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("verl", reason="verl is not installed (pip install 'ascl-env[verl]')")

from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.config import AlgoConfig  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories  # noqa: E402
from verl.utils.import_utils import load_module  # noqa: E402

from verl_recipes import ifpo_estimator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EPS = 1e-6


@pytest.fixture(autouse=True)
def ifpo_registered():
    # verl's own registry tests clear ADV_ESTIMATOR_REGISTRY; do not rely on import side effects.
    ifpo_estimator.register()
    yield


def episode_mask(segments: list[tuple[int, int]], length: int, lead: int = 0) -> list[int]:
    """Response mask for model segments (1) and tool responses (0), then padding (0)."""
    row = [0] * lead
    for model_tokens, tool_tokens in segments:
        row += [1] * model_tokens + [0] * tool_tokens
    assert len(row) <= length
    return row + [0] * (length - len(row))


def make_batch(scores, lookups, uids, length=24, dtype=torch.float32, lead=0):
    """token_level_rewards / response_mask / uid like verl's: reward on the last model token."""
    masks = []
    for n in lookups:
        masks.append(episode_mask([(3, 2)] * n + [(4, 0)], length, lead))
    mask = torch.tensor(masks, dtype=torch.int64)
    rewards = torch.zeros(len(scores), length, dtype=dtype)
    last = length - 1 - mask.flip(1).argmax(1)
    rewards[torch.arange(len(scores)), last] = torch.tensor(scores, dtype=dtype)
    return rewards, mask, np.array(uids, dtype=object)


def ifpo(rewards, mask, uids, config=None):
    fn = core_algos.get_adv_estimator_fn("ifpo")
    return fn(token_level_rewards=rewards, response_mask=mask, index=uids, config=config)


def random_batch(seed, n_prompts=12, group=4):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, group + 1, n_prompts)  # includes singleton groups
    uids = [str(uuid.UUID(int=int(rng.integers(1 << 62)))) for _ in range(n_prompts)]
    uid_per_row = [u for u, s in zip(uids, sizes, strict=True) for _ in range(s)]
    rng.shuffle(uid_per_row)  # groups need not be contiguous
    scores = rng.choice([0.0, 0.5, 1.0], len(uid_per_row)).tolist()
    return scores, uid_per_row


@pytest.mark.slow  # a fresh interpreter importing verl: ~25 s of CPU
def test_entry_point_registers_ifpo_on_plain_import_verl():
    code = (
        "import sys, verl\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
        "fn = get_adv_estimator_fn('ifpo')\n"
        "assert fn.__module__ == 'verl_recipes.ifpo_estimator', fn.__module__\n"
        "assert 'verl_recipes.plugin' in sys.modules, 'entry point not loaded'\n"
        "assert 'vllm' not in sys.modules, 'the plugin imported vllm'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.slow  # a fresh interpreter importing verl: ~25 s of CPU
def test_external_modules_fallback_when_entry_points_are_off():
    code = (
        "import verl\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
        "get_adv_estimator_fn('ifpo')\n"
    )
    env = {
        **os.environ,
        "VERL_USE_EXTERNAL_PLUGINS": "none",
        "VERL_USE_EXTERNAL_MODULES": "verl_recipes.plugin",
    }
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("lookups_of", ["none", "all"])
def test_equals_verl_grpo_when_one_mode(dtype, norm, lookups_of):
    scores, uids = random_batch(seed=1)
    lookups = [0 if lookups_of == "none" else 1 + i % 3 for i in range(len(scores))]
    rewards, mask, index = make_batch(scores, lookups, uids, dtype=dtype)
    expected, _ = core_algos.compute_grpo_outcome_advantage(
        rewards, mask, index, norm_adv_by_std_in_grpo=norm
    )
    adv, ret = ifpo(rewards, mask, index, {"norm_adv_by_std_in_grpo": norm})
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    assert adv.dtype == expected.dtype == dtype
    torch.testing.assert_close(adv, expected, **tol)
    assert torch.equal(adv, ret)
    assert torch.all(adv[mask == 0] == 0)


def test_hand_computed_mixed_groups():
    # Group a: rewards [1, 0, 1, 1], lookups [2, 0, 3, 1] -> GRPO [.5, -1.5, .5, .5] / (0.5 + eps)
    # * 0.5; weights 2/3 (consulted) and 2 (direct). Group b: one consult, one direct (w = 1).
    scores = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    rewards, mask, index = make_batch(scores, [2, 0, 3, 1, 1, 0], ["a"] * 4 + ["b"] * 2)
    adv, _ = ifpo(rewards, mask, index)
    scalar = adv[torch.arange(6), mask.argmax(1)]
    a = 0.5 / (0.5 + EPS)
    b = 0.5 / (0.5**0.5 + EPS)
    expected = [a / 3, -3 * a, a / 3, a / 3, b, -b]
    torch.testing.assert_close(scalar, torch.tensor(expected), rtol=1e-6, atol=1e-6)


def test_batch_scope_positive_only_and_clipping_through_config():
    # 8 rollouts of one prompt: 1 direct (succeeds), 7 consulted (fail): w_direct = 4, w = 8/14.
    scores = [1.0] + [0.0] * 7
    rewards, mask, index = make_batch(scores, [0] + [1] * 7, ["p"] * 8)
    grpo, _ = core_algos.compute_grpo_outcome_advantage(rewards, mask, index)
    g = grpo[torch.arange(8), mask.argmax(1)]

    def scalar(ifpo_options):
        config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "ifpo": ifpo_options})
        adv, _ = ifpo(rewards, mask, index, config)
        return adv[torch.arange(8), mask.argmax(1)]

    weights = torch.tensor([4.0] + [8 / 14] * 7)
    torch.testing.assert_close(scalar({}), g * weights)
    torch.testing.assert_close(scalar({"max_weight": 2.0}), g * weights.clamp_max(2.0))
    # Positive-only: the successful direct rollout is up-weighted, the failures keep GRPO's value.
    torch.testing.assert_close(
        scalar({"apply_to": "positive"}), g * torch.tensor([4.0] + [1.0] * 7)
    )
    # Batch scope with a second, all-direct prompt: batch has 9 direct, 7 consulted.
    rewards2, mask2, index2 = make_batch(scores * 2, [0] + [1] * 7 + [0] * 8, ["p"] * 8 + ["q"] * 8)
    config = {"ifpo": {"scope": "batch"}}
    adv, _ = ifpo(rewards2, mask2, index2, config)
    grpo2, _ = core_algos.compute_grpo_outcome_advantage(rewards2, mask2, index2)
    w = torch.tensor([16 / 18] + [16 / 14] * 7 + [16 / 18] * 8)
    torch.testing.assert_close(adv, grpo2 * w.unsqueeze(-1))


def test_leading_zeros_and_padding_are_not_lookups():
    # Same episodes with 2 leading boundary tokens: counts unchanged, so advantages unchanged.
    scores = [1.0, 0.0, 0.5, 1.0]
    r1, m1, idx = make_batch(scores, [0, 1, 1, 2], ["u"] * 4, length=30)
    r2, m2, _ = make_batch(scores, [0, 1, 1, 2], ["u"] * 4, length=30, lead=2)
    a1, _ = ifpo(r1, m1, idx)
    a2, _ = ifpo(r2, m2, idx)
    torch.testing.assert_close(a1[m1.bool()], a2[m2.bool()])
    grpo, _ = core_algos.compute_grpo_outcome_advantage(r1, m1, idx)
    assert not torch.allclose(a1, grpo)  # two modes present: IFPO differs from GRPO here


def test_through_ray_trainer_and_v1_helpers_with_dataproto():
    scores, uids = random_batch(seed=3)
    lookups = [i % 3 for i in range(len(scores))]
    rewards, mask, index = make_batch(scores, lookups, uids)
    direct, _ = ifpo(rewards, mask, index, {"ifpo": {"max_weight": 3}})
    config = OmegaConf.create(
        {"adv_estimator": "ifpo", "norm_adv_by_std_in_grpo": True, "ifpo": {"max_weight": 3}}
    )

    def data():
        return DataProto.from_dict(
            tensors={"token_level_rewards": rewards.clone(), "response_mask": mask.clone()},
            non_tensors={"uid": index.copy()},
        )

    out = compute_advantage(data(), adv_estimator="ifpo", config=config)
    torch.testing.assert_close(out.batch["advantages"], direct)
    torch.testing.assert_close(out.batch["returns"], direct)
    keys = [f"{u}_0_{i}" for i, u in enumerate(uids)]
    out_v1 = compute_advantage_for_multi_trajectories(
        data(), batch_keys=keys, adv_estimator="ifpo", config=config
    )
    torch.testing.assert_close(out_v1.batch["advantages"], direct)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"ifpo": {"mode": "binary"}}, "algorithm.ifpo.mode"),
        ({"ifpo": {"scope": "prompt"}}, "algorithm.ifpo.scope"),
        ({"ifpo": {"apply_to": "negative"}}, "algorithm.ifpo.apply_to"),
        ({"ifpo": {"max_weight": 0.5}}, "algorithm.ifpo.max_weight"),
        ({"ifpo": {"max_weight": "inf"}}, "algorithm.ifpo.max_weight"),
        ({"norm_adv_by_std_in_grpo": "yes"}, "algorithm.norm_adv_by_std_in_grpo"),
        (OmegaConf.create({"ifpo": {"scope": "prompt"}}), "algorithm.ifpo.scope"),
    ],
)
def test_bad_config_names_the_key(config, key):
    rewards, mask, index = make_batch([1.0, 0.0], [0, 1], ["a", "a"])
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ifpo(rewards, mask, index, config)


def test_defaults_from_none_dict_and_dictconfig_agree():
    rewards, mask, index = make_batch([1.0, 0.0, 1.0], [0, 1, 1], ["a"] * 3)
    results = [
        ifpo(rewards, mask, index, None)[0],
        ifpo(rewards, mask, index, {})[0],
        ifpo(rewards, mask, index, OmegaConf.create({"adv_estimator": "ifpo", "gamma": 1.0}))[0],
        ifpo(rewards, mask, index, {"ifpo": None})[0],
    ]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=0)


def test_missing_index_is_a_clear_error():
    rewards, mask, _ = make_batch([1.0, 0.0], [0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="needs index"):
        ifpo(rewards, mask, None)


def test_register_is_idempotent_and_refuses_a_foreign_ifpo():
    ifpo_estimator.register()
    ifpo_estimator.register()
    # The same file loaded again by path, under another name (verl's load_module does that).
    load_module(ifpo_estimator.__file__)
    assert core_algos.get_adv_estimator_fn("ifpo") is ifpo_estimator.compute_ifpo_advantage

    def other(**kwargs):
        raise AssertionError("not ours")

    core_algos.ADV_ESTIMATOR_REGISTRY["ifpo"] = other
    try:
        with pytest.raises(ValueError, match="already registered"):
            ifpo_estimator.register()
    finally:
        core_algos.ADV_ESTIMATOR_REGISTRY["ifpo"] = ifpo_estimator.compute_ifpo_advantage


def test_register_restores_a_cleared_registry():
    saved = dict(core_algos.ADV_ESTIMATOR_REGISTRY)
    core_algos.ADV_ESTIMATOR_REGISTRY.clear()
    try:
        ifpo_estimator.register()
        assert core_algos.get_adv_estimator_fn("ifpo") is ifpo_estimator.compute_ifpo_advantage
    finally:
        core_algos.ADV_ESTIMATOR_REGISTRY.update(saved)


def test_reads_verl_algo_config_dataclass():
    rewards, mask, index = make_batch([1.0, 0.0, 1.0], [0, 1, 1], ["a"] * 3)
    expected, _ = ifpo(rewards, mask, index, {"norm_adv_by_std_in_grpo": False})
    got, _ = ifpo(rewards, mask, index, AlgoConfig(norm_adv_by_std_in_grpo=False))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
