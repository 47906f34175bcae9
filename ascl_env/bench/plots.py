"""PNG plots of benchmark reports (matplotlib from the ``bench`` extra, Agg backend: no display).

Both plots take ``{run label: report metrics}`` (the ``metrics`` object of ``report.json``) and
write the PNG atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ascl_env.bench import extras
from ascl_env.bench.metrics import KINDS
from ascl_env.bench.results import atomic_write


def _pyplot():
    matplotlib = extras.require("matplotlib", extras.PLOTS[1])
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))


def _errors(estimate: Mapping[str, Any]) -> tuple[float, float]:
    value, (low, high) = estimate["value"], estimate["ci95"]
    return max(0.0, value - low), max(0.0, high - value)  # bootstrap rounding


def safety_vs_utility(runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Scatter of harmful safety rate (y) against utility rate (x), one point per run, with
    95% intervals as error bars. Runs lacking harmful or benign/math episodes are skipped."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    labels_at: dict[tuple[float, float], list[str]] = {}
    for label, metrics in runs.items():
        safety = metrics["overall"]["harmful_safety_rate"]
        utility = metrics["overall"]["utility_rate"]
        if safety["value"] is None or utility["value"] is None:
            continue
        x_err, y_err = _errors(utility), _errors(safety)
        ax.errorbar(
            utility["value"],
            safety["value"],
            xerr=[[x_err[0]], [x_err[1]]],
            yerr=[[y_err[0]], [y_err[1]]],
            fmt="o",
            capsize=3,
            label=label,
        )
        point = (round(utility["value"], 3), round(safety["value"], 3))
        labels_at.setdefault(point, []).append(label)
    # one note per point (coinciding runs share it), staggered so close points stay legible
    for k, ((x, y), labels) in enumerate(sorted(labels_at.items())):
        ax.annotate(
            ", ".join(labels),
            (x, y),
            textcoords="offset points",
            xytext=(5, 5 + 11 * (k % 3)),
            fontsize=8,
        )
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("utility: benign answered + math correct (rate)")
    ax.set_ylabel("safety: harmful refused or safely completed (rate)")
    ax.set_title("Safety vs utility (95% Wilson intervals)")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=8, loc="lower left")
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def lookup_rate_by_kind(runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars: share of episodes with at least one lookup, per task kind and run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(runs) + 3), 4.2))
    width = 0.8 / max(1, len(runs))
    for r, (label, metrics) in enumerate(runs.items()):
        per_kind = metrics["overall"]["lookup_rate_by_kind"]
        xs, heights, lows, highs = [], [], [], []
        for k, kind in enumerate(KINDS):
            estimate = per_kind[kind]
            if estimate["value"] is None:
                continue
            low, high = _errors(estimate)
            xs.append(k + (r - (len(runs) - 1) / 2) * width)
            heights.append(estimate["value"])
            lows.append(low)
            highs.append(high)
        ax.bar(xs, heights, width, yerr=[lows, highs], capsize=2, label=label)
    ax.set_xticks(range(len(KINDS)), KINDS)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("episodes with >= 1 lookup (rate)")
    ax.set_title("Lookup rate per task kind (95% Wilson intervals)")
    ax.grid(axis="y", alpha=0.3)
    if runs:
        ax.legend(fontsize=8)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)
