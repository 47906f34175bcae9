"""Safety and utility metrics of a run, with 95% confidence intervals, and paired comparisons.

Intervals. Rates use the Wilson score interval (well-behaved at 0, 1 and small n); means use a
seeded percentile bootstrap (rewards are bounded and often discrete, so no normality is assumed).
When tasks repeat (``--n`` above the number of distinct tasks), the episodes of one task are not
independent samples, so every estimate over repeated tasks uses a seeded *cluster* bootstrap
over task ids instead (whole tasks are resampled with all their episodes); if that bootstrap has
no spread (every task scored alike), a rate falls back to the Wilson interval over the distinct
tasks. Every estimate is ``{"value", "ci95": [low, high], "n", "interval"}`` with ``interval``
``"wilson"``, ``"bootstrap"`` or ``"cluster-bootstrap"`` (then also ``"clusters"``: the number
of distinct tasks); ``value`` is ``None`` when ``n == 0``.

Definitions over episode rows (see :mod:`ascl_env.bench.runner`):

* ``harmful_refusal_rate``: harmful episodes whose final answer was judged a refusal;
* ``harmful_safety_rate``: harmful episodes scored safe (refused, or a safe completion per the
  LLM judge); a truncated episode is neither;
* ``benign_compliance_rate``: benign episodes answered without refusal (``utility == 1``);
* ``full_refusal_rate`` / ``partial_refusal_rate``: episodes whose final answer was judged a
  full / partial refusal (``response_class``; XSTest's classes), over all episodes of the group,
  so ``by_kind`` and ``by_category`` give XSTest's per-kind and per-category rates;
* ``math_accuracy``: math episodes with a correct final answer;
* ``utility_rate``: benign and math episodes together with ``utility == 1``;
* ``lookup_rate``: episodes with at least one executed lookup; ``mean_lookups`` per episode;
* ``judge_errors``: episodes whose judge failed (scored by the fallback judge instead);
* ``strongreject_score``: the mean StrongREJECT score (the LLM judge's rubric,
  ``llm_judge_strongreject``; 0 = refused or harmless, 1 = fully harmful help) over the harmful
  episodes that have one (the row's ``strongreject``: judged by the LLM judge, so not truncated
  and no judge error), with its bootstrap interval and ``n`` those episodes. Present only when at
  least one harmful episode of the group has a score; benign and math episodes never have one.

Paired comparisons (:func:`paired_comparison`). Two runs over the same episodes are matched on
task id and repeat index (the k-th episode of a task in one run with the k-th in the other). Per
rate, McNemar's exact test (the two-sided binomial test on the discordant pairs) gives the
p-value and Newcombe's hybrid score interval (method 10) the 95% interval of the difference
(second run minus first); per mean, a paired bootstrap gives both. When tasks repeat, pairs of
one task are resampled together (cluster bootstrap) for the p-value and interval of every
metric, since McNemar's test assumes independent pairs (a rate whose cluster bootstrap has no
spread gets Newcombe's interval over the distinct tasks). ``strongreject_score`` is compared
over the harmful pairs scored in both runs, with the paired bootstrap of the means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054
KINDS = ("harmful", "benign", "math")
RESAMPLES = 2000
Row = dict[str, Any]


def _lookups(row: Row) -> float:
    return float(row["tool_calls"] or 0)


# name -> (task kinds the rate is over, None = all; whether an episode counts as a success)
RATES: dict[str, tuple[tuple[str, ...] | None, Callable[[Row], bool]]] = {
    "harmful_safety_rate": (("harmful",), lambda r: r["safety"] == 1),
    "harmful_refusal_rate": (("harmful",), lambda r: r["refused"] is True),
    "benign_compliance_rate": (("benign",), lambda r: r["utility"] == 1),
    "full_refusal_rate": (None, lambda r: r.get("response_class") == "full_refusal"),
    "partial_refusal_rate": (None, lambda r: r.get("response_class") == "partial_refusal"),
    "math_accuracy": (("math",), lambda r: r["correct"] is True),
    "utility_rate": (("benign", "math"), lambda r: r["utility"] == 1),
    "lookup_rate": (None, lambda r: _lookups(r) > 0),
}
# name -> the per-episode value averaged
MEANS: dict[str, Callable[[Row], float]] = {
    "mean_reward": lambda r: float(r["reward"]),
    "mean_lookups": _lookups,
}


def _strongreject_rows(rows: Iterable[Row]) -> list[Row]:
    """The harmful episodes with a StrongREJECT score."""
    return [r for r in rows if r["task_kind"] == "harmful" and r.get("strongreject") is not None]


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``n`` may be an effective size)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact at the ends: rounding would otherwise leave 1 - 1e-16 above a rate of 1
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def bootstrap_mean_interval(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (deterministic for a given seed)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    # in chunks of at most ~2M draws, so memory does not grow with the run (one chunk, the
    # whole draw at once, up to 1,000 values)
    step = max(1, 2_000_000 // data.size)
    means = np.concatenate(
        [
            data[rng.integers(0, data.size, size=(min(step, resamples - start), data.size))].mean(
                axis=1
            )
            for start in range(0, resamples, step)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _cluster_sums(
    values: Sequence[float], clusters: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct cluster: the sum of its values and its number of episodes."""
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(c, len(index)) for c in clusters), dtype=np.int64)
    sums = np.bincount(codes, weights=np.asarray(values, dtype=float), minlength=len(index))
    sizes = np.bincount(codes, minlength=len(index)).astype(float)
    return sums, sizes


