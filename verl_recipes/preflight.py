"""Check a verl run before it starts: ``python -m verl_recipes.preflight [check|plan] ...``.

``check`` (the default) is what a GPU user runs first, with the launch script's overrides::

    python -m verl_recipes.preflight check --recipe ascl_ifpo -- \\
        actor_rollout_ref.model.path=Qwen/Qwen2.5-3B-Instruct data.train_files=... ...

It composes the recipe with Hydra and verl's config search path, runs verl's own
``validate_config`` (as ``main_ppo`` does), the IFPO guards (:mod:`verl_recipes.guards`), the
logits memory bound (:mod:`verl_recipes.memory`), and checks the data (files present, rows
written by ``prepare_data``, every prompt fits ``max_prompt_length`` with the tool schema), the
model's tokenizer (its chat template renders the tool schema; ``</tool_call>`` is one token so
the server can stop there), the LLM judge endpoint when the rows use one, the GPUs of this node
against ``n_gpus_per_node`` and the batch sizes, and whether the run resumes. It prints one
line per check (``ok``, ``warn`` or ``FAIL``), the exact ``main_ppo`` command, and exits 1 if
any check failed.

``plan`` is the cheap part the launch scripts print first (no verl import): the run name, the
checkpoint folder and whether the run resumes from it, and the number of training steps.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRACKER = "latest_checkpointed_iteration.txt"  # verl's checkpoint tracker file


# ---------------------------------------------------------------------------- plan


def resume_status(checkpoint_dir: str | Path, resume_mode: str = "auto") -> str:
    """One line: does a run with this checkpoint folder resume, and from which step."""
    tracker = Path(checkpoint_dir) / TRACKER
    if resume_mode == "disable":
        return f"resume: disabled (resume_mode=disable); {checkpoint_dir} is not read"
    if resume_mode != "auto":
        return f"resume: from trainer.resume_from_path (resume_mode={resume_mode})"
    if tracker.is_file():
        step = tracker.read_text().strip()
        return f"resume: RESUMING from global_step_{step} in {checkpoint_dir} (resume_mode=auto)"
    return f"resume: none, a new run ({checkpoint_dir} has no checkpoint)"


def training_steps(
    train_rows: int, train_batch_size: int, total_epochs: int, total_training_steps: int | None
) -> int:
    """Steps verl will train: full batches per epoch (its dataloader drops the last partial
    batch) times epochs, or ``trainer.total_training_steps`` when set."""
    if total_training_steps:
        return int(total_training_steps)
    return (train_rows // train_batch_size) * total_epochs


def parquet_rows(path: str | Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def plan(args: argparse.Namespace) -> int:
    print(f"run: {args.run_name}; checkpoints: {args.checkpoint_dir}")
    print(resume_status(args.checkpoint_dir, args.resume_mode))
    if not Path(args.train_files).is_file():
        print(f"steps: unknown, {args.train_files} does not exist yet")
        return 0
    rows = parquet_rows(args.train_files)
    steps = training_steps(rows, args.train_batch_size, args.total_epochs, args.total_steps)
    print(
        f"steps: {steps} ({rows} training rows // {args.train_batch_size} prompts per step x "
        f"{args.total_epochs} epochs"
        + (
            f"; capped by trainer.total_training_steps={args.total_steps})"
            if args.total_steps
            else ")"
        )
    )
    if steps < args.min_steps:
        print(
            f"warning: only {steps} steps; build a larger mixture "
            "(python -m verl_recipes.prepare_data --mixture DIR) for a real run"
        )
    return 0


# ---------------------------------------------------------------------------- check


class Report:
    def __init__(self) -> None:
        self.failed = 0

    def line(self, status: str, what: str) -> None:
        self.failed += status == "FAIL"
        print(f"{status:4s}  {what}", flush=True)

    def ok(self, what: str) -> None:
        self.line("ok", what)

    def warn(self, what: str) -> None:
        self.line("warn", what)

    def fail(self, what: str) -> None:
        self.line("FAIL", what)


def compose_recipe(recipe: str, overrides: Sequence[str]) -> Any:
    """The recipe composed as ``main_ppo --config-path=pkg://verl_recipes.config`` does."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("verl_recipes.config", version_base=None):
        return compose(recipe, overrides=list(overrides))


