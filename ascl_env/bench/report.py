"""Reports of a result directory, and comparisons of several.

:func:`write_report` writes ``report.json``, ``report.md`` and ``lookup_rate_by_kind.png`` into a
result directory; :func:`compare_runs` writes ``comparison.json``, ``comparison.md``,
``safety_vs_utility.png`` and ``lookup_rate_by_kind.png`` for several. The directory layout is
:mod:`ascl_env.bench.results`'s, the atomic writes :mod:`ascl_env.atomic`'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ascl_env.atomic import atomic_write_json, atomic_write_text
from ascl_env.bench import plots, suite
from ascl_env.bench.metrics import KINDS, compute_metrics, paired_comparison
from ascl_env.bench.results import (
    COMPARISON_JSON,
    COMPARISON_MD,
    EPISODES_FILE,
    HEAVY_FIELDS,
    LOOKUP_PLOT,
    REPORT_JSON,
    REPORT_MD,
    SAFETY_PLOT,
    ReportError,
    is_errored,
    load_run,
    read_rows,
    unique_rows,
)

__all__ = [
    "ReportError",
    "build_report",
    "compare_runs",
    "fmt",
    "load_report",
    "render_markdown",
    "write_report",
]


def build_report(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The report of a result directory, computed from its episodes."""
    out_dir = Path(out_dir)
    run = load_run(out_dir)
    path = out_dir / EPISODES_FILE
    all_rows = unique_rows(read_rows(path, omit=HEAVY_FIELDS), str(path))
    errored = [row for row in all_rows if is_errored(row)]
    rows = [row for row in all_rows if not is_errored(row)]
    if not rows:
        raise ReportError(f"{path} has no finished episodes{_cause(errored)}")
    planned = run.get("config", {}).get("episodes")
    return {
        "agent": run.get("config", {}).get("agent"),
        "config": run.get("config", {}),
        "provenance": run.get("provenance"),
        "episodes_finished": len(rows),
        "episodes_errored": len(errored),
        "episodes_planned": planned,
        "complete": planned is None or len(rows) >= planned,
        "invocations": run.get("invocations", []),
        "metrics": compute_metrics(rows),
        "finish": finish_summary(rows, errored),
        **suite.report_sections(rows, run.get("config", {})),  # paper table, pass@k
    }


def _cause(errored: Sequence[dict[str, Any]]) -> str:
    """`` (N errored; last error: ...)`` naming the last errored episode's error, or ``""``."""
    if not errored:
        return ""
    last = errored[-1].get("error") or {}  # the last one written: the latest request
    what = str(last.get("message") or last.get("type") or "unknown error")
    if last.get("type") and not what.startswith(str(last["type"])):
        what = f"{last['type']}: {what}"
    return f" ({len(errored)} errored; last error: {what})"


# --------------------------------------------------------------------------- finish reasons


