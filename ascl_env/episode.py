"""One ASCL-v0 episode against any OpenAI-compatible chat endpoint.

:func:`run_openai_episode` is the loop the frameworks that let "the agent talk to an OpenAI
endpoint while the trainer records tokens" need (AReaL, rLLM, ART, slime, verl's agent gateway)
and the harness's OpenAI-compatible agent: reset the env, send the conversation, hand the reply
to :meth:`ASCLEnv.step`, send the tool result back, until the env ends the episode. The env
scores it, so the reward is the env's.

The client is duck-typed: ``ascl_env.openai_compat.ChatClient`` (``complete(messages, ...)``),
``openai.OpenAI`` (``chat.completions.create(...)``), or, for :func:`arun_openai_episode`,
``openai.AsyncOpenAI``. Tool calls may come back two ways:

* ``tool_mode="native"`` (default): the lookup schema is sent as ``tools`` and the server
  parses calls into ``message.tool_calls`` (vLLM ``--enable-auto-tool-choice``, hosted APIs).
  They are written back as Hermes ``<tool_call>`` text for the env, and the next request carries
  the assistant message with its ``tool_calls`` and one ``tool`` message per call id.
* ``tool_mode="hermes"``: no ``tools`` are sent; the model writes ``<tool_call>`` text itself
  (the env's system prompt tells it how) and the env parses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ascl_env.config import ASCLConfig, as_config
from ascl_env.env import ASCLEnv
from ascl_env.integrations.scoring import OUTCOME_FIELDS, as_task
from ascl_env.lookup import TOOL_NAME as LOOKUP_TOOL_NAME
from ascl_env.tasks import Task
from ascl_env.turns import tool_calls_to_text

ToolMode = Literal["native", "hermes"]


@dataclass(frozen=True)
class Turn:
    """One generated assistant turn as the endpoint reported it."""

    text: str  # what the env received (native tool calls written back as Hermes text)
    finish_reason: str | None
    completion_tokens: int | None  # None when the server sent no usage
    tool_calls: int  # native tool calls in the reply (0 in hermes mode)


@dataclass(frozen=True)
class Episode:
    """A finished episode.

    ``messages`` is the env's transcript (``info["messages"]``: assistant turns as raw text),
    ``wire_messages`` what was last sent to the endpoint plus the final reply, ``reward`` the
    env's reward and ``outcome`` the env's final ``info`` fields (see
    :data:`ascl_env.integrations.scoring.OUTCOME_FIELDS`).
    """

    messages: list[dict[str, Any]]
    reward: float
    outcome: dict[str, Any]
    turns: list[Turn]
    wire_messages: list[dict[str, Any]] = field(repr=False)
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict, repr=False)  # the env's final info

    @property
    def completion_tokens(self) -> int | None:
        """Tokens generated over all turns (None if any turn lacked usage)."""
        counts = [t.completion_tokens for t in self.turns]
        return None if any(c is None for c in counts) else sum(counts)


class EpisodeError(RuntimeError):
    """The endpoint's reply could not be used (names the turn and what was wrong)."""


def _plain(value: Any) -> Any:
    """An SDK object (pydantic) as plain dicts/lists; plain values unchanged."""
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else value


def _reply(raw: Any, turn: int) -> tuple[str | None, list[dict[str, Any]], str | None, int | None]:
    """(content, tool_calls, finish_reason, completion_tokens) of a ChatClient or SDK reply."""
    if hasattr(raw, "choices") and hasattr(raw, "text") and hasattr(raw, "usage"):
        # ascl_env.openai_compat.ChatCompletion
        tool_calls = [dict(c) for c in raw.tool_calls]
        return raw.text or None, tool_calls, raw.finish_reason, raw.usage.completion_tokens
    data = _plain(raw)
    try:
        choice = _plain(data["choices"][0])
        message = _plain(choice["message"])
    except (KeyError, IndexError, TypeError) as exc:
        raise EpisodeError(
            f"turn {turn}: the reply has no choices[0].message: {str(data)[:200]!r}"
        ) from exc
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise EpisodeError(f"turn {turn}: message.content is {type(content).__name__}, not text")
    tool_calls = [_plain(c) for c in (message.get("tool_calls") or [])]
    usage = _plain(data.get("usage")) or {}
    tokens = usage.get("completion_tokens") if isinstance(usage, Mapping) else None
    return content, tool_calls, choice.get("finish_reason"), tokens


