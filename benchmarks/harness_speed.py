"""Speed of the benchmark harness, each against a baseline measured in the same run.

1. Scripted agent (always-lookup: two turns, one BM25 lookup): episodes/s of ``run_episodes``
   against a bare loop over the same environments (reset/step with the same texts, no runner).
2. HF agent (tiny random Qwen2; SmolLM2 with ``--smollm2``): the share of the runner's wall
   time spent outside ``model.generate`` (target <= 5%).
3. vLLM agent, only when vLLM imports (run this script with the vLLM venv's python): harness
   episodes/s against raw ``LLM.chat`` on the same prompts with the same sampling parameters
   (target >= 90%). One turn per episode (``rules_mode=none, max_turns=1``) so both sides
   generate exactly the same prompts.

    .venv/bin/python benchmarks/harness_speed.py [--smollm2]
    VLLM_CPU_KVCACHE_SPACE=2 .venv-vllm/bin/python benchmarks/harness_speed.py --vllm-only
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time

from ascl_env.bench.agents import AlwaysLookup, Conversation, HFAgent
from ascl_env.bench.runner import plan_episodes, run_episodes, select_per_kind
from ascl_env.registration import ENV_ID, register_envs
from ascl_env.tasks import load_task_spec


def bare_loop(agent, plans, env_kwargs) -> float:
    """Seconds for the same episodes without the runner: one env, one episode at a time."""
    import gymnasium

    register_envs()
    tasks = list({p.task.id: p.task for p in plans}.values())
    env = gymnasium.make(ENV_ID, tasks=tasks, disable_env_checker=True, **env_kwargs)
    began = time.perf_counter()
    for plan in plans:
        _, info = env.reset(seed=plan.seed, options={"task_id": plan.task.id})
        conv = Conversation(info["messages"], info["tools"], {"task_kind": plan.task.kind})
        done = False
        while not done:
            text = agent.generate([conv])[0]
            _, _, terminated, truncated, step_info = env.step(text)
            conv.messages = step_info["messages"]
            done = terminated or truncated
    return time.perf_counter() - began


def scripted(n: int) -> None:
    tasks = load_task_spec("bundled")
    plans = plan_episodes(tasks, n, seed=0)
    agent = AlwaysLookup()
    bare = bare_loop(agent, plans, {})
    began = time.perf_counter()
    run_episodes(agent, plans, progress=False)
    harness = time.perf_counter() - began
    print(f"scripted always-lookup, {n} episodes (2 turns, 1 lookup each):")
    print(f"  bare env loop   {n / bare:8.1f} episodes/s")
    print(f"  run_episodes    {n / harness:8.1f} episodes/s   ratio {bare / harness:.2f}")


def hf(label: str, path, n: int, max_new_tokens: int, batch_size: int) -> None:
    agent = HFAgent(path, device="cpu", max_new_tokens=max_new_tokens, max_batch_size=batch_size)
    tasks = select_per_kind(
        load_task_spec("bundled"), {"harmful": n // 3, "benign": n // 3, "math": n - 2 * (n // 3)}
    )
    agent.generate([Conversation([{"role": "user", "content": "warm up"}], [], {})])
    agent.generation_seconds = 0.0
    agent.generated_tokens = 0
    stats = run_episodes(agent, plan_episodes(tasks), batch_size=batch_size, progress=False)
    outside = stats.wall_s - agent.generation_seconds
    print(
        f"HF agent {label}, {stats.episodes_run} episodes, batch {batch_size}, "
        f"max_new_tokens {max_new_tokens}, {stats.generate_calls} generate calls:"
    )
    print(
        f"  wall {stats.wall_s:.2f} s, inside model.generate {agent.generation_seconds:.2f} s,"
        f" {agent.generated_tokens} tokens ({agent.generated_tokens / stats.wall_s:.1f} tok/s)"
    )
    print(
        f"  outside generation {outside:.3f} s = {100 * outside / stats.wall_s:.2f}% of wall "
        "(target <= 5%)"
    )


def vllm(n: int, max_new_tokens: int) -> None:
    from vllm import LLM, SamplingParams

    from ascl_env.bench.agents import VLLMAgent
    from ascl_env.bench.models import smollm2_hf_dir

    env_kwargs = {"rules_mode": "none", "max_turns": 1}
    tasks = select_per_kind(
        load_task_spec("bundled"), {"harmful": n // 3, "benign": n // 3, "math": n - 2 * (n // 3)}
    )
    plans = plan_episodes(tasks)
    agent = VLLMAgent(smollm2_hf_dir(), max_new_tokens=max_new_tokens, max_model_len=4096)
    llm: LLM = agent.llm
    params = SamplingParams(max_tokens=max_new_tokens, temperature=0.0, seed=0)
    # the exact first-turn conversations the env produces
    import gymnasium

    register_envs()
    env = gymnasium.make(ENV_ID, tasks=tasks, disable_env_checker=True, **env_kwargs)
    prompts = [env.reset(seed=p.seed, options={"task_id": p.task.id})[1]["messages"] for p in plans]
    llm.chat(prompts[:4], params, use_tqdm=False)  # warm-up
    results = []
    for _ in range(2):  # alternate to even out drift on a shared machine
        began = time.perf_counter()
        outs = llm.chat(prompts, params, use_tqdm=False)
        raw = time.perf_counter() - began
        stats = run_episodes(
            agent, plans, env_kwargs=env_kwargs, batch_size=len(plans), progress=False
        )
        results.append((raw, stats.wall_s))
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    raw = min(r for r, _ in results)
    harness = min(h for _, h in results)
    print(
        f"vLLM SmolLM2-135M, {len(plans)} one-turn episodes, max_new_tokens {max_new_tokens}, "
        f"{tokens} output tokens per pass:"
    )
    print(f"  raw LLM.chat    {len(plans) / raw:8.2f} prompts/s  ({tokens / raw:.0f} tok/s)")
    print(
        f"  harness         {len(plans) / harness:8.2f} episodes/s  "
        f"ratio {raw / harness:.3f} (target >= 0.90)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=400, help="scripted episodes")
    parser.add_argument("--hf-episodes", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--smollm2", action="store_true", help="also time SmolLM2 (minutes)")
    parser.add_argument("--vllm-only", action="store_true", help="only the vLLM comparison")
    args = parser.parse_args()
    if not args.vllm_only:
        scripted(args.episodes)
        from ascl_env.bench.models import build_tiny_qwen2

        with tempfile.TemporaryDirectory() as tmp:
            hf(
                "tiny-qwen2",
                build_tiny_qwen2(tmp),
                args.hf_episodes,
                args.max_new_tokens,
                args.batch_size,
            )
        if args.smollm2:
            from ascl_env.bench.models import smollm2_hf_dir

            hf("smollm2", smollm2_hf_dir(), args.hf_episodes, args.max_new_tokens, args.batch_size)
    if importlib.util.find_spec("vllm") is not None:
        vllm(args.hf_episodes, args.max_new_tokens)
    elif args.vllm_only:
        raise SystemExit("vllm is not importable here: run with .venv-vllm/bin/python")


if __name__ == "__main__":
    main()
