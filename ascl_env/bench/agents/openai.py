"""Any OpenAI-compatible ``/chat/completions`` endpoint (e.g. ``vllm serve``), with
concurrency, timeouts and retries."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ascl_env.bench.agents.base import (
    LOOKUP_TOOL,
    AgentError,
    AgentOptions,
    AgentSpecError,
    Conversation,
    register_agent,
)


def tool_calls_to_text(content: str | None, tool_calls: Sequence[Mapping[str, Any]]) -> str:
    """Turn a server-parsed ``message.tool_calls`` back into the Hermes text the env reads."""
    parts = [content] if content else []
    for call in tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass  # the env reports the malformed call; we must not hide it
        payload = {"name": function.get("name"), "arguments": arguments}
        parts.append(f"<tool_call>\n{json.dumps(payload)}\n</tool_call>")
    return "\n".join(parts)


def wire_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The env's messages as a chat-completions request body.

    Assistant turns are sent as the raw text the model wrote (tool calls included), so the
    server's chat template renders the same prompt an ``HFAgent`` would. Tool results get a
    synthetic ``tool_call_id``: servers that render from a template (vLLM, SGLang, llama.cpp)
    accept them; OpenAI's hosted API does not take tool results without structured calls.
    """
    out = []
    for i, message in enumerate(messages):
        wire = {"role": message["role"], "content": message["content"]}
        if message["role"] == "tool":
            wire["tool_call_id"] = f"call_{i}"
            wire["name"] = message.get("name", LOOKUP_TOOL)
        out.append(wire)
    return out


class OpenAIAgent:
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    Conversations are sent ``concurrency`` at a time. Connection errors, timeouts, 429 and 5xx
    are retried ``max_retries`` times with exponential backoff; anything else, or a response
    without ``choices[0].message``, raises :class:`AgentError` naming the URL and the problem.
    Tool calls the server parsed out of the text (``message.tool_calls``) are turned back into
    Hermes ``<tool_call>`` text for the env.
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
        name: str | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name or f"openai:{model}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            timeout=timeout, headers=headers, limits=httpx.Limits(max_connections=concurrency)
        )
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self._params = {"max_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
        self.generation_seconds = 0.0

    def check(self) -> None:
        """Fail fast with a clear message when the endpoint is unreachable or lacks the model."""
        url = f"{self.base_url}/models"
        try:
            response = self._client.get(url)
            response.raise_for_status()
            models = [m.get("id") for m in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise AgentError(f"cannot reach the OpenAI-compatible endpoint {url}: {exc}") from exc
        if models and self.model not in models:
            raise AgentError(
                f"{self.base_url} does not serve model {self.model!r}; it has {models}"
            )

    def close(self) -> None:
        self._client.close()

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as exc:  # connection refused, timeouts, resets
                if last:
                    raise AgentError(
                        f"{url}: {type(exc).__name__} after {attempt + 1} attempt(s): {exc}"
                    ) from exc
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise AgentError(
                            f"{url}: response is not JSON: {response.text[:200]!r}"
                        ) from exc
                retryable = response.status_code == 429 or response.status_code >= 500
                if last or not retryable:
                    raise AgentError(
                        f"{url}: HTTP {response.status_code} after {attempt + 1} attempt(s): "
                        f"{response.text[:300]}"
                    )
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _complete(self, conv: Conversation) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": wire_messages(conv.messages),
            **self._params,
            "seed": conv.meta.get("seed", self._params["seed"]),
        }
        if conv.tools:
            body["tools"] = conv.tools
        data = self._post(body)
        try:
            message = data["choices"][0]["message"]
            content = message.get("content")
            tool_calls = message.get("tool_calls") or []
            if content is not None and not isinstance(content, str):
                raise TypeError(f"content is {type(content).__name__}")
            return tool_calls_to_text(content, tool_calls) if tool_calls else (content or "")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise AgentError(
                f"{self.base_url}/chat/completions: malformed response "
                f"(expected choices[0].message.content): {exc!r} in {str(data)[:200]}"
            ) from exc

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            out = list(pool.map(self._complete, conversations))
        self.generation_seconds += time.perf_counter() - began
        return out


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
        **options.generation(),
    )
