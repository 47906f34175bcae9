"""How many of the embedded default's (SmolLM2-135M, greedy) first answers end within a token
budget, with and without generation settings that discourage repetition (issue 26, point 14).

The prompts are the first turns of the bundled tasks that ``ascl-bench run --per-kind`` picks
(seed 0), rendered as the harness renders them, generated in one batch per setting. A setting
is a JSON object of extra ``model.generate`` keyword arguments, e.g.
``{"repetition_penalty": 1.2, "no_repeat_ngram_size": 3}``; ``{}`` is the default (greedy).
Sampling, as SmolLM2's model card suggests, is
``{"do_sample": true, "temperature": 0.2, "top_p": 0.9, "top_k": 0}``; the torch seed is reset
to ``--seed`` before each setting, so a sampled run repeats.

``--system-prompt TEXT`` replaces the env's default system prompt and ``--no-tools`` leaves the
lookup tool out of the chat template: diagnostics of how much of the looping comes from the
env's prompt, not settings the harness uses. ``--system-suffix TEXT`` appends TEXT to the
(default or given) system prompt through the env's ``system_prompt`` option (the supported way
to set it); repeat it to compare several, ``''`` meaning the prompt as the env renders it today.

Each line reports finished/total, wall time and the load average before and after. For every
answer cut at the budget it also reports where the loop starts: the token position at which an
``--ngram``-token sequence first occurs for the second time (``-`` when none repeats), and what a
loop stop would do (``--loop-rule N,R``: stop once some N-token sequence has occurred R times,
keep the text before its second occurrence): ``stop@S keep@K`` in tokens.

    .venv/bin/python benchmarks/smollm2_budget.py [--budget 256] [--per-kind harmful=4,...]
        [--setting '{}' --setting '{"no_repeat_ngram_size": 3}'] [--system-suffix '' ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium

from ascl_env.bench.agents import Conversation, HFAgent
from ascl_env.bench.models import smollm2_hf_dir
from ascl_env.bench.runner import select_per_kind
from ascl_env.env import default_system_prompt
from ascl_env.registration import ENV_ID, register_envs
from ascl_env.tasks import load_task_spec


def first_turns(
    per_kind: dict[str, int],
    system_suffix: str = "",
    system_prompt: str | None = None,
    tools: bool = True,
) -> tuple[list, list]:
    register_envs()
    tasks = select_per_kind(load_task_spec("bundled"), per_kind, seed=0)
    conversations = []
    for task in tasks:
        extra = {}
        base = default_system_prompt("tool", task.kind) if system_prompt is None else system_prompt
        if system_suffix or system_prompt is not None:
            extra["system_prompt"] = f"{base} {system_suffix}".strip()
        env = gymnasium.make(ENV_ID, tasks=[task], disable_env_checker=True, **extra)
        _, info = env.reset(seed=0, options={"task_id": task.id})
        conversations.append(Conversation(info["messages"], info["tools"] if tools else [], {}))
        env.close()
    return tasks, conversations


def loop_start(ids: list[int], n: int) -> int | None:
    """Token position where some n-token sequence first starts for the second time."""
    seen: set[tuple[int, ...]] = set()
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i : i + n])
        if gram in seen:
            return i
        seen.add(gram)
    return None


def loop_stop(ids: list[int], n: int, repeats: int) -> tuple[int, int] | None:
    """``(stop, keep)``: the token count at which some n-token sequence has occurred ``repeats``
    times, and the start of its second occurrence (what a loop stop would keep); ``None``."""
    where: dict[tuple[int, ...], list[int]] = {}
    for i in range(len(ids) - n + 1):
        seen = where.setdefault(tuple(ids[i : i + n]), [])
        seen.append(i)
        if len(seen) >= repeats:
            return i + n, seen[1]
    return None


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=256, help="max new tokens")
    parser.add_argument("--per-kind", default="harmful=4,benign=4,math=2")
    parser.add_argument("--setting", action="append", type=json.loads, default=None)
    parser.add_argument("--system-suffix", action="append", default=None)
    parser.add_argument(
        "--system-prompt",
        default=None,
        help="replace the env's default system prompt (diagnostic; '' = none)",
    )
    parser.add_argument(
        "--no-tools", action="store_true", help="leave the tool out of the chat template"
    )
    parser.add_argument("--ngram", type=int, default=8, help="n of the loop-start n-gram")
    parser.add_argument("--loop-rule", default="12,3", help="N,R of the loop stop (see above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rule = tuple(int(x) for x in args.loop_rule.split(","))
    per_kind = {k: int(v) for k, v in (part.split("=") for part in args.per_kind.split(","))}
    agent = HFAgent(smollm2_hf_dir(), max_new_tokens=args.budget, name="smollm2")
    defaults = dict(agent._gen_kwargs)
    for suffix in args.system_suffix or [""]:
        tasks, conversations = first_turns(
            per_kind, suffix, args.system_prompt, tools=not args.no_tools
        )
        for setting in args.setting or [{}]:
            agent._gen_kwargs = {**defaults, **setting}
            torch.manual_seed(args.seed)
            load_before, began = load(), time.perf_counter()
            gens = agent.generate(conversations)
            wall = time.perf_counter() - began
            finished = sum(g.finish_reason == "stop" for g in gens)
            print(
                f"system={'default' if args.system_prompt is None else repr(args.system_prompt)} "
                f"tools={not args.no_tools} suffix={suffix!r} {json.dumps(setting)}: "
                f"{finished}/{len(gens)} finished within {args.budget} tokens "
                f"({wall:.0f} s, load {load_before}->{load()}); "
                f"tokens {[g.completion_tokens for g in gens]}",
                flush=True,
            )
            stops = 0
            for task, gen in zip(tasks, gens, strict=True):
                where = ""
                if gen.finish_reason != "stop":
                    ids = agent.tokenizer(gen.text, add_special_tokens=False)["input_ids"]
                    start = loop_start(ids, args.ngram)
                    where = f"loop@{'-' if start is None else start} "
                    stop = loop_stop(ids, *rule)
                    stops += stop is not None
                    where += f"stop@{stop[0]} keep@{stop[1]} " if stop else "stop@- "
                print(f"  {task.kind:8s} {gen.finish_reason:6s} {where}{gen.text[:90]!r}")
            print(f"  a loop stop ({args.loop_rule}) would end {stops} of the cut answers")


if __name__ == "__main__":
    main()
