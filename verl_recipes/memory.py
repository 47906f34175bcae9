"""A computed memory bound for the recipes: fp32 logits of one micro-batch.

The largest single tensor of an actor or reference pass over a long-context batch is the logits:
``tokens x vocab`` values, kept in fp32 for the log-softmax. With ``use_dynamic_bsz`` verl packs
each micro-batch up to ``*_max_token_len_per_gpu`` tokens; without it a micro-batch is
``*_micro_batch_size_per_gpu`` rows of up to ``max_prompt_length + max_response_length`` tokens.
:func:`logits_bounds` gives the bound for each pass; :data:`LOGITS_BUDGET_GB` is what the shipped
recipes must stay under on an 80 GB card (tests/test_verl_guards.py, verl_recipes.preflight).
This is a bound on one tensor, not a full memory model: weights, optimizer state, activations
and vLLM's share (``gpu_memory_utilization``, released while the trainer works) come on top.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Qwen2.5's vocabulary (config.json "vocab_size"), the recipes' default model family.
QWEN2_5_VOCAB = 151_936
# Per pass, on an 80 GB card: at most 15 % of it for one micro-batch's fp32 logits.
LOGITS_BUDGET_GB = 12.0
FP32_BYTES = 4


class PassBound(NamedTuple):
    name: str  # actor_update | actor_log_prob | ref_log_prob
    dynamic: bool
    tokens: int  # tokens in one micro-batch, at most
    logits_gb: float  # fp32 logits of that micro-batch, GB (1e9 bytes)
    sequence_tokens: int  # max_prompt_length + max_response_length


def _get(config: Any, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node.get(part) if node is not None else None
    return node


def logits_bounds(config: Any, vocab_size: int = QWEN2_5_VOCAB) -> list[PassBound]:
    """The fp32-logits bound of each pass of a composed recipe (module doc)."""
    sequence = int(_get(config, "data.max_prompt_length")) + int(
        _get(config, "data.max_response_length")
    )
    aro = "actor_rollout_ref"
    passes = [
        (
            "actor_update",
            bool(_get(config, f"{aro}.actor.use_dynamic_bsz")),
            _get(config, f"{aro}.actor.ppo_max_token_len_per_gpu"),
            _get(config, f"{aro}.actor.ppo_micro_batch_size_per_gpu"),
        ),
        (
            "actor_log_prob",
            bool(_get(config, f"{aro}.rollout.log_prob_use_dynamic_bsz")),
            _get(config, f"{aro}.rollout.log_prob_max_token_len_per_gpu"),
            _get(config, f"{aro}.rollout.log_prob_micro_batch_size_per_gpu"),
        ),
        (
            "ref_log_prob",
            bool(_get(config, f"{aro}.ref.log_prob_use_dynamic_bsz")),
            _get(config, f"{aro}.ref.log_prob_max_token_len_per_gpu"),
            _get(config, f"{aro}.ref.log_prob_micro_batch_size_per_gpu"),
        ),
    ]
    bounds = []
    for name, dynamic, max_tokens, micro in passes:
        tokens = int(max_tokens) if dynamic else int(micro or 1) * sequence
        bounds.append(
            PassBound(name, dynamic, tokens, tokens * vocab_size * FP32_BYTES / 1e9, sequence)
        )
    return bounds


def check_bounds(config: Any, vocab_size: int = QWEN2_5_VOCAB) -> list[str]:
    """Problems with a recipe's micro-batch sizes, one line each (empty: fine)."""
    problems = []
    for bound in logits_bounds(config, vocab_size):
        if bound.logits_gb > LOGITS_BUDGET_GB:
            problems.append(
                f"{bound.name}: {bound.tokens} tokens per micro-batch x {vocab_size} vocab = "
                f"{bound.logits_gb:.1f} GB of fp32 logits, over the {LOGITS_BUDGET_GB:.0f} GB "
                "budget; turn on use_dynamic_bsz or lower the token budget"
            )
        if bound.dynamic and bound.tokens < bound.sequence_tokens:
            problems.append(
                f"{bound.name}: token budget {bound.tokens} is below one full sequence "
                f"(max_prompt_length + max_response_length = {bound.sequence_tokens})"
            )
    return problems
