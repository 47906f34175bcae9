"""Reward function for ``reward.custom_reward_function`` (the stock ``tool_agent`` path).

    reward.custom_reward_function.path=pkg://verl_recipes.reward
    reward.custom_reward_function.name=compute_score

verl's ``naive`` reward manager calls :func:`compute_score` with the whole decoded response
(every assistant turn and tool result, special tokens removed). It scores the episode as
``ASCLEnv.step`` scores its final turn:

- the last assistant segment is the text after the last tool result, found with the chat
  template's own end-of-tool-turn text (rendered once from the tokenizer at ``model_path``),
- it is parsed with the env's parser and judged with the env's judges (``judge_answer``),
- lookups and bad lookup arguments come from the tool (``extra_info["ascl_tool_calls"]`` and
  ``["ascl_format_errors"]``, set by :class:`verl_recipes.tool.SafetyRuleLookupTool`),
- :func:`ascl_env.rewards.episode_reward` assembles the number.

A last segment that still holds a tool call means verl stopped at ``max_assistant_turns`` before
answering: scored as the env's truncation. Calls verl itself rejected (unknown tool, bad JSON)
never reach the tool and are not counted as format errors here; ``ascl_agent`` counts them.

Rows run by ``ascl_agent`` carry the env's reward already and verl does not call this function.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ascl_env.config import ASCLConfig
from ascl_env.env import LOOKUP_TOOL_NAME, shared_llm_judge
from ascl_env.judges import LLMJudge
from ascl_env.parsing import read_turn
from ascl_env.rewards import (
    Judgement,
    episode_reward,
    judge_answer,
    offline_classifier,
    outcome_info,
)
from verl_recipes.prepare_data import episode_spec

# What ChatML/Hermes templates (Qwen2.5, ascl_env.bench.models) put between a tool result and the
# next assistant turn once special tokens are removed; used when no tokenizer is given.
CHATML_TOOL_TURN_END = "\n</tool_response>\nassistant\n"
_SENTINEL = "ASCL-TOOL-RESULT-SENTINEL"


REWARD_FIELDS = (
    "task_reward",
    "format",
    "lookup_cost",
    "safety",
    "utility",
    "refused",
    "correct",
    "judge_error",
    "tool_calls",
    "truncated",
    "task_kind",
)


def reward_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """``score`` and the reward components of a finished episode, from an env-style ``info``.

    verl logs these as reward extra info (validation reports their mean per data source), so both
    paths (``compute_score`` and ``ascl_agent``) return exactly these keys.
    """
    return {"score": info["reward"], **{key: info[key] for key in REWARD_FIELDS}}


@lru_cache(maxsize=8)
def tool_turn_end(tokenizer_path: str | None) -> str:
    """Decoded text a chat template puts after a tool result, up to the next assistant turn."""
    if tokenizer_path is None:
        return CHATML_TOOL_TURN_END
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    call = {"type": "function", "function": {"name": LOOKUP_TOOL_NAME, "arguments": {"query": "q"}}}
    messages = [
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "name": LOOKUP_TOOL_NAME, "content": _SENTINEL},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if _SENTINEL not in text:
        raise ValueError(f"the chat template of {tokenizer_path} does not render tool messages")
    tail = text.split(_SENTINEL, 1)[1]
    ids = tokenizer.encode(tail, add_special_tokens=False)
    return tokenizer.decode(ids, skip_special_tokens=True)


def last_assistant_segment(solution_str: str, turn_end: str = CHATML_TOOL_TURN_END) -> str:
    """The final assistant turn: everything after the last tool result (or all of it)."""
    cut = solution_str.rfind(turn_end)
    return solution_str if cut < 0 else solution_str[cut + len(turn_end) :]


def _judge_for(config: ASCLConfig) -> LLMJudge | None:
    if config.judge != "llm":
        return None
    # The env's per-process client cache, so both paths build the judge the same way.
    return shared_llm_judge(
        config.llm_judge_url,
        config.llm_judge_model,
        config.llm_judge_api_key_env,
        config.llm_judge_timeout,
        config.llm_judge_max_retries,
        config.llm_judge_deadline,
        config.llm_judge_strongreject,
    )


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    model_path: str | None = None,
    tokenizer_path: str | None = None,
    env_config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score one ``tool_agent`` episode like the env (see the module docstring).

    Returns ``score`` plus the env's reward components, which verl logs as reward extra info.
    ``env_config`` (from ``reward_kwargs``) is applied under the row's own env config.
    """
    task, config = episode_spec(extra_info, env_config)
    info = dict(extra_info or {})
    final = last_assistant_segment(solution_str, tool_turn_end(tokenizer_path or model_path))
    lookups = int(info.get("ascl_tool_calls") or 0)
    format_errors = int(info.get("ascl_format_errors") or 0)

    judgement: Judgement | None = None
    truncated = False
    kind, parsed = read_turn(final, config.max_action_chars)
    if kind in ("too_long", "empty"):
        format_errors += 1
    elif kind == "calls":  # verl stopped at max_assistant_turns before an answer
        truncated = True
    else:
        judgement = judge_answer(
            task,
            parsed.content,
            _judge_for(config),
            config.on_judge_error,
            offline_classifier(config.judge),
            config.judge,
        )
    breakdown = episode_reward(
        task.kind,
        judgement,
        truncated=truncated,
        format_errors=format_errors,
        lookups=lookups,
        table=config.rewards,
    )
    return reward_info(
        {
            **outcome_info(judgement, breakdown),
            "tool_calls": lookups,
            "truncated": truncated,
            "task_kind": task.kind,
        }
    )
