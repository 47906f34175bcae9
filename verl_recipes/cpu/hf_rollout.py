"""The ``hf`` rollout backend: token-in/token-out generation with plain transformers.

verl 0.9.1 can roll out only through vLLM, SGLang or TensorRT-LLM servers. This backend needs
nothing but transformers, so the recipes run where none of those exist: on CPU (the test
harness, with :mod:`verl_recipes.cpu.platform`) and on a CUDA machine without vLLM.

- :class:`HFServer` (a Ray actor, one per replica) holds a ``AutoModelForCausalLM`` and serves
  ``generate(request_id, prompt_ids, sampling_params) -> TokenOutput`` with the sampled tokens'
  log-probabilities. Requests are queued and run in batches: whatever is pending when the model
  becomes free (up to ``rollout.max_num_seqs``, same sampling parameters) goes through one
  left-padded ``model.generate`` call.
- :class:`HFReplica` launches the server (``RolloutReplicaRegistry`` name ``hf``), on the node
  and device of its trainer workers (hybrid mode, as verl's sync trainer uses).
- :class:`HFServerAdapter` lives in each trainer worker: ``update_weights`` gathers the actor's
  full tensors and rollout rank 0 sends them to its server, which loads them with
  ``load_state_dict`` (the rollout samples from the weights being trained).

Log-probabilities are ``log_softmax`` of the processed logits (after repetition penalty,
temperature, top-k and top-p), the distribution the token was sampled from, as vLLM's
``processed_logprobs``. Not supported: multimodal inputs, LoRA adapters, delta weight updates,
partial-rollout abort/resume (abort is a no-op), and colocated/standalone rollout modes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

# verl before anything else from this package: a process whose first import is this module (the
# server actor) must let verl run verl_recipes.cpu.plugin before our own modules need it.
import verl  # noqa: F401  isort: skip
import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import (
    RolloutMode,
    RolloutReplica,
    TokenOutput,
)

logger = logging.getLogger(__name__)


def server_actor_name(replica_rank: int) -> str:
    """Ray actor name of replica ``replica_rank``'s server (also its ``server_address``)."""
    return f"ascl_hf_server_{replica_rank}"


