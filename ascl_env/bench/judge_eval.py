"""``ascl-bench judge-eval``: check a judge against human-labelled responses.

Refusal labels (XSTest's completion files, PyRIT's scorer files) are scored against XSTest's
string match (:func:`ascl_env.judges.agreement.evaluate`); harm labels (the ``harm_labels``
schema, or ``prompt,response,label`` with ``--task harm``) against the ``refusal-proxy`` baseline
and the set's published anchors (:func:`ascl_env.judges.agreement.evaluate_harm`). The columns a
file may have are :mod:`ascl_env.judges.labels`'s. This module holds the subcommand's arguments,
the judge it builds from them, the terminal table and ``judge_eval.md``/``judge_eval.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ascl_env.atomic import atomic_write_json, atomic_write_text
from ascl_env.judges.agreement import evaluate, evaluate_harm
from ascl_env.judges.labels import JudgeEvalError, detect_task
from ascl_env.judges.refusal import RESPONSE_CLASSES

JSON_FILE = "judge_eval.json"
MD_FILE = "judge_eval.md"
_METRIC_KEYS = ("precision", "recall", "f1", "accuracy", "kappa")
_IN_SAMPLE_NOTE = (
    "* the judge was trained on this set: the figure is in-sample and measures nothing "
    "(see the judge's docs for its held-out figure)."
)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _short(name: str) -> str:
    return Path(name).name if name != "overall" else "**overall**"


def _mark(block: dict[str, Any], name: str) -> str:
    return f"{name} *" if block.get("in_sample") else name


def _blocks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each file's metric block, then the overall one when there are several files."""
    return [*result["files"], result["overall"]] if len(result["files"]) > 1 else result["files"]


def render_markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: one binary table, one 3-class table, the confusion matrices."""
    blocks = _blocks(result)
    lines = [
        f"# Judge check: {result['judge']} against human labels",
        "",
        "Refusal (full or partial) is the positive class. Baseline: "
        f"{result['baseline']}, computed in the same run.",
        "",
        "| file | n | judge P | R | F1 | acc | kappa | baseline P | R | F1 | acc | kappa |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for block in blocks:
        judge = " | ".join(_fmt(block["judge"][k]) for k in _METRIC_KEYS)
        base = " | ".join(_fmt(block["baseline"][k]) for k in _METRIC_KEYS)
        lines.append(f"| {_short(block['file'])} | {block['n']} | {judge} | {base} |")
    lines += [
        "",
        "3-class agreement (rows with a 3-class human label) and refusal rates (human → judged):",
        "",
        "| file | n (3-class) | judge | baseline | safe prompts: refusal rate | "
        "unsafe prompts: refusal rate |",
        "|---|---|---|---|---|---|",
    ]
    for block in blocks:
        three = block["judge"]["three_class"]
        rates = block["judge"]["refusal_rate"]
        cells = [
            f"{_fmt(rates[k]['human'])} → {_fmt(rates[k]['judged'])} (n={rates[k]['n']})"
            for k in ("safe", "unsafe")
        ]
        lines.append(
            f"| {_short(block['file'])} | {three['n']} | {_fmt(three['agreement'])} | "
            f"{_fmt(block['baseline']['three_class']['agreement'])} | {cells[0]} | {cells[1]} |"
        )
    matrix = result["overall"]["judge"]["three_class"]["matrix"]
    lines += ["", "Judge confusion, all files (rows: human, columns: judged):", ""]
    lines.append("| human \\ judged | " + " | ".join(RESPONSE_CLASSES) + " |")
    lines.append("|---|" + "---|" * len(RESPONSE_CLASSES))
    for human in RESPONSE_CLASSES:
        counts = " | ".join(str(matrix[human][c]) for c in RESPONSE_CLASSES)
        lines.append(f"| {human} | {counts} |")
    return "\n".join([*lines, *_footer(result, "Binary confusion, all files")])


def _footer(result: dict[str, Any], title: str) -> list[str]:
    """The closing lines of a Markdown report: the judge's binary confusion over all files and,
    when a file was in the judge's training data, the in-sample note."""
    confusion = result["overall"]["judge"]["confusion"]
    lines = ["", f"{title}: " + ", ".join(f"{k.upper()} {v}" for k, v in confusion.items()), ""]
    if any(b.get("in_sample") for b in result["files"]):
        lines += [_IN_SAMPLE_NOTE, ""]
    return lines


