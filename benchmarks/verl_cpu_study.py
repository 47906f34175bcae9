"""GRPO vs IFPO through verl's own ``main_ppo`` on CPU: lookup rate per task kind over steps.

    python benchmarks/verl_cpu_study.py --out runs/verl_cpu_study --steps 30
    python benchmarks/verl_cpu_study.py --out runs/verl_cpu_study --plot-only

Both runs use ``verl_recipes/scripts/smoke_cpu.sh`` (the same ``main_ppo`` path as the CI smoke
test) with the same warm-started tiny model, the same data, the same seeds and the same sizes;
only the recipe differs (``ascl_grpo`` vs ``ascl_ifpo``). Each run's metrics come from verl's
``file`` logger (``ascl/consult_rate/<kind>``: rollouts with a tool turn, IFPO's "consulted"
mode; ``ascl/lookup_rate``: lookups the env executed; ``ascl/reward/<kind>``,
``critic/score/mean``, ``ifpo/*``). Writes ``<out>/summary.json`` and a PNG (``--plot``, default
``docs/img/verl_cpu_study.png``). Not part of CI: about 10-20 minutes per run on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verl_recipes.cpu.report import read_steps  # noqa: E402

RECIPES = {"grpo": "ascl_grpo", "ifpo": "ascl_ifpo"}
KINDS = ("harmful", "benign", "math")
ENV_CONFIG = '{"top_k": 1, "max_rule_chars": 300, "max_turns": 2}'


def run(out: Path, estimator: str, steps: int, seed: int, model: Path, overrides: list[str]):
    work = out / estimator
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "ASCL_SMOKE_DIR": str(work),
        "ASCL_SMOKE_STEPS": str(steps),
        "ASCL_SMOKE_CONFIG": RECIPES[estimator],
        "ASCL_SMOKE_SEED": str(seed),
        "ASCL_SMOKE_MODEL": str(model),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    started = time.perf_counter()
    with open(work / "run.log", "w") as log:
        code = subprocess.call(
            ["bash", str(ROOT / "verl_recipes/scripts/smoke_cpu.sh"), *overrides],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{estimator} run failed (exit {code}); see {work / 'run.log'}")
    return wall


def series(steps: list[dict], key: str) -> list[float | None]:
    return [step.get(key) for step in steps]


def summarize(out: Path) -> dict:
    summary = {}
    for estimator in RECIPES:
        path = out / estimator / "metrics.jsonl"
        if not path.is_file():
            continue
        steps = read_steps(path)
        entry = {
            "steps": len(steps),
            "score_mean": series(steps, "critic/score/mean"),
            "lookup_rate": series(steps, "ascl/lookup_rate"),
            "consult_rate": series(steps, "ascl/consult_rate"),
        }
        for kind in KINDS:
            entry[f"lookup_rate/{kind}"] = series(steps, f"ascl/lookup_rate/{kind}")
            entry[f"consult_rate/{kind}"] = series(steps, f"ascl/consult_rate/{kind}")
            entry[f"reward/{kind}"] = series(steps, f"ascl/reward/{kind}")
        if estimator == "ifpo":
            entry["mixed_groups"] = series(steps, "ifpo/mixed_groups")
        summary[estimator] = entry
    return summary


def window_mean(values: list[float | None], first: bool, width: int = 5) -> float | None:
    chosen = [v for v in (values[:width] if first else values[-width:]) if v is not None]
    return round(sum(chosen) / len(chosen), 3) if chosen else None


def table(summary: dict) -> str:
    rows = ["| estimator | metric | first 5 steps | last 5 steps |", "|---|---|---|---|"]
    keys = ["score_mean", "lookup_rate", "consult_rate", *(f"consult_rate/{k}" for k in KINDS)]
    keys += [f"reward/{k}" for k in KINDS]
    for estimator, entry in summary.items():
        for key in keys:
            rows.append(
                f"| {estimator} | {key} | {window_mean(entry[key], True)} "
                f"| {window_mean(entry[key], False)} |"
            )
    return "\n".join(rows)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4), sharex=True)
    styles = {"grpo": "--", "ifpo": "-"}
    for estimator, entry in summary.items():
        xs = list(range(1, entry["steps"] + 1))
        for ax, kind in zip(axes[:3], KINDS, strict=True):
            ax.plot(xs, entry[f"consult_rate/{kind}"], styles[estimator], label=estimator)
            ax.set_title(f"consult rate (tool turn): {kind}")
            ax.set_ylim(-0.05, 1.05)
        axes[3].plot(xs, entry["score_mean"], styles[estimator], label=estimator)
        axes[3].set_title("mean env reward")
    for ax in axes:
        ax.set_xlabel("PPO step")
        ax.legend()
    fig.suptitle("verl main_ppo on CPU, warm-started tiny Qwen2: GRPO vs IFPO (same seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/img/verl_cpu_study.png")
    parser.add_argument("--plot-only", action="store_true", help="summarize existing runs")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for both runs")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    walls = {}
    if not args.plot_only:
        out.mkdir(parents=True, exist_ok=True)
        model = out / "model"
        if not (model / "config.json").is_file():
            subprocess.check_call(
                [
                    sys.executable,
                    "-m",
                    "verl_recipes.cpu.warmstart",
                    "--out",
                    str(model),
                    "--env-config",
                    ENV_CONFIG,
                    "--seed",
                    str(args.seed),
                ],
                cwd=ROOT,
            )
        for estimator in RECIPES:
            walls[estimator] = round(
                run(out, estimator, args.steps, args.seed, model, args.overrides)
            )
            print(f"{estimator}: {walls[estimator]} s", flush=True)
    summary = summarize(out)
    if walls:
        summary["wall_seconds"] = walls
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot({k: v for k, v in summary.items() if k in RECIPES}, args.plot)
    print(table({k: v for k, v in summary.items() if k in RECIPES}))
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