@dataclass(frozen=True)
class SamplingKey:
    """The sampling parameters a batch must share."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    stop_token_ids: tuple[int, ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any], defaults: Any) -> SamplingKey:
        """From verl's per-request ``sampling_params`` over the rollout config's defaults."""
        temperature = float(params.get("temperature", defaults.temperature))
        top_k = params.get("top_k", defaults.top_k)
        top_k = 0 if top_k is None or int(top_k) < 0 else int(top_k)
        top_p = float(params.get("top_p", defaults.top_p))
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"sampling_params.top_p must be in (0, 1], got {top_p}")
        if temperature < 0:
            raise ValueError(f"sampling_params.temperature must be >= 0, got {temperature}")
        do_sample = bool(params.get("do_sample", defaults.do_sample)) and temperature > 0
        return cls(
            do_sample=do_sample,
            temperature=temperature if do_sample else 1.0,
            top_k=top_k if do_sample else 0,
            top_p=top_p if do_sample else 1.0,
            repetition_penalty=float(
                params.get("repetition_penalty", defaults.repetition_penalty) or 1.0
            ),
            # vLLM's stop_token_ids: the turn ends after one of these (kept in the output).
            stop_token_ids=tuple(sorted({int(t) for t in params.get("stop_token_ids") or ()})),
        )


@dataclass
class _Request:
    prompt_ids: list[int]
    key: SamplingKey
    max_tokens: int
    future: asyncio.Future = field(repr=False)


def _logprob_recorder() -> tuple[Any, Any, list[torch.Tensor]]:
    """A logits processor and a stopping criterion that record log p(sampled token).

    The processor must come last (after the warpers) and keeps the step's processed
    log-softmax; ``generate`` calls the stopping criterion right after appending the sampled
    token, and it picks that token's entry. Returns ``(processor, criterion, steps)``.
    """
    from transformers import LogitsProcessor, StoppingCriteria

    steps: list[torch.Tensor] = []
    current: list[torch.Tensor] = []

    class RecordLogprobs(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            current[:] = [torch.log_softmax(scores.float(), dim=-1)]
            return scores

    class GatherLogprobs(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            steps.append(current.pop().gather(1, input_ids[:, -1:]).squeeze(1).cpu())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return RecordLogprobs(), GatherLogprobs(), steps


class HFServer:
    """Ray actor serving one rollout replica with a transformers model (see module docstring)."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int = 0) -> None:
        from transformers import AutoModelForCausalLM

        self.config = omega_conf_to_dataclass(config)
        self.replica_rank = replica_rank
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # bf16 matmuls are slow and inexact on CPU; keep full precision there.
        dtype = torch.float32 if self.device.type == "cpu" else getattr(torch, self.config.dtype)
        override = dict(getattr(model_config, "override_config", None) or {})
        path = getattr(model_config, "local_path", None) or model_config.path
        self.model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            attn_implementation=override.get("attn_implementation", "sdpa"),
            trust_remote_code=bool(getattr(model_config, "trust_remote_code", False)),
        )
        self.model.to(self.device).eval()
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.model.config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.model.config.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids, default=0)
        self.max_batch = max(1, int(self.config.max_num_seqs))
        self.global_steps: int | None = None
        self.batches = 0
        self.batched_requests = 0
        self._pending: list[_Request] = []
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._model_lock: asyncio.Lock | None = None
        self._on_device = True
        torch.manual_seed(int(self.config.seed) + replica_rank)

    # ---- generation -------------------------------------------------------------------------

    async def generate(
        self,
        request_id: str,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: Any = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        if image_data or video_data or kwargs.get("audio_data"):
            raise ValueError("the hf rollout backend is text-only (got image/video/audio data)")
        limit = sampling_params.get("max_tokens", sampling_params.get("max_new_tokens"))
        max_tokens = int(limit if limit is not None else self.config.response_length)
        if max_tokens <= 0:
            return TokenOutput(token_ids=[], log_probs=[], stop_reason="completed")
        self._start()
        future = asyncio.get_running_loop().create_future()
        key = SamplingKey.from_params(sampling_params, self.config)
        self._pending.append(_Request(list(prompt_ids), key, max_tokens, future))
        self._wake.set()
        token_ids, log_probs = await future
        stopped = bool(token_ids) and (
            token_ids[-1] in self.eos_ids or token_ids[-1] in key.stop_token_ids
        )
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            # As verl's client reports a turn that used its whole budget.
            stop_reason="completed" if stopped or len(token_ids) < max_tokens else "length",
            extra_fields={"global_steps": self.global_steps},
        )

    def _start(self) -> None:
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._model_lock = asyncio.Lock()
            self._worker = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = self._pending[0].key
                batch = [r for r in self._pending if r.key == key][: self.max_batch]
                chosen = {id(r) for r in batch}
                self._pending = [r for r in self._pending if id(r) not in chosen]
                try:
                    async with self._model_lock:
                        results = await asyncio.to_thread(self._generate_batch, batch)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                    for request in batch:
                        if not request.future.done():
                            request.future.set_exception(exc)
                    continue
                for request, result in zip(batch, results, strict=True):
                    if not request.future.done():
                        request.future.set_result(result)

    @torch.no_grad()
    def _generate_batch(self, batch: list[_Request]) -> list[tuple[list[int], list[float]]]:
        from transformers import (
            GenerationConfig,
            LogitsProcessorList,
            StoppingCriteriaList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        key = batch[0].key
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, request in enumerate(batch):  # left padding
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention_mask[row, width - len(request.prompt_ids) :] = 1
        record, gather, steps = _logprob_recorder()
        processors = LogitsProcessorList()
        if key.do_sample:
            # Built here rather than by generate(), so the recorder runs after them.
            if key.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(key.temperature))
            if key.top_k > 0:
                processors.append(TopKLogitsWarper(top_k=key.top_k))
            if key.top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p=key.top_p))
        processors.append(record)
        generation_config = GenerationConfig(
            do_sample=key.do_sample,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            repetition_penalty=key.repetition_penalty,
            max_new_tokens=max(r.max_tokens for r in batch),
            eos_token_id=sorted(self.eos_ids | set(key.stop_token_ids)) or None,
            pad_token_id=self.pad_id,
            use_cache=True,
        )
        sequences = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=generation_config,
            logits_processor=processors,
            stopping_criteria=StoppingCriteriaList([gather]),
        )
        new_tokens = sequences[:, width:].cpu()
        log_probs = torch.stack(steps, dim=1) if steps else None
        self.batches += 1
        self.batched_requests += len(batch)
        results = []
        stops = self.eos_ids | set(key.stop_token_ids)
        for row, request in enumerate(batch):
            tokens = new_tokens[row, : request.max_tokens].tolist()
            for end, token in enumerate(tokens):
                if token in stops:
                    tokens = tokens[: end + 1]
                    break
            logps = log_probs[row, : len(tokens)].tolist() if tokens else []
            results.append((tokens, logps))
        return results

    # ---- weights and lifecycle ----------------------------------------------------------------

    async def load_weights(self, state_dict: dict[str, torch.Tensor], global_steps: int | None):
        """Load the actor's full (HF-named) weights; returns the number of tensors loaded."""
        self._start()
        async with self._model_lock:
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
            tied = set(getattr(self.model, "_tied_weights_keys", None) or [])
            if isinstance(getattr(self.model, "_tied_weights_keys", None), dict):
                tied = set(self.model._tied_weights_keys)
            missing = [k for k in missing if k not in tied]
            if unexpected or missing:
                raise ValueError(
                    f"weights from the actor do not match the rollout model: "
                    f"unexpected {unexpected[:5]}, missing {missing[:5]}"
                )
            if global_steps is not None:
                self.global_steps = global_steps
        return len(state_dict)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def stats(self) -> dict[str, Any]:
        """Batches run and requests served (to check that requests are batched)."""
        return {
            "batches": self.batches,
            "requests": self.batched_requests,
            "device": str(self.device),
            "global_steps": self.global_steps,
        }

    async def ready(self) -> str:
        return str(self.device)

    async def wake_up(self, tags: list[str] | None = None) -> None:
        if self.device.type == "cuda" and not self._on_device:
            self.model.to(self.device)
            self._on_device = True

    async def sleep(self) -> None:
        # On a GPU shared with the trainer, free its memory between rollouts.
        if self.device.type == "cuda" and self.config.free_cache_engine and self._on_device:
            self.model.to("cpu")
            torch.cuda.empty_cache()
            self._on_device = False

    async def clear_kv_cache(self) -> None:
        return None  # no cache survives a generate() call

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reject_request: bool = False, **kwargs: Any) -> dict:
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, **kwargs: Any) -> dict:
        return {"aborted": False}

    async def resume_generation(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0.05)

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def _worker_placement(worker_self: Any) -> tuple[str, list[str]]:
    context = ray.get_runtime_context()
    return context.get_node_id(), [str(i) for i in context.get_accelerator_ids().get("GPU", [])]


