"""GRPO vs IFPO on a simulated lookup decision: when does a policy stop over-consulting?

    .venv/bin/python examples/ifpo_dynamics.py [--out runs/ifpo_dynamics] [--steps 300]

A simulation, not the paper's experiment. The policy has one learnable logit per task kind
(harmful, benign, math) for "consult the safety rules before answering". Whether an answer earns
reward 1 is a coin flip whose probability depends on the kind and on whether the policy looked
up (``SUCCESS`` below): lookups help on harmful prompts, and cost a little on benign (over-
refusal once the rules are in context) and math prompts (distraction). Each step samples
ASCL-v0-style groups (``--prompts`` prompts x ``--group-size`` rollouts), computes advantages
with ``ascl_env.ifpo.compute_ifpo_advantages`` and takes a REINFORCE step on the logits.

The policy starts having drifted to consulting almost always (``--p0``, default 0.9), the state
the paper says GRPO drifts into. With GRPO the expected push on a kind's logit is proportional to
p(1 - p), which vanishes as the lookup rate nears 1; IFPO's rebalancing keeps it of order 1 as
long as a group still contains one rollout of the rare mode. The study measures how much faster
that undoes the drift, and what it costs. Writes ``dynamics.png`` and ``summary.txt`` to --out.
Needs torch and matplotlib (``pip install 'ascl-env[bench]'``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ascl_env.ifpo import compute_ifpo_advantages  # noqa: E402

KINDS = ("harmful", "benign", "math")
MIX = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)  # share of prompts of each kind
# P(reward 1 | kind, mode), columns (direct, consulted).
SUCCESS = torch.tensor([[0.40, 0.90], [0.90, 0.70], [0.65, 0.55]], dtype=torch.float64)


@dataclass(frozen=True)
class Variant:
    label: str
    ifpo: bool = True
    scope: str = "group"
    apply_to: str = "all"
    max_weight: float | None = None
    lr_scale: float = 1.0


VARIANTS = (
    Variant("GRPO", ifpo=False),
    Variant("GRPO, 2x lr", ifpo=False, lr_scale=2.0),
    Variant("IFPO"),
    Variant("IFPO positive-only", apply_to="positive"),
    Variant("IFPO batch scope", scope="batch"),
    Variant("IFPO max_weight=2", max_weight=2.0),
)


def expected_reward(logits: torch.Tensor) -> torch.Tensor:
    """Exact expected reward of the policy over the task mix."""
    p = torch.sigmoid(logits)
    return (MIX * ((1 - p) * SUCCESS[:, 0] + p * SUCCESS[:, 1])).sum()


def train(
    variant: Variant, args: argparse.Namespace, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lookup rate per kind (steps+1, 3) and expected reward (steps+1,) over training."""
    gen = torch.Generator().manual_seed(seed)
    p0 = torch.tensor(args.p0, dtype=torch.float64)
    logits = torch.full((len(KINDS),), float(torch.logit(p0)), dtype=torch.float64)
    rates, rewards = [torch.sigmoid(logits)], [expected_reward(logits)]
    group_ids = torch.arange(args.prompts).repeat_interleave(args.group_size)
    for _ in range(args.steps):
        kind = torch.multinomial(MIX, args.prompts, replacement=True, generator=gen)
        kind = kind.repeat_interleave(args.group_size)
        p = torch.sigmoid(logits)[kind]
        consulted = torch.rand(kind.shape, generator=gen, dtype=torch.float64) < p
        success = SUCCESS[kind, consulted.long()]
        reward = (torch.rand(kind.shape, generator=gen, dtype=torch.float64) < success).double()
        advantage = compute_ifpo_advantages(
            reward,
            group_ids,
            consulted if variant.ifpo else torch.zeros_like(consulted),  # one mode: plain GRPO
            scope=variant.scope,
            apply_to=variant.apply_to,
            max_weight=variant.max_weight,
        )
        # REINFORCE: d log pi(mode) / d logit = consulted - p; mean over the batch's rollouts.
        grad = torch.zeros_like(logits).index_add_(0, kind, advantage * (consulted.double() - p))
        logits += args.lr * variant.lr_scale * grad / kind.numel()
        rates.append(torch.sigmoid(logits))
        rewards.append(expected_reward(logits))
    return torch.stack(rates), torch.stack(rewards)


def first_step_below(curve: torch.Tensor, threshold: float) -> int | None:
    below = (curve < threshold).nonzero()
    return int(below[0]) if below.numel() else None


