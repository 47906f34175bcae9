"""Write ASCL tasks as verl train/validation parquet files.

    python -m verl_recipes.prepare_data --tasks bundled --out ~/data/ascl/tool
    python -m verl_recipes.prepare_data --tasks "xstest=PATH,strongreject=PATH,gsm8k=PATH" \\
        --rules-mode in_context --out ~/data/ascl/in_context

One row per task, in the schema of verl's ``RLHFDataset``:

- ``prompt``: the env's opening messages (system prompt + user prompt; in ``in_context`` mode the
  rules retrieved for the prompt are in the system prompt). The tool schema is not in the
  messages: ``ascl_agent`` takes it from the env.
- ``agent_name``: ``ascl_agent`` (the env-driven loop; see ``docs/architecture.md`` for why
  verl's stock ``tool_agent`` is not supported); ``data_source``: ``ascl/<kind>``.
- ``reward_model``: ``{"style": "rule", "ground_truth": ...}``: the math answer, or ``refuse`` /
  ``comply`` for harmful / benign prompts (informative only; the env judges).
- ``extra_info``: ``split``, ``index``, ``task`` (the :class:`ascl_env.tasks.Task` fields) and
  ``env_config`` (JSON text of the ASCLConfig fields the rollout's env must use).

:func:`episode_spec` reads a row back for the agent loop.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ascl_env.config import ASCLConfig, as_config
from ascl_env.env import ASCLEnv
from ascl_env.errors import format_problems, pydantic_problems
from ascl_env.tasks import Task, load_task_spec

AGENT_NAME = "ascl_agent"
# The training mixture of --mixture DIR: every benchmark file the loaders read, in the layout of
# their upstream releases (the project's shared data folder), plus the bundled benign prompts
# and generated math. These are evaluation sets too: evaluate a model trained on this mixture
# on the val split or on sets left out of it, never on the same files.
MIXTURE = (
    "strongreject={d}/strongreject/strongreject_dataset.csv,"
    "harmbench={d}/harmbench/harmbench_behaviors_text_all.csv,"
    "jbb_harmful={d}/jailbreakbench/harmful-behaviors.csv,"
    "advbench={d}/advbench/harmful_behaviors.csv,"
    "xstest={d}/xstest/xstest_prompts.csv,"
    "jbb_benign={d}/jailbreakbench/benign-behaviors.csv,"
    "bundled_benign,"
    "gsm8k={d}/gsm8k/test.jsonl:800,"
    "math500={d}/math500/test.jsonl:400,"
    "math_gen:400"
)


def mixture_spec(data_dir: str | Path) -> str:
    """The task spec of :data:`MIXTURE` over ``data_dir`` (absolute)."""
    return MIXTURE.format(d=Path(data_dir).expanduser().resolve())
GROUND_TRUTH = {"harmful": "refuse", "benign": "comply"}


class DataPrepError(ValueError):
    """Bad input to prepare_data; the message names the file, task or field."""


def episode_spec(
    extra_info: Mapping[str, Any] | None,
    default_env_config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Task, ASCLConfig]:
    """The task and env config of a row, from its ``extra_info``.

    The env config is ``default_env_config``, then the row's ``extra_info["env_config"]`` (a
    dict or its JSON text), then ``overrides`` (e.g. the trainer config's
    ``ascl.env_overrides``); later ones win, field by field (``rewards`` as a whole). Errors
    name the offending field.
    """
    if not extra_info or "task" not in extra_info:
        raise DataPrepError(
            f"the row's extra_info has no 'task' (keys: {sorted(extra_info or {})}); "
            "write the data with python -m verl_recipes.prepare_data"
        )
    try:
        task = Task.model_validate(_as_dict(extra_info["task"], "extra_info.task"))
    except ValueError as exc:
        raise DataPrepError(f"extra_info.task is not a valid task: {exc}") from exc
    row_config = _as_dict(extra_info.get("env_config") or {}, "extra_info.env_config")
    try:
        config = as_config(default_env_config, row_config, overrides)
    except ValueError as exc:
        where = "with ascl.env_overrides " if overrides else ""
        raise DataPrepError(
            f"extra_info.env_config of task {task.id!r} {where}is not a valid ASCLConfig: {exc}"
        ) from exc
    return task, config


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataPrepError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise DataPrepError(f"{where} must be a mapping, got {type(value).__name__}")
    return dict(value)


def build_rows(
    tasks: Sequence[Task],
    env_config: Mapping[str, Any],
    *,
    split: str = "train",
) -> list[dict[str, Any]]:
    """One verl row per task; the prompt is what ``ASCLEnv.reset`` shows for that task."""
    if not tasks:
        raise DataPrepError(f"no tasks for the {split} split")
    config = ASCLConfig.model_validate(dict(env_config))
    env = ASCLEnv(config, tasks=list(tasks))
    # The fields given here, default values included: they must win over the agent loop's
    # env_config defaults (episode_spec), which excluded defaults would not.
    config_json = json.dumps(config.model_dump(exclude_unset=True), sort_keys=True)
    rows = []
    for index, task in enumerate(tasks):
        _, info = env.reset(options={"task_id": task.id})
        rows.append(
            {
                "data_source": f"ascl/{task.kind}",
                "agent_name": AGENT_NAME,
                "prompt": info["messages"],
                "ability": "math" if task.kind == "math" else "safety",
                "reward_model": {
                    "style": "rule",
                    "ground_truth": task.answer if task.kind == "math" else GROUND_TRUTH[task.kind],
                },
                "extra_info": {
                    "split": split,
                    "index": index,
                    "task": task.model_dump(),
                    "env_config": config_json,
                },
            }
        )
    env.close()
    return rows


def prompt_lengths(
    tasks: Sequence[Task], env_config: Mapping[str, Any], tokenizer: Any
) -> dict[str, int]:
    """Token count of each task's prompt as ``ascl_agent`` renders it: the env's opening
    messages **and tool schema** through the chat template, with the generation prompt.

    verl's own ``filter_overlong_prompts`` renders the parquet prompt without the schema (which
    the loop takes from the env), so it lets through prompts that do not fit.
    """
    env = ASCLEnv(ASCLConfig.model_validate(dict(env_config)), tasks=list(tasks))
    lengths = {}
    for task in tasks:
        _, info = env.reset(options={"task_id": task.id})
        ids = tokenizer.apply_chat_template(
            info["messages"], tools=info["tools"] or None, add_generation_prompt=True, tokenize=True
        )
        lengths[task.id] = len(ids["input_ids"] if isinstance(ids, Mapping) else ids)
    env.close()
    return lengths


def fit_prompt_length(
    tasks: Sequence[Task],
    env_config: Mapping[str, Any],
    tokenizer: Any,
    max_prompt_length: int,
    *,
    drop: bool = False,
) -> list[Task]:
    """The tasks whose rendered prompt fits ``max_prompt_length`` tokens.

    Raises :class:`DataPrepError` naming the longest ones unless ``drop`` (then they are left
    out, and a note goes to stderr).
    """
    lengths = prompt_lengths(tasks, env_config, tokenizer)
    over = sorted((n, t) for t, n in lengths.items() if n > max_prompt_length)
    if over and not drop:
        worst = ", ".join(f"{t} ({n})" for n, t in over[::-1][:3])
        raise DataPrepError(
            f"{len(over)} of {len(tasks)} prompts have more than --max-prompt-length="
            f"{max_prompt_length} tokens with the tool schema, e.g. {worst}; raise it "
            "(data.max_prompt_length) or pass --drop-overlong"
        )
    if over:
        print(
            f"prepare_data: dropped {len(over)} of {len(tasks)} prompts longer than "
            f"{max_prompt_length} tokens",
            file=sys.stderr,
        )
    dropped = {t for _, t in over}
    return [t for t in tasks if t.id not in dropped]


def split_tasks(
    tasks: Sequence[Task], val_fraction: float, seed: int
) -> tuple[list[Task], list[Task]]:
    """Seeded split per task kind, so validation holds every kind (when a kind has 2+ tasks)."""
    if not 0 <= val_fraction < 1:
        raise DataPrepError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    rng = random.Random(seed)
    train: list[Task] = []
    val: list[Task] = []
    for kind in sorted({t.kind for t in tasks}):
        pool = [t for t in tasks if t.kind == kind]
        rng.shuffle(pool)
        n_val = min(round(len(pool) * val_fraction), len(pool) - 1)
        if val_fraction > 0 and len(pool) > 1:
            n_val = max(n_val, 1)
        val.extend(pool[:n_val])
        train.extend(pool[n_val:])
    rng.shuffle(train)
    rng.shuffle(val)
    return train, val


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)


def prepare(
    tasks_spec: str,
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    rules_mode: str = "tool",
    env_config: Mapping[str, Any] | None = None,
    tokenizer: str | Path | None = None,
    max_prompt_length: int | None = None,
    drop_overlong: bool = False,
) -> dict[str, Path]:
    """Load ``tasks_spec``, split it and write ``train.parquet`` (and ``val.parquet``).

    With ``tokenizer`` (a model folder or hub name, loaded offline-first by transformers) and
    ``max_prompt_length``, every prompt is rendered as the agent loop renders it (tool schema
    included) and one that does not fit fails the run (:func:`fit_prompt_length`).
    """
    config = {**(env_config or {}), "rules_mode": rules_mode}
    try:
        ASCLConfig.model_validate(config)
    except ValidationError as exc:
        problems = format_problems(pydantic_problems(exc))
        raise DataPrepError(f"--env-config is not a valid ASCLConfig: {problems}") from exc
    out = Path(out_dir).expanduser()
    for part in (out, *out.parents):
        if part.exists():
            if not part.is_dir():
                raise DataPrepError(f"--out {out}: {part} is a file, not a directory")
            break
    try:
        tasks = load_task_spec(tasks_spec)
    except FileNotFoundError as exc:
        raise DataPrepError(f"--tasks {tasks_spec!r}: file not found: {exc}") from exc
    except ValueError as exc:
        raise DataPrepError(f"--tasks {tasks_spec!r}: {exc}") from exc
    if not tasks:
        raise DataPrepError(f"--tasks {tasks_spec!r} gave no tasks: the mixture is empty")
    if (tokenizer is None) != (max_prompt_length is None):
        raise DataPrepError("--tokenizer and --max-prompt-length go together")
    if tokenizer is not None and max_prompt_length is not None:
        from transformers import AutoTokenizer

        try:
            loaded = AutoTokenizer.from_pretrained(str(tokenizer))
        except OSError as exc:
            raise DataPrepError(f"--tokenizer {tokenizer}: cannot load it: {exc}") from exc
        tasks = fit_prompt_length(tasks, config, loaded, max_prompt_length, drop=drop_overlong)
    train, val = split_tasks(tasks, val_fraction, seed)
    # every row is built (and so checked) before anything is written
    rows = {"train": build_rows(train, config, split="train")}
    if val:
        rows["val"] = build_rows(val, config, split="val")
    written = {}
    for split, split_rows in rows.items():
        written[split] = out / f"{split}.parquet"
        write_parquet(split_rows, written[split])
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m verl_recipes.prepare_data",
        description="Write ASCL tasks as verl train/val parquet files.",
    )
    parser.add_argument(
        "--tasks",
        default="bundled",
        help="'bundled' or a loader spec such as 'xstest=PATH,gsm8k=PATH' "
        "(see ascl_env.tasks.load_task_spec)",
    )
    parser.add_argument(
        "--mixture",
        metavar="DIR",
        help="use the training mixture over the benchmark files in DIR (replaces --tasks; "
        "see MIXTURE in this module)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules-mode", choices=("tool", "in_context", "none"), default="tool")
    parser.add_argument(
        "--env-config",
        default="{}",
        help='extra ASCLConfig fields as JSON, e.g. \'{"max_turns": 3, "judge": "llm", ...}\'',
    )
    parser.add_argument(
        "--tokenizer",
        help="the model (folder or hub name) whose chat template renders the prompts; with "
        "--max-prompt-length, fail on a prompt (tool schema included) that does not fit",
    )
    parser.add_argument("--max-prompt-length", type=int, help="data.max_prompt_length of the run")
    parser.add_argument(
        "--drop-overlong", action="store_true", help="drop over-long prompts instead of failing"
    )
    args = parser.parse_args(argv)
    try:
        env_config = _as_dict(args.env_config, "--env-config")
        written = prepare(
            mixture_spec(args.mixture) if args.mixture else args.tasks,
            args.out,
            val_fraction=args.val_fraction,
            seed=args.seed,
            rules_mode=args.rules_mode,
            env_config=env_config,
            tokenizer=args.tokenizer,
            max_prompt_length=args.max_prompt_length,
            drop_overlong=args.drop_overlong,
        )
    except ValueError as exc:  # DataPrepError, or a task/config validation error
        print(f"prepare_data: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output cannot be written (permissions, disk full, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"prepare_data: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    import pyarrow.parquet as pq

    for split, path in written.items():
        print(f"{split}: {path} ({pq.ParquetFile(path).metadata.num_rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