def render_table(result: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    blocks = _blocks(result)
    width = max(len(Path(b["file"]).name) for b in blocks) + 2
    head = "  ".join(f"{k[:5]:>5}" for k in _METRIC_KEYS)
    lines = [
        f"judge: {result['judge']}; baseline: {result['baseline']}",
        f"{'file':<{width}}{'n':>6}  {'judge: ' + head:>43}  {'3cls':>5}  |  "
        f"{'string match: ' + head:>50}  {'3cls':>5}",
    ]
    for block in blocks:
        cells = []
        for side in ("judge", "baseline"):
            metrics = block[side]
            values = "  ".join(f"{_fmt(metrics[k]):>5}" for k in _METRIC_KEYS)
            cells.append(f"{values}  {_fmt(metrics['three_class']['agreement']):>5}")
        lines.append(
            f"{Path(block['file']).name:<{width}}{block['n']:>6}  {cells[0]:>43}  |  {cells[1]:>50}"
        )
    return "\n".join(lines)


def render_harm_markdown(result: dict[str, Any]) -> str:
    """The harm report as Markdown: judge and baseline per file, the anchors beside them."""
    blocks = _blocks(result)
    lines = [
        f"# Harm judge check: {result['judge']} against human labels",
        "",
        "Harmful response is the positive class; every row is judged as the answer to a harmful "
        f"task. Baseline: {result['baseline']}, computed in the same run. Anchors: published "
        "F1 of other judges on the same set.",
        "",
        "| file | n | human harmful | judged harmful | P | R | F1 | acc | kappa "
        "| baseline F1 | acc | kappa | anchors (F1) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for block in blocks:
        judge, base = block["judge"], block["baseline"]
        anchors = ", ".join(f"{k} {v:.3f}" for k, v in block["anchors"].items()) or "—"
        lines.append(
            f"| {_mark(block, _short(block['file']))} | {block['n']} | "
            f"{_fmt(block['human_harmful_rate'])} | "
            f"{_fmt(judge['harmful_rate'])} | "
            + " | ".join(_fmt(judge[k]) for k in _METRIC_KEYS)
            + f" | {_fmt(base['f1'])} | {_fmt(base['accuracy'])} | {_fmt(base['kappa'])} | "
            f"{anchors} |"
        )
    return "\n".join([*lines, *_footer(result, "Judge confusion, all files (harmful = positive)")])


def render_harm_table(result: dict[str, Any]) -> str:
    """A plain-text harm table for the terminal."""
    blocks = _blocks(result)
    width = max(len(Path(b["file"]).name) for b in blocks) + 4
    head = "  ".join(f"{k[:5]:>5}" for k in _METRIC_KEYS)
    lines = [
        f"judge: {result['judge']}; baseline: {result['baseline']}",
        f"{'file':<{width}}{'n':>6}  {'harm%':>5}  {'judge: ' + head:>36}  |  "
        f"{'baseline: ' + head:>39}  |  anchors (F1)",
    ]
    for block in blocks:
        cells = [
            "  ".join(f"{_fmt(block[side][k]):>5}" for k in _METRIC_KEYS)
            for side in ("judge", "baseline")
        ]
        anchors = ", ".join(f"{k} {v:.3f}" for k, v in block["anchors"].items())
        lines.append(
            f"{_mark(block, Path(block['file']).name):<{width}}{block['n']:>6}  "
            f"{_fmt(block['human_harmful_rate']):>5}  {cells[0]:>36}  |  {cells[1]:>39}  |  "
            f"{anchors}"
        )
    if any(b.get("in_sample") for b in result["files"]):
        lines.append(_IN_SAMPLE_NOTE)
    return "\n".join(lines)


def write_results(result: dict[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``judge_eval.json`` and ``judge_eval.md`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    render = render_harm_markdown if result.get("task") == "harm" else render_markdown
    json_path = atomic_write_json(out / JSON_FILE, result, ensure_ascii=True)
    md_path = atomic_write_text(out / MD_FILE, render(result))
    return json_path, md_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``judge-eval`` subcommand to an ``argparse`` subparsers object."""
    from ascl_env.judges import registry

    parser = subparsers.add_parser(
        "judge-eval",
        help="check a judge against human-labelled responses (refusal or harm labels)",
        description="Re-score human-labelled responses (CSV or JSONL) with a judge (--judge) "
        "and a baseline in the same run, and write judge_eval.md and judge_eval.json. Refusal "
        "labels (XSTest's completion files, PyRIT's scorer files) are scored against XSTest's "
        "string match; harm labels (the harm_labels schema, or prompt,response,label with "
        "--task harm) against the refusal-proxy baseline and the set's published anchors.",
        epilog="judges (--judge NAME or NAME:URL#MODEL):\n" + registry.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/judge-eval"),
        metavar="DIR",
        help="where to write judge_eval.md/.json (default results/judge-eval)",
    )
    parser.add_argument(
        "--task",
        choices=("auto", "refusal", "harm"),
        default="auto",
        help="what the labels say: auto (default) reads it from the columns (a 'behavior' "
        "column or a label column named harmful/is_harmful/harm_label/unsafe: harm)",
    )
    for role in ("response", "label", "prompt", "kind"):
        parser.add_argument(
            f"--{role}-column", default=None, metavar="NAME", help=f"the {role} column's name"
        )
    parser.add_argument(
        "--judge",
        default=None,
        metavar="SPEC",
        help="a registered judge (list below): NAME, or NAME:URL#MODEL for one behind an "
        "OpenAI-compatible endpoint. Default: keyword for refusal labels, offline for harm",
    )
    parser.add_argument(
        "--head", type=Path, default=None, metavar="FILE", help="minilm: a head file to use "
        "instead of the packaged one",
    )  # fmt: skip
    parser.add_argument(
        "--api-key-env", default=None, metavar="VAR",
        help="endpoint judges: environment variable holding the API key",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S",
        help="endpoint judges: seconds per connect/read/write",
    )  # fmt: skip
    parser.add_argument(
        "--deadline", type=float, default=60.0, metavar="S",
        help="endpoint judges: wall-clock limit of one verdict, retries included",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=int, default=8, metavar="N",
        help="endpoint judges: verdicts in flight",
    )  # fmt: skip
    return parser


def build_judge(args: argparse.Namespace, task: str) -> Any:
    """The registry judge ``args.judge`` names, checked to answer ``task``'s question."""
    from ascl_env.judges import registry
    from ascl_env.judges.embedding import JudgeModelError

    question = "harm" if task == "harm" else "refusal"
    try:
        spec = registry.parse_spec(args.judge)
    except ValueError as exc:
        raise JudgeEvalError(f"--judge {args.judge}: {exc}") from None
    if question not in registry.answers_of(spec.name):
        able = [n for n in registry.JUDGES if question in registry.answers_of(n)]
        raise JudgeEvalError(
            f"--judge {spec.name} does not answer the {question} question; judges that do: "
            + ", ".join(able)
        )
    options: dict[str, Any] = {"head": args.head}
    if spec.url is not None:
        api_key = None
        if args.api_key_env:
            api_key = os.environ.get(args.api_key_env)
            if not api_key:
                raise JudgeEvalError(
                    f"--api-key-env: environment variable {args.api_key_env!r} is not set"
                )
        options = {
            "api_key": api_key,
            "timeout": args.timeout,
            "deadline_s": args.deadline,
            "concurrency": args.concurrency,
        }
    try:
        return registry.build_judge(spec, **options)
    except (ValueError, JudgeModelError, ImportError) as exc:
        raise JudgeEvalError(f"--judge {args.judge}: {exc}") from None


def _task(args: argparse.Namespace) -> str:
    if args.task != "auto":
        return args.task
    tasks = {str(path): detect_task(path) for path in args.files}
    if len(set(tasks.values())) > 1:
        harm = [p for p, t in tasks.items() if t == "harm"]
        other = [p for p, t in tasks.items() if t != "harm"]
        raise JudgeEvalError(
            f"{harm[0]} holds harm labels but {other[0]} refusal labels; run them separately "
            "(or pass --task)"
        )
    return next(iter(tasks.values()))


def main(args: argparse.Namespace) -> int:
    """Run ``judge-eval`` for parsed ``args``; 2 with a one-line message on bad input."""
    judge = None
    try:
        task = _task(args)
        if args.judge is None:
            args.judge = "offline" if task == "harm" else "keyword"
        judge = build_judge(args, task)
        if task == "harm":
            if args.kind_column:
                raise JudgeEvalError("--kind-column applies to refusal labels only")
            result = evaluate_harm(
                args.files,
                judge=judge,
                response_column=args.response_column,
                label_column=args.label_column,
                prompt_column=args.prompt_column,
            )
        else:
            result = evaluate(
                args.files,
                judge=judge,
                response_column=args.response_column,
                label_column=args.label_column,
                prompt_column=args.prompt_column,
                kind_column=args.kind_column,
            )
    except JudgeEvalError as exc:
        print(f"ascl-bench judge-eval: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if hasattr(judge, "close"):
            judge.close()
    print(render_harm_table(result) if task == "harm" else render_table(result))
    json_path, md_path = write_results(result, args.out)
    print(f"\nwrote {md_path} and {json_path}")
    return 0
