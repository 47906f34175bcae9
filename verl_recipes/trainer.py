"""Trainer mode ``ascl_sync``: verl's synchronous PPO trainer plus ASCL metrics.

    trainer.v1.trainer_mode=ascl_sync

with ``verl_recipes.trainer`` imported in the TaskRunner process (e.g.
``VERL_USE_EXTERNAL_MODULES=verl_recipes.plugin,verl_recipes.trainer``). It is verl's ``sync``
trainer (registered through verl's public ``register_trainer``) with two additions to each
step's logged metrics, computed right after the advantages:

- ``ifpo/*``: what the ``ifpo`` estimator did to the batch (consulted fraction, mixed groups,
  mean weight per mode; see ``verl_recipes.ifpo_estimator.ifpo_batch_metrics``); absent when
  another estimator ran,
- ``ascl/*``: per task kind (``harmful``, ``benign``, ``math``, ...), the share of rollouts whose
  lookup the env executed (``ascl/lookup_rate/<kind>``, from the env's ``tool_calls``), the
  share IFPO counts as consulted (``ascl/consult_rate/<kind>``, a tool turn in the response
  mask, malformed calls included), the mean env reward (``ascl/reward/<kind>``), the env's
  outcome rates (``ascl/safe_rate/harmful``: the harm judge found the answer not harmful;
  ``ascl/answered_rate/benign``: not refused; ``ascl/correct_rate/math``), and
  ``ascl/env_rollouts``: how many rollouts carry the env's outcome (``task_kind`` and
  ``tool_calls`` from the ``ascl_agent`` loop).

verl 0.9.1 picks its replay buffer, checkpoint and refill code paths by ``trainer_mode ==
"sync"``, so the trainer rewrites ``trainer.v1.trainer_mode`` to ``sync`` once verl has chosen
this class; and it refuses configurations that would silently break IFPO
(:func:`verl_recipes.guards.check_config`) before any worker starts. The recipes select this
trainer (``ascl_common.yaml``), so GPU runs and the CPU smoke share it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig, open_dict
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from ascl_env.ifpo import lookup_counts_from_mask
from verl_recipes import guards, ifpo_estimator

TRAINER_MODE = "ascl_sync"


def ascl_rollout_metrics(
    kinds: list[str],
    lookups: list[int],
    rewards: list[float],
    consulted: list[bool] | None = None,
    outcomes: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Per-kind rates of one batch of rollouts.

    ``ascl/lookup_rate[/<kind>]``: share with at least one lookup the env executed;
    ``ascl/consult_rate[/<kind>]`` (when ``consulted`` is given): share IFPO counts as consulted
    (a tool turn in the tokens, a malformed call included); ``ascl/reward/<kind>``: mean reward.
    With ``outcomes`` (the env's ``harmful``, ``refused`` and ``correct`` of each rollout), also
    ``ascl/safe_rate/harmful`` (``harmful`` is False), ``ascl/answered_rate/benign``
    (``refused`` is False) and ``ascl/correct_rate/math`` (``correct`` is True); a rollout
    with no verdict (truncated) counts as not safe, not answered, not correct, as its reward does.
    """
    consulted = consulted if consulted is not None else []
    outcomes = outcomes if outcomes is not None else []
    if (
        not (len(kinds) == len(lookups) == len(rewards))
        or len(consulted) not in (0, len(kinds))
        or len(outcomes) not in (0, len(kinds))
    ):
        raise ValueError(
            f"lengths differ: {len(kinds)}, {len(lookups)}, {len(rewards)}, {len(consulted)}, "
            f"{len(outcomes)}"
        )
    columns: dict[str, list[np.ndarray]] = {"lookup_rate": [np.asarray(lookups) > 0]}
    if consulted:
        columns["consult_rate"] = [np.asarray(consulted, dtype=bool)]
    kind_array = np.asarray(kinds, dtype=object)
    metrics: dict[str, float] = {}
    for name, (values,) in columns.items():
        metrics[f"ascl/{name}"] = float(values.mean()) if len(values) else 0.0
        for kind in sorted(set(kinds)):
            metrics[f"ascl/{name}/{kind}"] = float(values[kind_array == kind].mean())
    reward_array = np.asarray(rewards, dtype=float)
    for kind in sorted(set(kinds)):
        metrics[f"ascl/reward/{kind}"] = float(reward_array[kind_array == kind].mean())
    for kind, name, field, wanted in OUTCOME_RATES:
        if not outcomes or kind not in kinds:
            continue
        hits = [o.get(field) is wanted for k, o in zip(kinds, outcomes, strict=True) if k == kind]
        metrics[f"ascl/{name}/{kind}"] = float(np.mean(hits))
    return metrics


# (task kind, metric name, outcome field, the value that counts): the env's verdict rates.
OUTCOME_RATES = (
    ("harmful", "safe_rate", "harmful", False),
    ("benign", "answered_rate", "refused", False),
    ("math", "correct_rate", "correct", True),
)


def _as_list(value: Any) -> list[Any]:
    """A TransferQueue non-tensor column as a list of plain Python values."""
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    return [getattr(item, "data", item) for item in items]


VERDICT_FIELDS = ("harmful", "refused", "correct")


def _verdict(value: Any) -> bool | None:
    """An outcome flag as stored in ``extra_fields`` (bool, numpy bool, None or NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return bool(value)


def _kind(extra: Any, data_source: Any) -> str:
    if isinstance(extra, dict) and extra.get("task_kind"):
        return str(extra["task_kind"])
    return str(data_source).rsplit("/", 1)[-1] if data_source is not None else "unknown"


@register_trainer(TRAINER_MODE)
class ASCLSyncTrainer(PPOTrainerSync):
    """verl's ``sync`` trainer that also logs ``ifpo/*`` and ``ascl/*`` metrics (module doc)."""

    def __init__(self, config: DictConfig) -> None:
        # verl tests ``trainer_mode == "sync"`` to pick the replay buffer, checkpointing and
        # refill behaviour (trainer_base.py); under the name "ascl_sync" it would silently take
        # the async paths (ReplayBufferAsync). get_trainer_cls has already picked this class.
        with open_dict(config):
            config.trainer.v1.trainer_mode = "sync"
        guards.check_config(config)
        super().__init__(config)

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
            select_fields=["extra_fields", "data_source", "rm_scores", "response_mask"],
        )
        masks = data["response_mask"].to_padded_tensor(0)
        consulted_all = (lookup_counts_from_mask(masks.bool()) > 0).tolist()
        extras = _as_list(data["extra_fields"])
        sources = _as_list(data["data_source"])
        rewards = data["rm_scores"].to_padded_tensor(0.0).sum(-1).tolist()
        real = [not (tag or {}).get("is_padding", False) for tag in batch.tags]
        kinds, lookups, scores, consulted, outcomes, from_env = [], [], [], [], [], 0
        rows = zip(real, extras, sources, rewards, consulted_all, strict=True)
        for keep, extra, source, reward, consult in rows:
            if not keep:
                continue
            consulted.append(bool(consult))
            extra = extra if isinstance(extra, dict) else {}
            from_env += "task_kind" in extra and "tool_calls" in extra
            kinds.append(_kind(extra, source))
            lookups.append(int(extra.get("tool_calls", 0) or 0))
            scores.append(float(reward))
            outcomes.append({key: _verdict(extra.get(key)) for key in VERDICT_FIELDS})
        metrics = ascl_rollout_metrics(kinds, lookups, scores, consulted, outcomes)
        return {**metrics, "ascl/env_rollouts": from_env}
