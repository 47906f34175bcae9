"""verl agent loop ``ascl_agent``: one ASCL-v0 episode per rollout.

The environment is the single source of truth: it builds the conversation (system prompt, tool
schema, task prompt), parses each assistant turn, runs the lookups and judges the final answer.
This loop only moves tokens between verl's rollout server and the env:

1. ``ASCLEnv(config, tasks=[task]).reset()`` with the task and env config of the dataset row
   (``extra_info.task`` / ``extra_info.env_config``, written by ``verl_recipes.prepare_data``).
   The env config is, lowest precedence first: ``env_config`` of ``agent_loops.yaml``, the row's
   ``extra_info.env_config``, then the trainer config's ``ascl.env_overrides`` (so a Hydra
   override such as ``+ascl.env_overrides.max_turns=2`` changes every row without rewriting
   the parquet files).
   The rule base and BM25 retriever are shared per process
   (``ascl_env.retrieval.shared_retriever``), so building one env per rollout is cheap.
2. The env's messages and tools are rendered once with Continuous Token
   (``ct_build_initial_tokens``); afterwards tokens are only ever appended: each generated turn
   with ``ct_merge_assistant_token`` (response_mask 1) and each env observation with
   ``ct_merge_context_msg`` over the env's own messages (response_mask 0). The tokens the rollout
   server saw are therefore exactly the tokens the trainer trains on.
3. ``env.step`` runs in a worker thread: with an LLM judge it blocks on HTTP.
4. The episode ends when the env terminates or truncates, or when ``rollout.response_length``
   has no room for the next observation: then ``env.end_episode()`` scores it as a truncation
   (the env is the only scorer; this loop never assembles a reward). That last lookup ran in
   the env and counts in ``tool_calls`` but is not in the tokens, so the mask-derived lookup
   count is one lower; conversely an unusable call's ``Error:`` observation is mask-0 context
   too, so that count includes it while ``tool_calls`` does not. ``reward_score`` is the env's
   reward, so verl never calls a reward function for these rows; ``extra_fields`` carries the
   env's outcome (``tool_calls``, ``refused``, ``correct``, ``task_kind``, ``judge_error``,
   ...) for logging, and ``reward_extra_info`` is
   :meth:`ascl_env.outcome.EpisodeOutcome.reward_extra_info`.

Registered under ``ascl_agent`` when this module is imported (``verl_recipes.plugin`` does it in
every verl process); ``config/agent_loops.yaml`` registers it without the plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)
from verl.utils.profiler import simple_timer

from ascl_env.env import ASCLEnv
from ascl_env.outcome import EpisodeOutcome
from ascl_env.tasks import Task
from verl_recipes.prepare_data import DataPrepError, episode_spec

AGENT_NAME = "ascl_agent"
LOGGED_FIELDS = ("tool_calls", "refused", "correct", "task_kind", "judge_error", "truncated")


@register(AGENT_NAME)
class ASCLAgentLoop(AgentLoopBase):
    """Runs one ASCL-v0 episode through verl's rollout server.

    Args:
        env_config: ASCLConfig fields applied under every row's ``extra_info.env_config``
            (from ``agent_loops.yaml``; the row wins).
        tools: verl's tool list, unused: the env runs the lookup itself.

    The trainer config's ``ascl.env_overrides`` (ASCLConfig fields) apply over every row.
    """

    def __init__(self, *args: Any, env_config: Mapping[str, Any] | None = None, **kwargs: Any):
        kwargs.pop("tools", None)
        super().__init__(*args, **kwargs)
        self.default_env_config = _plain(env_config, "agent loop env_config")
        self.env_overrides = env_overrides(self.config)
        self.response_length = self.rollout_config.response_length

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        task, config = episode_spec(
            kwargs.get("extra_info"), self.default_env_config, self.env_overrides
        )
        env = await asyncio.to_thread(ASCLEnv, config, tasks=[task])
        try:
            return await self._episode(env, task, sampling_params)
        finally:
            env.close()

    async def _episode(
        self, env: ASCLEnv, task: Task, sampling_params: dict[str, Any]
    ) -> AgentLoopOutput:
        _, info = env.reset(options={"task_id": task.id})
        messages: list[dict[str, Any]] = info["messages"]
        tools = info["tools"] or None
        token_ids = await self.ct_build_initial_tokens(messages, tools=tools)
        prompt_length = len(token_ids)

        request_id = uuid4().hex
        metrics: dict[str, Any] = {}
        extra_fields: dict[str, Any] = {}
        mask: list[int] = []
        logprobs: list[float] = []
        turn_rewards: list[float] = []
        while True:
            budget = self.response_length - len(mask)
            with simple_timer("generate_sequences", metrics):
                output = await self.server_manager.generate(
                    request_id=request_id,
                    prompt_ids=token_ids,
                    sampling_params={**sampling_params, "max_tokens": budget},
                )
            _merge_server_fields(extra_fields, output.extra_fields)
            merge, mask, new_logprobs = await self.ct_merge_assistant_token(
                token_ids,
                output.token_ids,
                mask,
                logprobs if (logprobs or output.log_probs) else None,
                assistant_logprobs=output.log_probs or None,
            )
            token_ids, logprobs = merge.token_ids, new_logprobs or []
            text = self.tokenizer.decode(output.token_ids, skip_special_tokens=True)

            with simple_timer("tool_calls", metrics):
                _, reward, terminated, truncated, info = await asyncio.to_thread(env.step, text)
            turn_rewards.append(float(reward))
            if terminated or truncated:
                break
            room = len(mask) < self.response_length
            if room:
                # The env's messages up to this assistant turn, then its observations.
                previous = info["messages"][: len(messages) + 1]
                merge, new_mask, new_logprobs = await self.ct_merge_context_msg(
                    previous, info["messages"], token_ids, mask, logprobs or None, tools=tools
                )
                room = len(new_mask) < self.response_length
            if not room:
                # No room for the observation and another turn (as in verl's ToolAgentLoop).
                _, reward, _, _, info = env.end_episode("response_length exhausted")
                turn_rewards[-1] = reward
                break
            token_ids, mask, logprobs = merge.token_ids, new_mask, new_logprobs or []
            messages = info["messages"]

        response_ids = token_ids[prompt_length:]
        outcome: EpisodeOutcome = info["outcome"]
        components = outcome.reward_extra_info()
        extra_fields.update(
            {
                **{key: components[key] for key in LOGGED_FIELDS},
                "task_id": info["task_id"],
                "format_errors": info["format_errors"],
                "turn_scores": turn_rewards,
                "tool_rewards": [0.0] * info["tool_calls"],
                # What verl's reward loop would attach: validation metrics per data source.
                "reward_extra_info": components,
            }
        )
        return AgentLoopOutput(
            prompt_ids=token_ids[:prompt_length],
            response_ids=response_ids[: self.response_length],
            response_mask=mask[: self.response_length],
            response_logprobs=logprobs[: self.response_length] if logprobs else None,
            reward_score=float(reward),
            num_turns=_num_turns(info["messages"]),
            metrics=AgentLoopMetrics(**metrics),
            extra_fields=extra_fields,
        )


def _num_turns(messages: list[dict[str, Any]]) -> int:
    """Chat turns after the system prompt (user, assistant and tool), as verl counts them."""
    return sum(1 for m in messages if m["role"] != "system")


def _merge_server_fields(extra_fields: dict[str, Any], server_fields: Mapping[str, Any]) -> None:
    # Same policy as verl's ToolAgentLoop: keep the first turn's fields, track the newest
    # weights version (used by fully-async training to measure staleness).
    if not extra_fields:
        extra_fields.update(server_fields)
    elif server_fields.get("max_global_steps"):
        extra_fields["max_global_steps"] = server_fields["max_global_steps"]


def env_overrides(trainer_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``ascl.env_overrides`` of the trainer config as a plain dict (``{}`` when absent)."""
    if trainer_config is None:
        return {}
    section = trainer_config.get("ascl") if isinstance(trainer_config, Mapping) else None
    if section is None:
        return {}
    return _plain(section.get("env_overrides"), "ascl.env_overrides")


def _plain(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, DictConfig):  # from Hydra (agent_loops.yaml or the trainer config)
        value = OmegaConf.to_container(value, resolve=True)
    if not isinstance(value, Mapping):
        raise DataPrepError(f"{where} must be a mapping of ASCLConfig fields, got {value!r}")
    return dict(value)
