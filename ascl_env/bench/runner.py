"""Run many ASCL-v0 episodes with one agent.

A turn-level agent (:class:`~ascl_env.bench.agents.Agent`: HF, vLLM, scripted) is batched across
episodes: every round, the next turn of *all* active episodes (up to ``batch_size``) comes from
one ``agent.generate`` call; each text is then stepped in its own environment. An episode-level
agent (:class:`~ascl_env.bench.agents.EpisodeAgent`: the OpenAI-compatible one) runs whole
episodes itself, one thread per episode, ``agent.concurrency`` at a time.

A finished episode is appended to a JSONL file at once (one row: task metadata, transcript,
reward components, per-turn finish reason and generated tokens, timing), so an interrupted run
loses at most the episodes in flight. An episode an episode-level agent could not finish
(:class:`~ascl_env.bench.agents.EpisodeFailed`: its endpoint kept failing) gets an errored row
(``"error"`` set, no reward) and the run goes on; ``max_consecutive_errors`` failures in a row
stop it (the endpoint is down). Running the same plan again skips the episode indices already
in the file, after dropping the errored rows (those episodes are run again) and a truncated last
line left by a kill, so nothing is redone or duplicated.

The plan (which task and which seed each episode index gets) depends only on the task list,
``n`` and ``seed``: :func:`plan_episodes`. The episodes file's format is
:mod:`ascl_env.bench.results`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from ascl_env.bench import extras
from ascl_env.bench.agents import (
    Agent,
    Conversation,
    EpisodeAgent,
    EpisodeFailed,
    EpisodeRun,
    Generation,
    finish_reason,
)
from ascl_env.bench.results import (
    HEAVY_FIELDS,
    EpisodeWriter,
    RunError,
    clean_episodes,
    read_rows,
)
from ascl_env.outcome import OUTCOME_FIELDS as EPISODE_OUTCOME_FIELDS
from ascl_env.registration import ENV_ID, register_envs
from ascl_env.tasks import Task

__all__ = [
    "OUTCOME_FIELDS",
    "EpisodePlan",
    "TURN_FIELDS",
    "RunError",
    "RunStats",
    "plan_episodes",
    "read_rows",
    "run_episodes",
    "select_per_kind",
]

OUTCOME_FIELDS: tuple[str, ...] = tuple(f for f in EPISODE_OUTCOME_FIELDS if f != "task_kind")
"""The outcome columns of an episode row: every field of :class:`~ascl_env.outcome.
EpisodeOutcome` (spelled there only; ``task_kind`` is the row's task column)."""


TURN_FIELDS = ("finish_reason", "completion_tokens", "generate_s")
"""The keys of each entry of a row's ``generations`` (one per assistant turn)."""


@dataclass(frozen=True, slots=True)  # a run may plan millions
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
    episodes_errored: int = 0


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: bool, total: int, initial: int, desc: str) -> Any:
    """A bar over finished episodes. Episodes of a batch finish together, minutes apart, so the
    bar is redrawn on every finished episode (tqdm would otherwise draw only the first of a
    burst) and its rate/ETA is the average since the start (``smoothing=0``; resumed episodes
    are not counted in the rate), not tqdm's moving average of bursts."""
    if not progress:
        return _NoBar()
    tqdm = extras.require("tqdm.auto", "the progress bar (progress=False runs without it)").tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="ep", dynamic_ncols=True, smoothing=0)


