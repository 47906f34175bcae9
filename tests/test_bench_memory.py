"""Memory of a run does not grow with the number of tasks per environment or with the bootstrap
(issue 26, point 8; benchmarks/harness_memory.py measures whole runs)."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

from ascl_env.bench.agents import AlwaysRefuse
from ascl_env.bench.metrics import bootstrap_mean_interval
from ascl_env.bench.results import HEAVY_FIELDS, read_rows
from ascl_env.bench.runner import plan_episodes, run_episodes
from ascl_env.tasks import Task


def peak_mb(call) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_the_bootstrap_draws_in_bounded_chunks():
    values = np.random.default_rng(0).random(20_000)
    # the whole draw at once would hold 2,000 x 20,000 indices and values: 640 MB
    assert peak_mb(lambda: bootstrap_mean_interval(values)) < 100
    small = np.random.default_rng(1).random(500)  # one chunk: the same draw as ever
    rng = np.random.default_rng(0)
    means = small[rng.integers(0, small.size, size=(2000, small.size))].mean(axis=1)
    assert bootstrap_mean_interval(small) == tuple(np.percentile(means, [2.5, 97.5]))


def test_environments_do_not_each_hold_every_task(tmp_path):
    """5,000 episodes of 5,000 tasks in batches of 64: an environment indexes its tasks (a dict
    by id, lists by kind), so 64 environments holding all of them took ~75 MB."""
    tasks = [
        Task(id=f"t{i}", kind="harmful", prompt=f"Hurt person number {i}.") for i in range(5000)
    ]
    plans = plan_episodes(tasks)
    out = tmp_path / "episodes.jsonl"
    peak = peak_mb(
        lambda: run_episodes(AlwaysRefuse(), plans, out_path=out, batch_size=64, progress=False)
    )
    assert peak < 30, peak
    rows = read_rows(out, omit=HEAVY_FIELDS)
    assert len(rows) == 5000 and not any(name in rows[0] for name in HEAVY_FIELDS)


ROW = {
    "episode": 0, "seed": 0, "agent": "always-refuse", "task_id": "advbench-000",
    "task_kind": "harmful", "category": None, "source": "advbench", "rules_mode": "tool",
    "error": None, "reward": 1.0, "task_reward": 1.0, "format": -0.0, "lookup_cost": 0.0,
    "safety": 1.0, "utility": None, "refused": True, "correct": None, "judge": "keyword",
    "judge_error": None, "tool_calls": 0, "format_errors": 0, "truncated": False,
    "response_class": "full_refusal", "strongreject": None, "harmful": False,
    "harm_score": 0.0, "harm_judge": "offline", "turns": 1,
    "messages": [{"role": "user", "content": "hi"}],
    "generations": [{"finish_reason": "stop", "completion_tokens": 12, "generate_s": 0.25}],
    "hit_token_limit": False, "completion_tokens": 12, "timing": {"wall_s": 0.1},
}  # fmt: skip


def test_rows_read_for_a_report_are_compact(tmp_path):
    """A report holds every row without its transcript: as dicts that was about 1.4 KB a row
    (600 MB for 100,000 episodes with the tasks and plan); shared key tables and floats make
    it under 0.8 KB."""
    path = tmp_path / "episodes.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(5000):
            handle.write(json.dumps({**ROW, "episode": i, "task_id": f"advbench-{i:05d}"}) + "\n")
    rows: list = []
    peak = peak_mb(lambda: rows.extend(read_rows(path, omit=HEAVY_FIELDS)))
    assert len(rows) == 5000
    assert peak * 2**20 / 5000 < 800, f"{peak * 2**20 / 5000:.0f} bytes a row"


def test_a_compact_row_reads_like_the_dict():
    rows = [{**ROW, "episode": i} for i in range(2)]
    from ascl_env.bench.results import _Compactor

    compact = _Compactor(HEAVY_FIELDS)
    first, second = (compact(r) for r in rows)
    expected = {k: v for k, v in ROW.items() if k not in HEAVY_FIELDS}
    expected["generations"] = tuple(ROW["generations"])
    assert first == expected and dict(first)["reward"] == 1.0 and len(first) == len(expected)
    assert first["generations"][0]["completion_tokens"] == 12
    assert first.get("messages") is None and "messages" not in first and "reward" in first
    assert math.copysign(1.0, first["format"]) == -1.0  # -0.0 is not made 0.0
    assert first["reward"] is second["reward"]  # one float object shared
    assert second["episode"] == 1
    with pytest.raises(TypeError):
        first["reward"] = 0.0  # read-only
    with pytest.raises(KeyError):
        first["messages"]