class HFReplica(RolloutReplica):
    """One :class:`HFServer` per replica, placed on its trainer workers' node (hybrid mode)."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self) -> None:
        if self.rollout_mode != RolloutMode.HYBRID:
            raise NotImplementedError(
                f"the hf rollout backend supports the hybrid (colocated trainer) mode only, "
                f"got {self.rollout_mode}; use trainer.v1.trainer_mode=sync"
            )
        from verl.utils.device import get_device_name

        placements = await asyncio.gather(
            *[worker.__ray_call__.remote(_worker_placement) for worker in self.workers]
        )
        name = server_actor_name(self.replica_rank)
        options: dict[str, Any] = {"name": name, "max_concurrency": self.max_concurrency}
        if placements:
            options["scheduling_strategy"] = (
                ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    node_id=placements[0][0], soft=False
                )
            )
        if get_device_name() == "cuda":
            # As verl's vLLMReplica: the server shares its workers' GPUs without holding them.
            devices = sorted({d for _, ids in placements for d in ids})
            options["runtime_env"] = {
                "env_vars": {
                    "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1",
                    "CUDA_VISIBLE_DEVICES": ",".join(devices),
                }
            }
        else:
            options["num_cpus"] = 0
        server = (
            ray.remote(HFServer)
            .options(**options)
            .remote(
                config=self.config, model_config=self.model_config, replica_rank=self.replica_rank
            )
        )
        device = await server.ready.remote()
        logger.info("hf rollout server %s ready on %s", name, device)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """In-worker side of the ``hf`` rollout: lifecycle calls and the weight sync."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self._handle: Any = None

    def _server(self) -> Any:
        if self.rollout_rank != 0:
            return None
        if self._handle is None:
            self._handle = ray.get_actor(server_actor_name(self.replica_rank))
        return self._handle

    async def resume(self, tags: list[str]) -> None:
        server = self._server()
        if server is not None and self.config.free_cache_engine:
            await server.wake_up.remote(tags=tags)

    async def release(self) -> None:
        server = self._server()
        if server is not None and self.config.free_cache_engine:
            await server.sleep.remote()

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Any,
        global_steps: int | None = None,
        wire_format: str = "named_tensors",
        **kw: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout: wire_format {wire_format!r} is not supported")
        if kw.get("peft_config") is not None:
            raise NotImplementedError("hf rollout: LoRA adapters are not supported (merge them)")
        from torch.distributed.tensor import DTensor
        from verl.workers.rollout.utils import ensure_async_iterator

        server = self._server()
        state: dict[str, torch.Tensor] = {}
        # Every rank walks the generator: gathering a sharded tensor is a collective.
        async for name, tensor in ensure_async_iterator(weights):
            if isinstance(tensor, DTensor):
                tensor = tensor.full_tensor()
            if server is not None:
                state[name] = tensor.detach().to("cpu", copy=True)
        if server is not None:
            await server.load_weights.remote(state, global_steps)
