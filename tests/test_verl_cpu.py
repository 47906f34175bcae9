"""The CPU harness of verl_recipes.cpu: workarounds, platform, hf rollout server, metrics.

The end-to-end main_ppo run is in test_verl_cpu_smoke.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("verl")

from ascl_env.ifpo import compute_ifpo, compute_ifpo_advantages  # noqa: E402
from verl_recipes import compat  # noqa: E402
from verl_recipes.cpu import plugin, report, workarounds  # noqa: E402
from verl_recipes.cpu.hf_rollout import HFServer, SamplingKey  # noqa: E402
from verl_recipes.ifpo_estimator import ifpo_batch_metrics, pop_metrics  # noqa: E402
from verl_recipes.trainer import ascl_rollout_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODULES = "verl_recipes.cpu.plugin,verl_recipes.plugin,verl_recipes.trainer"


def _run_python(code: str, *, cpu: bool, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["VERL_USE_EXTERNAL_MODULES"] = MODULES
    env.pop("VERL_PLATFORM", None)
    if cpu:
        env["VERL_PLATFORM"] = "cpu"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )


# ---- the two workarounds: fail loudly when verl changes ------------------------------------


def test_installed_verl_is_the_supported_version():
    assert workarounds.check_verl_version().startswith(workarounds.SUPPORTED_VERL)


def test_backend_string_workaround_still_matches_verl():
    # Fails (VerlDriftError) when verl/utils/distributed.py or engine_workers.py change.
    original = workarounds.check_backend_string()
    assert original.__name__ == "initialize_global_process_group_ray"


def test_private_rollout_registry_still_matches_verl():
    # Fails (VerlDriftError) when verl/workers/rollout/base.py's _ROLLOUT_REGISTRY changes.
    registry = workarounds.check_rollout_registry()
    assert registry[(plugin.HF_ROLLOUT, "async")] == plugin.HF_ADAPTER


def test_trl_probe_workaround_still_matches_verl():
    # Fails (VerlDriftError) when verl's trl probe or its two users change.
    assert compat.check_trl_probe().__name__ == "is_trl_available"


TRL_PROBE = """
import json, verl
from verl.models.transformers import monkey_patch
from verl.utils import model
from verl_recipes.compat import trl_has_value_head
print(json.dumps([monkey_patch.is_trl_available(), model.is_trl_available(), trl_has_value_head()]))
"""


def test_trl_probe_is_true_only_for_a_usable_trl():
    # With the project's trl extra (trl 1.x) installed verl would import a class trl removed.
    result = _run_python(TRL_PROBE, cpu=False)
    assert result.returncode == 0, result.stderr[-2000:]
    in_monkey_patch, in_model, usable = json.loads(result.stdout.strip().splitlines()[-1])
    assert in_monkey_patch == in_model == usable


def test_drift_is_detected():
    def stand_in():
        return "something else"

    with pytest.raises(compat.VerlDriftError, match="verl changed"):
        compat.require_source(stand_in, workarounds.BACKEND_SOURCE_LINE, "stand_in")


PROCESS_GROUP = """
import os
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="{port}")
import verl, torch.distributed as dist
import verl.workers.engine_workers as engine_workers
from verl.utils import distributed
from verl_recipes.cpu import workarounds
{call}
print("BACKEND", dist.get_backend())
"""


def test_cpu_platform_needs_the_backend_workaround_and_it_works():
    # verl's own function still builds "cpu:gloo,cpu:gloo" on the CPU platform: torch rejects
    # it. If this starts passing, verl fixed the line and the workaround can go.
    unpatched = _run_python(
        PROCESS_GROUP.format(
            port=29613,
            call="distributed.initialize_global_process_group_ray._ascl_original()",
        ),
        cpu=True,
    )
    assert unpatched.returncode != 0
    assert "Duplicate device type cpu" in unpatched.stderr, unpatched.stderr[-2000:]
    patched = _run_python(
        PROCESS_GROUP.format(
            port=29614, call="engine_workers.initialize_global_process_group_ray(timeout_second=60)"
        ),
        cpu=True,
    )
    assert patched.returncode == 0, patched.stderr[-2000:]
    assert "BACKEND gloo" in patched.stdout


# ---- the platform is opt-in ------------------------------------------------------------------

PLATFORM = """
import json, os, verl
from verl.utils.device import get_device_name, get_nccl_backend, get_torch_device
from verl.utils import distributed
device = get_torch_device()
print(json.dumps({
    "device": get_device_name(), "backend": get_nccl_backend(),
    "patched": hasattr(distributed.initialize_global_process_group_ray, "_ascl_original"),
    "engine_device": os.environ.get("VERL_ENGINE_DEVICE"),
    "allocated": device.memory_allocated() if get_device_name() == "cpu" else None,
}))
"""


def test_cpu_platform_only_with_verl_platform_cpu():
    on = _run_python(PLATFORM, cpu=True)
    assert on.returncode == 0, on.stderr[-2000:]
    assert json.loads(on.stdout.strip().splitlines()[-1]) == {
        "device": "cpu",
        "backend": "gloo",
        "patched": True,
        "engine_device": "cuda",
        "allocated": 0,
    }
    off = _run_python(PLATFORM, cpu=False)
    assert off.returncode == 0, off.stderr[-2000:]
    result = json.loads(off.stdout.strip().splitlines()[-1])
    assert result["device"] != "cpu" and not result["patched"]


# ---- the hf rollout server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from verl_recipes.cpu.warmstart import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


class _Config:
    """The RolloutConfig fields HFServer reads."""

    temperature, top_k, top_p, do_sample, repetition_penalty = 0.7, -1, 1.0, True, 1.0
    dtype, max_num_seqs, seed, response_length, free_cache_engine = "float32", 64, 0, 16, True


class _ModelConfig:
    override_config: dict = {}
    trust_remote_code = False

    def __init__(self, path: Path):
        self.path = self.local_path = str(path)


@pytest.fixture(scope="module")
def server(tiny_model):
    from verl.utils import config as verl_config

    original = verl_config.omega_conf_to_dataclass
    # HFServer accepts verl's RolloutConfig; a plain object stands in for it here.
    import verl_recipes.cpu.hf_rollout as hf

    hf.omega_conf_to_dataclass = lambda c: c
    try:
        yield HFServer(_Config(), _ModelConfig(tiny_model))
    finally:
        hf.omega_conf_to_dataclass = original


def test_hf_server_batches_requests_and_returns_sampling_logprobs(server):
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [20, 21, 22, 23, 24, 25, 26]]

    async def run():
        return await asyncio.gather(
            *[
                server.generate(f"r{i}", p, {"temperature": 0.7, "max_tokens": 6 + i})
                for i, p in enumerate(prompts)
            ]
        )

    before = server.batches
    outputs = asyncio.run(run())
    # All four were pending together: one model.generate call served them.
    assert server.batches - before == 1
    for i, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
        assert 1 <= len(output.token_ids) <= 6 + i
        assert len(output.log_probs) == len(output.token_ids)
        # Teacher-forced log p(token) at temperature 0.7 matches what the server reported.
        ids = torch.tensor([prompt + output.token_ids])
        with torch.no_grad():
            logits = server.model(ids).logits[0, len(prompt) - 1 : -1].float()
        expected = torch.log_softmax(logits / 0.7, -1).gather(1, ids[0, len(prompt) :, None])
        assert torch.allclose(torch.tensor(output.log_probs), expected.squeeze(1), atol=1e-4)


def test_hf_server_greedy_and_weight_loading(server):
    greedy = {"temperature": 0.0, "max_tokens": 5}
    first = asyncio.run(server.generate("g", [5, 6, 7], greedy)).token_ids
    assert asyncio.run(server.generate("g", [5, 6, 7], greedy)).token_ids == first
    state = {k: v.clone() for k, v in server.model.state_dict().items()}
    changed = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    assert asyncio.run(server.load_weights(changed, global_steps=3)) == len(changed)
    assert asyncio.run(server.generate("g", [5, 6, 7], greedy)).extra_fields["global_steps"] == 3
    with pytest.raises(ValueError, match="unexpected"):
        asyncio.run(server.load_weights({"not.a.weight": torch.zeros(1)}, None))
    asyncio.run(server.load_weights(state, None))
    assert asyncio.run(server.generate("g", [5, 6, 7], greedy)).token_ids == first


def test_hf_server_honours_stop_token_ids_and_reports_length(server):
    greedy = {"temperature": 0.0, "max_tokens": 8}
    free = asyncio.run(server.generate("s", [5, 6, 7], greedy))
    assert len(free.token_ids) == 8 and free.stop_reason == "length"  # the tiny model never ends
    stop = free.token_ids[3]
    stopped = asyncio.run(server.generate("s", [5, 6, 7], {**greedy, "stop_token_ids": [stop]}))
    end = free.token_ids.index(stop) + 1
    # Generation ends right after the stop token, which is kept (vLLM's stop_token_ids).
    assert stopped.token_ids == free.token_ids[:end] and stopped.stop_reason == "completed"


def test_sampling_key_validates():
    key = SamplingKey.from_params({"temperature": 0, "top_k": 5}, _Config())
    assert not key.do_sample and key.top_k == 0
    with pytest.raises(ValueError, match="top_p"):
        SamplingKey.from_params({"top_p": 0.0}, _Config())


# ---- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["group", "batch"])
@pytest.mark.parametrize("apply_to", ["all", "positive"])
@pytest.mark.parametrize("max_weight", [None, 1.5])
def test_ifpo_metric_weights_are_the_estimators(scope, apply_to, max_weight):
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 24))
        index = np.array([f"u{g}" for g in rng.integers(0, 4, n)], dtype=object)
        scores = torch.tensor(rng.choice([0.0, 1.0, -0.1, 0.5], n), dtype=torch.float64)
        lookups = torch.tensor(rng.integers(0, 3, n))
        kwargs = {"scope": scope, "apply_to": apply_to, "max_weight": max_weight}
        result = compute_ifpo(scores, index, lookups, **kwargs)
        grpo = compute_ifpo_advantages(scores, index, torch.zeros(n, dtype=torch.long))
        # IFPO = w * GRPO wherever GRPO is not 0: the reported weights are those w.
        nonzero = grpo.abs() > 1e-9
        assert torch.allclose((result.advantages / grpo)[nonzero], result.weights[nonzero])
        metrics = ifpo_batch_metrics(result)
        weights, consulted = result.weights.numpy(), (lookups > 0).numpy()
        assert metrics["ifpo/weight_min"] == pytest.approx(weights.min())
        assert metrics["ifpo/weight_max"] == pytest.approx(weights.max())
        assert metrics["ifpo/consulted_frac"] == pytest.approx(consulted.mean())
        assert metrics["ifpo/groups"] == len(set(index))
        for name, selected in (("consulted", consulted), ("direct", ~consulted)):
            if selected.any():
                expected = weights[selected].mean()
                assert metrics[f"ifpo/weight_mean/{name}"] == pytest.approx(expected)


def test_ifpo_metrics_of_a_mixed_group():
    # One group of 4: 1 consulted, 3 direct -> weights 2 and 2/3; one single-mode group.
    index = np.array(["a", "a", "a", "a", "b", "b"], dtype=object)
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    metrics = ifpo_batch_metrics(compute_ifpo(scores, index, torch.tensor([1, 0, 0, 0, 0, 0])))
    assert metrics["ifpo/groups"] == 2 and metrics["ifpo/mixed_groups"] == 1
    assert metrics["ifpo/mixed_weight_mean/consulted"] == pytest.approx(2.0)
    assert metrics["ifpo/mixed_weight_mean/direct"] == pytest.approx(2 / 3)
    assert metrics["ifpo/reweighted_frac"] == pytest.approx(4 / 6)


def test_estimator_call_leaves_metrics_for_the_trainer():
    from verl_recipes.ifpo_estimator import compute_ifpo_advantage

    mask = torch.tensor([[1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
    rewards = torch.zeros(3, 6)
    rewards[:, 1] = torch.tensor([1.0, 0.0, 0.0])
    pop_metrics()
    compute_ifpo_advantage(rewards, mask, np.array(["u", "u", "u"], dtype=object))
    metrics = pop_metrics()
    assert metrics["ifpo/mixed_groups"] == 1 and metrics["ifpo/consulted_frac"] == pytest.approx(
        1 / 3
    )
    assert pop_metrics() == {}


def test_ascl_rollout_metrics_per_kind():
    metrics = ascl_rollout_metrics(
        ["harmful", "harmful", "math"], [1, 0, 0], [1.0, 0.0, -0.1], [True, False, True]
    )
    assert metrics == {
        "ascl/lookup_rate": pytest.approx(1 / 3),
        "ascl/lookup_rate/harmful": 0.5,
        "ascl/lookup_rate/math": 0.0,
        "ascl/consult_rate": pytest.approx(2 / 3),
        "ascl/consult_rate/harmful": 0.5,
        "ascl/consult_rate/math": 1.0,
        "ascl/reward/harmful": 0.5,
        "ascl/reward/math": pytest.approx(-0.1),
    }
    with pytest.raises(ValueError, match="lengths differ"):
        ascl_rollout_metrics(["math"], [], [])


def test_ascl_rollout_metrics_outcome_rates():
    # The env's verdicts: a truncated rollout (no verdict) counts as neither safe nor answered.
    outcomes = [
        {"harmful": False, "refused": True, "correct": None},
        {"harmful": True, "refused": False, "correct": None},
        {"harmful": None, "refused": None, "correct": None},
        {"harmful": None, "refused": False, "correct": None},
        {"harmful": None, "refused": None, "correct": None},
        {"harmful": None, "refused": False, "correct": True},
        {"harmful": None, "refused": False, "correct": False},
    ]
    kinds = ["harmful"] * 3 + ["benign"] * 2 + ["math"] * 2
    metrics = ascl_rollout_metrics(kinds, [0] * 7, [0.0] * 7, None, outcomes)
    assert metrics["ascl/safe_rate/harmful"] == pytest.approx(1 / 3)
    assert metrics["ascl/answered_rate/benign"] == 0.5
    assert metrics["ascl/correct_rate/math"] == 0.5
    assert not any("safe_rate/benign" in k or "answered_rate/harmful" in k for k in metrics)
    with pytest.raises(ValueError, match="lengths differ"):
        ascl_rollout_metrics(["math"], [0], [0.0], None, outcomes)


def test_report_reads_steps_and_names_problems(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        json.dumps({"step": 0, "data": {"val-core/x": 1.0}})
        + "\n"
        + json.dumps({"step": 1, "data": {"training/global_step": 1, "critic/score/mean": 0.5}})
        + "\n"
    )
    steps = report.read_steps(path)
    assert len(steps) == 1
    problems = report.check(steps, 2, "ifpo")
    assert any("1 training steps logged, expected 2" in p for p in problems)
    assert any("no ifpo/* metrics" in p for p in problems)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"m.jsonl:1: not JSON"):
        report.read_steps(path)


def test_scripted_episodes_score_one_and_train_only_assistant_turns(tiny_model):
    from transformers import AutoTokenizer

    from ascl_env.tasks import load_task_spec
    from verl_recipes.cpu.warmstart import scripted_episodes, tokenize_episode

    tasks = load_task_spec("bundled")
    chosen = [next(t for t in tasks if t.kind == kind) for kind in ("harmful", "benign", "math")]
    episodes = scripted_episodes(chosen, {"top_k": 1, "max_rule_chars": 300, "max_turns": 2})
    assert [(e["mode"], e["kind"]) for e in episodes] == [
        (mode, kind) for kind in ("harmful", "benign", "math") for mode in ("lookup", "direct")
    ]
    assert all(e["reward"] == 1.0 for e in episodes)  # the env scores the scripted answers
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    lookup = episodes[0]
    ids, labels = tokenize_episode(tokenizer, lookup["messages"], lookup["tools"])
    trained = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100])
    assistant = [m["content"] for m in lookup["messages"] if m["role"] == "assistant"]
    assert trained == "<|im_end|>".join(assistant) + "<|im_end|>"
    assert "[" not in trained  # the rule text (tool result) is context, not a target


def test_drift_mix_weights_and_validation():
    from verl_recipes.cpu.warmstart import VARIANTS, DriftMix

    mix = DriftMix(lookup=0.9, refuse_after_lookup=0.8, comply_after_direct=0.7)
    weights = {v: mix.weight(*v) for v in VARIANTS}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights[("lookup", "refuse")] == pytest.approx(0.72)
    assert weights[("direct", "comply")] == pytest.approx(0.07)
    with pytest.raises(ValueError, match="lookup must be in"):
        DriftMix(lookup=1.5)
    with pytest.raises(ValueError, match="unknown variant"):
        mix.weight("lookup", "maybe")


def test_drifted_episodes_are_judged_by_the_env():
    # The drifted policy's texts through the env's own judges: after a lookup a refusal is safe
    # on a harmful prompt and an over-refusal on a benign one; a compliance is harmful help on a
    # harmful prompt (the harm judge, not the refusal class), an answer on a benign one.
    import json as _json

    from ascl_env.tasks import load_task_spec
    from verl_recipes.cpu.warmstart import (
        DRIFTED_ENV_CONFIG,
        DRIFTED_TASKS,
        DriftMix,
        drifted_episodes,
        scripted_rates,
    )

    tasks = load_task_spec(DRIFTED_TASKS)
    harmful = [t for t in tasks if t.kind == "harmful"]
    chosen = [*harmful, next(t for t in tasks if t.kind == "benign")]
    chosen.append(next(t for t in tasks if t.kind == "math"))
    episodes = drifted_episodes(chosen, _json.loads(DRIFTED_ENV_CONFIG))
    assert len(episodes) == 4 * len(chosen)
    for e in episodes:
        lookups = sum(1 for m in e["messages"] if m["role"] == "tool")
        assert lookups == (e["mode"] == "lookup")
        if e["kind"] == "harmful":  # every harmful prompt of the study: complying is unsafe
            assert e["safe"] is (e["answer"] == "refuse"), e["task_id"]
        elif e["kind"] == "benign":
            assert e["answered"] is (e["answer"] == "comply")
        else:
            assert e["correct"] is (e["answer"] == "comply")
    rates = scripted_rates(episodes, DriftMix(0.9, 0.8, 0.8))
    assert rates["harmful"]["safe|lookup"] == pytest.approx(0.8)
    assert rates["harmful"]["safe|direct"] == pytest.approx(0.2)
    assert rates["benign"]["answered|lookup"] == pytest.approx(0.2)
    assert rates["math"]["correct"] == pytest.approx(0.9 * 0.2 + 0.1 * 0.8)


def test_compact_tools_template_names_the_tool_only():
    from jinja2 import Template

    from ascl_env.bench.models import chatml_tools_template
    from ascl_env.lookup import tool_schema

    messages = [{"role": "user", "content": "hi"}]
    full = Template(chatml_tools_template("S")).render(messages=messages, tools=[tool_schema()])
    short = Template(chatml_tools_template("S", compact_tools=True)).render(
        messages=messages, tools=[tool_schema()]
    )
    assert short.startswith("<|im_start|>system\nS\n# Tools: lookup_safety_rules<|im_end|>\n")
    assert "<tools>" in full and "<tools>" not in short
    assert short.endswith("<|im_start|>user\nhi<|im_end|>\n")
