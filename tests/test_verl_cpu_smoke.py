"""End to end: ``verl_recipes/scripts/smoke_cpu.sh`` runs verl's own ``main_ppo`` on CPU.

Two PPO steps of the ``ascl_ifpo`` recipe (``ascl_agent`` episodes, env rewards, the ``ifpo``
estimator, an FSDP2 actor over gloo, weight sync to the ``hf`` rollout server) with the tiny
model warm-started into the drifted state of the IFPO study (``ASCL_SMOKE_PROFILE=drifted``,
``benchmarks/verl_cpu_study.py``), asserted on the metrics verl's ``file`` logger wrote: the
study starts where docs/ifpo.md says (lookups on most prompts of every kind, well-formed calls,
mixed groups that IFPO reweights). 3 min 20 s and 4 min 9 s on the shared 2-core machine at
load average 6-9 (warm start 76-82 s, ``main_ppo`` 104-143 s), about 2 min at load average 3
(37 s and 84 s); not marked slow, so ``make test`` runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytest.importorskip("transfer_queue")

from verl_recipes.cpu.report import read_steps, read_validations  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "verl_recipes" / "scripts" / "smoke_cpu.sh"
# An odd group size: a group that mixes lookups and direct answers is then never balanced, so
# IFPO's weights there differ from 1 (a 2/2 group of four gets weight 1 exactly). Five rollouts
# of eight prompts: with lookups on ~90 % of rollouts a group is mixed with probability ~0.4, so
# a step without a mixed group has probability ~0.6^8 = 2 %.
ROLLOUTS_PER_PROMPT = 5
PROMPTS_PER_STEP = 8
ROLLOUTS_PER_STEP = PROMPTS_PER_STEP * ROLLOUTS_PER_PROMPT  # train_batch_size x rollout.n
# About 3 min on a lightly shared 2-core machine, 7-15 min when six engineers share it.
TIMEOUT_S = 1500


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("verl_cpu_smoke")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "ASCL_SMOKE_DIR": str(work),
        "ASCL_SMOKE_N": str(ROLLOUTS_PER_PROMPT),
        "ASCL_SMOKE_BATCH": str(PROMPTS_PER_STEP),
        "ASCL_SMOKE_PROFILE": "drifted",
        "ASCL_SMOKE_MAX_TOKENS": "8192",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    # Its own process group, so a timeout also ends main_ppo and its Ray processes.
    process = subprocess.Popen(
        ["bash", str(SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        (work / "smoke.log").write_text(output)
        pytest.fail(f"smoke_cpu.sh ran over {TIMEOUT_S} s; log: {work / 'smoke.log'}")
    result = subprocess.CompletedProcess(process.args, process.returncode, output, "")
    (work / "smoke.log").write_text(result.stdout)
    assert result.returncode == 0, (
        f"smoke_cpu.sh exited {result.returncode}; log: {work / 'smoke.log'}\n"
        + result.stdout[-4000:]
    )
    return result, read_steps(work / "metrics.jsonl"), read_validations(work / "metrics.jsonl")


def test_two_training_steps_with_printed_metrics(smoke_run):
    result, steps, _ = smoke_run
    assert [int(s["training/global_step"]) for s in steps] == [1, 2]
    assert "step 2:" in result.stdout and "ifpo/consulted_frac" in result.stdout
    for step in steps:
        assert step["actor/pg_loss"] == step["actor/pg_loss"]  # the actor was updated (not NaN)


def test_the_estimator_was_ifpo(smoke_run):
    # ifpo/* metrics only come from verl_recipes.ifpo_estimator, called by verl's trainer.
    _, steps, _ = smoke_run
    for step in steps:
        assert step["ifpo/groups"] == PROMPTS_PER_STEP
        assert 0.0 <= step["ifpo/consulted_frac"] <= 1.0


def test_rewards_came_from_the_env(smoke_run):
    _, steps, _ = smoke_run
    for step in steps:
        # Every rollout carries the env's outcome (task kind, tool calls) from ascl_agent.
        assert step["ascl/env_rollouts"] == ROLLOUTS_PER_STEP
        assert any(key.startswith("ascl/reward/") for key in step)
        # Env rewards: task reward in {0, 1} plus format penalties (0.1 each).
        assert -1.0 <= step["critic/score/min"] <= step["critic/score/max"] <= 1.0


def test_mixed_groups_were_reweighted_in_every_step(smoke_run):
    _, steps, _ = smoke_run
    for step in steps:
        assert step["ifpo/mixed_groups"] >= 1, step
        # Unbalanced groups: the minority mode (direct answers) is weighted up, lookups down.
        assert step["ifpo/mixed_weight_mean/direct"] > 1.0 + 1e-6, step
        assert step["ifpo/mixed_weight_mean/consulted"] < 1.0 - 1e-6, step
        assert step["ifpo/reweighted_frac"] > 0


def _warm_start_rates(output: str) -> dict:
    # The warm start's last stdout line is its statistics (JSON), with "policy": the tiny model
    # sampled through the env once per task after training.
    line = next(line for line in output.splitlines() if line.startswith('{"model_dir"'))
    return json.loads(line)


def test_the_warm_start_is_the_drifted_state(smoke_run):
    result, _, _ = smoke_run
    stats = _warm_start_rates(result.stdout)
    policy = stats["policy"]
    assert set(policy) == {"harmful", "benign", "math"}
    for kind, rates in policy.items():
        assert rates["consult"] >= 0.8, (kind, rates)  # lookups on most prompts of every kind
        assert rates["executed_of_calls"] >= 0.95, (kind, rates)  # well-formed calls
    # Mostly lookups, then mostly refusals (the env's judges): safe on harmful prompts,
    # over-refusal on benign ones.
    assert policy["harmful"]["safe"] >= 0.5, policy
    assert policy["benign"]["answered"] < 0.5, policy


def test_the_policy_consults_and_its_calls_execute_in_training(smoke_run):
    # The rollouts of the two steps (80, about 27 per kind from 2-3 prompts each; step 2 comes
    # after one update): still mostly lookups, and the env executes the calls. Looser bounds
    # than the warm start's on 48 prompts per kind: two runs logged 0.79 and 0.84 consulted,
    # 94 % and 97 % of the calls executed (the rollout server's sampling is not seeded).
    _, steps, _ = smoke_run
    consulted = sum(step["ascl/consult_rate"] for step in steps) * ROLLOUTS_PER_STEP
    executed = sum(step["ascl/lookup_rate"] for step in steps) * ROLLOUTS_PER_STEP
    assert consulted >= 0.65 * len(steps) * ROLLOUTS_PER_STEP, steps
    assert executed >= 0.85 * consulted, (executed, consulted)
    # The env's verdict rates are logged (for the kinds a step's prompts hold).
    for key in ("ascl/safe_rate/harmful", "ascl/answered_rate/benign", "ascl/correct_rate/math"):
        assert any(key in step for step in steps), key
        assert all(0.0 <= step[key] <= 1.0 for step in steps if key in step)


def test_validation_ran_over_ascl_outputs(smoke_run):
    # val_before_train (the recipe's setting) ran once: verl's validation metrics per data
    # source, with the env's reward_extra_info among them.
    result, _, validations = smoke_run
    assert len(validations) == 1
    keys = set(validations[0])
    assert any(k.startswith("val-core/ascl/") for k in keys), sorted(keys)
    assert any("/task_reward/" in k or "/safety/" in k for k in keys), sorted(keys)
    assert "via train_single_node.sh" in result.stdout  # the GPU launch script ran it
    assert "resume: disabled" in result.stdout and "steps: 2 (" in result.stdout


def test_smoke_removes_its_temporary_folder_unless_kept(tmp_path):
    # A run that fails at once (PYTHON=false) still removes the folder it created.
    env = {**os.environ, "PYTHON": "false", "TMPDIR": str(tmp_path)}
    env.pop("ASCL_SMOKE_DIR", None)
    for keep in ("0", "1"):
        result = subprocess.run(
            ["bash", str(SCRIPT)], env={**env, "ASCL_SMOKE_KEEP": keep}, capture_output=True
        )
        assert result.returncode != 0
        left = list(tmp_path.glob("ascl-verl-cpu-*"))
        assert len(left) == (1 if keep == "1" else 0), left