class _Driver:
    """The episode as a state machine: ``request()`` says what to send, ``feed()`` takes the reply.

    Shared by the sync and async runners so both run the same code.
    """

    def __init__(
        self,
        model: str | None,
        env_or_task: ASCLEnv | Task | Mapping[str, Any],
        *,
        tool_mode: ToolMode,
        config: ASCLConfig | Mapping[str, Any] | None,
        seed: int | None,
        reset_options: Mapping[str, Any] | None,
        sampling: Mapping[str, Any],
    ) -> None:
        if tool_mode not in ("native", "hermes"):
            raise ValueError(f"tool_mode must be 'native' or 'hermes', got {tool_mode!r}")
        if isinstance(env_or_task, ASCLEnv) or hasattr(env_or_task, "unwrapped"):
            env = env_or_task.unwrapped
            if not isinstance(env, ASCLEnv):
                raise TypeError(f"env_or_task is a {type(env).__name__}, not an ASCL-v0 env")
            if config is not None:
                raise ValueError("config is for a task; an env brings its own")
            options = dict(reset_options) if reset_options else None
        else:
            if reset_options:
                raise ValueError("reset_options is for an env; a task is run as given")
            task = as_task(env_or_task, "env_or_task")
            env = ASCLEnv(as_config(config))
            options = {"task": task}
        self.env = env
        self.model = model
        self.tool_mode = tool_mode
        self.sampling = dict(sampling)
        _, info = env.reset(seed=seed, options=options)
        self.tools = info["tools"] if tool_mode == "native" else []
        self.wire: list[dict[str, Any]] = [dict(m) for m in info["messages"]]
        self.turns: list[Turn] = []
        self.info = info
        self.reward = 0.0
        self.terminated = self.truncated = False

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def feed(self, raw: Any) -> None:
        turn = len(self.turns) + 1
        content, calls, finish_reason, tokens = _reply(raw, turn)
        text = tool_calls_to_text(content, calls) if calls else (content or "")
        self.turns.append(Turn(text, finish_reason, tokens, len(calls)))
        before = len(self.env_messages)
        _, self.reward, self.terminated, self.truncated, self.info = self.env.step(text)
        results = [m for m in self.info["messages"][before + 1 :] if m["role"] == "tool"]
        if calls:
            ids = [c.get("id") or f"call_{turn}_{i}" for i, c in enumerate(calls)]
            wire_calls = [
                {**c, "id": call_id, "type": c.get("type", "function")}
                for c, call_id in zip(calls, ids, strict=True)
            ]
            self.wire.append({"role": "assistant", "content": content, "tool_calls": wire_calls})
            for i, call_id in enumerate(ids):
                content_i = (
                    results[i]["content"]
                    if i < len(results)
                    else "Error: not executed; only "
                    f"{self.env.config.max_calls_per_turn} call(s) per turn are answered"
                )
                self.wire.append({"role": "tool", "tool_call_id": call_id, "content": content_i})
        else:
            self.wire.append({"role": "assistant", "content": text})
            for i, result in enumerate(results):
                self.wire.append(
                    {
                        "role": "tool",
                        "tool_call_id": f"call_{turn}_{i}",
                        "name": LOOKUP_TOOL_NAME,
                        "content": result["content"],
                    }
                )

    @property
    def env_messages(self) -> list[dict[str, Any]]:
        return self.info["messages"]

    def result(self) -> Episode:
        outcome = {k: self.info.get(k) for k in OUTCOME_FIELDS}
        return Episode(
            messages=list(self.info["messages"]),
            reward=float(self.reward),
            outcome=outcome,
            turns=list(self.turns),
            wire_messages=list(self.wire),
            terminated=self.terminated,
            truncated=self.truncated,
            info=dict(self.info),
        )