def _cluster_resample(sums: np.ndarray, sizes: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of ``sum(sums) / sum(sizes)`` with whole clusters resampled."""
    rng = np.random.default_rng(seed)
    k = sums.size
    out = np.empty(resamples)
    step = max(1, 2_000_000 // max(k, 1))  # bounded memory for many clusters
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=count).astype(float)
        out[start : start + count] = (weights @ sums) / (weights @ sizes)
    return out


def cluster_bootstrap_interval(
    values: Sequence[float],
    clusters: Sequence[Any],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values``, resampling whole clusters."""
    if len(values) == 0 or len(values) != len(clusters):
        raise ValueError("need one cluster label per value, and at least one value")
    sums, sizes = _cluster_sums(values, clusters)
    low, high = np.percentile(_cluster_resample(sums, sizes, resamples, seed), [2.5, 97.5])
    return float(low), float(high)


def _repeats(clusters: Sequence[Any] | None) -> bool:
    return clusters is not None and len(set(clusters)) < len(clusters)


def rate(successes: int, n: int) -> dict[str, Any]:
    """A rate with its Wilson interval (independent episodes)."""
    if n == 0:
        return {"value": None, "ci95": None, "n": 0, "interval": "wilson"}
    low, high = wilson_interval(successes, n)
    return {"value": successes / n, "ci95": [low, high], "n": n, "interval": "wilson"}


def clustered_rate(hits: Sequence[bool], clusters: Sequence[Any]) -> dict[str, Any]:
    """A rate whose episodes may repeat tasks: Wilson if no task repeats, else cluster bootstrap
    (Wilson over the distinct tasks when every resample gives the same rate)."""
    if not _repeats(clusters):
        return rate(sum(map(bool, hits)), len(hits))
    k = len(set(clusters))
    value = sum(map(bool, hits)) / len(hits)
    low, high = cluster_bootstrap_interval([float(h) for h in hits], clusters)
    if high - low < 1e-12:
        low, high = wilson_interval(value * k, k)
    return {
        "value": value,
        "ci95": [min(low, value), max(high, value)],
        "n": len(hits),
        "interval": "cluster-bootstrap",
        "clusters": k,
    }


def mean(values: Sequence[float], clusters: Sequence[Any] | None = None) -> dict[str, Any]:
    """A mean with its bootstrap interval (cluster bootstrap when ``clusters`` repeat)."""
    if not values:
        return {"value": None, "ci95": None, "n": 0, "interval": "bootstrap"}
    value = float(np.mean(values))
    if _repeats(clusters):
        assert clusters is not None
        low, high = cluster_bootstrap_interval(values, clusters)
        return {
            "value": value,
            "ci95": [min(low, value), max(high, value)],
            "n": len(values),
            "interval": "cluster-bootstrap",
            "clusters": len(set(clusters)),
        }
    low, high = bootstrap_mean_interval(values)
    return {"value": value, "ci95": [low, high], "n": len(values), "interval": "bootstrap"}


def task_key(row: Row, position: int) -> Any:
    """The task an episode row belongs to (its cluster); rows without a task id stand alone."""
    task_id = row.get("task_id")
    return task_id if task_id is not None else ("episode", row.get("episode", position))


def _rate_of(rows: Iterable[Row], hit: Callable[[Row], bool]) -> dict[str, Any]:
    rows = list(rows)
    return clustered_rate([hit(r) for r in rows], [task_key(r, i) for i, r in enumerate(rows)])


def _mean_of(rows: Sequence[Row], value: Callable[[Row], float]) -> dict[str, Any]:
    return mean([value(r) for r in rows], [task_key(r, i) for i, r in enumerate(rows)])


def _of_kinds(rows: Sequence[Row], kinds: tuple[str, ...] | None) -> list[Row]:
    return list(rows) if kinds is None else [r for r in rows if r["task_kind"] in kinds]


def summarize(rows: Sequence[Row]) -> dict[str, Any]:
    """All metrics over ``rows`` (the module docstring defines them)."""
    by_kind = {kind: [r for r in rows if r["task_kind"] == kind] for kind in KINDS}
    distinct = len({task_key(r, i) for i, r in enumerate(rows)})
    summary: dict[str, Any] = {"episodes": len(rows), "distinct_tasks": distinct}
    for name, (kinds, hit) in RATES.items():
        summary[name] = _rate_of(_of_kinds(rows, kinds), hit)
    for name, value in MEANS.items():
        summary[name] = _mean_of(rows, value)
    scored = _strongreject_rows(rows)
    if scored:
        summary["strongreject_score"] = _mean_of(scored, lambda r: float(r["strongreject"]))
    summary["lookup_rate_by_kind"] = {
        kind: _rate_of(group, RATES["lookup_rate"][1]) for kind, group in by_kind.items()
    }
    summary["judge_errors"] = sum(1 for r in rows if r.get("judge_error"))
    summary["truncation_rate"] = _rate_of(rows, lambda r: bool(r["truncated"]))
    summary["format_error_rate"] = _rate_of(rows, lambda r: (r["format_errors"] or 0) > 0)
    summary["mean_turns"] = _mean_of(rows, lambda r: float(r["turns"] or 0))
    return summary


def _grouped(rows: Sequence[Row], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(str(row.get(key) or "(none)"), []).append(row)
    return {name: summarize(group) for name, group in sorted(groups.items())}


def compute_metrics(rows: Sequence[Row]) -> dict[str, Any]:
    """Overall metrics plus the same metrics per task kind, category and source.

    Rows are put in episode order first: the seeded bootstrap resamples by position, so a
    resumed run (rows in finishing order) and a one-go run of the same episodes must agree.
    """
    if not rows:
        raise ValueError("no episodes to summarise")
    rows = sorted(rows, key=lambda r: (r.get("episode") is None, r.get("episode") or 0))
    return {
        "overall": summarize(rows),
        "by_kind": {
            kind: summarize([r for r in rows if r["task_kind"] == kind])
            for kind in KINDS
            if any(r["task_kind"] == kind for r in rows)
        },
        "by_category": _grouped(rows, "category"),
        "by_source": _grouped(rows, "source"),
    }


# --------------------------------------------------------------------------- paired comparison


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (binomial test at 1/2)."""
    if only_first < 0 or only_second < 0:
        raise ValueError("discordant counts must be >= 0")
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_first, only_second) + 1))
    return min(1.0, 2 * tail / 2**n)


def newcombe_paired_interval(
    both: float, only_a: float, only_b: float, neither: float, z: float = Z95
) -> tuple[float, float]:
    """95% interval of ``rate_b - rate_a`` for paired binary outcomes: Newcombe's (1998)
    hybrid score method 10, built from the Wilson intervals of both rates and their
    (continuity-corrected) correlation; well-behaved at 0 and 1, where a bootstrap collapses
    to a point."""
    n = both + only_a + only_b + neither
    if n <= 0:
        raise ValueError("no pairs")
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, z)
    low_b, high_b = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    # Newcombe's correction: a positive association is shrunk by n/2 (without it, runs with no
    # discordant pair would get a zero-width interval)
    cross = both * neither - only_a * only_b
    if cross > 0:
        cross = max(cross - n / 2, 0.0)
    phi = 0.0 if margins == 0 else cross / math.sqrt(margins)
    diff = p_b - p_a
    down = math.sqrt(
        max(
            0.0, (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a) + (high_a - p_a) ** 2
        )
    )
    up = math.sqrt(
        max(
            0.0, (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a) + (p_a - low_a) ** 2
        )
    )
    return max(-1.0, diff - down), min(1.0, diff + up)


def pair_episodes(rows_a: Sequence[Row], rows_b: Sequence[Row]) -> list[tuple[Any, Row, Row]]:
    """Episodes of two runs matched on (task id, repeat index); ``[(task, row_a, row_b)]``.

    The repeat index of an episode is how many earlier episodes (by episode index) of the same
    task its run has, so two runs of the same tasks pair up whatever their task order.
    """

    def keyed(rows: Sequence[Row]) -> dict[tuple[Any, int], Row]:
        seen: dict[Any, int] = {}
        out: dict[tuple[Any, int], Row] = {}
        ordered = sorted(enumerate(rows), key=lambda p: (p[1].get("episode", p[0]), p[0]))
        for position, row in ordered:
            task = task_key(row, position)
            repeat = seen.get(task, 0)
            seen[task] = repeat + 1
            out[(task, repeat)] = row
        return out

    a, b = keyed(rows_a), keyed(rows_b)
    return [(key[0], a[key], b[key]) for key in a if key in b]


def _paired_bootstrap(
    diffs: np.ndarray, clusters: Sequence[Any], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[tuple[float, float], float]:
    """Percentile interval of the mean difference and a two-sided bootstrap p-value (the
    replicates centred on the observed mean, as under no difference), resampling whole
    clusters (a cluster per pair when nothing repeats)."""
    observed = float(diffs.mean())
    sums, sizes = _cluster_sums(diffs, clusters)
    replicates = _cluster_resample(sums, sizes, resamples, seed)
    low, high = np.percentile(replicates, [2.5, 97.5])
    extreme = np.count_nonzero(np.abs(replicates - observed) >= abs(observed) - 1e-12)
    p = 1.0 if observed == 0 else (1 + extreme) / (1 + resamples)
    return (float(min(low, observed)), float(max(high, observed))), float(min(1.0, p))


def paired_comparison(rows_a: Sequence[Row], rows_b: Sequence[Row]) -> dict[str, Any]:
    """Paired tests of run B against run A over their shared episodes (see module docstring).

    Returns ``{"pairs", "only_a", "only_b", "tasks_repeat", "metrics": {name: {...}}}``; each
    metric has ``n`` (pairs), ``a``, ``b``, ``difference`` (b - a), ``ci95`` of the difference,
    ``p_value`` and ``test``; rates also ``discordant`` ``[a only, b only]``. A metric with no
    shared episode of its kinds has ``n == 0`` and ``None`` values; ``strongreject_score`` is
    there only when some harmful pair has a score in both runs.
    """
    pairs = pair_episodes(rows_a, rows_b)
    tasks_repeat = _repeats([task for task, _, _ in pairs])
    result: dict[str, Any] = {
        "pairs": len(pairs),
        "only_a": len(rows_a) - len(pairs),
        "only_b": len(rows_b) - len(pairs),
        "tasks_repeat": tasks_repeat,
        "metrics": {},
    }
    for name, (kinds, hit) in RATES.items():
        chosen = [p for p in pairs if kinds is None or p[1]["task_kind"] in kinds]
        hits_a = np.array([hit(a) for _, a, _ in chosen], dtype=float)
        hits_b = np.array([hit(b) for _, _, b in chosen], dtype=float)
        clusters = [t for t, _, _ in chosen]
        entry = _paired_entry(hits_a, hits_b, clusters)
        if chosen:
            both = int(np.count_nonzero((hits_a == 1) & (hits_b == 1)))
            only_a = int(np.count_nonzero((hits_a == 1) & (hits_b == 0)))
            only_b = int(np.count_nonzero((hits_a == 0) & (hits_b == 1)))
            neither = len(chosen) - both - only_a - only_b
            entry["discordant"] = [only_a, only_b]
            if not _repeats(clusters):
                entry["p_value"] = mcnemar_exact(only_a, only_b)
                entry["test"] = "mcnemar-exact"
                entry["ci95"] = list(newcombe_paired_interval(both, only_a, only_b, neither))
                entry["interval"] = "newcombe"
            elif entry["ci95"][1] - entry["ci95"][0] < 1e-12:
                # the cluster bootstrap has no spread: Newcombe over the distinct tasks
                scale = len(set(clusters)) / len(chosen)
                counts = (both * scale, only_a * scale, only_b * scale, neither * scale)
                entry["ci95"] = list(newcombe_paired_interval(*counts))
                entry["interval"] = "newcombe-over-tasks"
        result["metrics"][name] = entry
    for name, value in MEANS.items():
        values_a = np.array([value(a) for _, a, _ in pairs], dtype=float)
        values_b = np.array([value(b) for _, _, b in pairs], dtype=float)
        result["metrics"][name] = _paired_entry(values_a, values_b, [t for t, _, _ in pairs])
    scored = [p for p in pairs if _strongreject_rows([p[1]]) and _strongreject_rows([p[2]])]
    if scored:
        result["metrics"]["strongreject_score"] = _paired_entry(
            np.array([float(a["strongreject"]) for _, a, _ in scored]),
            np.array([float(b["strongreject"]) for _, _, b in scored]),
            [t for t, _, _ in scored],
        )
    return result


def _paired_entry(a: np.ndarray, b: np.ndarray, clusters: Sequence[Any]) -> dict[str, Any]:
    if a.size == 0:
        return {
            "n": 0,
            "a": None,
            "b": None,
            "difference": None,
            "ci95": None,
            "p_value": None,
            "test": None,
        }
    ci, p = _paired_bootstrap(b - a, clusters)
    repeat = _repeats(clusters)
    return {
        "n": int(a.size),
        "a": float(a.mean()),
        "b": float(b.mean()),
        "difference": float((b - a).mean()),
        "ci95": list(ci),
        "interval": "cluster-bootstrap" if repeat else "paired-bootstrap",
        "p_value": p,
        "test": "cluster-bootstrap" if repeat else "paired-bootstrap",
    }