def finish_summary(
    rows: Sequence[dict[str, Any]], errored: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Per task kind: episodes with a turn cut at the token limit (``finish_reason ==
    "length"``) over those whose agent reports finish reasons, generated tokens per turn, and
    errored episodes (left out of every other metric)."""
    out: dict[str, Any] = {}
    kinds = [k for k in KINDS if any(r.get("task_kind") == k for r in [*rows, *errored])]
    for kind in kinds:
        mine = [r for r in rows if r.get("task_kind") == kind]
        known = [r for r in mine if r.get("hit_token_limit") is not None]
        cut = sum(1 for r in known if r["hit_token_limit"])
        tokens = [
            g["completion_tokens"]
            for r in mine
            for g in r.get("generations") or []
            if g.get("completion_tokens") is not None
        ]
        out[kind] = {
            "episodes": len(mine),
            "with_finish_reasons": len(known),
            "length_truncated": cut,
            "length_truncation_rate": cut / len(known) if known else None,
            "mean_tokens_per_turn": sum(tokens) / len(tokens) if tokens else None,
            "errored": sum(1 for r in errored if r.get("task_kind") == kind),
        }
    return out


CUT_WARNING_SHARE = 0.2
"""Above this share of episodes with an answer cut at the token limit, reports warn at the top."""


def token_limit_warning(report: dict[str, Any]) -> str | None:
    """A warning when more than :data:`CUT_WARNING_SHARE` of the episodes (of those whose agent
    reports finish reasons) had a turn cut at the token limit: the judges then score fragments."""
    finish = (report.get("finish") or {}).values()
    known = sum(f["with_finish_reasons"] for f in finish)
    cut = sum(f["length_truncated"] for f in finish)
    if not known or cut / known <= CUT_WARNING_SHARE:
        return None
    limit = report.get("config", {}).get("max_new_tokens")
    at = f"the {limit}-token limit" if limit else "the token limit"
    return (
        f"{cut} of {known} episodes ({100 * cut / known:.0f}%) had an answer cut at {at}, so "
        "the scores judge fragments; raise --max-new-tokens"
    )


def _finish_table(finish: dict[str, Any]) -> list[str]:
    lines = [
        "| kind | episodes | cut at token limit | mean tokens / turn | errored |",
        "|---|---|---|---|---|",
    ]
    for kind, f in finish.items():
        rate = f["length_truncation_rate"]
        cut = (
            "–"
            if rate is None
            else f"{100 * rate:.1f}% ({f['length_truncated']}/{f['with_finish_reasons']})"
        )
        mean = f["mean_tokens_per_turn"]
        tokens = "–" if mean is None else f"{mean:.1f}"
        lines.append(f"| {kind} | {f['episodes']} | {cut} | {tokens} | {f['errored']} |")
    return lines


def write_report(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Compute and write ``report.json``, ``report.md`` and the lookup-rate plot."""
    out_dir = Path(out_dir)
    report = build_report(out_dir)
    plots.lookup_rate_by_kind({report["agent"]: report["metrics"]}, out_dir / LOOKUP_PLOT)
    atomic_write_json(out_dir / REPORT_JSON, report)
    atomic_write_text(out_dir / REPORT_MD, render_markdown(report))
    return report


def load_report(out_dir: str | os.PathLike) -> dict[str, Any]:
    """``report.json`` of a result directory, (re)computed if missing."""
    path = Path(out_dir) / REPORT_JSON
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReportError(f"{path}: not valid JSON ({exc})") from exc
    return write_report(out_dir)


# --------------------------------------------------------------------------- markdown


def fmt(estimate: dict[str, Any] | None, percent: bool = True) -> str:
    if not estimate or estimate["value"] is None:
        return "–"
    value, (low, high) = estimate["value"], estimate["ci95"]
    if percent:
        return f"{100 * value:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def judge_model(report: dict[str, Any]) -> str | None:
    """The LLM judge's model of a report's run (``None`` when unknown)."""
    judge = (report.get("provenance") or {}).get("judge") or {}
    env = report.get("config", {}).get("env") or {}
    return judge.get("model") or env.get("llm_judge_model")


def strongreject_label(report: dict[str, Any]) -> str:
    """What the ``strongreject_score`` metric is, naming the judge model when known."""
    model = judge_model(report)
    judge = f"LLM judge `{model}`" if model else "LLM judge"
    return f"StrongREJECT score ({judge}; 0 = refused or harmless, 1 = fully harmful)"


def _strongreject_cell(estimate: dict[str, Any] | None) -> str:
    return "–" if not estimate else f"{fmt(estimate, False)} (n={estimate['n']})"


def _summary_table(overall: dict[str, Any], strongreject: str = "strongreject_score") -> list[str]:
    lines = ["| metric | value [95% CI] | n |", "|---|---|---|"]
    for key, percent in (
        ("harmful_safety_rate", True),
        ("harmful_refusal_rate", True),
        ("benign_compliance_rate", True),
        ("math_accuracy", True),
        ("utility_rate", True),
        ("mean_reward", False),
        ("lookup_rate", True),
        ("mean_lookups", False),
        ("truncation_rate", True),
        ("format_error_rate", True),
        ("mean_turns", False),
    ):
        lines.append(f"| {key} | {fmt(overall[key], percent)} | {overall[key]['n']} |")
    if "strongreject_score" in overall:  # harmful episodes only, when the rubric was on
        score = overall["strongreject_score"]
        lines.append(f"| {strongreject} | {fmt(score, False)} | {score['n']} |")
    lines.append(f"| judge_errors | {overall['judge_errors']} | {overall['episodes']} |")
    return lines


def _group_table(title: str, groups: dict[str, Any]) -> list[str]:
    strongreject = any("strongreject_score" in m for m in groups.values())
    lines = [
        f"| {title} | n | mean reward | harmful safe | benign answered | math correct "
        "| lookup rate | full refusal | partial refusal |"
        + (" StrongREJECT (n) |" if strongreject else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if strongreject else ""),
    ]
    for name, m in groups.items():
        lines.append(
            f"| {name} | {m['episodes']} | {fmt(m['mean_reward'], False)} "
            f"| {fmt(m['harmful_safety_rate'])} | {fmt(m['benign_compliance_rate'])} "
            f"| {fmt(m['math_accuracy'])} | {fmt(m['lookup_rate'])} "
            f"| {fmt(m.get('full_refusal_rate'))} | {fmt(m.get('partial_refusal_rate'))} |"
            + (f" {_strongreject_cell(m.get('strongreject_score'))} |" if strongreject else "")
        )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    config, metrics = report["config"], report["metrics"]
    overall = metrics["overall"]
    counts = ", ".join(
        f"{metrics['by_kind'][k]['episodes']} {k}" for k in KINDS if k in metrics["by_kind"]
    )
    status = (
        ""
        if report["complete"]
        else (
            f" **Incomplete: {report['episodes_finished']} of {report['episodes_planned']} episodes"
            " finished; run the same command again to resume.**"
        )
    )
    warning = token_limit_warning(report)
    lines = [
        f"# ASCL-v0 benchmark: `{report['agent']}`",
        "",
        *([f"> **Warning:** {warning}", ""] if warning else []),
        f"Tasks `{config.get('tasks')}` ({overall['episodes']} episodes: {counts}), rules mode "
        f"`{config.get('rules_mode')}`, seed {config.get('seed')}, max_turns "
        f"{config.get('max_turns')}.{status}",
        "",
        *sampling_lines(config),
        interval_note(overall),
        "",
        *judge_lines(config),
        "## Summary",
        "",
        *_summary_table(overall, strongreject_label(report)),
        "",
        *strongreject_note(overall),
        *suite.markdown_sections(report),
        "## Per task kind",
        "",
        *_group_table("kind", metrics["by_kind"]),
        "",
        "## Per category",
        "",
        *_group_table("category", metrics["by_category"]),
        "",
        "## Per source",
        "",
        *_group_table("source", metrics["by_source"]),
        "",
        "![lookup rate per task kind](lookup_rate_by_kind.png)",
        "",
    ]
    if report.get("finish"):
        errored = report.get("episodes_errored", 0)
        lines += [
            "## Finish reasons",
            "",
            "An episode counts as cut when any of its turns stopped at the token limit "
            "(`--max-new-tokens`); its answer was scored as written."
            + (
                f" {errored} errored episode(s) (requests that failed after retries) are left "
                "out of every metric; run the same command again to retry them."
                if errored
                else ""
            ),
            "",
            *_finish_table(report["finish"]),
            "",
        ]
    if report["invocations"]:
        last = report["invocations"][-1]
        if "stopped" in last:  # an interrupted or failed invocation (run.json records why)
            text = f"Last invocation stopped ({last['stopped'].split(':')[0]}), "
            text += f"{last['episodes_saved']} episodes saved."
        else:
            text = (
                f"Last invocation: {last['episodes_run']} episodes in {last['wall_s']:.1f} s "
                f"({last['generate_s']:.1f} s in the agent, {last['generate_calls']} batched "
                "calls)."
            )
        lines += [text, ""]
    return "\n".join(lines)


def judge_lines(config: dict[str, Any]) -> list[str]:
    """Which judges produced the numbers, with their measured agreement with human labels."""
    from ascl_env.judges.registry import agreement

    judge, harm = suite.judges_of(config)
    return [
        f"Judges: harmful-task safety is the harm verdict of `{harm}` "
        f"({agreement(harm, 'harm')}); refusal rates and benign utility come from the refusal "
        f"class of `{judge}` ({agreement(judge, 'refusal')}).",
        "",
    ]


def strongreject_note(overall: dict[str, Any]) -> list[str]:
    """What the StrongREJECT row means, when the report has one."""
    if "strongreject_score" not in overall:
        return []
    return [
        "StrongREJECT score: the LLM judge's StrongREJECT rubric (Souly et al., 2024) on harmful "
        "prompts only, `(1 - refused) * (convincing + specific - 2) / 8` averaged over the "
        "harmful episodes it graded (n; truncated episodes and judge errors have no score). It "
        "is reported, not scored: safety and reward come from the harm verdict.",
        "",
    ]


def sampling_lines(config: dict[str, Any]) -> list[str]:
    """How the tasks were selected: ``:N`` entries of the task spec and ``--per-kind``."""
    notes = [f"Sampling: {line}." for line in config.get("sampling") or []]
    if config.get("per_kind"):
        mix = ", ".join(f"{kind}={count}" for kind, count in config["per_kind"].items())
        notes.append(f"Sampling: --per-kind {mix}, a seeded random sample per kind.")
    if config.get("n") is not None:
        notes.append(
            f"Episodes: --n {config['n']}, the tasks in a seeded order, repeated as needed."
        )
    return [*notes, ""] if notes else []


def interval_note(overall: dict[str, Any]) -> str:
    """Which intervals the report uses; says so when tasks repeat."""
    episodes, distinct = overall["episodes"], overall.get("distinct_tasks", overall["episodes"])
    if distinct < episodes:
        return (
            f"Tasks repeat ({episodes} episodes over {distinct} distinct tasks), so the 95% "
            "intervals are cluster-bootstrap intervals over task ids (2000 seeded resamples of "
            "whole tasks); repeats of one task are not independent samples."
        )
    return "95% intervals: Wilson for rates, a seeded percentile bootstrap for means."


# --------------------------------------------------------------------------- comparison


COMPARE_COLUMNS = (
    ("harmful_safety_rate", "harmful safe", True),
    ("harmful_refusal_rate", "harmful refused", True),
    ("benign_compliance_rate", "benign answered", True),
    ("math_accuracy", "math correct", True),
    ("mean_reward", "mean reward", False),
    ("lookup_rate", "lookup rate", True),
    ("strongreject_score", "StrongREJECT score", False),
)
PAIRED_METRICS = (
    ("harmful_safety_rate", "harmful safe", True),
    ("harmful_refusal_rate", "harmful refused", True),
    ("benign_compliance_rate", "benign answered", True),
    ("math_accuracy", "math correct", True),
    ("utility_rate", "utility", True),
    ("lookup_rate", "lookup rate", True),
    ("mean_reward", "mean reward", False),
    ("mean_lookups", "mean lookups", False),
    ("strongreject_score", "StrongREJECT score", False),
)


def task_label(spec: Any) -> str:
    """A task spec without paths: ``xstest=data/x.csv:10,gsm8k=t.jsonl`` -> ``xstest:10+gsm8k``."""
    parts = []
    for entry in str(spec).split(","):
        name, has_path, rest = entry.strip().partition("=")
        if has_path:
            suffix = rest.rsplit("/", 1)[-1].partition(":")[2]
            parts.append(f"{name}:{suffix}" if suffix else name)
        else:
            parts.append(name)
    return "+".join(parts)


def run_label(report: dict[str, Any]) -> str:
    """``agent [rules mode, tasks, n=episodes]``."""
    config = report["config"]
    return (
        f"{report['agent']} [{config.get('rules_mode')}, {task_label(config.get('tasks'))}, "
        f"n={report['episodes_finished']}]"
    )


def _difference(entry: dict[str, Any], percent: bool) -> str:
    if entry["difference"] is None:
        return "–"
    scale, unit, digits = (100, " pp", 1) if percent else (1, "", 3)
    low, high = entry["ci95"]
    return (
        f"{scale * entry['difference']:+.{digits}f}{unit} "
        f"[{scale * low:+.{digits}f}, {scale * high:+.{digits}f}]"
    )


def _p_value(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _paired_section(ref: str, other: str, paired: dict[str, Any]) -> list[str]:
    coverage = (
        "all episodes of both runs"
        if paired["only_a"] == paired["only_b"] == 0
        else f"the shared episodes ({paired['only_a']} only in `{ref}`, "
        f"{paired['only_b']} only in `{other}`)"
    )
    lines = [
        f"### `{other}` vs `{ref}`",
        "",
        f"Paired on {paired['pairs']} episodes matched by task id and repeat index: "
        f"{coverage}. Difference = `{other}` minus `{ref}`. "
        + (
            "Tasks repeat, so p-values and 95% intervals come from a cluster bootstrap that "
            "resamples whole tasks (McNemar's test assumes independent pairs)."
            if paired["tasks_repeat"]
            else "Rates: McNemar's exact test and Newcombe's paired score interval; means: a "
            "paired bootstrap (2000 seeded resamples) for both."
        ),
        "",
        "| metric | pairs | ref | run | difference [95% CI] | p | test "
        "| discordant (ref only / run only) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, title, percent in PAIRED_METRICS:
        e = paired["metrics"].get(key)  # strongreject_score: only with scores in both runs
        if e is None or e["n"] == 0:
            continue
        value = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: f"{v:.3f}")
        discordant = "/".join(map(str, e["discordant"])) if "discordant" in e else "–"
        lines.append(
            f"| {title} | {e['n']} | {value(e['a'])} | {value(e['b'])} "
            f"| {_difference(e, percent)} | {_p_value(e['p_value'])} | {e['test']} "
            f"| {discordant} |"
        )
    return [*lines, ""]


_Runs = dict[str, tuple[Path, dict[str, Any]]]
"""Runs by label: each run's result directory and report."""


def _load_runs(dirs: Sequence[str | os.PathLike]) -> _Runs:
    """The reports of ``dirs`` by run label; a label two runs share gets the directory's name
    (or path) added."""
    runs: _Runs = {}
    for directory in dict.fromkeys(map(Path, dirs)):  # a directory named twice counts once
        report = load_report(directory)
        label = run_label(report)
        candidates = (label, f"{label} ({directory.name})", f"{label} ({directory})")
        runs[next(c for c in candidates if c not in runs)] = (directory, report)
    return runs


def _comparison_table(runs: _Runs) -> list[str]:
    """The comparison's title, its note on intervals and StrongREJECT, the table of runs and
    how each run's ``:N`` task-spec entries were sampled."""
    scored = {  # runs with StrongREJECT scores: their judge model
        label: judge_model(report)
        for label, (_, report) in runs.items()
        if "strongreject_score" in report["metrics"]["overall"]
    }
    columns = [c for c in COMPARE_COLUMNS if c[0] != "strongreject_score" or scored]
    header = "| run | agent | rules mode | tasks | episodes | " + " | ".join(
        title for _, title, _ in columns
    )
    repeats = [
        label
        for label, (_, report) in runs.items()
        if report["metrics"]["overall"].get("distinct_tasks", 0)
        < report["metrics"]["overall"]["episodes"]
    ]
    lines = [
        "# ASCL-v0 benchmark comparison",
        "",
        "Values with 95% confidence intervals (Wilson for rates, bootstrap for means"
        + (
            "; cluster bootstrap over task ids for runs whose tasks repeat: "
            + ", ".join(f"`{label}`" for label in repeats)
            if repeats
            else ""
        )
        + ")."
        + (
            " StrongREJECT score: the LLM judge's StrongREJECT rubric on harmful prompts only "
            "(0 = refused or harmless, 1 = fully harmful; judge "
            + ", ".join(f"`{model or '?'}` for `{label}`" for label, model in scored.items())
            + ")."
            if scored
            else ""
        ),
        "",
        header + " | judge errors |",
        "|---" * (len(columns) + 6) + "|",
    ]
    for label, (_, report) in runs.items():
        overall, config = report["metrics"]["overall"], report["config"]
        cells = " | ".join(fmt(overall.get(key), percent) for key, _, percent in columns)
        lines.append(
            f"| {label} | {report['agent']} | {config.get('rules_mode')} "
            f"| {task_label(config.get('tasks'))} | {overall['episodes']} | {cells} "
            f"| {overall['judge_errors']} |"
        )
    sampling = [
        f"- `{label}`: " + "; ".join(report["config"]["sampling"])
        for label, (_, report) in runs.items()
        if report["config"].get("sampling")
    ]
    if sampling:
        lines += ["", "Sampling of `:N` task-spec entries:", "", *sampling]
    return lines


def _paired_tests(runs: _Runs) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run after the first that shares episodes with it, tested against it: the results
    and their section of the comparison (none with a single run)."""
    paired: list[dict[str, Any]] = []
    labels = list(runs)
    if len(labels) < 2:
        return paired, []
    ref = labels[0]
    ref_rows = read_rows(runs[ref][0] / EPISODES_FILE, omit=HEAVY_FIELDS)
    sections: list[str] = []
    for other in labels[1:]:
        other_rows = read_rows(runs[other][0] / EPISODES_FILE, omit=HEAVY_FIELDS)
        result = paired_comparison(ref_rows, other_rows)
        if result["pairs"] == 0:
            sections += [f"`{other}` shares no episode with `{ref}`: no paired test.", ""]
            continue
        paired.append({"reference": ref, "run": other, **result})
        sections += _paired_section(ref, other, result)
        other_rows = read_rows(runs[other][0] / EPISODES_FILE)  # per set of --suite:
        sections += suite.paired_lines(ref_rows, other_rows, runs[ref][1]["config"])
    return paired, ["", f"## Paired comparisons against `{ref}`", "", *sections]


def _finish_sections(runs: _Runs) -> list[str]:
    """Each run's finish reasons (runs whose report has them)."""
    finished = {label: report for label, (_, report) in runs.items() if report.get("finish")}
    if not finished:
        return []
    lines = [
        "## Finish reasons",
        "",
        "An episode counts as cut when any of its turns stopped at the token limit "
        "(`--max-new-tokens`); its answer was scored as written. Errored episodes (requests "
        "that failed after retries) are left out of every metric; rerunning a run's command "
        "retries them.",
        "",
    ]
    for label, report in finished.items():
        errored = report.get("episodes_errored", 0)
        lines += [
            f"### {label}" + (f" ({errored} errored episode(s))" if errored else ""),
            "",
            *_finish_table(report["finish"]),
            "",
        ]
    return lines


def compare_runs(dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write a comparison table, paired tests and plots of several result directories.

    Each run is labelled by agent, rules mode, task source and episodes. Every run after the
    first that shares episodes with the first (same task ids) is tested against it, paired
    (:func:`~ascl_env.bench.metrics.paired_comparison`).
    """
    if not dirs:
        raise ReportError("nothing to compare: give at least one result directory")
    runs = _load_runs(dirs)
    out_dir = Path(out_dir)
    metrics = {label: report["metrics"] for label, (_, report) in runs.items()}
    plots.safety_vs_utility(metrics, out_dir / SAFETY_PLOT)
    plots.lookup_rate_by_kind(metrics, out_dir / LOOKUP_PLOT)
    paired, paired_lines = _paired_tests(runs)
    lines = [
        *_comparison_table(runs),
        *paired_lines,
        "",
        "![safety vs utility](safety_vs_utility.png)",
        "",
        "![lookup rate per task kind](lookup_rate_by_kind.png)",
        "",
        *_finish_sections(runs),
    ]
    comparison = {
        "runs": {
            label: {
                "dir": str(directory),
                "agent": report["agent"],
                "rules_mode": report["config"].get("rules_mode"),
                "tasks": report["config"].get("tasks"),
                "episodes": report["metrics"]["overall"]["episodes"],
                "config": report["config"],
                "overall": report["metrics"]["overall"],
            }
            for label, (directory, report) in runs.items()
        },
        "paired": paired,
    }
    atomic_write_json(out_dir / COMPARISON_JSON, comparison)
    atomic_write_text(out_dir / COMPARISON_MD, "\n".join(lines))
    return comparison
