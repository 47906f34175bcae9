"""IFPO vs GRPO vs GRPO with 2x learning rate through verl's own ``main_ppo`` on CPU.

    python benchmarks/verl_cpu_study.py --out runs/verl_cpu_study            # 3 variants x 3 seeds
    python benchmarks/verl_cpu_study.py --out runs/verl_cpu_study --seeds 3 4  # add seeds later
    python benchmarks/verl_cpu_study.py --out runs/verl_cpu_study --summarize-only

The policy is the tiny Qwen2 warm-started into the paper's *drifted* state
(``python -m verl_recipes.cpu.warmstart --profile drifted``): it opens with a well-formed lookup
on most prompts of every kind, and after a lookup it tends to refuse (safe on harmful prompts,
over-refusal on benign ones, no answer on math) while a direct answer tends to comply. One warm
start (seed 0) is shared by every run. Each run is ``verl_recipes/scripts/smoke_cpu.sh`` (the
``main_ppo`` path of the CI smoke test) with the shipped recipe: ``grpo`` = ``ascl_grpo``,
``ifpo`` = ``ascl_ifpo`` (default options), ``grpo_2xlr`` = ``ascl_grpo`` with twice the actor
learning rate. Within a seed every variant sees the same data order (``data.seed``) and rollout
seed. Runs go seed by seed and resume per (variant, seed): a run whose folder holds
``result.json`` is skipped, an unfinished one is started again from scratch.

Writes ``<out>/summary.json`` (per-step series per run, seed means and bands, steps until the
benign consult rate falls below 50 %, final per-kind rates, IFPO - GRPO and IFPO - GRPO(2x lr)
differences paired by seed with 95 % t intervals) and a PNG (``--plot``, default
``docs/img/verl_cpu_study.png``). Not part of CI: 4.4-5.9 minutes per run of 60 steps on the
2 shared cores (load average 5-10), plus ~7 minutes for the warm start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verl_recipes.cpu.report import read_steps  # noqa: E402
from verl_recipes.cpu.warmstart import DRIFTED_ENV_CONFIG, DRIFTED_TASKS  # noqa: E402

# variant -> (recipe, learning-rate factor)
VARIANTS = {"grpo": ("ascl_grpo", 1.0), "ifpo": ("ascl_ifpo", 1.0), "grpo_2xlr": ("ascl_grpo", 2.0)}
KINDS = ("harmful", "benign", "math")
# Per-step series kept in summary.json (verl's file logger names).
SERIES = {
    "score": "critic/score/mean",
    "consult": "ascl/consult_rate",
    "lookup": "ascl/lookup_rate",
    **{f"consult/{k}": f"ascl/consult_rate/{k}" for k in KINDS},
    **{f"lookup/{k}": f"ascl/lookup_rate/{k}" for k in KINDS},
    **{f"reward/{k}": f"ascl/reward/{k}" for k in KINDS},
    "safe/harmful": "ascl/safe_rate/harmful",
    "answered/benign": "ascl/answered_rate/benign",
    "correct/math": "ascl/correct_rate/math",
    "mixed_groups": "ifpo/mixed_groups",
    "seconds": "timing_s/step",
}
FINAL_WINDOW = 5  # "final" = mean of the last 5 steps
CROSSING_WINDOW = 3  # the benign consult rate is smoothed over 3 steps before the 50 % test
# Two-sided 95 % Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def warm_start(out: Path, steps: int) -> Path:
    model = out / "model"
    stats_path = out / "warmstart.json"
    if (model / "config.json").is_file() and stats_path.is_file():
        return model
    command = [
        sys.executable,
        "-m",
        "verl_recipes.cpu.warmstart",
        "--out",
        str(model),
        "--env-config",
        DRIFTED_ENV_CONFIG,
        "--tasks",
        DRIFTED_TASKS,
        "--compact-tools",
        "--per-kind",
        "0",
        "--profile",
        "drifted",
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--seed",
        "0",
        "--probe-samples",
        "2",
    ]
    print("warm start:", " ".join(command), flush=True)
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    stats = json.loads(output.strip().splitlines()[-1])
    stats_path.write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats, indent=1), flush=True)
    return model


def run_one(out: Path, variant: str, seed: int, args: argparse.Namespace, model: Path) -> dict:
    work = out / "runs" / f"{variant}-s{seed}"
    result_path = work / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    if work.exists():  # an unfinished run: start it again
        shutil.rmtree(work)
    work.mkdir(parents=True)
    recipe, factor = VARIANTS[variant]
    lr = args.lr * factor
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "ASCL_SMOKE_DIR": str(work),
        "ASCL_SMOKE_STEPS": str(args.steps),
        "ASCL_SMOKE_CONFIG": recipe,
        "ASCL_SMOKE_SEED": str(seed),
        "ASCL_SMOKE_MODEL": str(model),
        "ASCL_SMOKE_PROFILE": "drifted",  # the drifted tasks and episodes, as the warm start
        "ASCL_SMOKE_MAX_TOKENS": str(args.max_tokens),
        "ASCL_SMOKE_N": str(args.n),
        "ASCL_SMOKE_BATCH": str(args.batch),
        "ASCL_SMOKE_RESPONSE_LENGTH": str(args.response_length),
        "ASCL_SMOKE_LR": repr(lr),
        "ASCL_SMOKE_VAL_ROWS": "0",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    print(f"{variant} seed {seed}: {recipe}, lr {lr:g} -> {work}", flush=True)
    started = time.perf_counter()
    with open(work / "run.log", "w") as log:
        code = subprocess.call(
            ["bash", str(ROOT / "verl_recipes/scripts/smoke_cpu.sh"), *args.overrides],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = round(time.perf_counter() - started)
    if code != 0:
        raise SystemExit(f"{variant} seed {seed} failed (exit {code}); see {work / 'run.log'}")
    result = {
        "variant": variant,
        "seed": seed,
        "recipe": recipe,
        "lr": lr,
        "steps": args.steps,
        "prompts_per_step": args.batch,
        "rollouts_per_prompt": args.n,
        "response_length": args.response_length,
        "wall_seconds": wall,
    }
    result_path.write_text(json.dumps(result, indent=1))
    print(f"{variant} seed {seed}: {wall} s", flush=True)
    return result


# ---- summary ---------------------------------------------------------------------------------


def load_runs(out: Path) -> dict[str, dict[int, dict]]:
    """Finished runs: ``{variant: {seed: {"result", "series"}}}``."""
    runs: dict[str, dict[int, dict]] = {}
    for result_path in sorted((out / "runs").glob("*/result.json")):
        result = json.loads(result_path.read_text())
        steps = read_steps(result_path.parent / "metrics.jsonl")
        series = {name: [_round(s.get(key)) for s in steps] for name, key in SERIES.items()}
        runs.setdefault(result["variant"], {})[result["seed"]] = {
            "result": result,
            "series": series,
        }
    return runs


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def final(values: list[float | None]) -> float | None:
    return _mean(values[-FINAL_WINDOW:])


def steps_below_half(values: list[float | None]) -> int | None:
    """First step whose trailing CROSSING_WINDOW-step mean is below 0.5 (None: never)."""
    for end in range(CROSSING_WINDOW, len(values) + 1):
        window = _mean(values[end - CROSSING_WINDOW : end])
        if window is not None and window < 0.5:
            return end
    return None


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and 95 % t interval over seeds (the interval needs 2+ values)."""
    n = len(values)
    mean = sum(values) / n
    entry: dict[str, Any] = {
        "n": n,
        "mean": round(mean, 4),
        "values": [round(v, 4) for v in values],
    }
    if n >= 2:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = T95.get(n - 1, 1.96) * sd / math.sqrt(n)
        entry["ci95"] = [round(mean - half, 4), round(mean + half, 4)]
    return entry


