"""Trainer mode ``ascl_sync``: verl's synchronous PPO trainer plus ASCL metrics.

    trainer.v1.trainer_mode=ascl_sync

with ``verl_recipes.trainer`` imported in the TaskRunner process (e.g.
``VERL_USE_EXTERNAL_MODULES=verl_recipes.plugin,verl_recipes.trainer``). It is verl's ``sync``
trainer (registered through verl's public ``register_trainer``) with two additions to each
step's logged metrics, computed right after the advantages:

- ``ifpo/*``: what the ``ifpo`` estimator did to the batch (consulted fraction, mixed groups,
  mean weight per mode; see ``verl_recipes.ifpo_estimator.ifpo_batch_metrics``); absent when
  another estimator ran,
- ``ascl/*``: per task kind (``harmful``, ``benign``, ``math``, ...), the share of rollouts that
  looked up the rules (``ascl/lookup_rate/<kind>``, from the env's ``tool_calls``) and the mean
  env reward (``ascl/reward/<kind>``), the overall ``ascl/lookup_rate``, and
  ``ascl/env_rollouts``: how many rollouts carry the env's outcome (``task_kind`` and
  ``tool_calls`` from the ``ascl_agent`` loop).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from verl_recipes import ifpo_estimator

TRAINER_MODE = "ascl_sync"


def ascl_rollout_metrics(
    kinds: list[str], lookups: list[int], rewards: list[float]
) -> dict[str, float]:
    """``ascl/lookup_rate[/<kind>]`` and ``ascl/reward/<kind>`` of one batch of rollouts."""
    if not (len(kinds) == len(lookups) == len(rewards)):
        raise ValueError(f"lengths differ: {len(kinds)}, {len(lookups)}, {len(rewards)}")
    by_kind: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for kind, lookup, reward in zip(kinds, lookups, rewards, strict=True):
        by_kind[kind].append((lookup, reward))
    metrics = {"ascl/lookup_rate": float(np.mean([x > 0 for x in lookups])) if lookups else 0.0}
    for kind, rows in sorted(by_kind.items()):
        metrics[f"ascl/lookup_rate/{kind}"] = float(np.mean([x > 0 for x, _ in rows]))
        metrics[f"ascl/reward/{kind}"] = float(np.mean([r for _, r in rows]))
    return metrics


def _as_list(value: Any) -> list[Any]:
    """A TransferQueue non-tensor column as a list of plain Python values."""
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    return [getattr(item, "data", item) for item in items]


def _kind(extra: Any, data_source: Any) -> str:
    if isinstance(extra, dict) and extra.get("task_kind"):
        return str(extra["task_kind"])
    return str(data_source).rsplit("/", 1)[-1] if data_source is not None else "unknown"


@register_trainer(TRAINER_MODE)
class ASCLSyncTrainer(PPOTrainerSync):
    """verl's ``sync`` trainer that also logs ``ifpo/*`` and ``ascl/*`` metrics (module doc)."""

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
        ifpo_estimator.pop_metrics()  # drop anything left from validation or an earlier call
        batch = super()._compute_advantage(batch, metrics=metrics)
        metrics.update(ifpo_estimator.pop_metrics())
        metrics.update(self._ascl_metrics(batch))
        return batch

    def _ascl_metrics(self, batch: Any) -> dict[str, float]:
        import transfer_queue as tq

        data = tq.kv_batch_get(
            keys=batch.keys,
            partition_id=batch.partition_id,
            select_fields=["extra_fields", "data_source", "rm_scores"],
        )
        extras = _as_list(data["extra_fields"])
        sources = _as_list(data["data_source"])
        rewards = data["rm_scores"].to_padded_tensor(0.0).sum(-1).tolist()
        real = [not (tag or {}).get("is_padding", False) for tag in batch.tags]
        kinds, lookups, scores, from_env = [], [], [], 0
        for keep, extra, source, reward in zip(real, extras, sources, rewards, strict=True):
            if not keep:
                continue
            extra = extra if isinstance(extra, dict) else {}
            from_env += "task_kind" in extra and "tool_calls" in extra
            kinds.append(_kind(extra, source))
            lookups.append(int(extra.get("tool_calls", 0) or 0))
            scores.append(float(reward))
        return {**ascl_rollout_metrics(kinds, lookups, scores), "ascl/env_rollouts": from_env}
