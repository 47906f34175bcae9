"""Configurations that would silently break IFPO or the ASCL recipes, refused with one line.

:func:`check_config` runs where the trainer starts (``ASCLSyncTrainer.__init__``) and in
``verl_recipes.scripts.preflight``; the ``ifpo`` estimator repeats the per-batch checks
(:func:`check_algorithm`, :func:`check_padding`) because it also runs under verl's plain trainers.

- ``algorithm.rollout_correction.rollout_rs`` (rejection sampling) rewrites ``response_mask``
  before the advantage estimator runs; IFPO reads each rollout's lookups from that mask, so a
  rejected token span would change a rollout's mode.
- ``algorithm.ifpo.scope=batch`` when verl pads the batch: verl's trainer appends synthetic rows
  (``verl/trainer/ppo/padding_utils.py``: all-zero ``response_mask``, uid ``pad<hex>``) until the
  batch divides its data-parallel and mini-batch sizes; with ``scope=batch`` those rows count as
  "direct" rollouts and change every real rollout's weight. (With ``scope=group`` they form
  their own group and change nothing.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Keys the recipes add outside verl's ppo_trainer schema (tests/test_verl_guards.py keeps this
# list equal to what the composed recipes hold).
EXTRA_KEYS = frozenset(
    {
        "algorithm.ifpo",  # the ifpo estimator's options
        "ascl",  # ascl.env_overrides, read by the ascl_agent loop
        # Ray's runtime_env (verl passes ray_init through to ray.init): the plugin modules.
        "ray_kwargs.ray_init.runtime_env.env_vars",
    }
)
# verl's padding rows share one uid with this prefix
# (padding_utils.upsample_batch_to_divisible_size).
PADDING_UID_PREFIX = "pad"


class ConfigGuardError(ValueError):
    """A configuration that would silently break IFPO or ASCL; the message names the key."""


def _get(config: Any, dotted: str, default: Any = None) -> Any:
    node = config
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if isinstance(node, Mapping | DictConfig) else None
    return default if node is None else node


def check_algorithm(algorithm: Any) -> None:
    """Refuse ``rollout_rs`` with the ``ifpo`` estimator (``algorithm`` is verl's section)."""
    if algorithm is None or _get(algorithm, "adv_estimator", "ifpo") != "ifpo":
        return
    rs = _get(algorithm, "rollout_correction.rollout_rs")
    if rs:
        raise ConfigGuardError(
            f"algorithm.rollout_correction.rollout_rs={rs!r} rewrites response_mask before the "
            "ifpo estimator reads each rollout's lookups from it; unset it (null) or use "
            "adv_estimator=grpo"
        )


def padding_rows(config: Any) -> int:
    """How many synthetic rows verl's trainer appends to each training batch (0: none).

    verl pads ``data.train_batch_size * rollout.n`` up to a multiple of the actor's
    data-parallel size and ``ppo_mini_batch_size * rollout.n`` (and the critic's, when used):
    ``RayPPOTrainer._get_required_batch_multiple`` (``verl/trainer/ppo/v1/trainer_base.py``).
    """
    n = int(_get(config, "actor_rollout_ref.rollout.n", 1))
    total = int(_get(config, "data.train_batch_size")) * n
    world = int(_get(config, "trainer.nnodes", 1)) * int(_get(config, "trainer.n_gpus_per_node", 1))
    sp = int(_get(config, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1) or 1)
    multiple = max(1, world // sp)
    multiple = math.lcm(
        multiple, int(_get(config, "actor_rollout_ref.actor.ppo_mini_batch_size")) * n
    )
    if _get(config, "critic.enable"):
        multiple = math.lcm(multiple, int(_get(config, "critic.ppo_mini_batch_size")) * n)
    return (-total) % multiple


def check_padding(scope: str, uids: Iterable[Any]) -> None:
    """Refuse ``scope=batch`` on a batch holding verl's padding rows (estimator-time check)."""
    if scope != "batch":
        return
    pads = sum(str(u).startswith(PADDING_UID_PREFIX) for u in uids)
    if pads:
        raise ConfigGuardError(
            f"algorithm.ifpo.scope=batch: this batch holds {pads} padding rows of verl's trainer, "
            "which would count as direct rollouts; make data.train_batch_size * rollout.n a "
            "multiple of the data-parallel size and ppo_mini_batch_size * rollout.n, or use "
            "scope=group"
        )


def check_config(config: Any) -> None:
    """Refuse a composed trainer config that would silently break IFPO (module doc)."""
    algorithm = _get(config, "algorithm")
    check_algorithm(algorithm)
    if _get(algorithm, "adv_estimator") != "ifpo":
        return
    scope = _get(algorithm, "ifpo.scope", "group")
    pads = padding_rows(config)
    if scope == "batch" and pads:
        raise ConfigGuardError(
            f"algorithm.ifpo.scope=batch with {pads} padding rows per batch (verl pads "
            "data.train_batch_size * rollout.n to a multiple of the data-parallel size and "
            "ppo_mini_batch_size * rollout.n); those rows would count as direct rollouts; "
            "change the batch sizes or use scope=group"
        )


def extra_keys(config: Any, base: Any) -> set[str]:
    """Dotted keys of ``config`` absent from ``base`` (both composed configs), shallowest only."""
    found: set[str] = set()

    def walk(node: Any, reference: Any, prefix: str) -> None:
        for key in node:
            path = f"{prefix}{key}"
            if not isinstance(reference, Mapping | DictConfig) or key not in reference:
                found.add(path)
            elif isinstance(node[key], Mapping | DictConfig):
                walk(node[key], reference[key], path + ".")

    plain = OmegaConf.to_container(config) if isinstance(config, DictConfig) else config
    ref = OmegaConf.to_container(base) if isinstance(base, DictConfig) else base
    walk(plain, ref, "")
    return found
