"""IFPO: Inverse-Frequency Policy Optimization advantages (framework-agnostic, torch only).

During GRPO-style RL with a rule-lookup tool, the policy tends to drift toward always consulting
(or never consulting) because that mode is, on average, rewarded more. IFPO rebalances the
group-normalised advantages so that the "consulted" and "direct" rollouts of a group carry equal
total weight, whatever the current consultation rate.

This is the only module of ``ascl_env`` that imports torch. The verl adapter lives in
``verl_recipes.ifpo_estimator``; this module knows nothing about verl.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "IFPOOptions",
    "IFPOResult",
    "compute_ifpo",
    "compute_ifpo_advantages",
    "lookup_counts_from_mask",
]

Scope = Literal["group", "batch"]
ApplyTo = Literal["all", "positive"]


class IFPOOptions(BaseModel):
    """How the inverse-frequency weights are formed; the one validation of IFPO's options (the
    keyword arguments of :func:`compute_ifpo_advantages` and verl's ``algorithm.ifpo``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    scope: Scope = "group"
    apply_to: ApplyTo = "all"
    # Weights average 1, so a clip below 1 would shrink every advantage, not just the outliers.
    max_weight: float | None = Field(default=None, ge=1.0, allow_inf_nan=False)

    @classmethod
    def parse(cls, options: Mapping[str, Any], prefix: str = "") -> IFPOOptions:
        """Validate ``options``; the ``ValueError`` names the key as ``prefix + key``."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as exc:
            error = exc.errors()[0]
            key = prefix + ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                known = ", ".join(cls.model_fields)
                raise ValueError(f"unknown key {key} (known keys: {known})") from None
            raise ValueError(f"{key}: {error['msg']} (got {error.get('input')!r})") from None


GroupIds = np.ndarray | Sequence | torch.Tensor


class IFPOResult(NamedTuple):
    """IFPO's advantages and what formed them, for one batch (:func:`compute_ifpo`)."""

    advantages: torch.Tensor  # (N,) A_i = w_i * GRPO advantage
    weights: torch.Tensor  # (N,) w_i after ``max_weight`` and ``apply_to``
    group: torch.Tensor  # (N,) int64 group index in 0..num_groups-1
    num_groups: int
    consulted: torch.Tensor  # (N,) bool: the rollout looked up the rules


