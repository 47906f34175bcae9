# The two set-up commands of the README:
#   make bench   -> the main job: ascl-bench on the embedded default (bundled tasks, offline SmolLM2 + baselines)
#   make test    -> builds the environments from the project's own files and runs the test suite
# Set ASCL_SKIP_VLLM=1 to skip building the separate vLLM environment (its tests are then skipped).
PY := .venv/bin/python
OUT ?= runs/default

.PHONY: setup setup-vllm bench test lint

setup:
	bash scripts/setup_venv.sh

setup-vllm:
ifneq ($(ASCL_SKIP_VLLM),1)
	bash scripts/setup_vllm_venv.sh
endif

bench: setup
	.venv/bin/ascl-bench run --out $(OUT)

test: setup setup-vllm
	$(PY) -m pytest -q -ra

lint: setup
	.venv/bin/ruff check ascl_env verl_recipes tests benchmarks examples
