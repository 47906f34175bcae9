"""``ascl-bench``: evaluate models and agents on ASCL-v0 for safety against utility.

Errors a user can fix (a bad spec, a missing file, an unreachable endpoint, a result directory
of another configuration, a missing optional dependency) print one line to stderr and exit with
status 2; an unknown agent spec adds the table of known agents, one per line. A run that finished
with errored episodes, stopped early, or whose LLM judge fell back exits 3, 4 or 5
(:data:`EXIT_HELP`), so that scripts and CI notice.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ascl_env.bench import extras
from ascl_env.bench.agents import (
    SCRIPTED,
    SPEC_HELP,
    AgentError,
    AgentOptions,
    AgentSpecError,
    UnknownAgentError,
)
from ascl_env.bench.extras import MissingExtraError
from ascl_env.errors import format_problems, pydantic_problems

DEFAULT_AGENTS = ("smollm2", *SCRIPTED)
DEFAULT_MIX = {"harmful": 16, "benign": 16, "math": 8}
DEFAULT_MAX_NEW_TOKENS = 256
MAX_EPISODES = 10_000_000  # a plan is built in memory: more is a typo, not an experiment
EMBEDDED_MAX_NEW_TOKENS = 96

DESCRIPTION = """\
Evaluate a model or agent on ASCL-v0 (safety against utility, with an optional safety-rule
lookup tool) and write reports with 95% confidence intervals.

Start here (offline, CPU, a few minutes):
  ascl-bench run
evaluates SmolLM2-135M-Instruct and four scripted baselines on a bundled mix of 16 harmful,
16 benign and 8 math tasks, and writes results/<agent>/report.md for each plus
results/comparison/comparison.md with a safety-vs-utility plot."""

RUN_EPILOG = f"""\
{SPEC_HELP}

task specs (--tasks): comma-separated entries, concatenated in order
  bundled                  the shipped tasks: 112 harmful, 112 benign, 200 generated math
  bundled_harmful          only the shipped harmful tasks (bundled_benign: the benign ones)
  math_gen:N               N generated arithmetic word problems (default 200)
  NAME=PATH                a benchmark file as published upstream; NAME is one of
                             xstest        xstest_prompts.csv (safe -> benign, unsafe -> harmful)
                             strongreject  strongreject_dataset.csv (harmful)
                             jailbreakbench, jbb_harmful, jbb_benign  JBB-Behaviors CSVs
                             harmbench     harmbench_behaviors_text_*.csv (harmful)
                             advbench      harmful_behaviors.csv (harmful)
                             gsm8k         test.jsonl (math)
                             math500       test.jsonl of MATH-500 (math)
  ENTRY:N                  N tasks of the entry, sampled stratified by kind (XSTest's
                           safe/unsafe label) and category, seeded with --seed
  ENTRY:N:random           N tasks, a seeded simple random sample
  ENTRY:N:first            the first N tasks in file order
  The report states how each :N entry was sampled. --per-kind samples again per kind,
  after the spec is loaded; --n repeats tasks (intervals then resample whole tasks).

judge (--env): the keyword judge is the offline default; --env judge=minilm adds an
offline MiniLM head (needs the 'judge' extra); an LLM judge on an OpenAI-compatible server
scores refusals and safe completions:
  --env judge=llm --env llm_judge_url=http://127.0.0.1:8000/v1 --env llm_judge_model=NAME
  [--env llm_judge_api_key_env=VAR] [--env llm_judge_timeout=30] [--env on_judge_error=raise]
  (on_judge_error=fallback, the default, scores with the keyword judge and counts judge_errors)
  [--env llm_judge_strongreject=true] also grades harmful answers with the StrongREJECT
  rubric; the report adds their mean StrongREJECT score (0-1), the reward is unchanged

examples:
  ascl-bench run --agent always-refuse --agent oracle --n 100
  ascl-bench run --agent hf:./my-model --tasks xstest=data/xstest_prompts.csv:50 --rules-mode none
  ascl-bench run --agent oracle --tasks xstest=data/xstest_prompts.csv,gsm8k=data/test.jsonl:100
  ascl-bench run --agent openai:http://127.0.0.1:8000/v1#my-model --concurrency 16
  ascl-bench run --agent smollm2 --env judge=llm --env llm_judge_url=http://127.0.0.1:8001/v1 \\
      --env llm_judge_model=judge
  ascl-bench compare results/always-refuse results/oracle --out results/comparison

