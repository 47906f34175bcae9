"""``verl_recipes.preflight`` and what the launch scripts print before ``main_ppo`` starts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytest.importorskip("transformers")

from ascl_env.bench.models import build_tiny_qwen2  # noqa: E402
from verl_recipes import preflight  # noqa: E402
from verl_recipes.prepare_data import prepare  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "verl_recipes" / "scripts"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    prepare("bundled", out)
    return out


def _check(capsys, *overrides: str) -> tuple[int, str]:
    code = preflight.main(["check", "--skip-judge", *overrides])
    return code, capsys.readouterr().out


def test_preflight_passes_a_good_run_and_prints_the_command(capsys, tiny, data):
    code, out = _check(
        capsys,
        f"actor_rollout_ref.model.path={tiny}",
        f"data.train_files={data}/train.parquet",
        f"data.val_files={data}/val.parquet",
        "trainer.device=cpu",
        f"trainer.default_local_dir={data}/ckpt",
    )
    assert code == 0, out
    for line in (
        "ok    verl's validate_config accepts the composed config",
        "ok    IFPO guards (padding rows per batch: 0)",
        "ok    logits bound: at most 10.0 GB per micro-batch",
        f"ok    model {tiny}: the chat template renders the tool schema",
        "ok    training steps: 15",  # 382 rows // 64 prompts x 3 epochs
        "resume: none, a new run",
        "preflight: passed",
    ):
        assert line in out, line
    command = next(line for line in out.splitlines() if line.startswith("command: "))
    assert "python -m verl.trainer.main_ppo --config-path=pkg://verl_recipes.config" in command
    assert "agent_loop_config_path=/" in command and f"data.train_files={data}" in command


def test_preflight_fails_loudly(capsys, tiny, data, tmp_path):
    code, out = _check(
        capsys,
        f"actor_rollout_ref.model.path={tiny}",
        f"data.train_files={tmp_path}/missing.parquet",
        f"data.val_files={data}/val.parquet",
        "data.max_prompt_length=300",
        "actor_rollout_ref.actor.use_dynamic_bsz=false",
        "algorithm.rollout_correction.rollout_rs=token_k1",
    )
    assert code == 1
    assert f"FAIL  data.train_files: {tmp_path}/missing.parquet does not exist" in out
    assert "FAIL  algorithm.rollout_correction.rollout_rs='token_k1'" in out
    assert "GB of fp32 logits, over the 12 GB budget" in out
    assert "over max_prompt_length=300" in out and "FAIL  prompts with the tool schema" in out
    assert "GPUs on this node, fewer than trainer.n_gpus_per_node=8" in out
    assert "preflight: FAILED" in out


def test_resume_status_and_step_count(tmp_path):
    assert preflight.resume_status(tmp_path).startswith("resume: none, a new run")
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("40\n")
    assert preflight.resume_status(tmp_path) == (
        f"resume: RESUMING from global_step_40 in {tmp_path} (resume_mode=auto)"
    )
    assert preflight.resume_status(tmp_path, "disable").startswith("resume: disabled")
    assert preflight.training_steps(382, 64, 3, None) == 15  # verl drops the last partial batch
    assert preflight.training_steps(3236, 64, 3, None) == 150
    assert preflight.training_steps(382, 64, 3, 7) == 7


def _shim(tmp_path: Path) -> Path:
    """A PYTHON for the launch scripts: real Python, except main_ppo only prints its arguments."""
    shim = tmp_path / "python"
    shim.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1 $2" = "-m verl.trainer.main_ppo" ]; then echo "MAIN_PPO $*"; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim


def test_launch_script_says_whether_it_resumes_and_how_many_steps(tmp_path, tiny):
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYTHON": str(_shim(tmp_path)),
        "MODEL_PATH": str(tiny),
        "DATA_DIR": str(data),
        "ASCL_CHECKPOINT_ROOT": str(tmp_path / "ckpt"),
        "RUN_NAME": "run-a",
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    script = str(SCRIPTS / "train_single_node.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    # No data yet: the script wrote the bundled tasks (prompts checked with the tokenizer).
    assert lines[0].startswith(f"== data: writing {data} (--tasks bundled")
    plan = [line for line in lines if line.startswith("== ") and not line.startswith("== data")]
    assert plan[0] == f"== run: run-a; checkpoints: {tmp_path}/ckpt/ascl/run-a"
    assert plan[1].startswith("== resume: none, a new run")
    assert plan[2].startswith("== steps: 15 (")
    assert plan[3].startswith("== warning: only 15 steps")
    main = lines[-1]
    assert "trainer.experiment_name=run-a" in main
    assert f"trainer.default_local_dir={tmp_path}/ckpt/ascl/run-a" in main
    # The same RUN_NAME with a checkpoint in its folder: the first lines say it resumes.
    (tmp_path / "ckpt/ascl/run-a").mkdir(parents=True)
    (tmp_path / "ckpt/ascl/run-a/latest_checkpointed_iteration.txt").write_text("12")
    second = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert "== resume: RESUMING from global_step_12" in second.stdout.splitlines()[1]
