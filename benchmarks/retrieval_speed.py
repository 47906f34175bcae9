"""Rule-retrieval speed of the two backends, bm25s and rank_bm25 (information only, no target).

Two rule bases: the bundled one and a synthetic larger one (seeded, built from the bundled rules'
vocabulary with Zipf-distributed word frequencies), to show how each backend's cost grows with the
rule base. Queries are the labelled retrieval queries. For each (base, backend) it prints the index
build time, the single-query throughput (``search`` called once per query, k=3) and the p50/p95
latency, then the bm25s/rank_bm25 ratio. Rounds of the two backends are interleaved so load from
other processes hits both alike. On the synthetic base rank_bm25 runs one round over a smaller
query sample (``--slow-queries``); rates are per query, so the ratio stays comparable.

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

from ascl_env.retrieval import STEMMING_AVAILABLE, BM25Retriever, tokenize
from ascl_env.rules import Rule, RuleBase

BACKENDS = ("bm25s", "rank_bm25")


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


def run_base(
    name: str, rule_base: RuleBase, queries: list[str], rounds: int, slow_queries: int | None
) -> None:
    retrievers, build_s, samples, backend_rounds = {}, {}, {}, {}
    for backend in BACKENDS:
        start = time.perf_counter()
        retrievers[backend] = BM25Retriever(rule_base, backend)
        build_s[backend] = time.perf_counter() - start
        cut = backend == "rank_bm25" and slow_queries is not None
        samples[backend] = queries[:slow_queries] if cut else queries
        backend_rounds[backend] = 1 if cut else rounds
    gc.collect()
    for backend, retriever in retrievers.items():  # one untimed warm-up pass each
        timed_pass(retriever, samples[backend])
    latencies: dict[str, list[int]] = {backend: [] for backend in BACKENDS}
    for r in range(rounds):
        for backend, retriever in retrievers.items():
            if r < backend_rounds[backend]:
                latencies[backend] += timed_pass(retriever, samples[backend])
    rates = {}
    for backend, lat in latencies.items():
        rates[backend] = len(lat) / (sum(lat) / 1e9)
        print(
            f"{name:<16} {backend:<10} {len(lat):>6} {build_s[backend]:>8.3f} "
            f"{rates[backend]:>11,.0f} {statistics.median(lat) / 1e3:>9.1f} "
            f"{float(np.percentile(lat, 95)) / 1e3:>9.1f}"
        )
    ratio = rates["bm25s"] / rates["rank_bm25"]
    print(f"{name:<16} bm25s / rank_bm25 queries per second: {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the queries")
    parser.add_argument(
        "--synthetic-rules", type=int, default=10_000, help="size of the synthetic base (0: skip)"
    )
    parser.add_argument(
        "--slow-queries", type=int, default=40, help="queries for rank_bm25 on the synthetic base"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.synthetic_rules < 0 or args.slow_queries < 1:
        parser.error("--rounds and --slow-queries must be >= 1, --synthetic-rules >= 0")

    queries = labelled_queries()
    bundled = RuleBase.load()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"bm25s {metadata.version('bm25s')}, rank-bm25 {metadata.version('rank-bm25')}, "
        f"numpy {np.__version__}, stemming {'on' if STEMMING_AVAILABLE else 'off'}, "
        f"load average {os.getloadavg()[0]:.1f} (other processes share these CPUs)"
    )
    print(f"{len(queries)} queries, k=3; bundled base {len(bundled)} rules")
    print(
        f"{'base':<16} {'backend':<10} {'calls':>6} {'build_s':>8} {'queries/s':>11} "
        f"{'p50_us':>9} {'p95_us':>9}"
    )
    run_base("bundled", bundled, queries, args.rounds, slow_queries=None)
    if args.synthetic_rules:
        synthetic = synthetic_rule_base(bundled, args.synthetic_rules)
        vocab = len({t for rule in synthetic for t in tokenize(f"{rule.title} {rule.text}")})
        print(f"synthetic base: {len(synthetic)} rules, {vocab} distinct terms")
        run_base(
            f"synthetic-{len(synthetic)}",
            synthetic,
            queries,
            args.rounds,
            slow_queries=args.slow_queries,
        )


if __name__ == "__main__":
    main()