def _episode_row(
    plan: EpisodePlan,
    agent_name: str,
    rules_mode: str | None,
    info: dict[str, Any],
    turns: list[dict[str, Any]],
    *,
    wall_s: float,
    env_s: float | None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One episodes-file row. ``turns`` are per-turn ``TURN_FIELDS`` records; ``error`` marks an
    episode that could not be finished (no outcome fields then)."""
    reasons = [t.get("finish_reason") for t in turns]
    tokens = [t.get("completion_tokens") for t in turns]
    known = [r for r in reasons if r is not None]
    return {
        "episode": plan.index,
        "seed": plan.seed,
        "agent": agent_name,
        "task_id": plan.task.id,
        "task_kind": plan.task.kind,
        "category": plan.task.category,
        "source": plan.task.source,
        "rules_mode": rules_mode,
        "error": error,
        **{name: (None if error else info.get(name)) for name in OUTCOME_FIELDS},
        "turns": info.get("turn", len(turns)),
        "messages": info.get("messages", []),
        "parse_errors": info.get("parse_errors", []),
        "generations": [{k: t.get(k) for k in TURN_FIELDS} for t in turns],
        # did any turn stop at the token limit (None: the agent reports no finish reasons)
        "hit_token_limit": ("length" in known) if known else None,
        "completion_tokens": None if any(t is None for t in tokens) else sum(tokens),
        "timing": {
            "wall_s": round(wall_s, 6),
            "generate_s": round(sum(t.get("generate_s") or 0.0 for t in turns), 6),
            "env_s": None if env_s is None else round(env_s, 6),
        },
    }


def run_episodes(
    agent: Agent | EpisodeAgent,
    plans: Sequence[EpisodePlan],
    *,
    env_kwargs: dict[str, Any] | None = None,
    out_path: str | os.PathLike | None = None,
    batch_size: int = 64,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    max_consecutive_errors: int = 10,
    judge_concurrency: int = 32,
    max_judge_failures: int | None = 5,
) -> RunStats:
    """Run ``plans`` with ``agent``; rows go to ``out_path`` (JSONL, appended) and ``on_row``.

    ``env_kwargs`` are ``gymnasium.make("ASCL-v0", ...)`` keyword arguments (``tasks`` is set
    from the plans). Episode indices already in ``out_path`` are skipped; errored rows there are
    dropped first and their episodes run again. An exception from a turn-level agent stops the
    run with :class:`RunError`; an episode-level agent's :class:`EpisodeFailed` gives an errored
    row, and ``max_consecutive_errors`` of them in a row stop the run with :class:`RunError`.
    Rows written before a stop stay.

    With an LLM judge (``env_kwargs["judge"] == "llm"``) the turns of a batch are stepped (and
    so judged) ``judge_concurrency`` at a time while the next batch is generated (see
    :func:`_run_batched`; rows then come in the order episodes end), and after
    ``max_judge_failures`` verdicts in a row failed the judge is not called again during this
    run: its answers are scored by the fallback judge with ``judge_error`` set (``None``: keep
    calling it).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_consecutive_errors < 1:
        raise ValueError(f"max_consecutive_errors must be at least 1, got {max_consecutive_errors}")
    if judge_concurrency < 1:
        raise ValueError(f"judge_concurrency must be at least 1, got {judge_concurrency}")
    register_envs()
    env_kwargs = {k: v for k, v in (env_kwargs or {}).items() if k != "tasks"}
    if out_path is not None:
        clean_episodes(out_path)  # errored episodes run again; repeated rows go
    done = {r["episode"] for r in read_rows(out_path, omit=HEAVY_FIELDS)} if out_path else set()
    todo = [plan for plan in plans if plan.index not in done]
    writer = EpisodeWriter(out_path) if out_path else None
    stats = RunStats(0, len(plans) - len(todo), 0.0, 0.0, 0)
    bar = _progress_bar(progress, len(plans), stats.episodes_skipped, agent.name)

    def make_env(task: Task) -> gymnasium.Env:
        # One environment per episode, holding only its task: an environment holding every
        # task of a large run costs memory per environment (gymnasium copies its arguments),
        # and a batch has many. Building one takes about 0.2 ms.
        return gymnasium.make(ENV_ID, tasks=[task], disable_env_checker=True, **env_kwargs)

    def emit(row: dict[str, Any]) -> None:
        if writer is not None:
            writer.write(row)
        if on_row is not None:
            on_row(row)
        stats.episodes_run += 1
        stats.episodes_errored += 1 if row["error"] else 0
        bar.update(1)
        bar.refresh()  # draw every episode of a burst now, not at the next update

    def saved() -> str:
        return f"{stats.episodes_skipped + stats.episodes_run} finished episodes are saved" + (
            f" in {out_path}; run the same command again to resume" if out_path else ""
        )

    judge_clients = _judge_clients(env_kwargs)
    steppers = 1
    for judge_client in judge_clients:
        judge_client.stop_after(max_judge_failures)
        steppers = judge_concurrency
        judge_client.set_concurrency(max(judge_client.concurrency, judge_concurrency))
    began = time.perf_counter()
    try:
        if hasattr(agent, "run_episode"):
            _run_episode_agent(agent, todo, make_env, emit, saved, stats, max_consecutive_errors)
        else:
            _run_batched(agent, todo, make_env, emit, saved, stats, batch_size, steppers)
    finally:
        for judge_client in judge_clients:
            judge_client.stop_after(None)
        stats.wall_s = time.perf_counter() - began
        bar.close()
        if writer is not None:
            writer.close()
    return stats


def _judge_clients(env_kwargs: dict[str, Any]) -> list[Any]:
    """The HTTP clients of the (process-wide) endpoint judges the environments will use: the
    LLM refusal judge and an endpoint harm judge (a guard preset), if any."""
    from ascl_env.config import as_config
    from ascl_env.openai_compat import ChatClient
    from ascl_env.scoring import harm_judge_for, judge_for

    config = as_config(env_kwargs)
    clients: list[ChatClient] = []
    for judge in (judge_for(config), harm_judge_for(config)):
        inner = getattr(judge, "llm", None)  # the registry's llm judge wraps an LLMJudge
        client = getattr(judge, "client", None) or getattr(inner, "client", None)
        if isinstance(client, ChatClient) and all(client is not c for c in clients):
            clients.append(client)
    return clients


def _as_generation(agent_name: str, item: Any, index: int) -> Generation:
    if isinstance(item, Generation):
        return item
    if isinstance(item, str):
        return Generation(item)
    raise RunError(
        f"agent {agent_name} returned {type(item).__name__}, not str, for episode {index}"
    )


def _run_batched(
    agent: Agent,
    todo: list[EpisodePlan],
    make_env: Callable[[Task], gymnasium.Env],
    emit: Callable[[dict[str, Any]], None],
    saved: Callable[[], str],
    stats: RunStats,
    batch_size: int,
    steppers: int = 1,
) -> None:
    """Generate the next turn of up to ``batch_size`` episodes per ``agent.generate`` call and
    step each text in its episode's environment.

    With ``steppers == 1`` the turns are stepped in this thread, so a batch is the episodes
    still going after the previous one plus new ones. With more (an LLM judge: an episode's
    last step waits on a verdict) they are stepped on a pool of ``steppers`` threads and this
    thread does not wait for a whole batch's verdicts: up to ``batch_size + steppers``
    episodes are open, and the next batch (episodes whose step came back, oldest first, then
    new ones) is generated as soon as it is full, while earlier verdicts are still out. So no
    batch waits for its slowest verdict and the pool is never idle while a batch is generated;
    rows are written in the order their episodes end.
    """
    pool = ThreadPoolExecutor(steppers, "ascl-step") if steppers > 1 else None
    limit = batch_size + (steppers if pool is not None else 0)  # most episodes open at once
    ready: list[_Active] = []  # awaiting their next turn: continuing episodes first
    stepping: dict[Future, _Active] = {}
    plans = iter(todo)
    exhausted = False

    def finish(item: _Active, terminated: bool, truncated: bool, info: dict[str, Any]) -> None:
        if terminated or truncated:
            row = _episode_row(
                item.plan,
                agent.name,
                item.conversation.meta["rules_mode"],
                info,
                item.turns,
                wall_s=time.perf_counter() - item.started,
                env_s=item.env_s,
            )
            item.env.close()
            emit(row)
        else:
            item.conversation.messages = info["messages"]
            ready.append(item)

    def collect(done: set[Future] | list[Future]) -> None:
        for future in sorted(done, key=lambda f: stepping[f].plan.index):
            result = future.result()  # a step that raised leaves its env to the finally below
            finish(stepping.pop(future), *result)

    try:
        while True:
            collect([f for f in stepping if f.done()])
            while not exhausted and len(ready) < batch_size and len(ready) + len(stepping) < limit:
                plan = next(plans, None)
                if plan is None:
                    exhausted = True
                else:
                    ready.append(_start(plan, make_env))
            if stepping and len(ready) < batch_size:
                # a short batch: wait for verdicts (episodes come back or end, new ones start)
                collect(wait(stepping, return_when=FIRST_COMPLETED).done)
                continue
            if not ready:
                break
            active, ready = ready[:batch_size], ready[batch_size:]
            texts = _generate(agent, active, saved, stats)
            if pool is None:
                for item, text in zip(active, texts, strict=True):
                    finish(item, *_step(item, text))
            else:
                for item, text in zip(active, texts, strict=True):
                    stepping[pool.submit(_step, item, text)] = item
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for item in [*ready, *stepping.values()]:
            item.env.close()


def _start(plan: EpisodePlan, make_env: Callable[[Task], gymnasium.Env]) -> _Active:
    """Make and reset ``plan``'s environment."""
    env = make_env(plan.task)
    started = time.perf_counter()
    _, info = env.reset(seed=plan.seed, options={"task_id": plan.task.id})
    meta = {k: info[k] for k in ("task_kind", "task_id", "category", "source", "rules_mode")}
    # Agents seed each episode's sampling with it: a fixed per-request seed would give every
    # repeat of a task (--n) the same text.
    meta["seed"] = plan.seed
    conv = Conversation(info["messages"], info["tools"], meta)
    item = _Active(plan, env, conv, started)
    item.env_s += time.perf_counter() - started
    return item


def _generate(
    agent: Agent, active: list[_Active], saved: Callable[[], str], stats: RunStats
) -> list[str]:
    """One ``agent.generate`` call for ``active``'s next turns; records each turn's finish
    reason, tokens and time, and returns the texts."""
    t0 = time.perf_counter()
    try:
        texts = agent.generate([item.conversation for item in active])
    except Exception as exc:
        raise RunError(
            f"agent {agent.name} failed on episodes "
            f"{[item.plan.index for item in active]}: {exc}. {saved()}"
        ) from exc
    spent = time.perf_counter() - t0
    stats.generate_s += spent
    stats.generate_calls += 1
    if not isinstance(texts, list) or len(texts) != len(active):
        got = len(texts) if isinstance(texts, list) else type(texts).__name__
        raise RunError(f"agent {agent.name} returned {got} texts for {len(active)} turns")
    gens = []
    for item, out in zip(active, texts, strict=True):
        gen = _as_generation(agent.name, out, item.plan.index)
        # an agent that does not time its rows gets an equal share of the call
        share = gen.seconds if gen.seconds is not None else spent / len(active)
        item.turns.append(
            {
                "finish_reason": finish_reason(gen.finish_reason),
                "completion_tokens": gen.completion_tokens,
                "generate_s": round(share, 6),
            }
        )
        gens.append(gen.text)
    return gens


def _step(item: _Active, text: str) -> tuple[bool, bool, dict[str, Any]]:
    """Step ``item``'s environment with ``text``, timing it; (terminated, truncated, info)."""
    t1 = time.perf_counter()
    _, _, terminated, truncated, info = item.env.step(text)
    item.env_s += time.perf_counter() - t1
    return terminated, truncated, info


def _agent_episode(
    agent: EpisodeAgent, plan: EpisodePlan, make_env: Callable[[Task], gymnasium.Env]
) -> dict[str, Any]:
    """The row of one episode an agent runs itself; an :class:`EpisodeFailed` becomes a row
    with ``error`` set (a bug in the agent propagates)."""
    env = make_env(plan.task)
    started = time.perf_counter()
    rules_mode = env.unwrapped.config.rules_mode
    try:
        result: EpisodeRun = agent.run_episode(env, seed=plan.seed, task_id=plan.task.id)
    except EpisodeFailed as exc:
        info = {"messages": exc.messages, "turn": len(exc.turns)}
        error = {"type": type(exc.__cause__ or exc).__name__, "message": str(exc)}
        return _episode_row(
            plan,
            agent.name,
            rules_mode,
            info,
            exc.turns,
            wall_s=time.perf_counter() - started,
            env_s=None,
            error=error,
        )
    finally:
        env.close()
    return _episode_row(
        plan,
        agent.name,
        rules_mode,
        {**result.info, "reward": result.reward},
        result.turns,
        wall_s=time.perf_counter() - started,
        env_s=None,
    )


def _run_episode_agent(
    agent: EpisodeAgent,
    todo: list[EpisodePlan],
    make_env: Callable[[Task], gymnasium.Env],
    emit: Callable[[dict[str, Any]], None],
    saved: Callable[[], str],
    stats: RunStats,
    max_consecutive_errors: int,
) -> None:
    workers = max(1, int(getattr(agent, "concurrency", 1)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ascl-episode")
    pending: set[Future] = set()
    plans = iter(todo)
    consecutive = 0
    failure: BaseException | None = None
    try:
        while True:
            while failure is None and len(pending) < 2 * workers:
                plan = next(plans, None)
                if plan is None:
                    break
                future = pool.submit(_agent_episode, agent, plan, make_env)
                future.plan = plan  # type: ignore[attr-defined]
                pending.add(future)
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    row = future.result()
                except Exception as exc:  # a bug, not an endpoint failure: stop
                    failure = failure or RunError(
                        f"agent {agent.name} failed on episode {future.plan.index}: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    failure.__cause__ = exc
                    continue
                emit(row)
                stats.generate_calls += len(row["generations"])
                stats.generate_s += row["timing"]["generate_s"]
                consecutive = consecutive + 1 if row["error"] else 0
                if consecutive >= max_consecutive_errors and failure is None:
                    failure = RunError(
                        f"agent {agent.name}: {consecutive} episodes in a row failed "
                        f"(last: {row['error']['message']})"
                    )
        if failure is not None:
            raise RunError(f"{failure} {saved()}") from failure.__cause__
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
