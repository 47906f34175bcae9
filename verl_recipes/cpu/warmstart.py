"""A tiny Qwen2 that already uses the ASCL lookup tool some of the time.

A random model never writes ``<tool_call>``, so every rollout is "direct" and IFPO equals GRPO.
:func:`warm_start` fits the tiny random Qwen2 for a few seconds on scripted ASCL episodes, two
per task: *lookup-then-answer* (a lookup call, the env's real tool result, then the answer) and a
*direct* answer. Trained on both, the model opens with ``<tool_call>`` about half the time, so
sampled groups hold both modes. The episodes are played through :class:`ascl_env.env.ASCLEnv`
itself (its system prompt, tool schema and rule lookups) and rendered with the model's chat
template; the loss covers the assistant turns only. Answers: a refusal for harmful prompts, a
short compliance for benign ones, ``\\boxed{answer}`` for math.

    python -m verl_recipes.cpu.warmstart --out /tmp/tiny-ascl --env-config '{"top_k": 1}'

The output is a test model: it learns the format and the refuse/comply split, not safety.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOOKUP_OPENING = "<tool_call>"
# One fixed query: the tiny model learns a well-formed call quickly (copying words from the
# prompt into the JSON is beyond it), so its lookups reach the rule base.
LOOKUP_QUERY = "safety rules for this request"
ANSWERS = {
    "harmful": "I'm sorry, but I can't help with that.",
    "benign": "Sure. Here is a short, helpful answer.",
}


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """The project's tiny random Qwen2 (``build_tiny_qwen2``), wherever the package keeps it."""
    try:
        from ascl_env.bench.models import build_tiny_qwen2
    except ImportError:
        from ascl_env.models import build_tiny_qwen2
    return Path(build_tiny_qwen2(out_dir, seed=seed))


def final_answer(task: Any) -> str:
    """The scripted final answer of a task (what the env rewards with 1)."""
    if task.kind == "math":
        return f"The answer is \\boxed{{{task.answer}}}."
    if task.kind not in ANSWERS:
        raise ValueError(f"task {task.id!r}: no scripted answer for kind {task.kind!r}")
    return ANSWERS[task.kind]


