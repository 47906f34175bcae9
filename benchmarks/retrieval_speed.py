"""Rule-retrieval speed: bm25s vs rank_bm25, single-query and batched, in one run.

Two rule bases: the bundled one and a synthetic 10,000-rule base (seeded, built from the bundled
rules' vocabulary with Zipf-distributed word frequencies). Queries are the labelled retrieval
queries. For each (base, backend) it prints the index build time, single-query throughput
(``search`` called once per query) with p50/p95 latency, and batched throughput
(``search_batch`` over all queries), then the bm25s/rank_bm25 ratios. "bm25s" is the default
retriever, which scores with the C kernel when it was built; "bm25s-numpy" is the same backend
with ``accelerate=False`` (what a user without a C compiler gets), timed in the same rounds.
A bm25s retriever remembers the term of each word it has seen (never query results); a last line
per base shows bm25s's single-query speed on one pass with a freshly built retriever, where that
word map starts empty.

rank_bm25 scores every rule in pure Python (tens of ms per query on 10,000 rules), so on the
synthetic base it runs one round over a smaller query sample (``--slow-queries``, default 40); the
ratio divides per-query rates, so it stays comparable. On the bundled base both backends run the
same rounds over all queries.

    python benchmarks/retrieval_speed.py [--rounds 5] [--synthetic-rules 10000]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from importlib import metadata, resources

import numpy as np
import yaml

from ascl_env.retrieval import KERNEL_AVAILABLE, STEMMING_AVAILABLE, BM25Retriever, tokenize
from ascl_env.rules import Rule, RuleBase

# name -> (backend, accelerate). "bm25s" is the default retriever (the C kernel when it was
# built); "bm25s-numpy" is the same backend on its numpy path, the speed without a C compiler.
VARIANTS = {
    "bm25s": ("bm25s", None),
    "bm25s-numpy": ("bm25s", False),
    "rank_bm25": ("rank_bm25", None),
}


def labelled_queries() -> list[str]:
    text = resources.files("ascl_env").joinpath("data/retrieval_queries.yaml").read_text()
    return [row["query"] for row in yaml.safe_load(text)["queries"]]


def synthetic_rule_base(bundled: RuleBase, n_rules: int, seed: int = 0) -> RuleBase:
    """``n_rules`` rules whose words follow a Zipf law over the bundled rules' vocabulary."""
    rng = np.random.default_rng(seed)
    words = sorted(
        {
            w
            for rule in bundled
            for w in f"{rule.title} {rule.text}".lower().split()
            if w.isalpha() and len(w) > 2
        }
    )
    rng.shuffle(words)
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    categories = bundled.categories
    title_lengths = rng.integers(3, 7, size=n_rules)
    text_lengths = rng.integers(30, 80, size=n_rules)
    drawn = iter(rng.choice(words, size=int(title_lengths.sum() + text_lengths.sum()), p=weights))
    rules = []
    for i in range(n_rules):
        title = " ".join(next(drawn) for _ in range(title_lengths[i]))
        text = " ".join(next(drawn) for _ in range(text_lengths[i]))
        rules.append(
            Rule(
                id=f"syn-{i:05d}", category=categories[i % len(categories)], title=title, text=text
            )
        )
    return RuleBase(rules=rules)


def timed_pass(retriever: BM25Retriever, queries: list[str]) -> list[int]:
    """Nanoseconds of each ``search`` call, one call per query."""
    latencies = []
    for query in queries:
        start = time.perf_counter_ns()
        retriever.search(query)
        latencies.append(time.perf_counter_ns() - start)
    return latencies


def measure(
    retrievers: dict[str, BM25Retriever], samples: dict[str, list[str]], rounds: dict[str, int]
) -> dict[str, dict[str, float]]:
    """Single-query and batched speed of each retriever, with the backends' rounds interleaved.

    Each retriever first answers its whole sample once untimed, so the timed rounds measure the
    steady state (bm25s's word map filled; ``first_pass`` reports the cold case). Round r of one
    backend runs next to round r of the other, so load from other processes hits both alike.
    """
    gc.collect()  # start every measurement from the same garbage-collector state
    for name, retriever in retrievers.items():
        timed_pass(retriever, samples[name])
    latencies: dict[str, list[int]] = {name: [] for name in retrievers}
    batched: dict[str, list[float]] = {name: [] for name in retrievers}
    for r in range(max(rounds.values())):
        for name, retriever in retrievers.items():
            if r < rounds[name]:
                latencies[name] += timed_pass(retriever, samples[name])
                start = time.perf_counter()
                retriever.search_batch(samples[name])
                batched[name].append(time.perf_counter() - start)
    return {
        name: {
            "single_qps": len(lat) / (sum(lat) / 1e9),
            "p50_us": statistics.median(lat) / 1e3,
            "p95_us": float(np.percentile(lat, 95)) / 1e3,
            # the median round, so one noisy round on a shared machine does not decide the number
            "batch_qps": len(samples[name]) / statistics.median(batched[name]),
        }
        for name, lat in latencies.items()
    }


