"""Bad input to ``ascl-bench`` and ``prepare_data``: one line naming what and where, exit 2,
nothing written; long lists of problems are capped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ascl_env.bench.cli import main
from ascl_env.errors import MAX_PROBLEMS, format_problems, short_repr
from ascl_env.rules import RuleBase, RuleBaseError
from ascl_env.tasks import TaskError, load_gsm8k, load_xstest

BAD_RULES = 1_000


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "header_only.csv").write_text("id,prompt,type,label\n")
    (folder / "empty.jsonl").write_text("")
    (folder / "blank.jsonl").write_text("\n  \n")
    (folder / "empty.csv").write_text("")
    (folder / "a_file").write_text("not a directory\n")
    (folder / "malformed.yaml").write_text("rules:\n  - id: a\n    category: [\n")
    bad = [{"id": "bad id", "category": "Not Snake", "title": "", "text": ""}] * BAD_RULES
    (folder / "many_bad.yaml").write_text(yaml.safe_dump({"rules": bad}))
    return folder


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


RUN_CASES = {
    "task file with a header and no rows": (
        ["--tasks", "xstest={in}/header_only.csv"],
        "header_only.csv: xstest file has a header but no data rows",
    ),
    "empty jsonl task file": (
        ["--tasks", "gsm8k={in}/empty.jsonl"],
        "empty.jsonl: gsm8k file has no rows",
    ),
    "blank jsonl task file": (["--tasks", "gsm8k={in}/blank.jsonl"], "blank.jsonl: gsm8k file"),
    "empty csv task file": (
        ["--tasks", "xstest={in}/empty.csv"],
        "empty.csv: xstest file is empty",
    ),
    "no task selected": (
        ["--tasks", "bundled:0"],
        "--tasks entry 'bundled:0': the count after ':' must be at least 1, got 0",
    ),
    "--out names a file": (["--out", "{in}/a_file"], "--out {in}/a_file is a file"),
    "--out below a file": (["--out", "{in}/a_file/sub"], "is inside {in}/a_file, which is a file"),
    "negative seed": (["--seed", "-5"], "--seed must be at least 0, got -5"),
    "malformed rule base": (
        ["--env", "rule_base_path={in}/malformed.yaml"],
        "--env rule_base_path: {in}/malformed.yaml: malformed YAML at line 4",
    ),
    "rule base that is a folder": (
        ["--env", "rule_base_path={in}"],
        "--env rule_base_path: {in}: unsupported rule-base file type",
    ),
    "rule base with 1,000 bad rules": (
        ["--env", "rule_base_path={in}/many_bad.yaml"],
        f"many_bad.yaml: {4 * BAD_RULES} problems: - rules[0] (id 'bad id'), field 'id'",
    ),
    "nan timeout": (["--timeout", "nan"], "--timeout must be positive, got nan"),
    "negative temperature": (["--temperature", "-1"], "--temperature must be a number >= 0"),
    "absurd --n": (["--n", str(10**20)], "--n must be at most"),
    "--env rules_mode": (["--env", "rules_mode=none"], "set the rules mode with --rules-mode"),
    "--env max_turns and --max-turns": (
        ["--env", "max_turns=2", "--max-turns", "3"],
        "give the turn limit once",
    ),
    "several bad settings": (
        ["--env", "top_k=0", "--env", "max_turns=0"],
        "invalid environment settings: 2 problems: - top_k:",
    ),
    "bad second agent": (["--agent", "always-sometimes"], "unknown agent spec 'always-sometimes'"),
}


@pytest.mark.parametrize("case", RUN_CASES, ids=list(RUN_CASES))
def test_run_bad_input(tmp_path, inputs, capsys, monkeypatch, case):
    args, expected = RUN_CASES[case]
    monkeypatch.chdir(tmp_path)  # the default --out (results) would land here
    fill = {"in": str(inputs)}
    argv = ["run", "--no-progress", "--agent", "always-refuse", "--tasks", "bundled_harmful:2"]
    argv += [arg.format(**fill) for arg in args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, argv)
    assert code == 2, err
    first, *table = err.splitlines()
    assert first.startswith("ascl-bench run: error: "), err
    # one line; an unknown agent spec adds the agent table, one agent per line
    assert not table or (case == "bad second agent" and table[0].split()[0] == "always-refuse")
    assert expected.format(**fill) in first
    assert len(err) < 3_000, len(err)
    assert snapshot(tmp_path) == before, "an error must write nothing"
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_bad_rule_base_message_is_capped(inputs):
    with pytest.raises(RuleBaseError) as caught:
        RuleBase.load(inputs / "many_bad.yaml")
    message = str(caught.value)
    assert message.count("\n  - ") == MAX_PROBLEMS + 1
    assert message.endswith(f"and {4 * BAD_RULES - MAX_PROBLEMS} more")
    assert len(message) < 2_000  # was 217,000 characters


def test_compare_out_through_a_file(tmp_path, inputs, capsys):
    argv = ["run", "--no-progress", "--agent", "oracle", "--tasks", "bundled_harmful:2"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, ["compare", str(tmp_path / "r" / "oracle"), "--out", str(inputs)])
    assert code == 0, err  # a folder is fine
    before = snapshot(tmp_path)
    target = str(inputs / "a_file")
    code, err = run_cli(capsys, ["compare", str(tmp_path / "r" / "oracle"), "--out", target])
    assert code == 2
    assert err == f"ascl-bench compare: error: --out {target} is a file, not a directory\n"
    assert snapshot(tmp_path) == before


def test_a_real_process_prints_no_traceback(tmp_path, inputs):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = ["--agent", "always-refuse", "--tasks", f"gsm8k={inputs / 'empty.jsonl'}"]
    result = subprocess.run(
        [sys.executable, "-m", "ascl_env.bench.cli", "run", *argv, "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


PREPARE_CASES = {
    "task file with a header and no rows": (
        ["--tasks", "xstest={in}/header_only.csv"],
        "xstest file has a header but no data rows",
    ),
    "--out names a file": (["--out", "{in}/a_file"], "{in}/a_file is a file, not a directory"),
    "rule base with 1,000 bad rules": (
        ["--env-config", '{{"rule_base_path": "{in}/many_bad.yaml"}}'],
        f"{4 * BAD_RULES} problems:",
    ),
    "several bad settings": (
        ["--env-config", '{{"top_k": 0, "max_turns": 0}}'],
        "not a valid ASCLConfig: 2 problems: - top_k:",
    ),
}


@pytest.mark.parametrize("case", PREPARE_CASES, ids=list(PREPARE_CASES))
def test_prepare_data_bad_input(tmp_path, inputs, capsys, case):
    from verl_recipes.prepare_data import main as prepare_main

    args, expected = PREPARE_CASES[case]
    fill = {"in": str(inputs)}
    argv = ["--tasks", "bundled_harmful:4", *[arg.format(**fill) for arg in args]]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    code = prepare_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("prepare_data: error: "), err
    assert expected.format(**fill) in err
    assert len(err) < 3_000
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists()


def test_loaders_refuse_empty_files(inputs):
    with pytest.raises(TaskError, match="header_only.csv: xstest file has a header but no data"):
        load_xstest(inputs / "header_only.csv")
    with pytest.raises(TaskError, match="empty.jsonl: gsm8k file has no rows"):
        load_gsm8k(inputs / "empty.jsonl")


def test_format_problems_caps_and_counts():
    assert format_problems(["only"]) == "only"
    message = format_problems([f"p{i}" for i in range(25)], limit=3)
    assert message == "25 problems:\n  - p0\n  - p1\n  - p2\n  - and 22 more"
    assert format_problems(["a", "b"], total=7).endswith("  - and 5 more")
    with pytest.raises(ValueError, match="at least one problem"):
        format_problems([])
    assert short_repr("x" * 10_000).endswith("... (10002 characters)")
    assert len(short_repr("x" * 10_000)) < 120
