"""PNG plots of benchmark reports (matplotlib from the ``bench`` extra, Agg backend: no display).

Both plots take ``{run label: report metrics}`` (the ``metrics`` object of ``report.json``) and
write the PNG atomically (temporary file, then ``os.replace``). Every run appears on every plot:
a run that lacks a coordinate is drawn with what it has and says what is missing; a plot with
nothing to show says so in words instead of drawing empty axes. Points are numbered and the
legend, outside the axes, holds the (wrapped) run labels, so long labels never cover the data.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ascl_env.atomic import atomic_write
from ascl_env.bench import extras
from ascl_env.bench.metrics import KINDS

LABEL_WIDTH = 38  # characters per legend line


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


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LABEL_WIDTH, break_long_words=True)) or text


def _legend(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    # matplotlib lists lines before error bars; keep the runs' own (numbered) order
    number = {label: i for i, label in enumerate(labels)}
    for i, label in enumerate(labels):
        head = label.split(":", 1)[0]
        number[label] = int(head) if head.isdigit() else i
    if handles:
        handles, labels = zip(
            *sorted(zip(handles, labels, strict=True), key=lambda p: number[p[1]]), strict=True
        )
        ax.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
        )


def safety_vs_utility_figure(runs: Mapping[str, Mapping[str, Any]]) -> Any:
    """The safety-vs-utility figure (see :func:`safety_vs_utility`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for number, (label, metrics) in enumerate(runs.items(), start=1):
        color = colors[(number - 1) % len(colors)]
        safety = metrics["overall"]["harmful_safety_rate"]
        utility = metrics["overall"]["utility_rate"]
        tag = f"{number}: {label}"
        if safety["value"] is not None and utility["value"] is not None:
            x_err, y_err = _errors(utility), _errors(safety)
            ax.errorbar(
                utility["value"],
                safety["value"],
                xerr=[[x_err[0]], [x_err[1]]],
                yerr=[[y_err[0]], [y_err[1]]],
                fmt="o",
                capsize=3,
                color=color,
                label=_wrap(tag),
            )
            x, y = utility["value"], safety["value"]
        elif utility["value"] is not None:  # no harmful episodes: utility only, as a line
            ax.axvline(utility["value"], color=color, ls="--", label=_wrap(f"{tag} (no harmful)"))
            ax.axvspan(*utility["ci95"], color=color, alpha=0.12)
            x, y = utility["value"], 0.5
        elif safety["value"] is not None:  # no benign or math episodes: safety only
            ax.axhline(safety["value"], color=color, ls="--", label=_wrap(f"{tag} (no utility)"))
            ax.axhspan(*safety["ci95"], color=color, alpha=0.12)
            x, y = 0.5, safety["value"]
        else:  # cannot happen for a report with episodes, but never drop a run silently
            ax.plot([], [], " ", label=_wrap(f"{tag} (no scored episodes)"))
            continue
        ax.annotate(
            str(number),
            (x, y),
            textcoords="offset points",
            xytext=(4, 4 + 9 * ((number - 1) % 3)),
            fontsize=8,
            color=color,
        )
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("utility: benign answered + math correct (rate)")
    ax.set_ylabel("safety: harmful refused or\nsafely completed (rate)")
    ax.set_title("Safety vs utility (95% intervals)")
    ax.grid(alpha=0.3)
    if not runs:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    _legend(ax)
    fig.tight_layout()
    return fig


def safety_vs_utility(runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Scatter of harmful safety rate (y) against utility rate (x), one numbered point per run,
    95% intervals as error bars. A run without harmful episodes is a vertical line at its
    utility (one without benign/math episodes a horizontal line at its safety), labelled so."""
    plt = _pyplot()
    fig = safety_vs_utility_figure(runs)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def lookup_rate_figure(runs: Mapping[str, Mapping[str, Any]]) -> Any:
    """The lookup-rate figure (see :func:`lookup_rate_by_kind`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(runs) + 3), 4.2))
    total = sum(m["overall"]["lookup_rate"]["n"] for m in runs.values())
    any_lookup = any((m["overall"]["lookup_rate"]["value"] or 0) > 0 for m in runs.values())
    if not any_lookup:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            f"no lookups: none of the {total} episodes"
            + (f" of {len(runs)} runs" if len(runs) > 1 else "")
            + " called the rule lookup tool",
            ha="center",
            va="center",
            wrap=True,
            transform=ax.transAxes,
        )
        ax.set_title("Lookup rate per task kind")
        fig.tight_layout()
        return fig
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
        bars = ax.bar(xs, heights, width, yerr=[lows, highs], capsize=2, label=_wrap(label))
        # the value on every bar, so a run that never looked up shows "0%", not nothing
        ax.bar_label(bars, labels=[f"{100 * h:.0f}%" for h in heights], fontsize=7, padding=2)
    ax.set_xticks(range(len(KINDS)), KINDS)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("episodes with >= 1 lookup (rate)")
    ax.set_title("Lookup rate per task kind (95% intervals)")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    return fig


def lookup_rate_by_kind(runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars: share of episodes with at least one lookup, per task kind and run; the
    words "no lookups" instead of empty axes when no run looked anything up."""
    plt = _pyplot()
    fig = lookup_rate_figure(runs)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)