_CHATCLIENT_PARAMS = ("temperature", "max_tokens", "seed", "n")


def _call_sync(client: Any, driver: _Driver) -> Any:
    if not hasattr(client, "complete"):  # an openai.OpenAI client
        return client.chat.completions.create(**_sdk_kwargs(driver))
    # ascl_env.openai_compat.ChatClient: other parameters travel in extra_body
    sampling = dict(driver.sampling)
    extra = dict(sampling.pop("extra_body", None) or {})
    known = {k: sampling.pop(k) for k in _CHATCLIENT_PARAMS if k in sampling}
    extra.update(sampling)
    if driver.model is not None and driver.model != getattr(client, "model", None):
        extra["model"] = driver.model
    return client.complete(driver.wire, tools=driver.tools or None, extra_body=extra, **known)


def _sdk_kwargs(driver: _Driver) -> dict[str, Any]:
    if driver.model is None:
        raise ValueError("model is required with an OpenAI SDK client")
    kwargs = {"model": driver.model, "messages": driver.wire, **driver.sampling}
    if driver.tools:
        kwargs["tools"] = driver.tools
    return kwargs


def run_openai_episode(
    client: Any,
    model: str | None,
    env_or_task: ASCLEnv | Task | Mapping[str, Any],
    *,
    tool_mode: ToolMode = "native",
    config: ASCLConfig | Mapping[str, Any] | None = None,
    seed: int | None = None,
    reset_options: Mapping[str, Any] | None = None,
    **sampling: Any,
) -> Episode:
    """Run one episode against an OpenAI-compatible endpoint and return it, scored by the env.

    Args:
        client: an ``ascl_env.openai_compat.ChatClient`` or an ``openai.OpenAI`` client.
        model: the model name to request (``None``: the ChatClient's own).
        env_or_task: an ``ASCL-v0`` env (``gymnasium.make`` wrappers are unwrapped; reset with
            ``seed`` and ``reset_options``), or a task (``Task`` or its dict) run in a new
            ``ASCLEnv(config)``.
        tool_mode: ``"native"`` (send the tool schema, read ``message.tool_calls``) or
            ``"hermes"`` (the model writes ``<tool_call>`` text).
        config: ``ASCLConfig`` (or its fields) for a task; not allowed with an env.
        seed: passed to ``env.reset``.
        reset_options: ``env.reset`` options (an env only), e.g. ``{"task_id": "..."}``.
        **sampling: request parameters (``temperature``, ``max_tokens``, ``seed``, ...).

    The episode runs until the env terminates or truncates it (``max_turns``). Endpoint errors
    propagate (``openai_compat.EndpointError`` / the SDK's own).
    """
    driver = _Driver(
        model,
        env_or_task,
        tool_mode=tool_mode,
        config=config,
        seed=seed,
        reset_options=reset_options,
        sampling=sampling,
    )
    while not driver.done:
        driver.feed(_call_sync(client, driver))
    return driver.result()


async def arun_openai_episode(
    client: Any,
    model: str,
    env_or_task: ASCLEnv | Task | Mapping[str, Any],
    *,
    tool_mode: ToolMode = "native",
    config: ASCLConfig | Mapping[str, Any] | None = None,
    seed: int | None = None,
    reset_options: Mapping[str, Any] | None = None,
    **sampling: Any,
) -> Episode:
    """:func:`run_openai_episode` for ``openai.AsyncOpenAI`` (AReaL, ART, rLLM rollouts).

    The env's ``step`` (retrieval and judging) runs in the event loop's thread.
    """
    driver = _Driver(
        model,
        env_or_task,
        tool_mode=tool_mode,
        config=config,
        seed=seed,
        reset_options=reset_options,
        sampling=sampling,
    )
    while not driver.done:
        driver.feed(await client.chat.completions.create(**_sdk_kwargs(driver)))
    return driver.result()
