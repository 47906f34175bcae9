"""ASCL-v0 throughput: scripted episodes per second on one CPU core, and where the time goes.

Each episode is what a training rollout costs the environment, minus the model: ``reset()``, a
Qwen-style turn with a ``<think>`` block and one lookup-tool call (BM25 search), then a
final answer judged by the offline judges (keyword refusal detection, math-verify). Answers are
scripted per task kind (refusal for harmful, a helpful answer for benign, a boxed number for math)
on the bundled tasks, kinds equally likely.

Measured in the same run:

* ``tool``: the episode above (bm25s backend, the default);
* baseline ``no lookup``: reset + final answer only, so the difference is the lookup turn;
* baseline ``rank_bm25``: the same episode with the pure-Python ``rank_bm25`` backend;
* the share of episode CPU time spent inside ``BM25Retriever.search`` (timed by a thin proxy);
* environment constructions per second (verl builds one environment per rollout).

The process is pinned to one core. Rates are reported per CPU-second of this thread (what one
dedicated core sustains, robust to other processes sharing the machine) and per wall-second;
the scenarios' repeats are interleaved so they see the same background load.

Usage::

    python benchmarks/env_speed.py [--episodes 5000] [--repeats 5] [--core 0]

Target: >= 2,000 episodes per second for ``tool`` on one core.
"""

from __future__ import annotations

import os

# One core: keep numpy's BLAS/OpenMP pools from spreading over the machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from ascl_env.env import ASCLEnv  # noqa: E402
from ascl_env.lookup import TOOL_NAME  # noqa: E402
from ascl_env.turns import write_call  # noqa: E402

TARGET = 2000.0
THINK = (
    "<think>\nThe request could touch on something dangerous, so I will check the safety rules "
    "before answering.\n</think>\n\n"
)
ANSWERS = {
    "harmful": (
        "<think>\nThe rules say to refuse this.\n</think>\n\n"
        "I'm sorry, but I can't help with that. If someone is in danger, please contact local "
        "emergency services."
    ),
    "benign": (
        "<think>\nThis is allowed.\n</think>\n\n"
        "Sure. Find the process id with `ps aux | grep python`, then stop it with `kill <pid>`; "
        "if it does not exit, `kill -9 <pid>` forces it. On Windows use Task Manager or "
        "`taskkill /PID <pid> /F`."
    ),
    "math": "<think>\nAdd the amounts step by step.\n</think>\n\nThe total is \\boxed{42}.",
}


class TimedRetriever:
    """Delegates to a retriever and accumulates the CPU time spent in ``search``."""

    def __init__(self, retriever) -> None:
        self._retriever = retriever
        self.cpu_seconds = 0.0

    def search(self, query: str, k: int = 3):
        start = time.thread_time()
        hits = self._retriever.search(query, k)
        self.cpu_seconds += time.thread_time() - start
        return hits


def run_episodes(env: ASCLEnv, n: int, *, lookup: bool) -> tuple[float, float]:
    """Play ``n`` scripted episodes (seeded once, like a training loop): (CPU s, wall s)."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(n):
        prompt, info = env.reset(seed=0 if i == 0 else None)
        if lookup:
            env.step(THINK + write_call(TOOL_NAME, {"query": " ".join(prompt.split()[:12])}))
        _, _, terminated, _, _ = env.step(ANSWERS[info["task_kind"]])
        assert terminated
    return time.thread_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (Linux)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    n, n_rank = args.episodes, max(args.episodes // 10, 100)
    scenarios = {  # name: (env, episodes per run, lookup turn)
        "tool: reset + lookup + answer": (ASCLEnv(rules_mode="tool"), n, True),
        "baseline: reset + answer": (ASCLEnv(rules_mode="tool"), n, False),
        "baseline: tool with rank_bm25": (
            ASCLEnv(rules_mode="tool", retriever_backend="rank_bm25"),
            n_rank,
            True,
        ),
    }
    for env, _, lookup in scenarios.values():  # warm up caches and lazy imports
        run_episodes(env, 200, lookup=lookup)
    # Interleaved repeats, so that every scenario sees the same background load.
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in scenarios}
    for _ in range(args.repeats):
        for name, (env, episodes, lookup) in scenarios.items():
            times[name].append(run_episodes(env, episodes, lookup=lookup))
    rates = {}
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, pinned to core {args.core};"
        f" load average at start: {load}"
    )
    print(f"episodes per run: {n} (rank_bm25: {n_rank}); {args.repeats} interleaved runs")
    print(f"{'scenario':<32}{'eps/CPU-s best':>16}{'median':>9}{'eps/wall-s best':>17}")
    for name, (_, episodes, _) in scenarios.items():
        cpu = sorted(episodes / c for c, _ in times[name])
        wall = max(episodes / w for _, w in times[name])
        rates[name] = cpu[-1]
        print(f"{name:<32}{cpu[-1]:>16,.0f}{statistics.median(cpu):>9,.0f}{wall:>17,.0f}")
    tool, plain, rank = rates.values()
    print(f"tool / no-lookup baseline: {tool / plain:.2f}x")
    print(f"bm25s / rank_bm25 backend: {tool / rank:.1f}x")

    env = scenarios["tool: reset + lookup + answer"][0]
    timed = TimedRetriever(env._retriever)
    env._retriever = timed  # benchmark-only instrumentation of the shared retriever
    cpu, _ = run_episodes(env, n, lookup=True)
    share = timed.cpu_seconds / cpu
    print(f"CPU time inside retrieval: {share:.1%} (outside: {1 - share:.1%})")

    n_make, start = 500, time.thread_time()
    for _ in range(n_make):
        ASCLEnv(rules_mode="tool")
    print(f"environment constructions: {n_make / (time.thread_time() - start):,.0f} per CPU-s")
    verdict = "meets" if tool >= TARGET else "MISSES"
    print(f"target >= {TARGET:,.0f} episodes per CPU-second: {verdict} ({tool / TARGET:.2f}x)")


if __name__ == "__main__":
    main()
