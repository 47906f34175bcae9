"""The ``"ifpo"`` advantage estimator for verl (``algorithm.adv_estimator=ifpo``).

Importing this module registers the estimator in verl's ``ADV_ESTIMATOR_REGISTRY``; the
``verl.plugins`` entry point (``verl_recipes.plugin``) imports it in every verl process. Options::

    algorithm:
      adv_estimator: ifpo
      norm_adv_by_std_in_grpo: true   # as for GRPO
      ifpo:                           # optional; these are the defaults
        scope: group                  # group | batch
        apply_to: all                 # all | positive
        max_weight: null              # clip on the inverse-frequency weight, >= 1

verl hands an estimator only ``token_level_rewards, response_mask, index, config``, so a
rollout's lookup count is read from ``response_mask`` (see ``lookup_counts_from_mask``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo import core_algos

from ascl_env.ifpo import IFPOOptions, compute_ifpo_advantages, lookup_counts_from_mask

__all__ = ["IFPOOptions", "IFPOSettings", "compute_ifpo_advantage", "ifpo_settings", "register"]

NAME = "ifpo"
# verl's compute_advantage does not pass epsilon to registered estimators; GRPO's default.
EPSILON = 1e-6


class IFPOSettings(NamedTuple):
    options: IFPOOptions
    norm_adv_by_std_in_grpo: bool


def ifpo_settings(config: DictConfig | Mapping[str, Any] | None) -> IFPOSettings:
    """Read and validate ``algorithm.ifpo.*`` and ``algorithm.norm_adv_by_std_in_grpo``.

    ``config`` is verl's ``algorithm`` section (a ``DictConfig``), a plain dict, or ``None`` (all
    defaults). Raises ``ValueError`` naming the offending key.
    """
    if config is None:
        return IFPOSettings(IFPOOptions(), norm_adv_by_std_in_grpo=True)
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        raise ValueError(f"algorithm config must be a mapping or None, got {type(config).__name__}")
    norm = config.get("norm_adv_by_std_in_grpo", True)
    if not isinstance(norm, bool):
        raise ValueError(f"algorithm.norm_adv_by_std_in_grpo must be true or false, got {norm!r}")
    options = config.get("ifpo") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"algorithm.ifpo must be a mapping, got {options!r}")
    return IFPOSettings(IFPOOptions.parse(options, "algorithm.ifpo."), norm)


def compute_ifpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: DictConfig | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator: IFPO advantages broadcast over the response tokens.

    Args:
        token_level_rewards: (bs, L) rewards; the sequence score is their sum, as in GRPO.
        response_mask: (bs, L); 1 = model token, 0 = tool response or padding.
        index: (bs,) prompt uids (``data.non_tensor_batch["uid"]``); required.
        config: the ``algorithm`` config section, a dict, or ``None``.
        **kwargs: further batch fields verl may pass (e.g. ``reward_baselines``); unused.

    Returns:
        ``(advantages, returns)``, both (bs, L) and equal, zero where ``response_mask`` is 0.
    """
    if index is None:
        raise ValueError("the ifpo estimator needs index (the rollouts' uid) to form groups")
    settings = ifpo_settings(config)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        # One bool copy of the (often int64) mask serves both the lookup count and the broadcast.
        model_tokens = response_mask.bool()
        advantages = compute_ifpo_advantages(
            scores,
            index,
            lookup_counts_from_mask(model_tokens),
            scope=settings.options.scope,
            apply_to=settings.options.apply_to,
            max_weight=settings.options.max_weight,
            norm_by_std=settings.norm_adv_by_std_in_grpo,
            eps=EPSILON,
        )
        # Same values and dtype as GRPO's ``scores.unsqueeze(-1) * response_mask`` for a 0/1 mask.
        # A 0-dim tensor as the fill value: torch.where with a Python scalar is ~1.5x slower on CPU.
        dtype = torch.promote_types(scores.dtype, response_mask.dtype)
        advantages = advantages.to(dtype)
        advantages = torch.where(model_tokens, advantages.unsqueeze(-1), advantages.new_zeros(()))
    return advantages, advantages


def register() -> None:
    """Register ``"ifpo"`` in verl's registry; a no-op when this estimator is already there.

    A module loaded twice under two names (entry point and file path) holds two function objects
    for the same source, which verl's own decorator would reject; those count as already there.
    Any other estimator registered as ``"ifpo"`` is an error.
    """
    registered = core_algos.ADV_ESTIMATOR_REGISTRY.get(NAME)
    if registered is None:
        core_algos.register_adv_est(NAME)(compute_ifpo_advantage)
        return
    ours = compute_ifpo_advantage.__code__
    theirs = getattr(registered, "__code__", None)
    if theirs is None or (theirs.co_filename, theirs.co_name) != (ours.co_filename, ours.co_name):
        raise ValueError(f"advantage estimator {NAME!r} is already registered to {registered!r}")


register()
