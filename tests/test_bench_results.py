"""The result directory (layout, run.json, episodes file) and the bench extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ascl_env.bench import extras, results
from ascl_env.bench.cli import main
from ascl_env.bench.runner import EpisodePlan
from ascl_env.tasks import Task

ROOT = Path(__file__).resolve().parents[1]


def test_episode_writer_and_read_rows_round_trip(tmp_path):
    path = tmp_path / results.EPISODES_FILE
    writer = results.EpisodeWriter(path)
    rows = [{"episode": i, "text": f"é{i}"} for i in range(3)]
    for row in rows:
        writer.write(row)
        assert results.read_rows(path)[-1] == row  # flushed at once
    writer.close()
    assert results.read_rows(path) == rows
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"episode": 3, "te')  # a torn write
    assert results.read_rows(path, repair=True) == rows
    assert path.read_text(encoding="utf-8").count("\n") == 3


def test_run_json_refuses_another_configuration(tmp_path):
    record = results.prepare_directory(tmp_path, {"agent": "oracle", "seed": 0})
    assert record == {
        "config": {"agent": "oracle", "seed": 0},
        "provenance": None,
        "invocations": [],
    }
    results.write_run(tmp_path, record)
    assert results.load_run(tmp_path) == record
    assert results.prepare_directory(tmp_path, {"agent": "oracle", "seed": 0}) == record
    with pytest.raises(results.RunError, match=r"seed: 0 -> 1"):
        results.prepare_directory(tmp_path, {"agent": "oracle", "seed": 1})
    (tmp_path / results.EPISODES_FILE).write_text("{}\n")
    fresh = results.prepare_directory(tmp_path, {"seed": 1}, overwrite=True)
    assert fresh["invocations"] == [] and not list(tmp_path.iterdir())
    (tmp_path / results.RUN_FILE).write_text("{not json")
    with pytest.raises(results.RunError, match="unreadable"):
        results.prepare_directory(tmp_path, {"seed": 1})
    with pytest.raises(results.ReportError, match="not valid JSON"):
        results.load_run(tmp_path)
    with pytest.raises(results.ReportError, match="run.json is missing"):
        results.load_run(tmp_path / "nowhere")


def test_plan_fingerprint_follows_tasks_and_seeds():
    task, other = Task(id="a", kind="benign", prompt="hi"), Task(id="b", kind="benign", prompt="x")
    plans = [EpisodePlan(0, task, 0), EpisodePlan(1, task, 1)]
    same = results.plan_fingerprint([EpisodePlan(0, task, 0), EpisodePlan(1, task, 1)])
    assert results.plan_fingerprint(plans) == same
    assert results.plan_fingerprint([EpisodePlan(0, task, 0), EpisodePlan(1, other, 1)]) != same
    assert results.plan_fingerprint([EpisodePlan(0, task, 0), EpisodePlan(1, task, 2)]) != same


def test_a_missing_extra_names_what_needs_it_and_how_to_install_it(monkeypatch):
    with pytest.raises(
        extras.MissingExtraError, match=r"plots needs no_such_mod.*-e '\.\[bench\]'"
    ):
        extras.require("no_such_mod", "plots")
    with pytest.raises(extras.MissingExtraError, match="no_such_mod"):
        extras.check(("json", "x"), ("no_such_mod", "y"))
    assert extras.require("json", "x") is json


@pytest.mark.parametrize(
    ("hidden", "args", "message"),
    [
        ("matplotlib", [], "benchmark plots"),
        ("tqdm", [], "--no-progress"),
        ("matplotlib", ["--no-progress"], "matplotlib"),
    ],
)
def test_cli_stops_before_running_when_an_extra_is_missing(
    tmp_path, capsys, monkeypatch, hidden, args, message
):
    real = extras.importlib.util.find_spec
    monkeypatch.setattr(
        extras.importlib.util, "find_spec", lambda name: None if name == hidden else real(name)
    )
    code = main(["run", "--agent", "oracle", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "pip install -e '.[bench]' in a clone of ascl-env" in err
    assert not list(tmp_path.iterdir())


def test_env_and_runner_work_without_the_bench_extra(tmp_path):
    """matplotlib and tqdm blocked: the env, the runner (no progress bar) and the episodes file
    work; only what needs them says so."""
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("matplotlib", "tqdm"):
                    raise ImportError(f"blocked {name}")

        sys.meta_path.insert(0, Block())
        import gymnasium
        import ascl_env
        from ascl_env.bench.agents import AlwaysLookup
        from ascl_env.bench.extras import MissingExtraError
        from ascl_env.bench.runner import plan_episodes, run_episodes
        from ascl_env.bench.results import read_rows
        from ascl_env.tasks import load_task_spec

        env = gymnasium.make("ASCL-v0")
        env.reset(seed=0)
        tasks = load_task_spec("bundled")[:4]
        out = sys.argv[1] + "/episodes.jsonl"
        stats = run_episodes(AlwaysLookup(), plan_episodes(tasks), out_path=out, progress=False)
        assert stats.episodes_run == 4 and len(read_rows(out)) == 4
        try:
            run_episodes(AlwaysLookup(), plan_episodes(tasks), progress=True)
        except MissingExtraError as exc:
            print("ERR", exc)
        assert not any(m.split(".")[0] in ("matplotlib", "tqdm") for m in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ERR the progress bar" in result.stdout and "'.[bench]'" in result.stdout
