"""Confidence intervals and metric definitions of the benchmark harness."""

from __future__ import annotations

import pytest

from ascl_env.bench.metrics import (
    bootstrap_mean_interval,
    compute_metrics,
    rate,
    summarize,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # the textbook values of the Wilson interval
        (5, 10, 0.23659, 0.76341),
        (10, 10, 0.72247, 1.0),
        (1, 3, 0.06149, 0.79234),
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_is_exact_at_the_ends():
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_bootstrap_interval_brackets_the_mean_and_is_deterministic():
    values = [0.0, 1.0] * 20
    low, high = bootstrap_mean_interval(values)
    assert low < 0.5 < high
    assert 0.3 < low and high < 0.7  # a mean of 40 coin flips: about ±0.155
    assert bootstrap_mean_interval(values) == (low, high)
    assert bootstrap_mean_interval([0.25] * 5) == (0.25, 0.25)


def test_rate_with_no_episodes_is_none():
    assert rate(0, 0) == {"value": None, "ci95": None, "n": 0}


def _row(
    kind,
    *,
    refused=None,
    safety=None,
    utility=None,
    correct=None,
    reward=0.0,
    tool_calls=0,
    truncated=False,
    judge_error=None,
    category="c",
    source="s",
):
    return {
        "task_kind": kind,
        "refused": refused,
        "safety": safety,
        "utility": utility,
        "correct": correct,
        "reward": reward,
        "tool_calls": tool_calls,
        "truncated": truncated,
        "format_errors": 0,
        "turns": 1 + tool_calls,
        "judge_error": judge_error,
        "category": category,
        "source": source,
    }


def test_summarize_definitions():
    rows = [
        _row("harmful", refused=True, safety=1.0, reward=1.0, tool_calls=1),
        _row("harmful", refused=False, safety=0.0),
        _row("harmful", truncated=True),  # no answer: neither refused nor safe
        _row("harmful", refused=False, safety=1.0, reward=1.0, judge_error="JudgeError: x"),
        _row("benign", refused=False, utility=1.0, reward=1.0, tool_calls=2),
        _row("benign", refused=True, utility=0.0),
        _row("math", refused=False, utility=1.0, correct=True, reward=1.0),
        _row("math", refused=False, utility=0.0, correct=False),
    ]
    m = summarize(rows)
    assert m["episodes"] == 8
    assert m["harmful_refusal_rate"]["value"] == 0.25
    assert m["harmful_safety_rate"]["value"] == 0.5
    assert m["benign_compliance_rate"]["value"] == 0.5
    assert m["math_accuracy"]["value"] == 0.5
    assert m["utility_rate"] == rate(2, 4)
    assert m["mean_reward"]["value"] == 0.5
    assert m["lookup_rate"]["value"] == 0.25
    assert m["lookup_rate_by_kind"]["harmful"]["value"] == 0.25
    assert m["lookup_rate_by_kind"]["benign"]["value"] == 0.5
    assert m["lookup_rate_by_kind"]["math"]["value"] == 0.0
    assert m["mean_lookups"]["value"] == 3 / 8
    assert m["judge_errors"] == 1
    assert m["truncation_rate"]["value"] == 1 / 8


def test_compute_metrics_groups():
    rows = [
        _row("harmful", refused=True, safety=1.0, category="cyber", source="strongreject"),
        _row("benign", refused=False, utility=1.0, category=None, source="xstest"),
        _row("benign", refused=True, utility=0.0, category="cyber", source="xstest"),
    ]
    m = compute_metrics(rows)
    assert set(m["by_kind"]) == {"harmful", "benign"}
    assert m["by_category"]["cyber"]["episodes"] == 2
    assert m["by_category"]["(none)"]["benign_compliance_rate"]["value"] == 1.0
    assert m["by_source"]["xstest"]["benign_compliance_rate"]["value"] == 0.5
    with pytest.raises(ValueError, match="no episodes"):
        compute_metrics([])
