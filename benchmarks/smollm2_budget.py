"""How many of the embedded default's (SmolLM2-135M, greedy) first answers end within a token
budget, with and without generation settings that discourage repetition (issue 26, point 14).

The prompts are the first turns of the bundled tasks that ``ascl-bench run --per-kind`` picks
(seed 0), rendered as the harness renders them, generated in one batch per setting. A setting
is a JSON object of extra ``model.generate`` keyword arguments, e.g.
``{"repetition_penalty": 1.2, "no_repeat_ngram_size": 3}``; ``{}`` is the default.

    .venv/bin/python benchmarks/smollm2_budget.py [--budget 256] [--per-kind harmful=4,...]
        [--setting '{}' --setting '{"no_repeat_ngram_size": 3}']
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium

from ascl_env.bench.agents import Conversation, HFAgent
from ascl_env.bench.models import smollm2_hf_dir
from ascl_env.bench.runner import select_per_kind
from ascl_env.registration import ENV_ID, register_envs
from ascl_env.tasks import load_task_spec


def first_turns(per_kind: dict[str, int]) -> tuple[list, list[Conversation]]:
    register_envs()
    tasks = select_per_kind(load_task_spec("bundled"), per_kind, seed=0)
    conversations = []
    for task in tasks:
        env = gymnasium.make(ENV_ID, tasks=[task], disable_env_checker=True)
        _, info = env.reset(seed=0, options={"task_id": task.id})
        conversations.append(Conversation(info["messages"], info["tools"], {}))
        env.close()
    return tasks, conversations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=256, help="max new tokens")
    parser.add_argument("--per-kind", default="harmful=4,benign=4,math=2")
    parser.add_argument("--setting", action="append", type=json.loads, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    per_kind = {k: int(v) for k, v in (part.split("=") for part in args.per_kind.split(","))}
    tasks, conversations = first_turns(per_kind)
    agent = HFAgent(smollm2_hf_dir(), max_new_tokens=args.budget, name="smollm2")
    defaults = dict(agent._gen_kwargs)
    for setting in args.setting or [{}]:
        agent._gen_kwargs = {**defaults, **setting}
        began = time.perf_counter()
        gens = agent.generate(conversations)
        finished = sum(g.finish_reason == "stop" for g in gens)
        print(
            f"{json.dumps(setting)}: {finished}/{len(gens)} finished within {args.budget} tokens "
            f"({time.perf_counter() - began:.0f} s); tokens {[g.completion_tokens for g in gens]}",
            flush=True,
        )
        for task, gen in zip(tasks, gens, strict=True):
            print(f"  {task.kind:8s} {gen.finish_reason:6s} {gen.text[:100]!r}")


if __name__ == "__main__":
    main()