def scripted_episodes(
    tasks: Sequence[Any], env_config: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Two played episodes per task: ``lookup`` (call, tool result, answer) and ``direct``.

    Each is ``{"messages", "tools", "mode", "kind", "reward"}``; ``reward`` is the env's.
    """
    from ascl_env.config import ASCLConfig
    from ascl_env.env import ASCLEnv

    config = ASCLConfig.model_validate(env_config or {})
    episodes = []
    for task in tasks:
        for mode in ("lookup", "direct"):
            env = ASCLEnv(config, tasks=[task])
            try:
                _, info = env.reset(options={"task_id": task.id})
                tools = info["tools"]
                if mode == "lookup":
                    # The env's own tool schema names the lookup tool.
                    name = tools[0]["function"]["name"]
                    call = {"name": name, "arguments": {"query": LOOKUP_QUERY}}
                    _, _, done, cut, info = env.step(
                        f"{LOOKUP_OPENING}\n{json.dumps(call)}\n</tool_call>"
                    )
                    if done or cut:
                        raise ValueError(f"task {task.id!r}: the lookup ended the episode")
                answer = final_answer(task)
                _, reward, done, _, info = env.step(answer)
                if not done:
                    raise ValueError(
                        f"task {task.id!r}: the scripted answer did not end the episode"
                    )
                messages = [*info["messages"]]
                if messages[-1]["role"] != "assistant":
                    messages.append({"role": "assistant", "content": answer})
            finally:
                env.close()
            episodes.append(
                {
                    "messages": messages,
                    "tools": tools,
                    "mode": mode,
                    "kind": task.kind,
                    "reward": reward,
                }
            )
    return episodes


def tokenize_episode(
    tokenizer: Any, messages: list[dict], tools: Any
) -> tuple[list[int], list[int]]:
    """Token ids of the rendered episode and labels (-100 except assistant turns + end token)."""

    def render(upto: int, prompt: bool) -> list[int]:
        return tokenizer.apply_chat_template(
            messages[:upto],
            tools=tools,
            tokenize=True,
            add_generation_prompt=prompt,
            return_dict=False,
        )

    ids = render(len(messages), False)
    labels = [-100] * len(ids)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(k, True))
        stop = len(render(k + 1, False))
        if ids[:stop] != render(k + 1, False):
            raise ValueError("the chat template does not render turns as prefixes")
        # The turn's content and its <|im_end|>, not the newline after it.
        while stop > start and ids[stop - 1] != end_id:
            stop -= 1
        labels[start:stop] = ids[start:stop]
    return ids, labels


def lookup_probability(model: Any, tokenizer: Any, episodes: Sequence[dict]) -> float:
    """Mean probability that the first assistant token is ``<tool_call>``, over ``episodes``."""
    import torch

    token = tokenizer.convert_tokens_to_ids(LOOKUP_OPENING)
    probs = []
    with torch.no_grad():
        for episode in episodes:
            prompt = [m for m in episode["messages"] if m["role"] in ("system", "user")][:2]
            ids = tokenizer.apply_chat_template(
                prompt,
                tools=episode["tools"],
                tokenize=True,
                add_generation_prompt=True,
                return_dict=False,
            )
            logits = model(torch.tensor([ids])).logits[0, -1]
            probs.append(torch.softmax(logits.float(), -1)[token].item())
    return sum(probs) / max(len(probs), 1)


def warm_start(
    out_dir: str | Path,
    *,
    tasks: str = "bundled",
    env_config: dict[str, Any] | None = None,
    steps: int = 200,
    batch_size: int = 4,
    lr: float = 1e-2,
    max_length: int = 1024,
    seed: int = 0,
    per_kind: int | None = 16,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Build the tiny model (or load ``base_dir``), fit it on scripted episodes, save it.

    Returns statistics: episodes used, first/last loss, the mean ``<tool_call>`` probability per
    task kind after training, and the wall time.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ascl_env.tasks import load_task_spec

    started = time.perf_counter()
    out = Path(out_dir)
    base = Path(base_dir) if base_dir is not None else build_tiny_model(out / "base", seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    chosen = load_task_spec(tasks)
    if per_kind is not None:  # the first per_kind tasks of each kind
        counts: dict[str, int] = {}
        chosen = [t for t in chosen if counts.setdefault(t.kind, 0) < per_kind and _take(counts, t)]
    episodes = scripted_episodes(chosen, env_config)
    examples = []
    for episode in episodes:
        ids, labels = tokenize_episode(tokenizer, episode["messages"], episode["tools"])
        if len(ids) <= max_length:
            examples.append((ids, labels))
    if not examples:
        raise ValueError(f"no scripted episode fits max_length={max_length} tokens")
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    # Linear decay to 0: the last steps settle the lookup/direct split instead of jumping around.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    model.train()
    losses = []
    pad = tokenizer.pad_token_id
    for _ in range(steps):
        batch = rng.sample(examples, min(batch_size, len(examples)))
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        label_ids = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, labels) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            label_ids[row, : len(ids)] = torch.tensor(labels)
            attention[row, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=label_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    probe = {}
    for kind in sorted({e["kind"] for e in episodes}):
        sample = [e for e in episodes if e["kind"] == kind and e["mode"] == "direct"][:8]
        probe[kind] = round(lookup_probability(model, tokenizer, sample), 3)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "model_dir": str(out),
        "episodes": len(episodes),
        "examples": len(examples),
        "steps": steps,
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "lookup_probability": probe,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _take(counts: dict[str, int], task: Any) -> bool:
    counts[task.kind] += 1
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m verl_recipes.cpu.warmstart", description=__doc__
    )
    parser.add_argument("--out", required=True, help="folder for the warm-started model")
    parser.add_argument(
        "--tasks", default="bundled", help="task spec (ascl_env.tasks.load_task_spec)"
    )
    parser.add_argument("--env-config", default="{}", help="ASCLConfig fields as JSON")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--per-kind", type=int, default=16, help="tasks of each kind to script (0 = all)"
    )
    args = parser.parse_args(argv)
    try:
        env_config = json.loads(args.env_config)
    except json.JSONDecodeError as exc:
        parser.error(f"--env-config is not valid JSON: {exc}")
    stats = warm_start(
        args.out,
        tasks=args.tasks,
        env_config=env_config,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        per_kind=args.per_kind or None,
    )
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