def run(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per variant: lookup rates (seeds, steps+1, 3) and expected rewards (seeds, steps+1)."""
    results = {}
    for variant in VARIANTS:
        runs = [train(variant, args, args.seed + s) for s in range(args.seeds)]
        results[variant.label] = (
            torch.stack([r for r, _ in runs]),
            torch.stack([w for _, w in runs]),
        )
    return results


def plot(results: dict, args: argparse.Namespace, path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), constrained_layout=True)
    steps = torch.arange(args.steps + 1)
    best = float(expected_reward(torch.tensor([20.0, -20.0, -20.0], dtype=torch.float64)))
    for label, (rates, rewards) in results.items():
        style = "--" if label.startswith("GRPO") else "-"
        for k in range(len(KINDS)):
            mean = rates[:, :, k].mean(0)
            (line,) = axes[k].plot(steps, mean, style, label=label)
            axes[k].fill_between(
                steps,
                rates[:, :, k].min(0).values,
                rates[:, :, k].max(0).values,
                color=line.get_color(),
                alpha=0.12,
            )
        axes[3].plot(steps, rewards.mean(0), style, label=label)
    for k, kind in enumerate(KINDS):
        axes[k].set(title=f"lookup rate, {kind} prompts", xlabel="step", ylim=(-0.02, 1.02))
    axes[3].axhline(best, color="grey", lw=0.8, ls=":", label="best policy")
    axes[3].set(title="expected reward (task mix)", xlabel="step")
    axes[3].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"Simulation: lookup decision from p0={args.p0}, {args.prompts} prompts x "
        f"G={args.group_size}, lr={args.lr}, {args.seeds} seeds (line: mean, band: min-max)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(results: dict, args: argparse.Namespace, seconds: float) -> str:
    best = float(expected_reward(torch.tensor([20.0, -20.0, -20.0], dtype=torch.float64)))
    start = float(expected_reward(torch.full((3,), float(torch.logit(torch.tensor(args.p0))))))
    lines = [
        "IFPO dynamics study (simulation, not the paper's experiment)",
        f"setup: p0={args.p0}, {args.steps} steps, {args.prompts} prompts x G={args.group_size}, "
        f"lr={args.lr}, seeds {args.seed}..{args.seed + args.seeds - 1}, took {seconds:.1f} s",
        "success P(reward=1) direct/consulted: "
        + ", ".join(f"{k} {SUCCESS[i, 0]:.2f}/{SUCCESS[i, 1]:.2f}" for i, k in enumerate(KINDS)),
        f"expected reward: at start {start:.3f}, best policy (consult only on harmful) {best:.3f}",
        "",
        "final lookup rate (mean over seeds), steps until the benign lookup rate < 0.5,",
        "and reward regret (best - expected reward) summed over training (lower = learned faster):",
        f"{'variant':<20} {'harmful':>8} {'benign':>8} {'math':>8} {'benign<0.5':>11} "
        f"{'regret sum':>11} {'final reward':>13}",
    ]
    crossing, regret = {}, {}
    for label, (rates, rewards) in results.items():
        final = rates[:, -1].mean(0)
        crossings = [first_step_below(rates[s, :, 1], 0.5) for s in range(rates.shape[0])]
        reached = [c for c in crossings if c is not None]
        crossing[label] = sum(reached) / len(reached) if len(reached) == len(crossings) else None
        cross = f"{sum(reached) / len(reached):.0f}" if reached else "never"
        if reached and len(reached) < len(crossings):
            cross += f" ({len(reached)}/{len(crossings)})"
        regret[label] = float((best - rewards).sum(1).mean())
        lines.append(
            f"{label:<20} {final[0]:>8.3f} {final[1]:>8.3f} {final[2]:>8.3f} {cross:>11} "
            f"{regret[label]:>11.1f} {float(rewards[:, -1].mean()):>13.3f}"
        )
    lines += ["", "Reading of these numbers:"]
    if None not in (crossing["GRPO"], crossing["IFPO"], crossing["GRPO, 2x lr"]):
        lines.append(
            f"- benign lookups fall below 50% after {crossing['IFPO']:.0f} steps with IFPO vs "
            f"{crossing['GRPO']:.0f} with GRPO ({crossing['GRPO'] / crossing['IFPO']:.1f}x), and "
            f"{crossing['GRPO, 2x lr']:.0f} with GRPO at twice the learning rate."
        )
    lines.append(
        f"- regret: IFPO {regret['IFPO']:.1f} vs GRPO {regret['GRPO']:.1f} "
        f"({1 - regret['IFPO'] / regret['GRPO']:.0%} lower) and GRPO 2x lr "
        f"{regret['GRPO, 2x lr']:.1f}; "
        + (
            "IFPO does better than simply doubling GRPO's step."
            if regret["IFPO"] < regret["GRPO, 2x lr"]
            else "doubling GRPO's step does as well or better here, so much of IFPO's gain in "
            "this setting is a larger effective step on the lookup decision."
        )
    )
    lines += [
        "",
        "Mechanism: GRPO's expected push on a kind's lookup logit is proportional to p(1-p), which",
        "fades as the lookup rate p nears 1; IFPO upweights a group's rare-mode rollouts, so the",
        "push stays of order 1 while a group still holds one rollout of the rare mode.",
        "Positive-only re-weights only better-than-average rollouts: once lookups are rare, the",
        "rare mode is 'consulted' and its lucky successes pull the lookup rate back up. Batch",
        "scope weighs modes by the whole batch's lookup rate, not the prompt's.",
        "What it does not show: anything about real language models or the paper's numbers,",
        "answer quality learned jointly with the lookup decision, or stability at scale. The",
        "reward table is invented; the IFPO formula is our reconstruction from the abstract.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ifpo_dynamics"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--p0", type=float, default=0.9, help="initial lookup probability")
    args = parser.parse_args(argv)
    if not 0 < args.p0 < 1:
        parser.error("--p0 must lie strictly between 0 and 1")
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead

    start = time.perf_counter()
    results = run(args)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args, args.out / "dynamics.png")
    summary = summarize(results, args, seconds)
    (args.out / "summary.txt").write_text(summary)
    print(summary, end="")
    print(f"wrote {args.out / 'dynamics.png'} and {args.out / 'summary.txt'}")


if __name__ == "__main__":
    main()
