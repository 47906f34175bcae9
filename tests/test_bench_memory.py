"""Memory of a run does not grow with the number of tasks per environment or with the bootstrap
(issue 26, point 8; benchmarks/harness_memory.py measures whole runs)."""

from __future__ import annotations

import tracemalloc

import numpy as np

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
