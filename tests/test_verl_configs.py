"""The Hydra recipes and launch scripts compose with verl's own entry point (``--cfg job``).

verl's imports cost about 10 s of CPU per process, so the three recipes share one subprocess:
it runs ``verl.trainer.main_ppo`` as ``python -m`` does (``runpy.run_module(..., "__main__")``)
once per recipe, with the environment the launch scripts export (the plugin imported through
``VERL_USE_EXTERNAL_MODULES``, entry points off), then reports what the plugin registered. The
launch scripts themselves (``bash ... --cfg job``, three more processes) are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("verl")

from verl_recipes.paths import shipped_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "verl_recipes" / "scripts"
RECIPES = ("ascl_ifpo", "ascl_grpo", "ascl_in_context")
SCRIPT_ENV = {
    "PYTHON": sys.executable,
    "MODEL_PATH": "/models/my-instruct-1.5b",
    "ASCL_DATA_DIR": "/data/ascl",
    "N_GPUS": "4",
    "ROLLOUT_N": "5",
    "MAX_RESPONSE_LENGTH": "3072",
}
MARK = "### "
# python -m verl.trainer.main_ppo --config-path=pkg://verl_recipes.config --config-name=NAME
# --cfg job, for each recipe, in one interpreter.
DRIVER = """
import json, runpy, sys
for name in sys.argv[1:]:
    sys.argv = ["main_ppo", "--config-path=pkg://verl_recipes.config",
                f"--config-name={name}", "--cfg", "job"]
    print("### " + name, flush=True)
    runpy.run_module("verl.trainer.main_ppo", run_name="__main__", alter_sys=True)
from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
print("### plugin", flush=True)
print(json.dumps({"agent_loop": _agent_loop_registry.get("ascl_agent"),
                  "ifpo": "ifpo" in ADV_ESTIMATOR_REGISTRY}))
"""


@pytest.fixture(scope="module")
def composed() -> dict[str, dict]:
    """Each recipe's composed config, and what the plugin registered (key "plugin")."""
    env = {
        **os.environ,
        "ASCL_DATA_DIR": "/data/ascl",
        "VERL_USE_EXTERNAL_PLUGINS": "none",
        "VERL_USE_EXTERNAL_MODULES": "verl_recipes.plugin",
    }
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, *RECIPES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sections = dict(part.split("\n", 1) for part in result.stdout.split(MARK)[1:])
    return {
        name: json.loads(text) if name == "plugin" else yaml.safe_load(text)
        for name, text in sections.items()
    }


def _script_jobs() -> dict[str, tuple[list[str], dict[str, str]]]:
    env = {**os.environ, **SCRIPT_ENV}
    single, multi = str(SCRIPTS / "train_single_node.sh"), str(SCRIPTS / "train_multi_node.sh")
    return {
        "single_node": (["bash", single, "--cfg", "job"], env),
        "single_node_in_context": (
            ["bash", single, "--cfg", "job"],
            {**env, "RECIPE": "ascl_in_context"},
        ),
        "multi_node": (
            ["bash", multi, "trainer.total_training_steps=7", "--cfg", "job"],
            {**env, "NNODES": "3", "MAX_PROMPT_LENGTH": "1536"},
        ),
    }


