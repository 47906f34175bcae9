"""Rule-retrieval quality on the labelled query set: recall@1 and recall@3 per backend.

A query counts as a hit at k when one of its top-k retrieved rules has the expected category.
Results are printed overall, per split and per query style (direct, paraphrased, indirect,
jailbreak, benign look-alikes). The rule text was revised while looking at the "dev" split, so its
numbers are optimistic; the "heldout" split was written afterwards and never used for revisions.

    python benchmarks/retrieval_quality.py [--rules PATH] [--queries PATH] [--show-misses]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from ascl_env.retrieval import BM25Retriever
from ascl_env.rules import RuleBase

STYLES = ("direct", "paraphrased", "indirect", "jailbreak", "benign")
BACKENDS = ("bm25s", "rank_bm25")


class LabelledQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str
    expected_category: str
    style: Literal["direct", "paraphrased", "indirect", "jailbreak", "benign"]
    split: Literal["dev", "heldout"] = "dev"


def load_queries(path: Path | None, rule_base: RuleBase) -> list[LabelledQuery]:
    if path is None:
        text = resources.files("ascl_env").joinpath("data/retrieval_queries.yaml").read_text()
    else:
        text = path.read_text(encoding="utf-8")
    rows = [LabelledQuery.model_validate(row) for row in yaml.safe_load(text)["queries"]]
    known = set(rule_base.categories)
    unknown = sorted({r.expected_category for r in rows} - known)
    if unknown:
        raise SystemExit(f"expected categories missing from the rule base: {unknown}")
    return rows


def evaluate(retriever: BM25Retriever, queries: list[LabelledQuery], show_misses: bool) -> None:
    hits: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for labelled in queries:
        top = retriever.search(labelled.query, k=3)
        categories = [hit.rule.category for hit in top]
        at1 = categories[:1] == [labelled.expected_category]
        at3 = labelled.expected_category in categories
        for group in ("all", f"split={labelled.split}", labelled.style):
            hits[group].append((at1, at3))
        if show_misses and not at1:
            got = ", ".join(f"{h.rule.id}:{h.score:.2f}" for h in top) or "(nothing)"
            print(
                f"  miss@1 [{labelled.split}/{labelled.style}] {labelled.expected_category}: "
                f"{labelled.query!r} -> {got}"
            )
    for group in ("all", "split=dev", "split=heldout", *STYLES):
        rows = hits[group]
        if not rows:
            continue
        r1 = sum(a for a, _ in rows) / len(rows)
        r3 = sum(b for _, b in rows) / len(rows)
        print(f"{retriever.backend:<10} {group:<14} {len(rows):>4}  {r1:>9.3f}  {r3:>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=Path, help="rule-base file (default: the bundled one)")
    parser.add_argument("--queries", type=Path, help="labelled query YAML (default: bundled)")
    parser.add_argument("--show-misses", action="store_true", help="print queries missed at 1")
    args = parser.parse_args()

    rule_base = RuleBase.load(args.rules)
    queries = load_queries(args.queries, rule_base)
    print(
        f"{len(rule_base)} rules in {len(rule_base.categories)} categories, "
        f"{len(queries)} labelled queries"
    )
    print(f"{'backend':<10} {'group':<14} {'n':>4}  {'recall@1':>9}  {'recall@3':>9}")
    for backend in BACKENDS:
        evaluate(BM25Retriever(rule_base, backend), queries, args.show_misses)


if __name__ == "__main__":
    main()
