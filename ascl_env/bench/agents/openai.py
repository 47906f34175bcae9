"""Any OpenAI-compatible ``/chat/completions`` endpoint (e.g. ``vllm serve``).

The agent runs whole episodes through :func:`ascl_env.episode.run_openai_episode` (the one
implementation of an episode against an endpoint) with :class:`ascl_env.openai_compat.ChatClient`
(its timeouts, retries and total deadline); the runner gives each episode its own thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ascl_env.bench.agents.base import (
    FINISH_ERROR,
    AgentError,
    AgentOptions,
    AgentSpecError,
    EpisodeFailed,
    EpisodeRun,
    finish_reason,
    register_agent,
)
from ascl_env.openai_compat import ChatClient, EndpointError


class _TimedClient:
    """Passes ``complete`` to a :class:`ChatClient`, timing each call and keeping what was sent
    (one per episode, so the agent can say how long each turn took and where an episode failed).
    """

    def __init__(self, client: ChatClient):
        self.client = client
        self.model = client.model
        self.turns: list[dict[str, Any]] = []
        self.last_messages: list[dict[str, Any]] = []

    def complete(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        self.last_messages = [dict(m) for m in messages]
        began = time.perf_counter()
        turn: dict[str, Any] = {"finish_reason": FINISH_ERROR, "completion_tokens": None}
        try:
            reply = self.client.complete(messages, **kwargs)
            turn["finish_reason"] = finish_reason(reply.finish_reason)
            turn["completion_tokens"] = reply.usage.completion_tokens
            return reply
        finally:
            turn["generate_s"] = round(time.perf_counter() - began, 6)
            self.turns.append(turn)

    @property
    def seconds(self) -> float:
        return sum(t["generate_s"] for t in self.turns)


PROBE_S = 10.0
"""The most seconds :meth:`OpenAIAgent.check` waits for the endpoint's model list."""


class OpenAIAgent:
    """An OpenAI-compatible ``/chat/completions`` endpoint, one whole episode per call.

    ``tool_mode="native"`` sends the lookup tool's schema and reads the server-parsed
    ``message.tool_calls`` (vLLM with ``--enable-auto-tool-choice``, hosted APIs);
    ``"hermes"`` sends no tools and lets the model write ``<tool_call>`` text (servers without
    a tool parser). ``timeout`` is the total deadline of one request, from connecting to its
    last byte, its retries and backoff included (a server that trickles its reply cannot hold
    an episode longer); connection errors, 429 and 5xx are retried ``max_retries`` times with
    exponential backoff (from ``backoff`` seconds) while time is left. An episode whose request
    still fails raises :class:`EpisodeFailed` (the runner records it as errored and goes on).
    :meth:`check` probes the endpoint within :data:`PROBE_S` seconds at most.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        backoff: float = 0.5,
        tool_mode: str = "native",
        name: str | None = None,
    ):
        if tool_mode not in ("native", "hermes"):
            raise AgentSpecError(f"tool mode must be 'native' or 'hermes', got {tool_mode!r}")
        max_backoff = 8.0
        try:
            self.client = ChatClient(
                base_url,
                model,
                api_key=api_key,
                timeout=timeout,
                deadline_s=timeout,
                max_retries=max_retries,
                backoff_s=backoff,
                max_backoff_s=max_backoff,
                concurrency=concurrency,
            )
        except ValueError as exc:
            raise AgentSpecError(f"openai:{base_url}#{model}: {exc}") from exc
        self.base_url = self.client.base_url
        self.model = model
        self.name = name or f"openai:{model}"
        self.concurrency = concurrency
        self.tool_mode = tool_mode
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.generation_seconds = 0.0

    def check(self) -> None:
        """Fail fast with a clear message when the endpoint is unreachable or lacks the model."""
        url = f"{self.base_url}/models"
        try:
            models = self.client.models(deadline_s=min(PROBE_S, self.client.deadline_s))
        except EndpointError as exc:
            raise AgentError(f"cannot reach the OpenAI-compatible endpoint {url}: {exc}") from exc
        if models and self.model not in models:
            raise AgentError(
                f"{self.base_url} does not serve model {self.model!r}; it has {models}"
            )

    def describe(self) -> dict[str, Any]:
        """Provenance: the served model and how it is asked (compared on resume), and the
        endpoint (recorded only: ``localhost`` and ``127.0.0.1`` reach the same server)."""
        return {
            "model": {
                "served_model": self.model,
                "tool_mode": self.tool_mode,
                "family": "openai",
            },
            "runtime": {"endpoint": self.base_url, "concurrency": self.concurrency},
        }

    def close(self) -> None:
        self.client.close()

    def run_episode(self, env: Any, *, seed: int, task_id: str) -> EpisodeRun:
        """One episode on ``env`` (reset with ``seed`` and ``task_id``), sampled with ``seed``
        so that repeats of a task do not all get the same text."""
        from ascl_env.episode import EpisodeError, run_openai_episode

        client = _TimedClient(self.client)
        try:
            episode = run_openai_episode(
                client,
                None,
                env,
                seed=seed,
                reset_options={"task_id": task_id},
                tool_mode=self.tool_mode,
                max_tokens=self.max_new_tokens,
                temperature=self.temperature,
                # ``seed`` above resets the env; the request's sampling seed goes in the body
                extra_body={"seed": seed},
            )
        except (EndpointError, EpisodeError) as exc:
            self.generation_seconds += client.seconds
            turns = list(client.turns)
            if isinstance(exc, EpisodeError) and turns:  # the reply came but was unusable
                turns[-1] = {**turns[-1], "finish_reason": FINISH_ERROR}
            raise EpisodeFailed(
                f"{type(exc).__name__}: {exc}", turns=turns, messages=client.last_messages
            ) from exc
        self.generation_seconds += client.seconds
        info = {**episode.info, "messages": episode.messages}
        return EpisodeRun(info=info, reward=episode.reward, turns=client.turns)


@register_agent(
    "openai",
    "an OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000/v1#my-model",
    argument="URL#MODEL",
)
def _openai(rest: str | None, options: AgentOptions, _answers: Mapping[str, str]) -> OpenAIAgent:
    spec = f"openai:{rest}"
    url, sep, model = rest.rpartition("#")
    if not sep or not url or not model:
        raise AgentSpecError(
            f"agent spec {spec!r}: write openai:URL#MODEL, "
            "e.g. openai:http://127.0.0.1:8000/v1#my-model"
        )
    if not url.startswith(("http://", "https://")):
        raise AgentSpecError(f"agent spec {spec!r}: the URL must start with http:// or https://")
    return OpenAIAgent(
        url,
        model,
        api_key=os.environ.get(options.api_key_env),
        concurrency=options.concurrency,
        timeout=options.timeout,
        max_retries=options.max_retries,
        tool_mode=options.tool_mode,
        **options.generation(),
    )
