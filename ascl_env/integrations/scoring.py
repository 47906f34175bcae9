"""Scoring an episode seen from outside the env: the task, the lookups made, the final text.

:func:`score` is the one public way to score from outside the env loop. In tool-method
interfaces (TRL's ``environment_factory``, verifiers' toolsets) an adapter sees the tool calls
and the final assistant text, never one ``step`` per turn. :func:`score` turns those back into
the env's own outcome by replaying them through :meth:`ASCLEnv.step` (reset with the task, one
step per lookup written as a Hermes call, then the final text), so an adapter's reward is the
env's reward for the same turns by construction. :func:`lookup` answers one lookup as the env
does (:func:`ascl_env.lookup.answer_call`, with the env's retriever).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ascl_env.config import ASCLConfig
from ascl_env.env import ASCLEnv
from ascl_env.lookup import TOOL_NAME, answer_call
from ascl_env.outcome import OUTCOME_FIELDS as EPISODE_OUTCOME_FIELDS
from ascl_env.retrieval import shared_retriever
from ascl_env.tasks import Task
from ascl_env.turns import ToolCall, write_call

OUTCOME_FIELDS = (*EPISODE_OUTCOME_FIELDS, "task_id", "turn")
"""The keys of :attr:`Scored.outcome`: the fields of :class:`~ascl_env.outcome.EpisodeOutcome`
plus the task id and the number of turns (the env's final ``info`` without the transcript)."""


@dataclass(frozen=True)
class Scored:
    """A finished episode: ``reward`` and the env's final ``info`` fields in ``outcome``."""

    reward: float
    outcome: dict[str, Any]
    messages: list[dict[str, Any]] = field(repr=False)


def as_task(task: Task | Mapping[str, Any] | str, where: str = "task") -> Task:
    """A :class:`Task` from a Task, its dict, or its JSON text; a bad one names ``where``."""
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        try:
            task = json.loads(task)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not a Task or its JSON: {exc}") from exc
    try:
        return Task.model_validate(task)
    except Exception as exc:
        raise ValueError(f"{where} is not a valid task: {exc}") from exc


def lookup(query: Any, config: ASCLConfig) -> tuple[str, list[str]]:
    """Answer one lookup as the env does: the rules text (or ``Error: ...``) and the rule ids."""
    search = None
    if config.rules_mode == "tool":
        retriever = shared_retriever(config.rule_base_path, config.retriever_backend)

        def search(q: str):
            return retriever.search(q, config.top_k)

    result, shown, _ = answer_call(
        ToolCall(TOOL_NAME, {"query": query}), search, config.max_rule_chars
    )
    return result, shown


def score(
    task: Task | Mapping[str, Any],
    final_text: str,
    *,
    lookups: Sequence[str] = (),
    config: ASCLConfig | None = None,
    env: ASCLEnv | None = None,
) -> Scored:
    """Score an episode made of ``lookups`` (queries, in order) and the final assistant text.

    The one public way to score from outside the env loop (the TRL and verifiers adapters use
    it). Replays the episode through ``env`` (or a new ``ASCLEnv(config)``): reset with the task,
    one step per lookup, then ``final_text``. Should the env end the episode early (more lookups
    than ``max_turns`` allows), the rest is not sent and the env's truncated outcome is returned.
    If ``final_text`` holds a tool call, it is a further lookup turn, not an answer: the episode
    is then cut off there and scored as truncated with the env's reward table.
    """
    task = as_task(task)
    env = env if env is not None else ASCLEnv(config or ASCLConfig())
    env.reset(options={"task": task})
    turns = [write_call(TOOL_NAME, {"query": q}) for q in lookups] + [final_text]
    info: dict[str, Any] = {}
    reward, done = 0.0, False
    for text in turns:
        _, reward, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            done = True
            break
    if not done:
        _, reward, _, _, info = env.end_episode("the final text was a tool call")
    outcome = {k: info.get(k) for k in OUTCOME_FIELDS}
    return Scored(float(reward), outcome, list(info["messages"]))