FINAL_METRICS = (
    *(f"consult/{k}" for k in KINDS),
    "lookup",
    "safe/harmful",
    "answered/benign",
    "correct/math",
    "score",
)


def summarize(out: Path) -> dict:
    runs = load_runs(out)
    summary: dict[str, Any] = {"variants": {}, "differences": {}}
    warm = out / "warmstart.json"
    if warm.is_file():
        summary["warm_start"] = json.loads(warm.read_text())
    per_seed: dict[str, dict[int, dict[str, float | None]]] = {}
    for variant, seeds in runs.items():
        entry: dict[str, Any] = {"seeds": sorted(seeds), "runs": {}}
        for seed, run in sorted(seeds.items()):
            series = run["series"]
            measures = {name: final(series[name]) for name in FINAL_METRICS}
            measures["steps_benign_consult_below_half"] = steps_below_half(series["consult/benign"])
            per_seed.setdefault(variant, {})[seed] = measures
            entry["runs"][seed] = {
                **run["result"],
                "final": {k: None if v is None else round(v, 4) for k, v in measures.items()},
                "series": series,
            }
        entry["final_mean"] = {
            name: _round(_mean([per_seed[variant][s][name] for s in seeds]))
            for name in FINAL_METRICS
        }
        entry["steps_benign_consult_below_half"] = {
            s: per_seed[variant][s]["steps_benign_consult_below_half"] for s in sorted(seeds)
        }
        entry["wall_seconds"] = {s: seeds[s]["result"]["wall_seconds"] for s in sorted(seeds)}
        summary["variants"][variant] = entry
    for other in ("grpo", "grpo_2xlr"):
        if "ifpo" not in per_seed or other not in per_seed:
            continue
        shared = sorted(set(per_seed["ifpo"]) & set(per_seed[other]))
        if not shared:
            continue
        diffs: dict[str, Any] = {"seeds": shared}
        for name in (*FINAL_METRICS, "steps_benign_consult_below_half"):
            pairs = [(per_seed["ifpo"][s][name], per_seed[other][s][name]) for s in shared]
            if any(a is None or b is None for a, b in pairs):
                diffs[name] = {
                    "values": [None if a is None or b is None else a - b for a, b in pairs]
                }
                continue
            diffs[name] = interval([a - b for a, b in pairs])
        summary["differences"][f"ifpo-{other}"] = diffs
    return summary


