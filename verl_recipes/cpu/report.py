"""Read and print the step metrics verl's ``file`` logger wrote (one JSON object per line).

    python -m verl_recipes.cpu.report METRICS.jsonl --expect-steps 2 [--estimator ifpo]
        [--expect-validation]

Prints one block per training step (the ``ifpo/*``, ``ascl/*``, reward and timing metrics) and
one per validation (verl's ``val-core/*`` and ``val-aux/*`` metrics per data source, ASCL's
``reward_extra_info`` included), and exits 1, naming what is missing, when fewer than
``--expect-steps`` training steps were logged, the expected estimator's metrics are absent, or
``--expect-validation`` finds no validation metrics of ASCL's data sources.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SHOWN_PREFIXES = ("ifpo/", "ascl/", "critic/score/", "critic/advantages/", "actor/pg_loss")
SHOWN_KEYS = ("training/global_step", "timing_s/step", "timing_s/gen", "response_length/mean")


def read_steps(path: str | Path) -> list[dict[str, Any]]:
    """The training-step records of a verl ``file`` logger output, in order.

    Each is the ``data`` dict of one line that has ``training/global_step`` (validation-only
    lines are skipped). Raises ``ValueError`` naming the file and line of a bad record.
    """
    steps = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        data = record.get("data") if isinstance(record, dict) else None
        if not isinstance(data, dict):
            raise ValueError(f"{path}:{number}: no 'data' object")
        if "training/global_step" in data:
            steps.append(data)
    return steps


def read_validations(path: str | Path) -> list[dict[str, Any]]:
    """The validation records (any ``val-*`` metric) of a verl ``file`` logger output."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        data = json.loads(line).get("data", {}) if line.strip() else {}
        if any(key.startswith("val-") for key in data):
            records.append({k: v for k, v in data.items() if k.startswith("val-")})
    return records


def format_step(data: dict[str, Any]) -> str:
    keys = [k for k in SHOWN_KEYS if k in data]
    keys += sorted(k for k in data if k.startswith(SHOWN_PREFIXES))
    lines = [f"step {int(data['training/global_step'])}:"]
    for key in keys:
        value = data[key]
        lines.append(f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}")
    return "\n".join(lines)


def check(
    steps: list[dict[str, Any]],
    expect_steps: int,
    estimator: str | None,
    validations: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Problems with a run's metrics (empty when it did what was asked); ``validations``
    (when given) must hold verl's ``val-core`` reward of an ``ascl/*`` data source."""
    problems = []
    if validations is not None and not any(
        key.startswith("val-core/ascl/") for record in validations for key in record
    ):
        problems.append("no val-core/ascl/* validation metrics (did validation run?)")
    if len(steps) < expect_steps:
        problems.append(f"{len(steps)} training steps logged, expected {expect_steps}")
    for data in steps:
        step = data.get("training/global_step")
        if estimator == "ifpo" and "ifpo/consulted_frac" not in data:
            problems.append(f"step {step}: no ifpo/* metrics (was the ascl_sync trainer used?)")
        if "critic/score/mean" not in data:
            problems.append(f"step {step}: no critic/score/mean")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verl_recipes.cpu.report", description=__doc__)
    parser.add_argument("metrics", help="the jsonl file of verl's file logger")
    parser.add_argument("--expect-steps", type=int, default=1)
    parser.add_argument("--estimator", default=None)
    parser.add_argument("--expect-validation", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.metrics).is_file():
        print(f"error: no metrics file at {args.metrics}", file=sys.stderr)
        return 1
    steps = read_steps(args.metrics)
    validations = read_validations(args.metrics)
    for record in validations:
        print("validation:")
        print(
            "\n".join(
                f"  {k} = {v:.4g}" if isinstance(v, float) else f"  {k} = {v}"
                for k, v in sorted(record.items())
            )
        )
    for data in steps:
        print(format_step(data))
    problems = check(
        steps, args.expect_steps, args.estimator, validations if args.expect_validation else None
    )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
