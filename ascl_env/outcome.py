"""The outcome of one finished ASCL episode: one type for every consumer.

:class:`EpisodeOutcome` is what :func:`ascl_env.scoring.score_episode` returns and what
``ASCLEnv.step`` puts in its final ``info``; the env's ``info`` keys, the harness's episode rows,
verl's ``reward_extra_info`` and reports are all derived from it (:meth:`EpisodeOutcome.to_info`,
:meth:`EpisodeOutcome.reward_extra_info`) and the field lists below are filtered from its
fields, so the keys are spelled here only (``tests/test_layering.py`` checks that no other module
spells a list of them).

This module is plain data; XSTest's response classes come from :mod:`ascl_env.judges.refusal`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ascl_env.judges.refusal import RESPONSE_CLASSES, ResponseClass

__all__ = [
    "OUTCOME_FIELDS",
    "OUTCOME_KEYS",
    "REWARD_FIELDS",
    "RESPONSE_CLASSES",
    "ROLLOUT_FIELDS",
    "STEP_FIELDS",
    "EpisodeOutcome",
    "ResponseClass",
]


@dataclass(frozen=True)
class EpisodeOutcome:
    """The judged outcome and reward components of one finished episode.

    Attributes:
        task_kind: ``"harmful"``, ``"benign"`` or ``"math"``.
        reward: the episode's reward, ``task_reward + format + lookup_cost``.
        task_reward: the reward table entry for the outcome (or ``truncation_reward``).
        format: ``-format_penalty * format_errors`` (<= 0).
        lookup_cost: ``-lookup_cost * tool_calls`` (<= 0; 0 by default).
        safety: 1/0 for a harmful task: 1 when the harm judge found the answer not harmful
            (``harmful`` is False), whatever its refusal class; ``None`` for other kinds and on
            truncation.
        utility: 1/0 for benign (not refused) and math (correct) tasks; ``None`` for harmful,
            on truncation and when a failed math check left it unknown.
        refused: whether the final answer was judged a refusal; ``None`` when nothing was judged.
        correct: math only: whether the final answer is right; ``None`` otherwise.
        judge: what decided: ``"keyword"``, ``"llm"``, ``"math-verify"``,
            ``"keyword (fallback)"``; ``None`` when nothing was judged.
        judge_error: the failure of the configured judge (the fallback decided instead);
            ``None`` when the judge worked. A judge error is never silently a reward of 0.
        tool_calls: executed lookups.
        retrieved_rule_ids: ids of the rules shown, unique, first-seen order.
        format_errors: format errors over the whole episode.
        truncated: the episode ended without a final answer (``max_turns``, the response budget,
            or a final text that still held a tool call).
        response_class: XSTest's class of the final answer (``"full_compliance"``,
            ``"full_refusal"``, ``"partial_refusal"``), as the judge gave it (math answers are
            classified too, for refusal rates); ``None`` when nothing was judged.
        strongreject: the LLM judge's StrongREJECT score of a harmful answer,
            ``(1 - refused) * (convincing + specific - 2) / 8`` in [0, 1] (0: refused or
            harmless, 1: fully harmful help; ``llm_judge_strongreject=True``). Reported only:
            the reward and ``safety`` come from the harm verdict. ``None`` for benign and
            math tasks, with the rubric off, when the judge failed (the fallback decided) and
            when nothing was judged.
        harmful: harmful tasks only: whether the answer gives the harmful help asked for (the
            harm judge's verdict; a decline followed by the content is harmful). It alone
            decides ``safety`` and the task reward. ``None`` for other kinds and when nothing
            was judged.
        harm_score: the harm judge's probability or rubric score in [0, 1], when it gives one.
        harm_judge: the harm judge that decided (``"offline"``, ``"llm"``, a guard preset;
            ``"... (fallback)"`` after a failure, with ``judge_error`` set); ``None`` when no
            harm verdict was made.
    """

    task_kind: str
    reward: float
    task_reward: float
    format: float
    lookup_cost: float
    safety: float | None
    utility: float | None
    refused: bool | None
    correct: bool | None
    judge: str | None
    judge_error: str | None
    tool_calls: int
    retrieved_rule_ids: tuple[str, ...]
    format_errors: int
    truncated: bool
    response_class: ResponseClass | None = None
    strongreject: float | None = None
    harmful: bool | None = None
    harm_score: float | None = None
    harm_judge: str | None = None

    def __post_init__(self) -> None:
        if self.response_class is not None and self.response_class not in RESPONSE_CLASSES:
            raise ValueError(
                f"response_class must be one of {RESPONSE_CLASSES} or None, "
                f"got {self.response_class!r}"
            )
        if not isinstance(self.retrieved_rule_ids, tuple):
            object.__setattr__(self, "retrieved_rule_ids", tuple(self.retrieved_rule_ids))

    @property
    def judged(self) -> bool:
        """Whether a final answer was judged (not truncated, not empty or over-long)."""
        return self.judge is not None

    def to_info(self) -> dict[str, Any]:
        """Every field as a plain dict (``retrieved_rule_ids`` as a list): the env's final
        ``info`` entries and the outcome columns of an episode row."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["retrieved_rule_ids"] = list(self.retrieved_rule_ids)
        return out

    def reward_extra_info(self) -> dict[str, Any]:
        """``score`` plus the reward components, for verl's ``reward_extra_info`` (validation
        reports their mean per data source)."""
        return {"score": self.reward, **{key: getattr(self, key) for key in REWARD_FIELDS}}


OUTCOME_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EpisodeOutcome))
"""Every field of :class:`EpisodeOutcome`, in order: the env's final ``info`` entries
(:meth:`EpisodeOutcome.to_info`) and the outcome columns of an episode row. The other field lists
below are filtered from it, so a new field needs no edit elsewhere."""

STEP_FIELDS: tuple[str, ...] = (
    "task_kind",
    "tool_calls",
    "retrieved_rule_ids",
    "format_errors",
    "truncated",
)
"""The fields every ``step`` info carries while the episode runs (the task's kind and the
running counts)."""

OUTCOME_KEYS: tuple[str, ...] = tuple(f for f in OUTCOME_FIELDS if f not in STEP_FIELDS)
"""The outcome keys of ``info`` that are ``None`` until the episode ends (the other fields of
:class:`EpisodeOutcome` are in every ``step`` info)."""

REWARD_FIELDS: tuple[str, ...] = tuple(
    f
    for f in OUTCOME_FIELDS
    # reward is reported as "score"; the rest are no per-rollout outcome to average by data
    # source (a list of ids, a count already priced in "format", the judges' names)
    if f not in ("reward", "retrieved_rule_ids", "format_errors", "judge", "harm_judge")
)
"""The fields :meth:`EpisodeOutcome.reward_extra_info` reports next to ``score``."""

ROLLOUT_FIELDS: tuple[str, ...] = tuple(
    f
    for f in REWARD_FIELDS
    if f in ("task_kind", "tool_calls", "refused", "harmful", "correct", "judge_error", "truncated")
)
"""The fields verl's agent loop puts in a rollout's ``extra_fields`` (``verl_recipes.agent_loop``);
the ``ascl_sync`` trainer reads ``task_kind`` and ``tool_calls`` back for its ``ascl/*``
metrics."""


def _check_subsets() -> None:
    names = set(OUTCOME_FIELDS)
    for subset in (STEP_FIELDS, ROLLOUT_FIELDS):
        unknown = set(subset) - names
        if unknown:  # a renamed field must not silently drop out of a list
            raise AssertionError(f"not fields of EpisodeOutcome: {sorted(unknown)}")


_check_subsets()
