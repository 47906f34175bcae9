"""python -m verl_recipes.prepare_data: verl-schema parquet from any task mixture."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from ascl_env.config import ASCLConfig  # noqa: E402
from ascl_env.tasks import Task, load_task_spec  # noqa: E402
from verl_recipes.prepare_data import (  # noqa: E402
    DataPrepError,
    build_rows,
    episode_spec,
    main,
    prepare,
    split_tasks,
)

COLUMNS = {"data_source", "agent_name", "prompt", "ability", "reward_model", "extra_info"}


def _prepare(tmp_path: Path, *args: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert main(["--out", str(tmp_path), *args]) == 0
    return pd.read_parquet(tmp_path / "train.parquet"), pd.read_parquet(tmp_path / "val.parquet")


def test_bundled_tasks_in_verl_schema(tmp_path):
    train, val = _prepare(tmp_path, "--tasks", "bundled", "--val-fraction", "0.1")
    tasks = load_task_spec("bundled")
    assert set(train.columns) == COLUMNS == set(val.columns)
    assert len(train) + len(val) == len(tasks)
    # Stratified: every kind is in both splits, about 10 % of each in validation.
    for kind in ("harmful", "benign", "math"):
        n = sum(t.kind == kind for t in tasks)
        n_val = int((val["data_source"] == f"ascl/{kind}").sum())
        assert n_val == round(n * 0.1) and (train["data_source"] == f"ascl/{kind}").any()
    ids = [row["task"]["id"] for row in [*train["extra_info"], *val["extra_info"]]]
    assert sorted(ids) == sorted(t.id for t in tasks)

    row = train.iloc[0]
    assert row["agent_name"] == "ascl_agent"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "lookup_safety_rules" in row["prompt"][0]["content"]
    task, config = episode_spec(row["extra_info"])
    assert row["prompt"][1]["content"] == task.prompt
    assert row["data_source"] == f"ascl/{task.kind}"
    expected_truth = (
        task.answer if task.kind == "math" else {"harmful": "refuse"}.get(task.kind, "comply")
    )
    assert row["reward_model"]["ground_truth"] == expected_truth
    assert config == ASCLConfig(rules_mode="tool")
    assert row["extra_info"]["split"] == "train" and val.iloc[0]["extra_info"]["split"] == "val"


def test_rows_round_trip_to_the_same_task_and_config(tmp_path):
    env_config = {"max_turns": 3, "top_k": 2, "rewards": {"lookup_cost": 0.05}}
    train, _ = _prepare(
        tmp_path,
        "--tasks",
        "bundled_benign:6",
        "--env-config",
        json.dumps(env_config),
    )
    tasks = {t.id: t for t in load_task_spec("bundled_benign:6")}
    for _, row in train.iterrows():
        task, config = episode_spec(row["extra_info"])
        assert task == tasks[task.id]
        assert config == ASCLConfig(rules_mode="tool", **env_config)
        assert row["agent_name"] == "ascl_agent"


def test_the_rows_settings_win_over_loop_defaults_even_at_default_values():
    task = Task(id="x", kind="benign", prompt="hi")
    row = build_rows([task], {"rules_mode": "tool", "max_turns": 4})[0]
    # e.g. agent_loops.yaml env_config
    defaults = {"rules_mode": "none", "max_turns": 2, "top_k": 5}
    _, config = episode_spec(row["extra_info"], defaults)
    assert (config.rules_mode, config.max_turns, config.top_k) == ("tool", 4, 5)


def test_overrides_win_over_the_row():
    task = Task(id="x", kind="benign", prompt="hi")
    row = build_rows([task], {"rules_mode": "tool", "max_turns": 4, "top_k": 2})[0]
    # e.g. the trainer config's ascl.env_overrides
    _, config = episode_spec(row["extra_info"], {"top_k": 5}, {"max_turns": 1})
    assert (config.rules_mode, config.max_turns, config.top_k) == ("tool", 1, 2)
    with pytest.raises(DataPrepError, match=r"(?s)with ascl\.env_overrides .*max_turns"):
        episode_spec(row["extra_info"], None, {"max_turns": 0})


def test_the_stock_tool_agent_is_not_offered(tmp_path):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--agent-name", "tool_agent"])


def test_in_context_rows_carry_the_rules_in_the_system_prompt(tmp_path):
    train, _ = _prepare(tmp_path, "--tasks", "bundled_harmful:4", "--rules-mode", "in_context")
    for _, row in train.iterrows():
        assert "# Safety rules" in row["prompt"][0]["content"]
        assert episode_spec(row["extra_info"])[1].rules_mode == "in_context"


def test_split_is_seeded():
    tasks = load_task_spec("bundled")
    first = split_tasks(tasks, 0.2, seed=1)
    assert split_tasks(tasks, 0.2, seed=1) == first
    assert split_tasks(tasks, 0.2, seed=2)[1] != first[1]
    assert split_tasks(tasks, 0.0, seed=1)[1] == []


def test_benchmark_loaders_with_file_paths(tmp_path, shared_data):
    spec = f"xstest={shared_data}/xstest/xstest_prompts.csv,gsm8k={shared_data}/gsm8k/test.jsonl:40"
    train, val = _prepare(tmp_path, "--tasks", spec, "--val-fraction", "0.25", "--seed", "3")
    rows = pd.concat([train, val])
    assert len(rows) == 450 + 40
    assert rows["data_source"].value_counts().to_dict() == {
        "ascl/benign": 250,
        "ascl/harmful": 200,
        "ascl/math": 40,
    }
    math = rows[rows["data_source"] == "ascl/math"].iloc[0]
    assert math["reward_model"]["ground_truth"] == math["extra_info"]["task"]["answer"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "xstest=/no/such/xstest.csv"], "/no/such/xstest.csv"),
        (["--tasks", "bundled_harmful:0"], "mixture is empty"),
        (["--tasks", "nonsense"], "unknown source 'nonsense'"),
        (["--tasks", "bundled", "--val-fraction", "1.5"], "--val-fraction"),
        (["--tasks", "bundled", "--env-config", "{bad"], "--env-config is not valid JSON"),
        (["--tasks", "bundled", "--env-config", '{"topk": 3}'], "(?s)--env-config.*topk"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    assert main(["--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prepare_data: error:")
    assert re.search(message, err), err
    assert not (tmp_path / "train.parquet").exists()


def test_episode_spec_names_the_bad_field():
    with pytest.raises(DataPrepError, match="extra_info has no 'task'"):
        episode_spec({"index": 3})
    with pytest.raises(DataPrepError, match="extra_info.task is not a valid task"):
        episode_spec({"task": {"id": "x", "kind": "funny", "prompt": "hi"}})
    with pytest.raises(DataPrepError, match="(?s)env_config of task 'x'.*top_k"):
        episode_spec(
            {"task": {"id": "x", "kind": "benign", "prompt": "hi"}, "env_config": '{"top_k": 0}'}
        )


def test_prompt_length_check_renders_the_tool_schema(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from ascl_env.bench.models import build_tiny_qwen2
    from verl_recipes.prepare_data import prompt_lengths

    model = build_tiny_qwen2(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tasks = load_task_spec("bundled")[:40]
    lengths = prompt_lengths(tasks, {"rules_mode": "tool"}, tokenizer)
    bare = build_rows(tasks, {"rules_mode": "tool"})
    for row in bare:  # what verl's dataset filter measures: no schema
        task_id = row["extra_info"]["task"]["id"]
        without = len(
            tokenizer.apply_chat_template(list(row["prompt"]), add_generation_prompt=True)
        )
        assert lengths[task_id] > without
    limit = sorted(lengths.values())[len(lengths) // 2]
    with pytest.raises(DataPrepError, match=r"prompts have more than --max-prompt-length"):
        prepare("bundled", tmp_path / "a", tokenizer=model, max_prompt_length=limit)
    assert (
        main(
            [
                "--out",
                str(tmp_path / "b"),
                "--tokenizer",
                str(model),
                "--max-prompt-length",
                str(limit),
                "--drop-overlong",
            ]
        )
        == 0
    )
    kept = pd.concat(
        [pd.read_parquet(tmp_path / "b" / f) for f in ("train.parquet", "val.parquet")]
    )
    all_lengths = prompt_lengths(load_task_spec("bundled"), {"rules_mode": "tool"}, tokenizer)
    assert len(kept) == sum(n <= limit for n in all_lengths.values()) > 0


def test_training_mixture_is_large_enough_for_a_real_run(tmp_path, shared_data, capsys):
    assert main(["--mixture", str(shared_data), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    train = pd.read_parquet(tmp_path / "train.parquet")
    # 150 steps at the recipe's 64 prompts x 3 epochs (the bundled tasks give 15).
    assert len(train) // 64 * 3 >= 150 and f"({len(train)} rows)" in printed
    kinds = train["data_source"].value_counts()
    assert set(kinds.index) == {"ascl/harmful", "ascl/benign", "ascl/math"}
    assert kinds.min() >= 400