def to_json(summary: dict) -> str:
    """Indented JSON with every list of numbers on one line (the per-step series)."""
    text = json.dumps(summary, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def table(summary: dict) -> str:
    rows = [
        "| variant | seeds | wall s/run | steps to benign consult < 50 % "
        "| final consult harmful / benign / math | final safe / answered / correct "
        "| final reward |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, entry in summary["variants"].items():
        f = entry["final_mean"]
        walls = list(entry["wall_seconds"].values())
        crossings = ", ".join(str(v) for v in entry["steps_benign_consult_below_half"].values())
        consult = " / ".join(_fmt(f[f"consult/{k}"]) for k in KINDS)
        outcome = " / ".join(
            _fmt(f[k]) for k in ("safe/harmful", "answered/benign", "correct/math")
        )
        rows.append(
            f"| {variant} | {len(walls)} | {round(sum(walls) / len(walls))} | {crossings} | "
            f"{consult} | {outcome} | {_fmt(f['score'])} |"
        )
    lines = ["\n".join(rows), ""]
    for name, diffs in summary["differences"].items():
        lines.append(f"{name} (paired by seed {diffs['seeds']}):")
        for key, value in diffs.items():
            if key == "seeds":
                continue
            ci = value.get("ci95")
            shown = f"{value['mean']:+.3f}" if "mean" in value else str(value["values"])
            lines.append(f"  {key}: {shown}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


PLOT_WINDOW = 3  # the plot shows 3-step centred moving averages (a kind is absent some steps)


def smooth(values: list[float | None]) -> list[float | None]:
    """Centred PLOT_WINDOW-step moving average that skips missing steps."""
    half = PLOT_WINDOW // 2
    return [_mean(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("consult/harmful", "consult rate: harmful"),
        ("consult/benign", "consult rate: benign"),
        ("consult/math", "consult rate: math"),
        ("lookup", "lookups executed (all kinds)"),
        ("safe/harmful", "harmful: safe rate (harm judge)"),
        ("answered/benign", "benign: answered rate"),
        ("correct/math", "math: accuracy"),
        ("score", "mean env reward"),
    ]
    colors = {"grpo": "tab:blue", "ifpo": "tab:red", "grpo_2xlr": "tab:green"}
    fig, axes = plt.subplots(2, 4, figsize=(19, 8), sharex=True)
    for ax, (name, title) in zip(axes.flat, panels, strict=True):
        for variant, entry in summary["variants"].items():
            runs = list(entry["runs"].values())
            length = min(len(r["series"][name]) for r in runs)
            xs = list(range(1, length + 1))
            smoothed = [smooth(r["series"][name][:length]) for r in runs]
            columns = [[values[i] for values in smoothed] for i in range(length)]
            columns = [[v for v in c if v is not None] for c in columns]
            mean = [sum(c) / len(c) if c else float("nan") for c in columns]
            low = [min(c) if c else float("nan") for c in columns]
            high = [max(c) if c else float("nan") for c in columns]
            color = colors.get(variant)
            ax.plot(xs, mean, color=color, label=f"{variant} ({len(runs)} seeds)")
            ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
        ax.set_title(title)
        if name != "score":
            ax.set_ylim(-0.05, 1.05)
        if name == "consult/benign":
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    for ax in axes[1]:
        ax.set_xlabel("PPO step")
    axes[1][2].legend(loc="upper right")  # the empty panel: math accuracy stays ~0
    fig.suptitle(
        "verl main_ppo on CPU, tiny Qwen2 warm-started into the drifted state: "
        f"seed mean, band = min-max over seeds; {PLOT_WINDOW}-step moving averages"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--lr", type=float, default=1e-3, help="actor lr of grpo and ifpo")
    parser.add_argument("--batch", type=int, default=8, help="prompts per step")
    parser.add_argument("--n", type=int, default=4, help="rollouts per prompt")
    parser.add_argument("--response-length", type=int, default=256)
    parser.add_argument("--warmstart-steps", type=int, default=400)
    parser.add_argument(
        "--max-tokens", type=int, default=8192, help="tokens per training/log-prob micro-batch"
    )
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/img/verl_cpu_study.png")
    parser.add_argument("--summary", type=Path, default=None, help="default: <out>/summary.json")
    parser.add_argument("--summarize-only", action="store_true", help="no new runs")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for every run")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 2 or args.batch % 2 or args.n < 2:
        parser.error("--steps >= 1, an even --batch >= 2 and --n >= 2 are required")
    out = args.out.resolve()
    if not args.summarize_only:
        out.mkdir(parents=True, exist_ok=True)
        model = warm_start(out, args.warmstart_steps)
        for seed in args.seeds:  # seed by seed, so a partial study still pairs its variants
            for variant in args.variants:
                run_one(out, variant, seed, args, model)
    summary = summarize(out)
    if not summary["variants"]:
        raise SystemExit(f"no finished run under {out / 'runs'}")
    summary_path = args.summary or out / "summary.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(to_json(summary))
    plot(summary, args.plot)
    print(table(summary))
    print(f"summary: {summary_path}\nplot: {args.plot}")


if __name__ == "__main__":
    main()