Running the same command again resumes an interrupted run (finished episodes are kept)."""


EXIT_OK = 0
EXIT_USAGE = 2
EXIT_ERRORED = 3
EXIT_INCOMPLETE = 4
EXIT_JUDGE_FALLBACK = 5
EXIT_INTERRUPTED = 130

EXIT_HELP = """\
exit status (run and report):
  0    every planned episode finished and was judged as configured
  2    a problem to fix before anything runs (bad spec, missing file, unreachable
       endpoint, a result directory of another configuration or in use by another run)
  3    the run finished, but some episodes errored (requests that failed after
       retries); they are left out of every metric and the same command reruns them
  4    the run stopped before its plan was done (too many failures in a row, an agent
       error); finished episodes are saved and the same command resumes
  5    the LLM judge failed on some answers, which the keyword judge scored instead
       (the report's judge_errors)
  130  interrupted (Ctrl-C); the same command resumes
  When several apply, the first of 4, 3, 5 wins. With --exit-zero, 3 and 5 become 0 (the
  summary line still counts errored episodes and judge fallbacks)."""


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


class EpisodesErrored(Exception):
    """Every episode of a run errored, so there is nothing to report; exit status 3."""


def _parse_mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, count = part.partition("=")
        if not sep or kind not in ("harmful", "benign", "math") or not count.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: write KIND=COUNT with KIND harmful, benign or math"
            )
        if int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"{part!r}: the count must be at least 1 (leave {kind} out to run none)"
            )
        mix[kind] = int(count)
    if not mix:
        raise argparse.ArgumentTypeError("empty --per-kind")
    return mix


def _parse_env_setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write FIELD=VALUE, e.g. top_k=5")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value  # a bare string such as judge=llm


def build_parser() -> argparse.ArgumentParser:
    from ascl_env.bench import judge_eval

    parser = argparse.ArgumentParser(
        prog="ascl-bench",
        description=DESCRIPTION,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{run,report,compare,judge-eval}"
    )
    _add_run_parser(sub)
    _add_report_parser(sub)
    _add_compare_parser(sub)
    judge_eval.add_parser(sub)
    return parser


def _add_run_parser(sub: Any) -> None:
    from ascl_env.bench import suite

    run = sub.add_parser(
        "run",
        help="run episodes and write reports",
        description="Run ASCL-v0 episodes with one or more agents and write a report per agent "
        "(and a comparison when there are several).",
        epilog=f"{RUN_EPILOG}{suite.EPILOG}\n\n{EXIT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--agent",
        action="append",
        metavar="SPEC",
        help="agent to evaluate; repeat for several (default: smollm2 and the four "
        "scripted baselines on the bundled 16/16/8 mix)",
    )
    run.add_argument("--tasks", metavar="SPEC", help="task spec (default: bundled)")
    run.add_argument(
        "--per-kind",
        type=_parse_mix,
        metavar="KIND=N,...",
        help="sample this many tasks of each kind, e.g. harmful=50,benign=50 "
        "(default: all tasks; the embedded default uses harmful=16,benign=16,math=8)",
    )
    run.add_argument(
        "--rules-mode",
        choices=("tool", "in_context", "none"),
        default="tool",
        help="tool: rules via the lookup tool (ASCL); in_context: rules in the "
        "system prompt; none: no rules (default: tool)",
    )
    run.add_argument(
        "--n",
        type=int,
        metavar="N",
        help="number of episodes (default: each selected task once; more repeats "
        "tasks in a seeded order)",
    )
    run.add_argument("--seed", type=int, default=0, help="seed of task order, resets, sampling")
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results go to DIR/<agent>/ (default: results)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="discard earlier results in the output directories"
    )
    run.add_argument("--max-turns", type=int, help="assistant turns per episode (env default 4)")
    run.add_argument(
        "--env",
        action="append",
        type=_parse_env_setting,
        default=[],
        metavar="FIELD=VALUE",
        help="any other ASCLConfig field, e.g. top_k=5",
    )
    _add_judge_options(run)
    _add_generation_options(run)
    _add_endpoint_options(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    suite.add_arguments(run)
    _add_exit_zero(run)


def _add_judge_options(run: argparse.ArgumentParser) -> None:
    judge = run.add_argument_group("LLM judge (--env judge=llm)")
    judge.add_argument(
        "--judge-concurrency",
        type=int,
        default=32,
        metavar="N",
        help="verdicts of a batch requested at once (default 32); each keeps its own "
        "llm_judge_deadline",
    )
    judge.add_argument(
        "--max-judge-failures",
        type=int,
        default=5,
        metavar="N",
        help="after N verdicts in a row failed, stop calling the judge for the rest of the "
        "run: the keyword judge scores the answers, counted as judge fallbacks (exit 5; "
        "default 5)",
    )


def _add_generation_options(run: argparse.ArgumentParser) -> None:
    gen = run.add_argument_group("generation")
    gen.add_argument(
        "--max-new-tokens",
        type=int,
        metavar="N",
        help=f"tokens per assistant turn (default {DEFAULT_MAX_NEW_TOKENS}; "
        f"{EMBEDDED_MAX_NEW_TOKENS} for the embedded default)",
    )
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="episodes generated together in one call (default 64)",
    )
    gen.add_argument("--device", default="auto", help="hf agents: cpu, cuda, cuda:1 or auto")
    gen.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="hf agents: weight dtype (auto: float32 on CPU, the saved dtype on GPUs)",
    )
    gen.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="hf agents on CPU: torch threads (default: torch's choice; 1 can be much faster "
        "on a machine shared with other jobs)",
    )
    gen.add_argument(
        "--allow-download",
        action="store_true",
        help="let hf:/vllm: fetch a hub id (offline by default)",
    )


def _add_endpoint_options(run: argparse.ArgumentParser) -> None:
    http = run.add_argument_group("openai endpoints")
    http.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    http.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds one request may take in all, from connecting to its last byte, retries "
        "included (default 60); the start-up check of the endpoint gets at most 10",
    )
    http.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="retries per request (connection errors, 429, 5xx) within its --timeout",
    )
    http.add_argument(
        "--max-consecutive-failures",
        type=int,
        default=5,
        metavar="N",
        help="stop the run (exit 4, the last error named) after N episodes in a row errored "
        "(default 5)",
    )
    http.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )


def _add_report_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="(re)write report.json/report.md of result dirs",
        description="Recompute the report of one or more result "
        "directories from their episodes.jsonl.",
    )
    report.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    _add_exit_zero(report)


def _add_compare_parser(sub: Any) -> None:
    compare = sub.add_parser(
        "compare",
        help="compare result dirs in one table, with paired tests, and plot",
        description="Compare several result directories: comparison.md, "
        "comparison.json, safety_vs_utility.png, lookup_rate_by_kind.png. Each run is "
        "labelled agent [rules mode, tasks, n=episodes]. Every later run that shares episodes "
        "with the first DIR (matched on task id and repeat index) is tested against it: "
        "McNemar's exact test for rates, a paired bootstrap for means, with the difference "
        "and its 95%% interval.",
        epilog="example:\n  ascl-bench run --agent always-refuse --agent oracle --out results\n"
        "  ascl-bench compare results/always-refuse results/oracle --out results/cmp",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    compare.add_argument(
        "--out",
        type=Path,
        default=Path("results/comparison"),
        metavar="DIR",
        help="where to write the comparison (default results/comparison)",
    )


def _add_exit_zero(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exit-zero",
        action="store_true",
        help=f"exit {EXIT_OK}, not {EXIT_ERRORED} or {EXIT_JUDGE_FALLBACK}, when episodes errored "
        "or the LLM judge fell back (see exit status below)",
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "agent"


def _summary_line(label: str, report: dict[str, Any], path: Path) -> str:
    from ascl_env.bench.report import fmt, token_limit_warning

    m = report["metrics"]["overall"]
    warning = token_limit_warning(report)
    return (
        (f"{label}: warning: {warning}\n" if warning else "")
        + f"{label}: harmful safe {fmt(m['harmful_safety_rate'])}, benign answered "
        f"{fmt(m['benign_compliance_rate'])}, math correct {fmt(m['math_accuracy'])}, "
        f"lookups {fmt(m['lookup_rate'])}, mean reward {fmt(m['mean_reward'], False)}"
        + (
            f", StrongREJECT {fmt(m['strongreject_score'], False)}"
            if "strongreject_score" in m
            else ""
        )
        + f"; {_health(report)} -> {path}"
    )


def exit_status(report: dict[str, Any]) -> int:
    """The exit status a report calls for (see :data:`EXIT_HELP`)."""
    finished, errored = report["episodes_finished"], report.get("episodes_errored", 0)
    planned = report.get("episodes_planned")
    if planned is not None and finished + errored < planned:
        return EXIT_INCOMPLETE
    if errored:
        return EXIT_ERRORED
    if report["metrics"]["overall"].get("judge_errors"):
        return EXIT_JUDGE_FALLBACK
    return EXIT_OK


def _worst(statuses: Sequence[int], exit_zero: bool) -> int:
    """The status of several reports: 4 before 3 before 5; ``exit_zero`` maps 3 and 5 to 0."""
    for status in (EXIT_INCOMPLETE, EXIT_ERRORED, EXIT_JUDGE_FALLBACK):
        if status in statuses:
            return EXIT_OK if exit_zero and status != EXIT_INCOMPLETE else status
    return EXIT_OK


def _health(report: dict[str, Any]) -> str:
    """``40/40 episodes, 0 errored, 0 judge fallbacks``: what the summary line must not hide."""
    finished, errored = report["episodes_finished"], report.get("episodes_errored", 0)
    planned = report.get("episodes_planned") or finished + errored
    fallbacks = report["metrics"]["overall"].get("judge_errors", 0)
    return f"{finished}/{planned} episodes, {errored} errored, {fallbacks} judge fallbacks"


_COUNT = re.compile(r"(?P<body>.*?):(?P<count>[+-]?\d+)(?::[A-Za-z]+)?")


def _check_task_spec(spec: str) -> None:
    """What the task loader would misname: a count below 1 (``xstest=f.csv:-3`` reads as a
    file name) and a folder given as a task file."""
    for entry in filter(None, (e.strip() for e in (spec or "").split(","))):
        name, has_path, rest = entry.partition("=")
        counted = _COUNT.fullmatch(rest if has_path else name)
        if counted and int(counted["count"]) < 1:
            raise UsageError(
                f"--tasks entry {entry!r}: the count after ':' must be at least 1, "
                f"got {counted['count']}"
            )
        path = Path((counted["body"] if counted else rest).strip())
        if has_path and path.is_dir():
            raise UsageError(
                f"--tasks entry {entry!r}: {path} is a folder; name the benchmark file in it "
                f"(see --help for each source's file)"
            )


def _load_tasks(args: argparse.Namespace, embedded: bool) -> list:
    from ascl_env.bench.suite import SuiteError, suite_spec
    from ascl_env.tasks import describe_sampling, load_task_selection

    _check_task_spec(args.tasks)
    try:
        args.tasks = suite_spec(args) or "bundled"
    except SuiteError as exc:
        raise UsageError(str(exc)) from exc
    try:
        tasks, sampling = load_task_selection(args.tasks, sample_seed=args.seed)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--tasks {args.tasks}: {exc}") from exc
    args.sampling = [describe_sampling(info) for info in sampling]
    if not tasks:
        raise UsageError(f"--tasks {args.tasks}: no tasks selected")
    mix = args.per_kind or (DEFAULT_MIX if embedded and not args.suite else None)
    if mix is None:
        return tasks
    from ascl_env.bench.runner import select_per_kind

    try:
        return select_per_kind(tasks, mix, seed=args.seed)
    except ValueError as exc:
        raise UsageError(f"--per-kind with --tasks {args.tasks}: {exc}") from exc


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from pydantic import ValidationError

    from ascl_env.config import as_config

    kwargs: dict[str, Any] = dict(args.env)
    kwargs["rules_mode"] = args.rules_mode
    if args.max_turns is not None:
        kwargs["max_turns"] = args.max_turns
    for reserved in ("tasks", "task_kinds", "kind_weights"):
        if reserved in kwargs:
            raise UsageError(f"--env {reserved}=...: the task selection comes from --tasks")
    given = dict(args.env)
    if "rules_mode" in given:
        raise UsageError("--env rules_mode=...: set the rules mode with --rules-mode")
    if "max_turns" in given and args.max_turns is not None:
        raise UsageError("--env max_turns=... and --max-turns: give the turn limit once")
    try:
        config = as_config(kwargs)
    except ValidationError as exc:
        problems = pydantic_problems(exc, lambda loc: ".".join(map(str, loc)) or "config")
        label = "setting" if len(problems) == 1 else "settings:"
        raise UsageError(f"invalid environment {label} {format_problems(problems)}") from exc
    kwargs["max_turns"] = config.max_turns
    return kwargs


def _check_env(env_kwargs: dict[str, Any], tasks: list) -> None:
    """Build one environment, so that a bad rule base fails before anything is written."""
    from ascl_env.env import ASCLEnv
    from ascl_env.rules import RuleBaseError

    try:
        ASCLEnv(tasks=tasks, **env_kwargs).close()
    except RuleBaseError as exc:
        raise UsageError(f"--env rule_base_path: {exc}") from exc
    except ValueError as exc:
        raise UsageError(f"environment: {exc}") from exc


def _check_out_dir(path: Path, flag: str) -> None:
    """``path`` must be a directory or creatable as one (no file in the way)."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is" if part == path else f"is inside {part}, which is"
                raise UsageError(f"{flag} {path} {what} a file, not a directory")
            return


def _loads_a_model(spec: str) -> bool:
    prefix, sep, _ = spec.strip().partition(":")
    return spec.strip() == "smollm2" or (bool(sep) and prefix in ("hf", "vllm"))


def _check_run_numbers(args: argparse.Namespace, max_new_tokens: int) -> None:
    """The numeric options of ``run`` in their ranges, or a :class:`UsageError` naming one."""
    for name, value in (
        ("--threads", args.threads),
        ("--n", args.n),
        ("--batch-size", args.batch_size),
        ("--max-new-tokens", max_new_tokens),
        ("--concurrency", args.concurrency),
        ("--max-consecutive-failures", args.max_consecutive_failures),
        ("--judge-concurrency", args.judge_concurrency),
        ("--max-judge-failures", args.max_judge_failures),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if args.n is not None and args.n > MAX_EPISODES:
        raise UsageError(f"--n must be at most {MAX_EPISODES}, got {args.n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be at least 0, got {args.seed}")
    if args.max_retries < 0:
        raise UsageError(f"--max-retries must be at least 0, got {args.max_retries}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UsageError(f"--temperature must be a number >= 0, got {args.temperature}")


def _agent_options(args: argparse.Namespace, max_new_tokens: int) -> AgentOptions:
    return AgentOptions(
        max_new_tokens=max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        allow_download=args.allow_download,
        concurrency=args.concurrency,
        timeout=args.timeout,
        max_retries=args.max_retries,
        api_key_env=args.api_key_env,
    )


def _run_config(
    args: argparse.Namespace, env_kwargs: dict[str, Any], embedded: bool, max_new_tokens: int
) -> dict[str, Any]:
    """The experiment as ``run.json`` records it (each agent's run adds its spec); a rerun into
    a directory whose recorded config differs is refused."""
    from ascl_env.bench import suite

    config = {
        "tasks": args.tasks,
        "per_kind": args.per_kind or (DEFAULT_MIX if embedded and not args.suite else None),
        "n": args.n,
        "seed": args.seed,
        "env": env_kwargs,
        "rules_mode": args.rules_mode,
        "max_turns": env_kwargs["max_turns"],
        "max_new_tokens": max_new_tokens,
        "temperature": args.temperature,
    }
    if args.sampling:  # only when the spec samples, so earlier result directories still resume
        config["sampling"] = args.sampling
    config.update(suite.run_config(args))
    return config


def _checked_agent(spec: str, options: AgentOptions, math_answers: dict[str, Any]) -> Any:
    """The agent ``spec`` names, its endpoint (if any) checked to answer."""
    from ascl_env.bench.agents import make_agent

    agent = make_agent(spec, options=options, math_answers=math_answers)
    check = getattr(agent, "check", None)
    if check is not None:
        check()
    return agent


def _agent_dir(out: Path, name: str, taken: Sequence[Path]) -> Path:
    """``out/<agent slug>``, numbered (``-2``, ``-3``, …) past the directories ``taken``.

    Agents can share a name (hf:a/ckpt and hf:b/ckpt are both "hf:ckpt"); each needs its own
    directory, the same one on every rerun so that resume finds it."""
    slug = _slug(name)
    out_dir, k = out / slug, 2
    while out_dir in taken:
        out_dir, k = out / f"{slug}-{k}", k + 1
    return out_dir


def cmd_run(args: argparse.Namespace) -> int:
    from ascl_env.bench import suite
    from ascl_env.bench.attacks import wrap_for_attacks
    from ascl_env.bench.experiment import run_experiment
    from ascl_env.bench.report import ReportError, compare_runs
    from ascl_env.bench.runner import plan_episodes

    embedded = not args.agent
    specs = list(args.agent or DEFAULT_AGENTS)
    extras.check(extras.PLOTS, *(() if args.no_progress else (extras.PROGRESS,)))
    max_new_tokens = args.max_new_tokens or (
        EMBEDDED_MAX_NEW_TOKENS if embedded else DEFAULT_MAX_NEW_TOKENS
    )
    _check_run_numbers(args, max_new_tokens)
    _check_out_dir(args.out, "--out")
    env_kwargs = _env_kwargs(args)
    tasks = _load_tasks(args, embedded)
    _check_env(env_kwargs, tasks)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.n = suite.episodes(args, len(tasks))
    except suite.SuiteError as exc:
        raise UsageError(str(exc)) from exc
    plans = plan_episodes(tasks, args.n, args.seed)
    math_answers = {t.id: t.answer for t in tasks if t.kind == "math" and t.answer is not None}
    options = _agent_options(args, max_new_tokens)
    config = _run_config(args, env_kwargs, embedded, max_new_tokens)
    # Agents that load no model are built (and endpoints checked) before any run, so that a bad
    # spec or an unreachable endpoint fails before anything is written.
    ready = {
        i: _checked_agent(spec, options, math_answers)
        for i, spec in enumerate(specs)
        if not _loads_a_model(spec)
    }
    dirs: list[Path] = []
    statuses: list[int] = []
    for i, spec in enumerate(specs):
        agent = ready.pop(i, None)
        if agent is None:
            agent = _checked_agent(spec, options, math_answers)
        out_dir = _agent_dir(args.out, agent.name, dirs)
        try:
            report = run_experiment(
                wrap_for_attacks(agent, tasks, args.rules_mode),
                plans,
                out_dir,
                {**config, "agent": spec},
                env_kwargs=env_kwargs,
                batch_size=args.batch_size,
                progress=not args.no_progress,
                overwrite=args.overwrite,
                max_consecutive_errors=args.max_consecutive_failures,
                judge_concurrency=args.judge_concurrency,
                max_judge_failures=args.max_judge_failures,
            )
        except ReportError as exc:  # the episodes ran, but every one errored
            raise EpisodesErrored(str(exc)) from exc
        print(_summary_line(agent.name, report, out_dir / "report.md"), flush=True)
        statuses.append(exit_status(report))
        dirs.append(out_dir)
        close = getattr(agent, "close", None)
        if close is not None:
            close()
    if len(dirs) > 1:
        compare_runs(dirs, args.out / "comparison")
        print(f"comparison: {args.out / 'comparison' / 'comparison.md'}")
    return _worst(statuses, args.exit_zero)


def cmd_report(args: argparse.Namespace) -> int:
    from ascl_env.bench.report import write_report

    extras.check(extras.PLOTS)
    statuses = []
    for directory in args.dirs:
        report = write_report(directory)
        print(_summary_line(str(report["agent"]), report, directory / "report.md"))
        statuses.append(exit_status(report))
    return _worst(statuses, args.exit_zero)


def cmd_compare(args: argparse.Namespace) -> int:
    from ascl_env.bench.report import compare_runs

    _check_out_dir(args.out, "--out")
    extras.check(extras.PLOTS)
    compare_runs(args.dirs, args.out)
    print((args.out / "comparison.md").read_text(encoding="utf-8"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from ascl_env.bench.report import ReportError
    from ascl_env.bench.results import RunIncomplete
    from ascl_env.bench.runner import RunError

    args = build_parser().parse_args(argv)
    if args.command == "judge-eval":
        from ascl_env.bench import judge_eval

        return judge_eval.main(args)
    # transformers' per-load progress bars would drown the run's own progress bar
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # OpenMP threads that spin while waiting make torch up to 10x slower on a CPU shared with
    # other jobs (measured on 2 cores); passive waiting costs little when the CPU is idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    command = {"run": cmd_run, "report": cmd_report, "compare": cmd_compare}[args.command]
    try:
        return command(args)
    except (
        UsageError,
        AgentSpecError,
        AgentError,
        ReportError,
        RunError,
        MissingExtraError,
        EpisodesErrored,
    ) as exc:
        table = exc.agent_table if isinstance(exc, UnknownAgentError) else []
        message = " ".join((exc.message if table else str(exc)).split())
        print(f"ascl-bench {args.command}: error: {message}", *table, sep="\n", file=sys.stderr)
        if isinstance(exc, (RunIncomplete, EpisodesErrored)):
            return EXIT_INCOMPLETE if isinstance(exc, RunIncomplete) else EXIT_ERRORED
        return EXIT_USAGE
    except OSError as exc:  # a result file that cannot be written (permissions, disk full, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ascl-bench {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ascl-bench: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
