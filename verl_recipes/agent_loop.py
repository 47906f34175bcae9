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

Each assistant turn is what it claims to be:

- **A tool call ends the turn.** The server is asked to stop at ``</tool_call>`` (as
  ``stop_token_ids`` when the tokenizer has it as one token, which vLLM, SGLang and the ``hf``
  backend honour; else as a stop string for vLLM/SGLang), and the loop cuts anything a server
  still returned after the first complete call: those tokens are neither sent to the env nor
  trained on, ``extra_fields["tool_response_spoofs"]`` counts the turns where the model
  wrote on (e.g. its own ``<tool_response>``), and each such turn is a format error in the
  reward (``ASCLEnv.record_format_error``). A turn that stopped at ``</tool_call>`` gets the
  template's end-of-turn token (``<|im_end|>`` for ChatML) appended as mask-0 context before the
  observation, so the sequence stays the chat template's.
- **A turn cut at ``max_tokens`` is no answer.** When the server says ``length``, or the turn
  used the whole budget without an end token, the env is not asked to judge the fragment:
  ``env.end_episode`` scores the episode as a truncation (``truncation_reward``).
  ``extra_fields["episode_end"]`` says why the episode ended (``env``, ``length``,
  ``response_length``, ``aborted``).
- **An aborted or empty generation** (verl's async modes abort requests) ends the episode as a
  truncation too; a rollout with no generated token still returns one mask-0 token, so verl's
  reward placement (``rm_scores[-1]``) has a position.
- **A prompt longer than ``rollout.prompt_length``** raises :class:`PromptTooLongError`
  naming the task, instead of verl's silent left-truncation.

Registered under ``ascl_agent`` when this module is imported (``verl_recipes.plugin`` does it in
every verl process); ``config/agent_loops.yaml`` registers it without the plugin.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from ascl_env.outcome import ROLLOUT_FIELDS, EpisodeOutcome
from ascl_env.tasks import Task
from ascl_env.turns import CALL_CLOSE, CALL_OPEN
from verl_recipes.prepare_data import DataPrepError, episode_spec

AGENT_NAME = "ascl_agent"
# Why an episode ended (extra_fields["episode_end"]).
END_ENV = "env"  # the env terminated or truncated it (final answer, max_turns, ...)
END_LENGTH = "length"  # a turn was cut at max_tokens: no answer, scored as a truncation
END_ROOM = "response_length"  # no room in rollout.response_length for the next observation
END_ABORTED = "aborted"  # the server aborted the request or returned no token
_COMPLETE_CALL = re.compile(
    f"{re.escape(CALL_OPEN)}.*?{re.escape(CALL_CLOSE)}", re.IGNORECASE | re.DOTALL
)


class PromptTooLongError(ValueError):
    """A rendered prompt (messages + tool schema) does not fit ``rollout.prompt_length``."""


@dataclass(frozen=True)
class TurnTokens:
    """Token ids of a tokenizer that delimit assistant turns.

    Attributes:
        call_end: the ids of ``</tool_call>`` (one id for Qwen-style tokenizers).
        turn_end: the template's end-of-turn token(s) after an assistant message (ChatML:
            ``<|im_end|>``), appended as context when generation stopped at ``</tool_call>``.
        stops: ids after which a turn ended normally (eos, end of turn, a one-token
            ``</tool_call>``).
    """

    call_end: tuple[int, ...]
    turn_end: tuple[int, ...]
    stops: frozenset[int]


_TURN_TOKENS: dict[int, TurnTokens] = {}


def turn_tokens(tokenizer: Any) -> TurnTokens:
    """The :class:`TurnTokens` of ``tokenizer`` (computed once per tokenizer object)."""
    cached = _TURN_TOKENS.get(id(tokenizer))
    if cached is not None:
        return cached
    call_end = tuple(tokenizer.encode(CALL_CLOSE, add_special_tokens=False))
    mark = "ASCL_TURN_MARK"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": mark}],
        tokenize=False,
    )
    suffix = rendered[rendered.rindex(mark) + len(mark) :]
    special = set(tokenizer.all_special_ids) | {
        i for i, t in tokenizer.added_tokens_decoder.items() if t.special
    }
    turn_end: tuple[int, ...] = ()
    for i, token in enumerate(tokenizer.encode(suffix, add_special_tokens=False)):
        if token in special:
            turn_end = tuple(tokenizer.encode(suffix, add_special_tokens=False)[: i + 1])
            break
    if not turn_end and tokenizer.eos_token_id is not None:
        turn_end = (int(tokenizer.eos_token_id),)
    stops = set(turn_end[-1:])
    if tokenizer.eos_token_id is not None:
        stops.add(int(tokenizer.eos_token_id))
    if len(call_end) == 1:
        stops.add(call_end[0])
    result = TurnTokens(call_end, turn_end, frozenset(stops))
    _TURN_TOKENS[id(tokenizer)] = result
    return result


