"""Run many ASCL-v0 episodes with one agent, generation batched across episodes.

Every round, the next turn of *all* active episodes (up to ``batch_size``) comes from one
``agent.generate`` call; each text is then stepped in its own environment. A finished episode is
appended to a JSONL file at once (one row: task metadata, transcript, reward components,
timing), so an interrupted run loses at most the episodes in flight. Running the same plan again
skips the episode indices already in the file (a truncated last line, left by a kill, is cut
off first), so nothing is redone or duplicated.

The plan (which task and which seed each episode index gets) depends only on the task list,
``n`` and ``seed``: :func:`plan_episodes`. The episodes file's format is
:mod:`ascl_env.bench.results`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from ascl_env.bench import extras
from ascl_env.bench.agents import Agent, Conversation
from ascl_env.bench.results import EpisodeWriter, RunError, read_rows
from ascl_env.registration import ENV_ID, register_envs
from ascl_env.tasks import Task

__all__ = [
    "OUTCOME_FIELDS",
    "EpisodePlan",
    "RunError",
    "RunStats",
    "plan_episodes",
    "read_rows",
    "run_episodes",
    "select_per_kind",
]

OUTCOME_FIELDS = (
    "reward",
    "task_reward",
    "format",
    "lookup_cost",
    "safety",
    "utility",
    "refused",
    "correct",
    "tool_calls",
    "retrieved_rule_ids",
    "format_errors",
    "truncated",
    "judge",
    "judge_error",
    "response_class",
)


@dataclass(frozen=True)
class EpisodePlan:
    index: int
    task: Task
    seed: int


def plan_episodes(tasks: Sequence[Task], n: int | None = None, seed: int = 0) -> list[EpisodePlan]:
    """Episode ``i`` runs task ``order[i % len(tasks)]`` with reset seed ``seed + i``.

    ``n=None`` runs every task once in the given order; otherwise ``order`` is a permutation of
    the tasks drawn with ``seed``, repeated as often as needed to reach ``n`` episodes.
    """
    if not tasks:
        raise ValueError("no tasks to run")
    if n is not None and n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    order = list(tasks)
    if n is None:
        n = len(order)
    else:
        random.Random(seed).shuffle(order)
    return [EpisodePlan(i, order[i % len(order)], seed + i) for i in range(n)]


def select_per_kind(
    tasks: Sequence[Task], per_kind: Mapping[str, int], seed: int = 0
) -> list[Task]:
    """A seeded sample of ``per_kind[kind]`` tasks of each named kind, in the order named.

    A kind with fewer tasks contributes all of them; a kind with none is an error.
    """
    rng = random.Random(seed)
    chosen: list[Task] = []
    for kind, count in per_kind.items():
        pool = [t for t in tasks if t.kind == kind]
        if not pool:
            have = sorted({t.kind for t in tasks})
            raise ValueError(f"no {kind!r} tasks to select from (the task set has {have})")
        chosen.extend(rng.sample(pool, min(count, len(pool))))
    return chosen


@dataclass
class _Active:
    plan: EpisodePlan
    env: gymnasium.Env
    conversation: Conversation
    started: float
    generate_s: float = 0.0
    env_s: float = 0.0
    turns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunStats:
    """What one call of :func:`run_episodes` did."""

    episodes_run: int
    episodes_skipped: int
    wall_s: float
    generate_s: float
    generate_calls: int


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: bool, total: int, initial: int, desc: str) -> Any:
    if not progress:
        return _NoBar()
    tqdm = extras.require("tqdm.auto", "the progress bar (progress=False runs without it)").tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="ep", dynamic_ncols=True)


def _episode_row(active: _Active, info: dict[str, Any], agent_name: str) -> dict[str, Any]:
    plan = active.plan
    return {
        "episode": plan.index,
        "seed": plan.seed,
        "agent": agent_name,
        "task_id": plan.task.id,
        "task_kind": plan.task.kind,
        "category": plan.task.category,
        "source": plan.task.source,
        "rules_mode": active.conversation.meta["rules_mode"],
        **{name: info.get(name) for name in OUTCOME_FIELDS},
        "turns": info.get("turn"),
        "messages": info["messages"],
        "parse_errors": info.get("parse_errors", []),
        "timing": {
            "wall_s": round(time.perf_counter() - active.started, 6),
            "generate_s": round(active.generate_s, 6),
            "env_s": round(active.env_s, 6),
        },
    }


def run_episodes(
    agent: Agent,
    plans: Sequence[EpisodePlan],
    *,
    env_kwargs: dict[str, Any] | None = None,
    out_path: str | os.PathLike | None = None,
    batch_size: int = 64,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> RunStats:
    """Run ``plans`` with ``agent``; rows go to ``out_path`` (JSONL, appended) and ``on_row``.

    ``env_kwargs`` are ``gymnasium.make("ASCL-v0", ...)`` keyword arguments (``tasks`` is set
    from the plans). Episode indices already in ``out_path`` are skipped. An exception from the
    agent stops the run with :class:`RunError`; rows written before it stay.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    register_envs()
    env_kwargs = {k: v for k, v in (env_kwargs or {}).items() if k != "tasks"}
    tasks = list({plan.task.id: plan.task for plan in plans}.values())
    done = {row["episode"] for row in read_rows(out_path, repair=True)} if out_path else set()
    todo = [plan for plan in plans if plan.index not in done]
    writer = EpisodeWriter(out_path) if out_path else None
    free_envs: list[gymnasium.Env] = []
    active: list[_Active] = []
    stats = RunStats(0, len(plans) - len(todo), 0.0, 0.0, 0)
    bar = _progress_bar(progress, len(plans), stats.episodes_skipped, agent.name)
    began = time.perf_counter()
    queue = iter(todo)
    try:
        while True:
            while len(active) < batch_size and (plan := next(queue, None)) is not None:
                env = (
                    free_envs.pop()
                    if free_envs
                    else gymnasium.make(ENV_ID, tasks=tasks, disable_env_checker=True, **env_kwargs)
                )
                started = time.perf_counter()
                _, info = env.reset(seed=plan.seed, options={"task_id": plan.task.id})
                meta = {
                    k: info[k] for k in ("task_kind", "task_id", "category", "source", "rules_mode")
                }
                # Agents seed each episode's sampling with it: a fixed per-request seed would
                # give every repeat of a task (--n) the same text.
                meta["seed"] = plan.seed
                conv = Conversation(info["messages"], info["tools"], meta)
                item = _Active(plan, env, conv, started)
                item.env_s += time.perf_counter() - started
                active.append(item)
            if not active:
                break
            conversations = [item.conversation for item in active]
            t0 = time.perf_counter()
            try:
                texts = agent.generate(conversations)
            except Exception as exc:
                raise RunError(
                    f"agent {agent.name} failed on episodes "
                    f"{[item.plan.index for item in active]}: {exc}. "
                    f"{stats.episodes_skipped + stats.episodes_run} finished episodes are saved"
                    + (f" in {out_path}; run the same command again to resume" if out_path else "")
                ) from exc
            spent = time.perf_counter() - t0
            stats.generate_s += spent
            stats.generate_calls += 1
            if not isinstance(texts, list) or len(texts) != len(active):
                got = len(texts) if isinstance(texts, list) else type(texts).__name__
                raise RunError(f"agent {agent.name} returned {got} texts for {len(active)} turns")
            still: list[_Active] = []
            for item, text in zip(active, texts, strict=True):
                if not isinstance(text, str):
                    raise RunError(
                        f"agent {agent.name} returned {type(text).__name__}, not str, "
                        f"for episode {item.plan.index}"
                    )
                item.generate_s += spent
                t1 = time.perf_counter()
                _, _, terminated, truncated, info = item.env.step(text)
                item.env_s += time.perf_counter() - t1
                if terminated or truncated:
                    row = _episode_row(item, info, agent.name)
                    if writer is not None:
                        writer.write(row)
                    if on_row is not None:
                        on_row(row)
                    free_envs.append(item.env)
                    stats.episodes_run += 1
                    bar.update(1)
                else:
                    item.conversation.messages = info["messages"]
                    still.append(item)
            active = still
    finally:
        stats.wall_s = time.perf_counter() - began
        bar.close()
        if writer is not None:
            writer.close()
        for env in free_envs + [item.env for item in active]:
            env.close()
    return stats