def main_ppo_command(recipe: str, overrides: Sequence[str]) -> str:
    from verl_recipes.paths import shipped_path

    args = [
        "python",
        "-m",
        "verl.trainer.main_ppo",
        "--config-path=pkg://verl_recipes.config",
        f"--config-name={recipe}",
    ]
    loop_key = "actor_rollout_ref.rollout.agent.agent_loop_config_path="
    if not any(o.startswith(loop_key) for o in overrides):
        args.append(f"{loop_key}{shipped_path('agent_loops')}")
    return " ".join(shlex.quote(a) for a in [*args, *overrides])


def _check_config(report: Report, config: Any) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from verl_recipes.guards import ConfigGuardError, check_config, padding_rows
    from verl_recipes.memory import check_bounds, logits_bounds

    try:
        validate_config(config, need_reference_policy(config), need_critic(config))
        report.ok("verl's validate_config accepts the composed config")
    except (AssertionError, ValueError) as exc:
        report.fail(f"verl's validate_config: {' '.join(str(exc).split())}")
    try:
        check_config(config)
        report.ok(f"IFPO guards (padding rows per batch: {padding_rows(config)})")
    except ConfigGuardError as exc:
        report.fail(str(exc))
    mode = config.trainer.v1.trainer_mode
    if config.algorithm.adv_estimator == "ifpo" and mode != "ascl_sync":
        report.warn(f"trainer.v1.trainer_mode={mode}: no ifpo/* and ascl/* metrics (ascl_sync)")
    problems = check_bounds(config)
    for problem in problems:
        report.fail(problem)
    if not problems:
        worst = max(logits_bounds(config), key=lambda b: b.logits_gb)
        report.ok(f"logits bound: at most {worst.logits_gb:.1f} GB per micro-batch ({worst.name})")


def _check_data(report: Report, config: Any, tokenizer: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key in ("train_files", "val_files"):
        files = config.data[key]
        for path in [files] if isinstance(files, str) else list(files):
            if not Path(path).is_file():
                report.fail(
                    f"data.{key}: {path} does not exist (python -m verl_recipes.prepare_data)"
                )
                continue
            import pandas as pd

            frame = pd.read_parquet(path)
            if "extra_info" not in frame or frame.get("agent_name") is None:
                report.fail(f"data.{key}: {path} was not written by verl_recipes.prepare_data")
                continue
            rows.extend(frame.to_dict("records"))
            report.ok(f"data.{key}: {path}, {len(frame)} rows")
            if key == "train_files":
                steps = training_steps(
                    len(frame),
                    int(config.data.train_batch_size),
                    int(config.trainer.total_epochs),
                    config.trainer.get("total_training_steps"),
                )
                report.ok(f"training steps: {steps}")
    if rows and tokenizer is not None:
        from ascl_env.turns import CALL_CLOSE
        from verl_recipes.agent_loop import env_overrides
        from verl_recipes.prepare_data import episode_spec, prompt_lengths

        overrides = env_overrides(config)
        by_config: dict[str, list] = {}
        for row in rows:
            task, env_config = episode_spec(row["extra_info"], None, overrides)
            by_config.setdefault(env_config.model_dump_json(), []).append(task)
        limit = int(config.data.max_prompt_length)
        lengths: dict[str, int] = {}
        for config_json, tasks in by_config.items():
            lengths.update(prompt_lengths(tasks, json.loads(config_json), tokenizer))
        longest = max(lengths, key=lengths.__getitem__)
        over = sum(n > limit for n in lengths.values())
        status = report.fail if over else report.ok
        status(
            f"prompts with the tool schema: longest {lengths[longest]} tokens (task {longest!r}), "
            f"{over} over max_prompt_length={limit}"
            + (
                "; rebuild with prepare_data --tokenizer MODEL --max-prompt-length N"
                if over
                else ""
            )
        )
        if len(tokenizer.encode(CALL_CLOSE, add_special_tokens=False)) != 1:
            report.warn(f"{CALL_CLOSE} is not one token: the server stops on a stop string instead")
    return rows


def _check_model(report: Report, config: Any) -> Any:
    from transformers import AutoTokenizer

    from ascl_env.lookup import tool_schema

    path = config.actor_rollout_ref.model.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        report.fail(f"model {path}: cannot load its tokenizer: {' '.join(str(exc).split())[:300]}")
        return None
    name = tool_schema()["function"]["name"]
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tools=[tool_schema()], tokenize=False
        )
    except Exception as exc:  # noqa: BLE001 - any template error is the finding
        report.fail(f"model {path}: its chat template fails with tools: {exc}")
        return tokenizer
    if name in text:
        report.ok(f"model {path}: the chat template renders the tool schema")
    else:
        report.fail(f"model {path}: the chat template drops the tool schema (no tool support)")
    return tokenizer