def first_pass(rule_base: RuleBase, queries: list[str]) -> dict[str, float]:
    """One timed pass of single queries with a new bm25s retriever (its word map starts empty)."""
    retriever = BM25Retriever(rule_base, "bm25s")
    gc.collect()
    latencies = []
    for query in queries:
        start = time.perf_counter_ns()
        retriever.search(query)
        latencies.append(time.perf_counter_ns() - start)
    return {
        "single_qps": len(latencies) / (sum(latencies) / 1e9),
        "p50_us": statistics.median(latencies) / 1e3,
    }


def run_base(
    name: str, rule_base: RuleBase, queries: list[str], rounds: int, slow_queries: int | None
) -> None:
    retrievers, build_s, samples, backend_rounds = {}, {}, {}, {}
    for variant, (backend, accelerate) in VARIANTS.items():
        if variant == "bm25s-numpy" and not KERNEL_AVAILABLE:
            continue  # "bm25s" is already the numpy path
        start = time.perf_counter()
        retrievers[variant] = BM25Retriever(rule_base, backend, accelerate=accelerate)
        build_s[variant] = time.perf_counter() - start
        # rank_bm25 gets fewer calls only where it is slow (--slow-queries, one round)
        cut = backend == "rank_bm25" and slow_queries is not None
        samples[variant] = queries[:slow_queries] if cut else queries
        backend_rounds[variant] = 1 if cut else rounds
    results = measure(retrievers, samples, backend_rounds)
    for variant, r in results.items():
        print(
            f"{name:<16} {variant:<11} {len(samples[variant]) * backend_rounds[variant]:>6} "
            f"{build_s[variant]:>8.2f} {r['single_qps']:>11,.0f} {r['p50_us']:>9.1f} "
            f"{r['p95_us']:>9.1f} {r['batch_qps']:>12,.0f}"
        )
    slow = results["rank_bm25"]
    for variant in (v for v in results if v != "rank_bm25"):
        fast = results[variant]
        print(
            f"{name:<16} ratio {variant}/rank_bm25: "
            f"single {fast['single_qps'] / slow['single_qps']:.1f}x, "
            f"batched {fast['batch_qps'] / slow['batch_qps']:.1f}x, "
            f"p50 {slow['p50_us'] / fast['p50_us']:.1f}x lower"
        )
    cold = first_pass(rule_base, queries)
    print(
        f"{name:<16} bm25s first pass, empty word map: single {cold['single_qps']:,.0f} q/s, "
        f"p50 {cold['p50_us']:.1f} us ({cold['single_qps'] / slow['single_qps']:.1f}x "
        f"rank_bm25's single q/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the queries")
    parser.add_argument("--synthetic-rules", type=int, default=10_000)
    parser.add_argument(
        "--slow-queries", type=int, default=40, help="queries for rank_bm25 on the synthetic base"
    )
    args = parser.parse_args()

    queries = labelled_queries()
    bundled = RuleBase.load()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"bm25s {metadata.version('bm25s')}, rank-bm25 {metadata.version('rank-bm25')}, "
        f"numpy {np.__version__}, stemming {'on' if STEMMING_AVAILABLE else 'off'}, "
        f"C kernel {'built' if KERNEL_AVAILABLE else 'not built (bm25s runs on numpy)'}, "
        f"load average {os.getloadavg()[0]:.1f} (other processes share these CPUs)"
    )
    print(f"{len(queries)} queries; bundled base {len(bundled)} rules")
    print(
        f"{'base':<16} {'backend':<11} {'calls':>6} {'build_s':>8} {'single_q/s':>11} "
        f"{'p50_us':>9} {'p95_us':>9} {'batched_q/s':>12}"
    )
    run_base("bundled", bundled, queries, args.rounds, slow_queries=None)
    # Built only now: 10,000 live rule objects would slow the garbage collector's full passes
    # during the bundled-base timings.
    start = time.perf_counter()
    synthetic = synthetic_rule_base(bundled, args.synthetic_rules)
    vocab = len({t for rule in synthetic for t in tokenize(f"{rule.title} {rule.text}")})
    print(
        f"synthetic base: {len(synthetic)} rules, {vocab} distinct terms "
        f"(generated in {time.perf_counter() - start:.1f} s)"
    )
    run_base(
        f"synthetic-{len(synthetic)}",
        synthetic,
        queries,
        args.rounds,
        slow_queries=args.slow_queries,
    )


if __name__ == "__main__":
    main()