def compute_ifpo_advantages(
    scores: torch.Tensor,
    group_ids: GroupIds,
    modes: torch.Tensor | np.ndarray | Sequence,
    *,
    scope: Scope = "group",
    apply_to: ApplyTo = "all",
    max_weight: float | None = None,
    norm_by_std: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-sample IFPO advantages: ``compute_ifpo(...).advantages`` (the formula and the
    arguments are :func:`compute_ifpo`'s)."""
    return compute_ifpo(
        scores,
        group_ids,
        modes,
        scope=scope,
        apply_to=apply_to,
        max_weight=max_weight,
        norm_by_std=norm_by_std,
        eps=eps,
    ).advantages


def compute_ifpo(
    scores: torch.Tensor,
    group_ids: GroupIds,
    modes: torch.Tensor | np.ndarray | Sequence,
    *,
    scope: Scope = "group",
    apply_to: ApplyTo = "all",
    max_weight: float | None = None,
    norm_by_std: bool = True,
    eps: float = 1e-6,
) -> IFPOResult:
    r"""Per-sample IFPO advantages for one batch of outcome-rewarded rollouts, with the weights.

    For a group g of G rollouts of one prompt with scores r_i and modes m_i in {consulted, direct}:

    1. GRPO (exactly verl's ``compute_grpo_outcome_advantage``)::

           Â_i = (r_i - mean_g r) / (std_g r + eps)      if norm_by_std
           Â_i =  r_i - mean_g r                         otherwise

       ``std`` is the unbiased (Bessel-corrected) standard deviation, as ``torch.std``. A
       singleton group uses mean 0 and std 1, so its advantage is r_i / (1 + eps).
    2. Inverse-frequency weights, with n_{g,m} the rollouts of mode m in g and K_g the number of
       modes present in g (1 or 2)::

           w_i = G / (K_g * n_{g, m_i})

       The weights average 1 over the group; with one mode present every w_i = 1, so IFPO equals
       GRPO there. With ``scope="batch"`` the counts are taken over the whole batch instead:
       w_i = N / (K * n_{m_i}), N the batch size and K the modes present in the batch.
    3. ``max_weight`` clips: w_i <- min(w_i, max_weight). ``apply_to="positive"`` keeps
       w_i = 1 wherever Â_i <= 0 (only better-than-average rollouts are re-weighted).
    4. A_i = w_i * Â_i.

    Args:
        scores: (N,) floating tensor of sequence-level rewards, on any device. Its dtype and device
            are kept.
        group_ids: (N,) prompt identifiers (verl's ``uid``): a numpy array (object array of strings
            included), a list, or a tensor, of hashable values. Equal ids form a group; order
            does not matter.
        modes: (N,) either a bool tensor (True = consulted the rules) or lookup counts
            (> 0 = consulted), as a tensor, array or list.
        scope: ``"group"`` (frequencies per prompt group) or ``"batch"`` (over the whole batch).
        apply_to: ``"all"`` or ``"positive"`` (re-weight only positive advantages).
        max_weight: upper clip for w_i, at least 1 (weights average 1); ``None`` = no clip.
        norm_by_std: divide by the group std (verl's ``norm_adv_by_std_in_grpo``).
        eps: added to the std, as verl's ``epsilon``.

    Returns:
        :class:`IFPOResult`: the (N,) advantages and weights (same dtype and device as
        ``scores``), each rollout's group index and whether it consulted. The weights are the
        one definition of w_i; ``verl_recipes.ifpo_estimator`` reports its metrics from them.
    """
    IFPOOptions.parse({"scope": scope, "apply_to": apply_to, "max_weight": max_weight})
    if not (isinstance(eps, int | float) and eps >= 0):
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    if not isinstance(scores, torch.Tensor) or scores.ndim != 1:
        raise ValueError(f"scores must be a 1-D tensor, got {_describe(scores)}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    n = scores.shape[0]
    gidx, num_groups = _group_index(group_ids, n, scores.device)
    consulted = _consulted(modes, n, scores.device)

    with torch.no_grad():
        advantages, count = _grpo_advantages(scores, gidx, num_groups, norm_by_std, eps)
        weights = _inverse_frequency_weights(count, gidx, num_groups, consulted, scope)
        if max_weight is not None:
            weights = weights.clamp_max(max_weight)
        if apply_to == "positive":
            weights = torch.where(advantages > 0, weights, torch.ones_like(weights))
        return IFPOResult(weights * advantages, weights, gidx, num_groups, consulted)


def _grpo_advantages(
    scores: torch.Tensor, gidx: torch.Tensor, num_groups: int, norm_by_std: bool, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO's advantages (step 1) and the size of each group."""
    ones = torch.ones_like(scores)
    count = scores.new_zeros(num_groups).index_add_(0, gidx, ones)
    mean = scores.new_zeros(num_groups).index_add_(0, gidx, scores) / count
    centered = scores - mean[gidx]
    sq = scores.new_zeros(num_groups).index_add_(0, gidx, centered * centered)
    std = (sq / (count - 1).clamp_min(1)).sqrt()
    singleton = count == 1
    mean = mean.masked_fill(singleton, 0.0)
    advantages = scores - mean[gidx]
    if norm_by_std:
        # verl divides a singleton by a float32 ``torch.tensor(1.0) + epsilon`` whatever the
        # score dtype; use the same rounded value, else float64 results differ by ~5e-8.
        singleton_denominator = (torch.tensor(1.0) + eps).item()
        denominator = (std + eps).masked_fill(singleton, singleton_denominator)
        advantages = advantages / denominator[gidx]
    return advantages, count


def _inverse_frequency_weights(
    count: torch.Tensor,
    gidx: torch.Tensor,
    num_groups: int,
    consulted: torch.Tensor,
    scope: Scope,
) -> torch.Tensor:
    """w_i = G / (K_g n_{g,m_i}) per group, or N / (K n_{m_i}) over the batch (step 2)."""
    ones = torch.ones_like(count[gidx])
    cell = consulted.long()
    if scope == "group":
        cell = gidx * 2 + cell
        cell_count = count.new_zeros(2 * num_groups).index_add_(0, cell, ones)
        modes_present = (cell_count.view(num_groups, 2) > 0).sum(1).to(count.dtype)
        return count[gidx] / (modes_present[gidx] * cell_count[cell])
    cell_count = count.new_zeros(2).index_add_(0, cell, ones)
    n = gidx.shape[0]
    return n / ((cell_count > 0).sum().to(count.dtype) * cell_count[cell])


def lookup_counts_from_mask(response_mask: torch.Tensor) -> torch.Tensor:
    """Number of lookups per rollout, read from verl's ``response_mask``.

    In verl's tool agent loop the model's tokens have mask 1 and each tool response is a run of
    mask-0 tokens inserted between two model segments. So the number of tool rounds is the number
    of 0-runs lying strictly between two 1-runs, i.e. ``max(#1-runs - 1, 0)``: leading zeros
    (boundary tokens) and trailing padding are not counted.

    Args:
        response_mask: (bs, L) tensor; nonzero = model-generated token. Any dtype, any device.

    Returns:
        (bs,) int64 tensor on the same device.
    """
    if not isinstance(response_mask, torch.Tensor) or response_mask.ndim != 2:
        raise ValueError(
            f"response_mask must be a 2-D (bs, L) tensor, got {_describe(response_mask)}"
        )
    m = response_mask if response_mask.dtype == torch.bool else response_mask.bool()
    return (_run_counts(m) - 1).clamp_min(0)


# Multiplying a 64-bit word by this adds its 8 bytes into the top byte (no carry: each is 0 or 1).
_BYTE_SUM = 0x0101010101010101


def _run_counts(m: torch.Tensor) -> torch.Tensor:
    """Number of True-runs in each row of the (bs, L) bool tensor ``m``, as int64.

    A run starts at column 0 or where True follows False. The start flags are written into a bool
    buffer padded to a multiple of 8 columns and counted 8 at a time: viewed as int64 words, a
    multiply sums each word's 8 flag bytes into its top byte. Torch's own sum of a bool or uint8
    tensor is several times slower on CPU than this one compare, multiply, shift and word sum.
    """
    bs, length = m.shape
    if length == 0:
        return torch.zeros(bs, dtype=torch.int64, device=m.device)
    width = -(-length // 8) * 8
    starts = torch.empty((bs, width), dtype=torch.bool, device=m.device)
    starts[:, 0] = m[:, 0]
    torch.gt(m[:, 1:], m[:, :-1], out=starts[:, 1:length])
    starts[:, length:] = False
    # In place (this function's own buffer): a fresh 4 MB tensor per op costs page faults on CPU.
    # torch's int64 multiply wraps around, so only the top byte's sum (at most 8) is kept.
    words = starts.view(torch.int64)
    return words.mul_(_BYTE_SUM).bitwise_right_shift_(56).sum(1)


def _group_index(group_ids: GroupIds, n: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """Map arbitrary group ids to contiguous int64 indices 0..G-1 on ``device``."""
    if isinstance(group_ids, torch.Tensor):
        if group_ids.ndim != 1 or group_ids.shape[0] != n:
            raise ValueError(f"group_ids must have shape ({n},), got {tuple(group_ids.shape)}")
        uniques, inverse = torch.unique(group_ids.to(device), return_inverse=True)
        return inverse, uniques.numel()
    ids = np.asarray(group_ids)
    if ids.shape != (n,):
        raise ValueError(f"group_ids must have shape ({n},), got {ids.shape}")
    if ids.dtype != object:
        uniques, inverse = np.unique(ids, return_inverse=True)
        return torch.from_numpy(inverse.reshape(-1).astype(np.int64)).to(device), len(uniques)
    # Object ids (verl's uid strings): number them in order of first appearance with dicts, in C
    # loops; several times faster than np.unique's sort, which compares Python objects pairwise.
    values = ids.tolist()
    try:
        numbers = {value: i for i, value in enumerate(dict.fromkeys(values))}
    except TypeError as exc:
        raise ValueError(f"group_ids must be hashable (e.g. str or int): {exc}") from exc
    inverse = np.fromiter(map(numbers.__getitem__, values), dtype=np.int64, count=n)
    return torch.from_numpy(inverse).to(device), len(numbers)


def _consulted(modes: torch.Tensor | np.ndarray | Sequence, n: int, device) -> torch.Tensor:
    """Bool (N,) tensor: True where the rollout consulted the rules."""
    modes = torch.as_tensor(modes, device=device)
    if modes.shape != (n,):
        raise ValueError(f"modes must have shape ({n},), got {tuple(modes.shape)}")
    if modes.dtype == torch.bool or modes.numel() == 0:  # [] becomes a float tensor
        return modes.bool()
    if modes.is_floating_point() or modes.is_complex():
        raise TypeError(f"modes must be bool or integer lookup counts, got dtype {modes.dtype}")
    if bool((modes < 0).any()):
        raise ValueError("modes holds a negative lookup count")
    return modes > 0


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return type(x).__name__
