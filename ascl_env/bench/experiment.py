"""One agent on one episode plan, into a result directory that can be resumed and reported.

The directory's layout and ``run.json`` (which refuses a different configuration unless
``overwrite``) are :mod:`ascl_env.bench.results`'s; what ``run.json`` records about the software,
model and judge is :mod:`ascl_env.bench.provenance`'s.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ascl_env.bench import provenance as provenance_
from ascl_env.bench.agents import Agent, EpisodeAgent
from ascl_env.bench.report import write_report
from ascl_env.bench.results import (
    EPISODES_FILE,
    HEAVY_FIELDS,
    TASKS_KEY,
    RunError,
    RunIncomplete,
    is_errored,
    lock_directory,
    plan_fingerprint,
    prepare_directory,
    read_rows,
    tasks_fingerprint,
    write_run,
)
from ascl_env.bench.runner import EpisodePlan, run_episodes


def run_experiment(
    agent: Agent | EpisodeAgent,
    plans: Sequence[EpisodePlan],
    out_dir: str | os.PathLike,
    config: dict[str, Any],
    *,
    env_kwargs: dict[str, Any] | None = None,
    batch_size: int = 64,
    progress: bool = True,
    overwrite: bool = False,
    max_consecutive_errors: int = 10,
    judge_concurrency: int = 32,
    max_judge_failures: int | None = 5,
) -> dict[str, Any]:
    """Run (or resume) ``plans`` into ``out_dir`` and write its report; returns the report.

    The directory is locked for the whole run (:func:`~ascl_env.bench.results.lock_directory`):
    a second writer gets :class:`RunError` at once. Every invocation is recorded in ``run.json``,
    one stopped by an error or Ctrl-C too (``"stopped"`` says why).
    """
    out_dir = Path(out_dir)
    config = {
        **config,
        "episodes": len(plans),
        "plan": plan_fingerprint(plans),
        TASKS_KEY: tasks_fingerprint(plans),
    }
    provenance = provenance_.collect(agent, env_kwargs)
    with lock_directory(out_dir):
        record = prepare_directory(out_dir, config, overwrite=overwrite, provenance=provenance)
        if record.get("provenance") is None:  # a directory from before provenance was recorded
            record["provenance"] = provenance
        write_run(out_dir, record)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        invocation = {"started": started, "agent": config.get("agent"), "provenance": provenance}
        try:
            stats = run_episodes(
                agent,
                plans,
                env_kwargs=env_kwargs,
                out_path=out_dir / EPISODES_FILE,
                batch_size=batch_size,
                progress=progress,
                max_consecutive_errors=max_consecutive_errors,
                judge_concurrency=judge_concurrency,
                max_judge_failures=max_judge_failures,
            )
        except (RunError, KeyboardInterrupt) as exc:
            rows = read_rows(out_dir / EPISODES_FILE, omit=HEAVY_FIELDS)
            stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {exc}"
            record["invocations"].append(
                {**invocation, "stopped": stopped, "episodes_saved": len(rows)}
            )
            write_run(out_dir, record)
            if any(not is_errored(row) for row in rows):
                write_report(out_dir)  # marked incomplete; the rerun completes it
            if isinstance(exc, RunError) and not isinstance(exc, RunIncomplete):
                raise RunIncomplete(str(exc)) from exc
            raise
        record["invocations"].append(
            {
                **invocation,
                "episodes_run": stats.episodes_run,
                "episodes_skipped": stats.episodes_skipped,
                "episodes_errored": stats.episodes_errored,
                "wall_s": round(stats.wall_s, 3),
                "generate_s": round(stats.generate_s, 3),
                "generate_calls": stats.generate_calls,
            }
        )
        write_run(out_dir, record)
        return write_report(out_dir)
