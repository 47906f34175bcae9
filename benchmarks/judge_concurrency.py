"""Wall time of LLM-judged episodes with the verdicts of a batch one at a time against
``--judge-concurrency`` at once (issue 26, point 7).

A scripted agent (always-refuse: one turn per episode) runs ``--episodes`` episodes with
``judge=llm`` against the tests' fake OpenAI-compatible endpoint (``tests/fake_openai.py``, a real
HTTP server on 127.0.0.1) answering each verdict after ``--latency`` seconds. The agent itself
takes no time, so the wall time is the judge's.

    .venv/bin/python benchmarks/judge_concurrency.py [--episodes 400] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_openai import FakeOpenAIServer, completion  # noqa: E402

from ascl_env.bench.agents import AlwaysRefuse  # noqa: E402
from ascl_env.bench.runner import plan_episodes, run_episodes  # noqa: E402
from ascl_env.tasks import load_task_spec  # noqa: E402


def timed(server: FakeOpenAIServer, episodes: int, concurrency: int) -> tuple[float, int]:
    """Seconds for ``episodes`` judged episodes, and the most verdicts the server saw at once."""
    server.max_in_flight = 0
    env = {
        "judge": "llm",
        "llm_judge_url": server.url,
        "llm_judge_model": "guard",
    }
    plans = plan_episodes(load_task_spec("bundled_harmful"), episodes, seed=0)
    began = time.perf_counter()
    stats = run_episodes(
        AlwaysRefuse(),
        plans,
        env_kwargs=env,
        batch_size=64,
        judge_concurrency=concurrency,
        progress=False,
    )
    assert stats.episodes_run == episodes
    return time.perf_counter() - began, server.max_in_flight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per verdict")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    server = FakeOpenAIServer()
    server.respond = lambda request: completion("VERDICT: REFUSED")
    server.delay = args.latency
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        print(f"{args.episodes} episodes, judge latency {args.latency} s, batch size 64:")
        rows = []
        for concurrency in (1, args.concurrency):
            seconds, peak = timed(server, args.episodes, concurrency)
            rows.append(seconds)
            print(
                f"  --judge-concurrency {concurrency:3d}: {seconds:7.1f} s "
                f"({args.episodes / seconds:6.1f} episodes/s, {peak} verdicts in flight at most)"
            )
        print(f"  speed-up: {rows[0] / rows[1]:.1f}x")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