def _check_judge(report: Report, rows: list[dict[str, Any]], config: Any) -> None:
    from verl_recipes.agent_loop import env_overrides
    from verl_recipes.prepare_data import episode_spec

    urls = set()
    for row in rows[:1000]:
        _, env_config = episode_spec(row["extra_info"], None, env_overrides(config))
        if env_config.judge == "llm":
            urls.add(str(env_config.llm_judge_url))
    if not urls:
        report.ok("judge: the offline keyword judge (no endpoint)")
    for url in sorted(urls):
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=5) as response:
                report.ok(f"judge endpoint {url} answers (HTTP {response.status})")
        except urllib.error.HTTPError as exc:
            report.ok(f"judge endpoint {url} answers (HTTP {exc.code})")
        except (urllib.error.URLError, OSError) as exc:
            report.fail(f"judge endpoint {url} is unreachable: {exc}")


def _check_gpus(report: Report, config: Any) -> None:
    trainer, rollout = config.trainer, config.actor_rollout_ref.rollout
    per_node, nodes = int(trainer.n_gpus_per_node), int(trainer.nnodes)
    try:
        import torch

        here = torch.cuda.device_count()
    except ImportError:
        here = 0
    if str(trainer.device) == "cpu":
        report.ok("trainer.device=cpu (the CPU harness)")
    elif here >= per_node:
        report.ok(f"{here} GPUs on this node, n_gpus_per_node={per_node}")
    else:
        report.fail(f"{here} GPUs on this node, fewer than trainer.n_gpus_per_node={per_node}")
    world = per_node * nodes
    rollouts = int(config.data.train_batch_size) * int(rollout.n)
    if per_node % int(rollout.tensor_model_parallel_size):
        report.fail(
            f"rollout.tensor_model_parallel_size={rollout.tensor_model_parallel_size} does not "
            f"divide n_gpus_per_node={per_node}"
        )
    if int(config.actor_rollout_ref.actor.ppo_mini_batch_size) > int(config.data.train_batch_size):
        report.fail("actor.ppo_mini_batch_size is larger than data.train_batch_size")
    report.ok(f"{rollouts} rollouts per step over {world} GPUs ({rollouts / world:g} per GPU)")


def check(args: argparse.Namespace) -> int:
    report = Report()
    overrides = list(args.overrides)
    try:
        config = compose_recipe(args.recipe, overrides)
    except Exception as exc:  # noqa: BLE001 - Hydra's composition errors are the finding
        report.fail(f"composing {args.recipe} with {overrides}: {exc}")
        return 1
    report.ok(f"{args.recipe} composes ({len(overrides)} overrides)")
    _check_config(report, config)
    tokenizer = None if args.skip_model else _check_model(report, config)
    rows = _check_data(report, config, tokenizer)
    if rows and not args.skip_judge:
        _check_judge(report, rows, config)
    _check_gpus(report, config)
    checkpoint_dir = config.trainer.default_local_dir
    if not os.path.isabs(checkpoint_dir):
        report.warn(
            f"trainer.default_local_dir={checkpoint_dir} is relative to the driver's working "
            "directory; pass an absolute (shared) path"
        )
    print(resume_status(checkpoint_dir, config.trainer.resume_mode))
    print("command:", main_ppo_command(args.recipe, overrides))
    print(f"preflight: {'FAILED' if report.failed else 'passed'} ({report.failed} failed)")
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m verl_recipes.preflight",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("check", help="compose, validate and check a run (default)")
    c.add_argument("--recipe", default="ascl_ifpo")
    c.add_argument("--skip-model", action="store_true", help="do not load the tokenizer")
    c.add_argument("--skip-judge", action="store_true", help="do not contact the judge")
    c.add_argument("overrides", nargs="*", help="Hydra overrides, as for main_ppo")
    p = sub.add_parser("plan", help="run name, resume status and step count (no verl import)")
    p.add_argument("--run-name", required=True)
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--resume-mode", default="auto")
    p.add_argument("--train-files", required=True)
    p.add_argument("--train-batch-size", type=int, required=True)
    p.add_argument("--total-epochs", type=int, required=True)
    p.add_argument("--total-steps", type=int, default=None)
    p.add_argument("--min-steps", type=int, default=50)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("check", "plan", "-h", "--help"):
        argv = ["check", *argv]
    args = parser.parse_args(argv)
    return plan(args) if args.command == "plan" else check(args)


if __name__ == "__main__":
    sys.exit(main())