def _run_concurrently(jobs) -> dict[str, subprocess.CompletedProcess]:
    procs = {
        name: subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (cmd, env) in jobs.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.fixture(scope="module")
def scripts() -> dict[str, subprocess.CompletedProcess]:
    return _run_concurrently(_script_jobs())


def _script_config(results, name: str) -> dict:
    result = results[name]
    assert result.returncode == 0, result.stderr[-3000:]
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize(
    ("name", "estimator", "data_dir"),
    [
        ("ascl_ifpo", "ifpo", "tool"),
        ("ascl_grpo", "grpo", "tool"),
        ("ascl_in_context", "grpo", "in_context"),
    ],
)
def test_recipe_composes_with_estimator_agent_loop_and_reward(composed, name, estimator, data_dir):
    cfg = composed[name]
    assert cfg["algorithm"]["adv_estimator"] == estimator
    assert cfg["algorithm"]["ifpo"] == {"scope": "group", "apply_to": "all", "max_weight": None}
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert rollout["agent"]["default_agent_loop"] == "ascl_agent"
    assert rollout["name"] == "vllm" and rollout["mode"] == "async"
    assert rollout["multi_turn"]["format"] == "hermes"
    assert cfg["actor_rollout_ref"]["actor"]["strategy"] == "fsdp2"
    assert cfg["trainer"]["v1"]["trainer_mode"] == "ascl_sync"
    # The env is the only scorer: no reward function, and no tool for verl's own tool loop.
    assert cfg["reward"]["custom_reward_function"]["path"] is None
    assert all(v is None for v in cfg["custom_reward_function"].values())
    assert rollout["multi_turn"]["tool_config_path"] is None
    assert cfg["ascl"] == {"env_overrides": {}}
    assert cfg["data"]["train_files"].endswith(f"/{data_dir}/train.parquet")
    env_vars = cfg["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]
    assert env_vars["VERL_USE_EXTERNAL_MODULES"] == "verl_recipes.plugin,verl_recipes.trainer"
    assert cfg["trainer"]["experiment_name"] == name


def test_plugin_registers_estimator_and_agent_loop_on_import_verl(composed):
    assert composed["plugin"] == {
        "agent_loop": {"_target_": "verl_recipes.agent_loop.ASCLAgentLoop"},
        "ifpo": True,
    }


def test_in_context_recipe_has_room_for_the_rules(composed):
    cfg = composed["ascl_in_context"]
    assert cfg["data"]["max_prompt_length"] > composed["ascl_ifpo"]["data"]["max_prompt_length"]


@pytest.mark.slow
def test_single_node_script_applies_its_variables(scripts):
    cfg = _script_config(scripts, "single_node")
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert cfg["actor_rollout_ref"]["model"]["path"] == SCRIPT_ENV["MODEL_PATH"]
    assert cfg["trainer"]["n_gpus_per_node"] == 4 and cfg["trainer"]["nnodes"] == 1
    assert rollout["n"] == 5
    assert cfg["data"]["max_response_length"] == 3072
    assert cfg["data"]["max_prompt_length"] == 2048
    assert cfg["data"]["train_files"] == "/data/ascl/tool/train.parquet"
    assert rollout["multi_turn"]["tool_config_path"] is None
    assert rollout["agent"]["agent_loop_config_path"] == str(shipped_path("agent_loops"))
    assert cfg["algorithm"]["adv_estimator"] == "ifpo"
    # Absolute checkpoint folder named after the run; the trainer plugin reaches every worker.
    assert Path(cfg["trainer"]["default_local_dir"]).is_absolute()
    assert cfg["trainer"]["default_local_dir"].endswith(
        "/ascl/" + cfg["trainer"]["experiment_name"]
    )
    env_vars = cfg["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]
    assert env_vars["VERL_USE_EXTERNAL_MODULES"] == "verl_recipes.plugin,verl_recipes.trainer"
    assert cfg["actor_rollout_ref"]["actor"]["ppo_max_token_len_per_gpu"] == 12288


@pytest.mark.slow
def test_single_node_script_in_context_recipe(scripts):
    cfg = _script_config(scripts, "single_node_in_context")
    assert cfg["algorithm"]["adv_estimator"] == "grpo"
    assert cfg["data"]["train_files"] == "/data/ascl/in_context/train.parquet"
    # The recipe's longer prompt limit (rules in the system prompt) is not reset by the script.
    assert cfg["data"]["max_prompt_length"] == 4096
    assert cfg["actor_rollout_ref"]["rollout"]["multi_turn"]["tool_config_path"] is None


@pytest.mark.slow
def test_multi_node_script_defaults_and_overrides(scripts):
    cfg = _script_config(scripts, "multi_node")
    assert cfg["trainer"]["nnodes"] == 3 and cfg["trainer"]["n_gpus_per_node"] == 4
    assert cfg["trainer"]["total_training_steps"] == 7
    assert cfg["actor_rollout_ref"]["rollout"]["tensor_model_parallel_size"] == 2
    assert cfg["data"]["train_batch_size"] == 128
    assert cfg["data"]["max_prompt_length"] == 1536


def test_shipped_yaml_files_exist_and_load():
    loops = yaml.safe_load(shipped_path("agent_loops").read_text())
    assert loops[0]["name"] == "ascl_agent"
    assert loops[0]["_target_"] == "verl_recipes.agent_loop.ASCLAgentLoop"


def test_paths_cli_prints_absolute_path():
    out = subprocess.run(
        [sys.executable, "-m", "verl_recipes.paths", "agent_loops"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).is_absolute() and Path(out) == shipped_path("agent_loops")
    assert not (Path(out).parent / "tool_config.yaml").exists()