def stop_params(rollout_name: str, tokens: TurnTokens) -> dict[str, Any]:
    """Sampling parameters that make the server stop a turn right after ``</tool_call>``.

    ``stop_token_ids`` (vLLM, SGLang and the ``hf`` backend) when ``</tool_call>`` is one token;
    otherwise a stop string kept in the output (vLLM ``include_stop_str_in_output``, SGLang
    ``no_stop_trim``), or nothing for another backend (the loop still cuts after the call).
    """
    if len(tokens.call_end) == 1:
        return {"stop_token_ids": [tokens.call_end[0]]}
    if rollout_name == "vllm":
        return {"stop": [CALL_CLOSE], "include_stop_str_in_output": True}
    if rollout_name == "sglang":
        return {"stop": [CALL_CLOSE], "no_stop_trim": True}
    return {}


def with_stops(sampling_params: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``sampling_params`` plus ``extra``, merging (not replacing) stop lists."""
    merged = dict(sampling_params)
    for key, value in extra.items():
        if isinstance(value, list):
            merged[key] = list(dict.fromkeys([*(merged.get(key) or []), *value]))
        else:
            merged[key] = value
    return merged


def cut_after_call(tokenizer: Any, ids: Sequence[int], tokens: TurnTokens) -> tuple[int, bool]:
    """Where the turn ``ids`` must end: ``(length to keep, whether text was cut)``.

    The turn ends at the first complete ``<tool_call>...</tool_call>``; what follows it may
    only be whitespace and stop tokens. Anything else (a second call, the model's own
    ``<tool_response>``, an answer) is cut: ``(end of the call, True)``. A turn without a
    complete call is kept whole: ``(len(ids), False)``.
    """
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if CALL_CLOSE not in text.lower() or not _COMPLETE_CALL.search(text):
        return len(ids), False
    # The shortest prefix holding a complete call (its presence is monotone in the length).
    low, high = 1, len(ids)
    while low < high:
        middle = (low + high) // 2
        if _COMPLETE_CALL.search(tokenizer.decode(ids[:middle], skip_special_tokens=True)):
            high = middle
        else:
            low = middle + 1
    rest = [t for t in ids[low:] if t not in tokens.stops]
    if not tokenizer.decode(rest, skip_special_tokens=True).strip():
        return len(ids), False
    return low, True


def _stop_kind(stop_reason: Any) -> str | None:
    """A server's stop reason as a string (SGLang gives ``{"type": "length", ...}``)."""
    if isinstance(stop_reason, Mapping):
        stop_reason = stop_reason.get("type")
    return None if stop_reason is None else str(stop_reason)


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
        self.turn_tokens = turn_tokens(self.tokenizer)
        self.stop_params = stop_params(str(self.rollout_config.name), self.turn_tokens)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        task, config = episode_spec(
            kwargs.get("extra_info"), self.default_env_config, self.env_overrides
        )
        env = await asyncio.to_thread(ASCLEnv, config, tasks=[task])
        try:
            return await self._episode(env, task, sampling_params)
        except PromptTooLongError as exc:
            raise PromptTooLongError(f"task {task.id!r}: {exc}") from None
        finally:
            env.close()

    async def _merge_context(self, *args: Any, **kwargs: Any) -> Any:
        # verl 0.9's ct_merge_context_msg is ct_merge_non_assistant_msg on verl main (0.10.0.dev,
        # same arguments); tests/test_verl_main.py runs this loop against a main snapshot.
        merge = getattr(self, "ct_merge_non_assistant_msg", None) or self.ct_merge_context_msg
        return await merge(*args, **kwargs)

    def _cap_text_prompt_length(self, prompt_ids: list[int]) -> list[int]:
        # verl left-truncates an over-long prompt with a warning (agent_loop.py); a truncated
        # ASCL prompt loses its system prompt and tool schema, so refuse it instead.
        limit = self.rollout_config.prompt_length
        if len(prompt_ids) > limit:
            raise PromptTooLongError(
                f"the rendered prompt (messages + tool schema) has {len(prompt_ids)} tokens, "
                f"more than data.max_prompt_length={limit}; raise it or filter the data "
                "(python -m verl_recipes.prepare_data --tokenizer MODEL --max-prompt-length N)"
            )
        return prompt_ids

    async def _episode(
        self, env: ASCLEnv, task: Task, sampling_params: dict[str, Any]
    ) -> AgentLoopOutput:
        _, info = env.reset(options={"task_id": task.id})
        messages: list[dict[str, Any]] = info["messages"]
        tools = info["tools"] or None
        token_ids = await self.ct_build_initial_tokens(messages, tools=tools)
        prompt_length = len(token_ids)
        sampling_params = with_stops(sampling_params, self.stop_params)
        turn = self.turn_tokens

        request_id = uuid4().hex
        metrics: dict[str, Any] = {}
        extra_fields: dict[str, Any] = {}
        mask: list[int] = []
        logprobs: list[float] = []
        turn_rewards: list[float] = []
        spoofs = 0
        end = END_ENV
        while True:
            budget = self.response_length - len(mask)
            with simple_timer("generate_sequences", metrics):
                output = await self.server_manager.generate(
                    request_id=request_id,
                    prompt_ids=token_ids,
                    sampling_params={**sampling_params, "max_tokens": budget},
                )
            _merge_server_fields(extra_fields, output.extra_fields)
            ids, new_logprobs = list(output.token_ids), list(output.log_probs or [])
            stop = _stop_kind(output.stop_reason)
            keep, cut = cut_after_call(self.tokenizer, ids, turn)
            spoofs += cut
            if cut:  # the model wrote on after its call (e.g. its own <tool_response>)
                env.record_format_error(
                    "text after a complete tool call was cut (a turn ends at </tool_call>)"
                )
            if stop in ("aborted", "abort") or not ids:
                end = END_ABORTED
            elif not cut and ids[-1] not in turn.stops and (stop == "length" or len(ids) >= budget):
                # An end token wins over the label: verl's client says "length" whenever the
                # turn filled its budget, and vLLM says "completed" for a length stop.
                end = END_LENGTH
            ids, new_logprobs = ids[:keep], new_logprobs[:keep]
            if ids:
                merge, mask, merged_logprobs = await self.ct_merge_assistant_token(
                    token_ids,
                    ids,
                    mask,
                    logprobs if (logprobs or new_logprobs) else None,
                    assistant_logprobs=new_logprobs or None,
                )
                token_ids, logprobs = merge.token_ids, merged_logprobs or []
            if end != END_ENV:
                # No usable turn: the env must not judge a fragment as the final answer.
                reason = f"assistant turn {'cut at max_tokens' if end == END_LENGTH else end}"
                _, reward, _, _, info = env.end_episode(reason)
                turn_rewards.append(float(reward))
                break
            text = self.tokenizer.decode(ids, skip_special_tokens=True)

            with simple_timer("tool_calls", metrics):
                _, reward, terminated, truncated, info = await asyncio.to_thread(env.step, text)
            turn_rewards.append(float(reward))
            if terminated or truncated:
                break
            # Generation stopped at </tool_call>: close the turn as the template does.
            closer = list(turn.turn_end) if token_ids[-1] not in turn.turn_end else []
            room = len(mask) + len(closer) < self.response_length
            if room:
                # The env's messages up to this assistant turn, then its observations.
                previous = info["messages"][: len(messages) + 1]
                merge, new_mask, new_logprobs = await self._merge_context(
                    previous,
                    info["messages"],
                    token_ids + closer,
                    mask + [0] * len(closer),
                    (logprobs + [0.0] * len(closer)) if logprobs else None,
                    tools=tools,
                )
                room = len(new_mask) < self.response_length
            if not room:
                # No room for the observation and another turn (as in verl's ToolAgentLoop).
                _, reward, _, _, info = env.end_episode("response_length exhausted")
                turn_rewards[-1] = reward
                end = END_ROOM
                break
            token_ids, mask, logprobs = merge.token_ids, new_mask, new_logprobs or []
            messages = info["messages"]

        return self._output(
            token_ids,
            prompt_length,
            mask,
            logprobs,
            info,
            float(reward),
            metrics,
            extra_fields,
            spoofs=spoofs,
            end=end,
            turn_rewards=turn_rewards,
        )

    def _output(
        self,
        token_ids: list[int],
        prompt_length: int,
        mask: list[int],
        logprobs: list[float],
        info: dict[str, Any],
        reward: float,
        metrics: dict[str, Any],
        extra_fields: dict[str, Any],
        *,
        spoofs: int,
        end: str,
        turn_rewards: list[float],
    ) -> AgentLoopOutput:
        """The rollout verl trains on: tokens, mask and log-probs cut to ``response_length``,
        the env's reward, and the outcome fields verl logs per rollout."""
        turn = self.turn_tokens
        if not mask:
            # Nothing was generated: one mask-0 token gives verl's reward placement a position.
            token_ids, mask = token_ids + list(turn.turn_end[:1]), [0]
            logprobs = [0.0] if logprobs else []
        response_ids = token_ids[prompt_length:]
        outcome: EpisodeOutcome = info["outcome"]
        components = outcome.reward_extra_info()
        extra_fields.update(
            {
                **{key: components[key] for key in ROLLOUT_FIELDS},
                "task_id": info["task_id"],
                "format_errors": info["format_errors"],
                "tool_response_spoofs": spoofs,
                "episode_end": end,
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
            reward_score=reward,
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
