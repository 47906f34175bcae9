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
    assert rate(0, 0) == {"value": None, "ci95": None, "n": 0, "interval": "wilson"}


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


# --------------------------------------------------------------------------- repeated tasks


def _xs_rows(n_tasks, repeats, unsafe_every=4):
    """Harmful rows of ``n_tasks`` tasks, each repeated ``repeats`` times with the same outcome
    (greedy decoding): task i is answered unsafely when ``i % unsafe_every == 0``."""
    rows = []
    for r in range(repeats):
        for i in range(n_tasks):
            safe = unsafe_every is None or i % unsafe_every != 0
            row = _row("harmful", refused=safe, safety=1.0 if safe else 0.0, reward=float(safe))
            row.update(task_id=f"t{i}", episode=r * n_tasks + i)
            rows.append(row)
    return rows


def test_repeated_tasks_do_not_narrow_the_interval():
    once = summarize(_xs_rows(100, 1))["harmful_safety_rate"]
    twice = summarize(_xs_rows(100, 2))["harmful_safety_rate"]
    assert once["interval"] == "wilson" and once["value"] == twice["value"] == 0.75
    assert twice["interval"] == "cluster-bootstrap" and twice["clusters"] == 100
    assert twice["n"] == 200
    # identical outputs on repeats carry no information: the width stays that of 100 tasks,
    # whereas Wilson over 200 episodes would be narrower by about 1/sqrt(2)
    naive = rate(150, 200)["ci95"]
    width = twice["ci95"][1] - twice["ci95"][0]
    assert width > 1.2 * (naive[1] - naive[0])
    assert width == pytest.approx(once["ci95"][1] - once["ci95"][0], rel=0.2)
    mean_reward = summarize(_xs_rows(100, 2))["mean_reward"]
    assert mean_reward["interval"] == "cluster-bootstrap"
    assert summarize(_xs_rows(100, 2)) == summarize(_xs_rows(100, 2))  # seeded


def test_cluster_rate_without_spread_falls_back_to_wilson_over_tasks():
    rows = _xs_rows(50, 3, unsafe_every=None)  # every episode safe
    estimate = summarize(rows)["harmful_safety_rate"]
    assert estimate["value"] == 1.0 and estimate["interval"] == "cluster-bootstrap"
    assert estimate["ci95"] == pytest.approx(list(wilson_interval(50, 50)))


# --------------------------------------------------------------------------- paired comparison


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),
        (0, 5, 0.0625),  # 2 / 2**5
        (3, 3, 1.0),
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 2**10
        (10, 2, 0.0385742188),
    ],
)
def test_mcnemar_exact_known_values(b, c, p):
    from ascl_env.bench.metrics import mcnemar_exact

    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-9)
    assert mcnemar_exact(c, b) == pytest.approx(p, abs=1e-9)


def test_mcnemar_exact_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    from ascl_env.bench.metrics import mcnemar_exact

    for b, c in [(7, 19), (40, 61), (0, 12)]:
        assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c).pvalue, rel=1e-9)


def _paired_rows(outcomes, *, shuffle_seed=None):
    import random

    rows = []
    for i, safe in enumerate(outcomes):
        row = _row("harmful", refused=safe, safety=float(safe), reward=float(safe))
        row.update(task_id=f"t{i}", episode=i)
        rows.append(row)
    if shuffle_seed is not None:  # another task order: episode indices follow the new order
        random.Random(shuffle_seed).shuffle(rows)
        for k, row in enumerate(rows):
            row["episode"] = k
    return rows


def test_paired_comparison_counts_discordant_pairs_whatever_the_order():
    from ascl_env.bench.metrics import mcnemar_exact, paired_comparison

    a = [True] * 20 + [False] * 20  # run A: 20/40 safe
    b = [True] * 18 + [False] * 2 + [True] * 12 + [False] * 8  # B: 2 lost, 12 gained
    result = paired_comparison(_paired_rows(a), _paired_rows(b, shuffle_seed=3))
    assert result["pairs"] == 40 and result["only_a"] == result["only_b"] == 0
    safety = result["metrics"]["harmful_safety_rate"]
    assert safety["discordant"] == [2, 12]
    assert safety["test"] == "mcnemar-exact"
    assert safety["p_value"] == pytest.approx(mcnemar_exact(2, 12))
    assert safety["difference"] == pytest.approx(0.25)  # 30/40 - 20/40
    low, high = safety["ci95"]
    assert 0.05 < low < 0.25 < high < 0.45
    reward = result["metrics"]["mean_reward"]
    assert reward["test"] == "paired-bootstrap" and reward["difference"] == pytest.approx(0.25)
    assert reward["p_value"] < 0.01
    assert result["metrics"]["math_accuracy"]["n"] == 0  # no math episodes: nothing to test


def test_paired_comparison_of_equal_runs_finds_no_difference():
    from ascl_env.bench.metrics import paired_comparison

    rows = _paired_rows([True, False] * 15)
    result = paired_comparison(rows, rows)
    safety = result["metrics"]["harmful_safety_rate"]
    assert safety["difference"] == 0 and safety["p_value"] == 1.0
    low, high = safety["ci95"]
    assert low == pytest.approx(-high) and 0 < high < 0.1
    assert result["metrics"]["mean_reward"]["p_value"] == 1.0


def test_paired_comparison_with_repeated_tasks_uses_the_cluster_bootstrap():
    from ascl_env.bench.metrics import paired_comparison

    a, b = _xs_rows(40, 2, unsafe_every=2), _xs_rows(40, 2, unsafe_every=4)
    result = paired_comparison(a, b)
    assert result["tasks_repeat"] and result["pairs"] == 80
    safety = result["metrics"]["harmful_safety_rate"]
    assert safety["test"] == "cluster-bootstrap"
    assert safety["discordant"] == [0, 20]  # tasks 2, 6, 10, ... twice each
    assert safety["difference"] == pytest.approx(0.25)
    assert 0 < safety["p_value"] < 0.01
    # a partial overlap pairs only the shared episodes
    partial = paired_comparison(a[:50], b)
    assert partial["pairs"] == 50 and partial["only_b"] == 30


def test_newcombe_interval_of_paired_rates():
    from ascl_env.bench.metrics import newcombe_paired_interval

    # 18 pairs, all "A only": Wilson(18, 18) has low 18 / (18 + z^2); by hand the interval of
    # B - A is [-1, -sqrt(2) * (1 - low)] shifted by the difference -1 ... i.e. [-1, -0.7513]
    low_wilson = 18 / (18 + 1.959963984540054**2)
    low, high = newcombe_paired_interval(0, 18, 0, 0)
    assert low == -1.0
    assert high == pytest.approx(-1 + 2**0.5 * (1 - low_wilson))
    # no discordant pair: phi = (100 - 10) / 100 = 0.9 after the n/2 correction, so the half
    # width is (0.5 - Wilson low of 10/20) * sqrt(2 - 1.8)
    half = (0.5 - wilson_interval(10, 20)[0]) * 0.2**0.5
    assert newcombe_paired_interval(10, 0, 0, 10) == pytest.approx((-half, half))
    # symmetric: swapping the runs mirrors the interval
    a = newcombe_paired_interval(12, 3, 9, 16)
    b = newcombe_paired_interval(12, 9, 3, 16)
    assert a == pytest.approx((-b[1], -b[0]))
    assert a[0] < 6 / 40 < a[1]
