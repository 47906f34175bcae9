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

Each call also records ``ifpo/*`` statistics of the batch (:func:`ifpo_batch_metrics`); verl
gives estimators no way to log, so the ``ascl_sync`` trainer (``verl_recipes.trainer``) collects
them with :func:`pop_metrics` after computing advantages and logs them with the step's metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo import core_algos

from ascl_env.ifpo import IFPOOptions, IFPOResult, compute_ifpo, lookup_counts_from_mask
from verl_recipes import guards

__all__ = [
    "IFPOOptions",
    "IFPOSettings",
    "compute_ifpo_advantage",
    "ifpo_batch_metrics",
    "ifpo_settings",
    "pop_metrics",
    "register",
]

NAME = "ifpo"
# verl's compute_advantage does not pass epsilon to registered estimators; GRPO's default.
EPSILON = 1e-6
# Statistics of the latest estimator call in this process, until pop_metrics() takes them.
_pending_metrics: dict[str, float] = {}


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
    # Under verl's plain trainers too: configurations that would silently break IFPO.
    guards.check_algorithm(config)
    guards.check_padding(settings.options.scope, index)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        # One bool copy of the (often int64) mask, read once: the lookup counts and the broadcast.
        model_tokens = response_mask.bool()
        result = compute_ifpo(
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
        advantages = result.advantages.to(dtype)
        advantages = torch.where(model_tokens, advantages.unsqueeze(-1), advantages.new_zeros(()))
    _pending_metrics.clear()
    _pending_metrics.update(ifpo_batch_metrics(result))
    return advantages, advantages


def pop_metrics() -> dict[str, float]:
    """The ``ifpo/*`` statistics of the latest estimator call in this process, then forgets them.

    Empty when the estimator has not run since the last call (e.g. a GRPO run).
    """
    metrics = dict(_pending_metrics)
    _pending_metrics.clear()
    return metrics


def ifpo_batch_metrics(result: IFPOResult) -> dict[str, float]:
    """What IFPO did to one batch, as ``ifpo/*`` metrics, read off the estimator's own result.

    The weights are :func:`ascl_env.ifpo.compute_ifpo`'s (w_i = G / (K_g n_{g,m_i}), or over the
    batch with ``scope="batch"``, then ``max_weight`` and ``apply_to``), so that IFPO's advantage
    is ``weight * GRPO advantage``. Keys:

    - ``ifpo/consulted_frac``: share of rollouts that looked up the rules at least once,
    - ``ifpo/groups``, ``ifpo/mixed_groups``: prompt groups, and groups holding both modes,
    - ``ifpo/weight_mean/{consulted,direct}``: mean weight per mode (present modes only),
    - ``ifpo/mixed_weight_mean/{consulted,direct}``: the same within mixed groups only,
    - ``ifpo/weight_min``, ``ifpo/weight_max``, and ``ifpo/reweighted_frac``: the share of
      rollouts whose weight is not 1.
    """
    weights = result.weights.detach().double().cpu()
    consulted = result.consulted.cpu()
    group = result.group.cpu()
    n = weights.shape[0]
    cell_count = torch.zeros(result.num_groups, 2, dtype=torch.float64)
    cell_count.index_put_((group, consulted.long()), torch.ones(n, dtype=torch.float64), True)
    mixed_group = (cell_count > 0).sum(1) == 2
    metrics: dict[str, float] = {
        "ifpo/consulted_frac": consulted.double().mean().item() if n else 0.0,
        "ifpo/groups": float(result.num_groups),
        "ifpo/mixed_groups": float(mixed_group.sum()),
        "ifpo/weight_min": weights.min().item() if n else 1.0,
        "ifpo/weight_max": weights.max().item() if n else 1.0,
        "ifpo/reweighted_frac": ((weights - 1.0).abs() > 1e-9).double().mean().item() if n else 0.0,
    }
    in_mixed = mixed_group[group]
    for name, selected in (("consulted", consulted), ("direct", ~consulted)):
        if selected.any():
            metrics[f"ifpo/weight_mean/{name}"] = weights[selected].mean().item()
        if (selected & in_mixed).any():
            metrics[f"ifpo/mixed_weight_mean/{name}"] = weights[selected & in_mixed].mean().item()
    return metrics


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
