"""The IFPO study's summary (``benchmarks/verl_cpu_study.py``) on hand-made run folders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "verl_cpu_study", ROOT / "benchmarks/verl_cpu_study.py"
)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)


def _run(out: Path, variant: str, seed: int, benign: list[float], score: float) -> None:
    work = out / "runs" / f"{variant}-s{seed}"
    work.mkdir(parents=True)
    lines = []
    for step, rate in enumerate(benign, 1):
        data = {
            "training/global_step": step,
            "critic/score/mean": score,
            "ascl/consult_rate/benign": rate,
            "ascl/consult_rate/harmful": 0.9,
        }
        lines.append(json.dumps({"step": step, "data": data}))
    (work / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = {"variant": variant, "seed": seed, "wall_seconds": 100 + seed}
    (work / "result.json").write_text(json.dumps(result))


def test_steps_below_half_uses_a_trailing_three_step_mean():
    assert study.steps_below_half([0.9, 0.9, 0.1, 0.1, 0.1]) == 4  # (0.9+0.1+0.1)/3 = 0.37 < 0.5
    assert study.steps_below_half([0.9, 0.2, 0.2, 0.9]) == 3
    assert study.steps_below_half([0.9, None, 0.4, 0.4]) == 4  # missing steps are skipped
    assert study.steps_below_half([0.9] * 10) is None


def test_interval_is_a_t_interval_over_seeds():
    entry = study.interval([1.0, 2.0, 3.0])
    assert entry["mean"] == 2.0
    half = 4.303 * 1.0 / 3**0.5
    assert entry["ci95"] == pytest.approx([2.0 - half, 2.0 + half], abs=1e-4)
    assert "ci95" not in study.interval([1.0])


def test_summary_pairs_variants_by_seed(tmp_path):
    fast, slow = [0.9, 0.2, 0.2, 0.2, 0.2, 0.2], [0.9, 0.9, 0.9, 0.9, 0.1, 0.1]
    for seed in (0, 1):
        _run(tmp_path, "grpo", seed, slow, 0.2)
        _run(tmp_path, "ifpo", seed, fast, 0.5)
    _run(tmp_path, "grpo_2xlr", 0, fast, 0.4)
    summary = study.summarize(tmp_path)
    assert summary["variants"]["ifpo"]["steps_benign_consult_below_half"] == {0: 3, 1: 3}
    assert summary["variants"]["grpo"]["steps_benign_consult_below_half"] == {0: 6, 1: 6}
    diff = summary["differences"]["ifpo-grpo"]
    assert diff["seeds"] == [0, 1]
    assert diff["steps_benign_consult_below_half"]["mean"] == -3
    assert diff["score"]["mean"] == pytest.approx(0.3)
    assert diff["consult/benign"]["mean"] == pytest.approx(0.2 - (0.9 * 3 + 0.1 * 2) / 5)
    # Only seed 0 has the 2x lr control: a difference without an interval.
    control = summary["differences"]["ifpo-grpo_2xlr"]
    assert control["seeds"] == [0] and "ci95" not in control["score"]
    assert "| ifpo | 2 |" in study.table(summary)
    assert json.loads(study.to_json(summary))["variants"]["ifpo"]["seeds"] == [0, 1]
