"""One agent on one episode plan, into a result directory that can be resumed.

``run.json`` records the configuration (agent spec, task selection, seed, environment and
generation settings, and a fingerprint of the plan). Running into a directory whose ``run.json``
describes a different configuration is refused, so resumed episodes always belong to the same
experiment; ``overwrite=True`` starts the directory afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ascl_env.bench.agents import Agent
from ascl_env.bench.report import (
    EPISODES_FILE,
    REPORT_JSON,
    REPORT_MD,
    RUN_FILE,
    atomic_write_json,
    write_report,
)
from ascl_env.bench.runner import EpisodePlan, RunError, read_rows, run_episodes

RESULT_FILES = (RUN_FILE, EPISODES_FILE, REPORT_JSON, REPORT_MD, "lookup_rate_by_kind.png")


def plan_fingerprint(plans: Sequence[EpisodePlan]) -> str:
    text = json.dumps([[p.index, p.task.id, p.seed] for p in plans])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_directory(
    out_dir: str | os.PathLike, config: dict[str, Any], *, overwrite: bool = False
) -> dict[str, Any]:
    """Create or reuse ``out_dir`` for ``config``; returns the run record to extend."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in RESULT_FILES:
            (out_dir / name).unlink(missing_ok=True)
    path = out_dir / RUN_FILE
    if not path.exists():
        return {"config": config, "invocations": []}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        previous = record["config"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path} is unreadable ({exc}); pass --overwrite to start afresh") from exc
    changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
    if changed:
        details = "; ".join(f"{k}: {previous.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise RunError(
            f"{out_dir} holds results of a different configuration ({details}); "
            "use another --out, or --overwrite to discard them"
        )
    return record


def run_experiment(
    agent: Agent,
    plans: Sequence[EpisodePlan],
    out_dir: str | os.PathLike,
    config: dict[str, Any],
    *,
    env_kwargs: dict[str, Any] | None = None,
    batch_size: int = 64,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run (or resume) ``plans`` into ``out_dir`` and write its report; returns the report."""
    out_dir = Path(out_dir)
    config = {**config, "episodes": len(plans), "plan": plan_fingerprint(plans)}
    record = prepare_directory(out_dir, config, overwrite=overwrite)
    atomic_write_json(out_dir / RUN_FILE, record)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        stats = run_episodes(
            agent,
            plans,
            env_kwargs=env_kwargs,
            out_path=out_dir / EPISODES_FILE,
            batch_size=batch_size,
            progress=progress,
        )
    except (RunError, KeyboardInterrupt):
        if read_rows(out_dir / EPISODES_FILE):
            write_report(out_dir)  # marked incomplete; the rerun completes it
        raise
    record["invocations"].append(
        {
            "started": started,
            "episodes_run": stats.episodes_run,
            "episodes_skipped": stats.episodes_skipped,
            "wall_s": round(stats.wall_s, 3),
            "generate_s": round(stats.generate_s, 3),
            "generate_calls": stats.generate_calls,
        }
    )
    atomic_write_json(out_dir / RUN_FILE, record)
    return write_report(out_dir)
