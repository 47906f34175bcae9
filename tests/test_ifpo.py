"""ascl_env.ifpo: the framework-agnostic IFPO core (torch only; verl in test_ifpo_verl.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ascl_env.ifpo import compute_ifpo_advantages, lookup_counts_from_mask

EPS = 1e-6
REPO = Path(__file__).resolve().parents[1]


def reference_ifpo(
    scores,
    group_ids,
    consulted,
    scope="group",
    apply_to="all",
    max_weight=None,
    norm_by_std=True,
    eps=EPS,
):
    """Plain-Python IFPO, written from the formula, to check the vectorised one against."""
    groups = defaultdict(list)
    for i, g in enumerate(group_ids):
        groups[g].append(i)
    grpo = [0.0] * len(scores)
    for members in groups.values():
        values = [scores[i] for i in members]
        if len(values) == 1:  # verl: mean 0, and std + eps computed on a float32 1.0
            mean, denominator = 0.0, float(np.float32(1.0) + np.float32(eps))
        else:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            denominator = std + eps
        for i in members:
            grpo[i] = (scores[i] - mean) / denominator if norm_by_std else scores[i] - mean
    pools = groups.values() if scope == "group" else [list(range(len(scores)))]
    weights = [1.0] * len(scores)
    for members in pools:
        n_mode = {m: sum(consulted[i] == m for i in members) for m in (False, True)}
        k = sum(1 for n in n_mode.values() if n)
        for i in members:
            weights[i] = len(members) / (k * n_mode[consulted[i]])
    out = []
    for a, w in zip(grpo, weights, strict=True):
        if max_weight is not None:
            w = min(w, max_weight)
        if apply_to == "positive" and a <= 0:
            w = 1.0
        out.append(w * a)
    return out


def test_importing_ascl_env_does_not_import_torch():
    code = "import sys, ascl_env; assert 'torch' not in sys.modules, 'ascl_env imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_hand_computed_mixed_group():
    # GRPO on [1, 0, 1, 1]: mean 0.75, unbiased std 0.5 -> [0.5, -1.5, 0.5, 0.5].
    # 3 consulted + 1 direct, G=4, K=2: w = 4/(2*3) = 2/3 and 4/(2*1) = 2.
    scores = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    out = compute_ifpo_advantages(scores, ["q"] * 4, torch.tensor([2, 0, 3, 1]))
    expected = torch.tensor([1 / 3, -3.0, 1 / 3, 1 / 3], dtype=torch.float64) / (0.5 + EPS) * 0.5
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_one_mode_per_group_is_grpo_and_weights_average_one():
    scores = torch.tensor([0.2, 0.9, 0.4, 1.0, 0.0, 0.5])
    ids = ["a", "a", "a", "b", "b", "b"]
    grpo = compute_ifpo_advantages(scores, ids, torch.zeros(6, dtype=torch.bool))
    all_consulted = compute_ifpo_advantages(scores, ids, torch.ones(6, dtype=torch.bool))
    torch.testing.assert_close(all_consulted, grpo, rtol=0, atol=0)
    # Group "a" all direct, group "b" all consulted: still one mode per group.
    split = compute_ifpo_advantages(scores, ids, torch.tensor([0, 0, 0, 1, 2, 1]))
    torch.testing.assert_close(split, grpo, rtol=0, atol=0)


def test_singleton_group_uses_mean_zero_std_one():
    out = compute_ifpo_advantages(torch.tensor([0.7, 1.0, 0.0]), ["solo", "g", "g"], [1, 1, 0])
    assert out[0].item() == pytest.approx(0.7 / (1 + EPS), rel=1e-6)
    # The pair: mean 0.5, std sqrt(0.5); two modes, one each, so w = 2 / (2 * 1) = 1.
    assert out[1:].tolist() == pytest.approx([math.sqrt(0.5), -math.sqrt(0.5)], rel=1e-5)


def test_zero_variance_group_gives_zeros():
    out = compute_ifpo_advantages(torch.tensor([1.0, 1.0, 1.0, 1.0]), [7] * 4, [1, 0, 0, 0])
    assert torch.equal(out, torch.zeros(4))


def test_norm_by_std_false_only_centres():
    scores = torch.tensor([1.0, 0.0, 1.0, 1.0])
    out = compute_ifpo_advantages(scores, [0] * 4, [1, 0, 1, 1], norm_by_std=False)
    torch.testing.assert_close(
        out, torch.tensor([0.25 * 2 / 3, -0.75 * 2, 0.25 * 2 / 3, 0.25 * 2 / 3])
    )


def test_batch_scope_uses_batch_frequencies():
    # Batch: 1 direct out of 4 -> direct weight 4/(2*1) = 2, consulted 4/(2*3) = 2/3, although
    # group "b" alone has a single mode (which group scope would leave at weight 1).
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    ids = np.array(["a", "a", "b", "b"], dtype=object)
    modes = torch.tensor([True, False, True, True])
    grpo = compute_ifpo_advantages(scores, ids, torch.zeros(4, dtype=torch.bool))
    batch = compute_ifpo_advantages(scores, ids, modes, scope="batch")
    group = compute_ifpo_advantages(scores, ids, modes, scope="group")
    torch.testing.assert_close(
        batch, grpo * torch.tensor([2 / 3, 2, 2 / 3, 2 / 3], dtype=torch.float64)
    )
    torch.testing.assert_close(group[2:], grpo[2:])


def test_positive_only_leaves_negative_advantages_alone():
    scores = torch.tensor([1.0, 0.0, 1.0, 1.0])
    full = compute_ifpo_advantages(scores, [0] * 4, [1, 0, 1, 1])
    positive = compute_ifpo_advantages(scores, [0] * 4, [1, 0, 1, 1], apply_to="positive")
    grpo = compute_ifpo_advantages(scores, [0] * 4, [0, 0, 0, 0])
    assert positive[1] == grpo[1] and full[1] == 2 * grpo[1]
    torch.testing.assert_close(positive[[0, 2, 3]], full[[0, 2, 3]])


def test_max_weight_clips_the_minority_weight():
    # 1 direct out of 8: w = 8 / (2 * 1) = 4, clipped to 2; the majority's 8/14 is untouched.
    scores = torch.tensor([1.0] + [0.0] * 7, dtype=torch.float64)
    modes = [0] + [1] * 7
    grpo = compute_ifpo_advantages(scores, [0] * 8, [0] * 8)
    clipped = compute_ifpo_advantages(scores, [0] * 8, modes, max_weight=2)
    torch.testing.assert_close(
        clipped, grpo * torch.tensor([2.0] + [8 / 14] * 7, dtype=torch.float64)
    )


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.integers(0, 3)),
        min_size=1,
        max_size=40,
    ),
    scope=st.sampled_from(["group", "batch"]),
    apply_to=st.sampled_from(["all", "positive"]),
    max_weight=st.sampled_from([None, 1.0, 2.5]),
    norm_by_std=st.booleans(),
)
def test_matches_plain_python_reference(data, scope, apply_to, max_weight, norm_by_std):
    ids = [f"uid-{g}" for g, _, _ in data]
    scores = [r for _, r, _ in data]
    counts = [c for _, _, c in data]
    out = compute_ifpo_advantages(
        torch.tensor(scores, dtype=torch.float64),
        np.array(ids, dtype=object),
        torch.tensor(counts),
        scope=scope,
        apply_to=apply_to,
        max_weight=max_weight,
        norm_by_std=norm_by_std,
    )
    expected = reference_ifpo(
        scores, ids, [c > 0 for c in counts], scope, apply_to, max_weight, norm_by_std
    )
    torch.testing.assert_close(
        out, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=30))
def test_group_weights_average_one(data):
    ids = torch.tensor([g for g, _ in data])
    modes = torch.tensor([m for _, m in data])
    # Continuous random scores: no GRPO advantage is exactly zero, so w_i = A_i / Â_i.
    scores = torch.rand(len(data), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights = compute_ifpo_advantages(scores, ids, modes) / compute_ifpo_advantages(
        scores, ids, torch.zeros_like(modes)
    )
    for g in ids.unique():
        members = ids == g
        if members.sum() > 1:
            assert weights[members].mean().item() == pytest.approx(1.0)


def test_group_id_types_agree():
    scores = torch.tensor([0.0, 1.0, 1.0, 0.5, 0.2, 0.9])
    modes = torch.tensor([1, 0, 2, 0, 0, 1])
    labels = ["x", "x", "y", "y", "x", "y"]
    as_ints = [0, 0, 1, 1, 0, 1]
    results = [
        compute_ifpo_advantages(scores, labels, modes),
        compute_ifpo_advantages(scores, np.array(labels, dtype=object), modes),
        compute_ifpo_advantages(scores, torch.tensor(as_ints), modes),
        compute_ifpo_advantages(scores, np.array(as_ints), modes),
        compute_ifpo_advantages(scores, labels, modes > 0),
        compute_ifpo_advantages(scores, labels, modes.tolist()),
    ]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_is_preserved(dtype):
    out = compute_ifpo_advantages(
        torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=dtype), [0] * 4, [2, 0, 3, 1]
    )
    assert out.dtype == dtype
    torch.testing.assert_close(
        out.double(),
        torch.tensor([1 / 3, -3.0, 1 / 3, 1 / 3], dtype=torch.float64),
        rtol=1e-2,
        atol=1e-2,
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(256, generator=gen)
    ids = torch.randint(0, 32, (256,), generator=gen)
    mask = (torch.rand(256, 64, generator=gen) < 0.7).long()
    counts = lookup_counts_from_mask(mask)
    cpu = compute_ifpo_advantages(scores, ids, counts)
    gpu = compute_ifpo_advantages(scores.cuda(), ids.cuda(), lookup_counts_from_mask(mask.cuda()))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ([1, 1, 1, 1, 1, 1], 0),  # direct answer, no padding
        ([1, 1, 1, 0, 0, 0], 0),  # trailing padding
        ([0, 0, 1, 1, 0, 0], 0),  # leading boundary zeros + padding
        ([1, 0, 0, 1, 1, 0], 1),  # one tool response
        ([0, 1, 0, 1, 0, 1], 2),  # leading zero, two tool responses
        ([1, 0, 1, 0, 1, 0], 2),
        ([0, 0, 0, 0, 0, 0], 0),  # empty response
    ],
)
@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.bool])
def test_lookup_counts_from_mask(row, expected, dtype):
    mask = torch.tensor([row], dtype=dtype)
    counts = lookup_counts_from_mask(mask)
    assert counts.dtype == torch.int64 and counts.tolist() == [expected]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=50), min_size=1, max_size=8).filter(
        lambda rows: len({len(r) for r in rows}) == 1
    )
)
def test_lookup_counts_match_run_length_reference(rows):
    def reference(row):
        runs = [value for i, value in enumerate(row) if i == 0 or row[i - 1] != value]
        ones = runs.count(True)
        return max(ones - 1, 0)

    assert lookup_counts_from_mask(torch.tensor(rows)).tolist() == [reference(r) for r in rows]


def test_lookup_counts_long_dense_and_strided_masks():
    # Every 8-column word full of run starts (alternating 1, 0) and full of ones; widths that are
    # and are not multiples of 8; a non-contiguous view; integer values other than 1.
    for width in (4096, 4093):
        alternating = (torch.arange(width) % 2 == 0).long()
        assert lookup_counts_from_mask(alternating[None]).item() == (width + 1) // 2 - 1
        assert lookup_counts_from_mask(torch.ones(3, width, dtype=torch.int64)).tolist() == [0] * 3
    mask = torch.tensor([[1, 0, 1, 0, 1], [0, 2, 0, 0, 3]]).t().contiguous().t()
    assert not mask.is_contiguous()
    assert lookup_counts_from_mask(mask).tolist() == [2, 1]
    assert lookup_counts_from_mask(torch.zeros(3, 0)).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": "prompt"}, "^scope: Input should be 'group' or 'batch'"),
        ({"apply_to": "negative"}, "^apply_to: Input should be 'all' or 'positive'"),
        ({"max_weight": 0.5}, "^max_weight: Input should be greater than or equal to 1"),
        ({"max_weight": True}, "^max_weight: Input should be a valid number"),
        ({"eps": -1.0}, "eps must be"),
    ],
)
def test_invalid_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_ifpo_advantages(torch.zeros(2), [0, 0], [0, 1], **kwargs)


def test_invalid_inputs_are_named():
    with pytest.raises(ValueError, match=r"group_ids must have shape \(3,\)"):
        compute_ifpo_advantages(torch.zeros(3), [0, 0], [0, 1, 0])
    with pytest.raises(ValueError, match=r"modes must have shape \(2,\)"):
        compute_ifpo_advantages(torch.zeros(2), [0, 0], [0, 1, 0])
    with pytest.raises(ValueError, match="negative lookup count"):
        compute_ifpo_advantages(torch.zeros(2), [0, 0], [0, -1])
    with pytest.raises(TypeError, match="modes must be bool or integer"):
        compute_ifpo_advantages(torch.zeros(2), [0, 0], [0.5, 1.0])
    with pytest.raises(TypeError, match="floating-point"):
        compute_ifpo_advantages(torch.tensor([1, 0]), [0, 0], [0, 1])
    with pytest.raises(ValueError, match="scores must be a 1-D tensor"):
        compute_ifpo_advantages(torch.zeros(2, 3), [0, 0], [0, 1])
    unhashable = np.empty(2, dtype=object)
    unhashable[0], unhashable[1] = ["a"], ["b"]
    with pytest.raises(ValueError, match="group_ids must be hashable"):
        compute_ifpo_advantages(torch.zeros(2), unhashable, [0, 1])
    with pytest.raises(ValueError, match="response_mask must be a 2-D"):
        lookup_counts_from_mask(torch.ones(5))


def test_group_ids_of_any_hashable_kind_form_the_same_groups():
    scores = torch.tensor([1.0, 0.0, 0.5, 2.0, 1.0, 0.0])
    modes = [1, 0, 0, 1, 0, 1]
    expected = compute_ifpo_advantages(scores, torch.tensor([0, 0, 1, 1, 2, 2]), modes)
    for ids in (
        np.array(["b", "b", "a", "a", 7, 7], dtype=object),  # mixed types: equal ids group
        ["x", "x", "y", "y", "z", "z"],
        np.array([9, 9, 3, 3, 5, 5]),
        np.array(["u2", "u2", "u1", "u1", "u0", "u0"]),  # numpy str dtype, not object
    ):
        torch.testing.assert_close(compute_ifpo_advantages(scores, ids, modes), expected)


def test_dynamics_study_tiny_run(tmp_path):
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "ifpo_dynamics.py"),
            "--out",
            str(out),
            "--steps",
            "40",
            "--seeds",
            "2",
            "--prompts",
            "16",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    png = (out / "dynamics.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    summary = (out / "summary.txt").read_text()
    assert summary == result.stdout.split("wrote ")[0]
    labels = ("GRPO", "GRPO, 2x lr", "IFPO", "IFPO positive-only", "IFPO batch scope")
    for label in (*labels, "IFPO max_weight=2"):
        (row,) = [line for line in summary.splitlines() if line.startswith(f"{label:<20} ")]
        harmful, benign, math_ = (float(x) for x in row[20:].split()[:3])
        assert all(0.0 <= rate <= 1.0 for rate in (harmful, benign, math_)), row
        # Lookups help on harmful prompts: every variant raises that rate from p0 = 0.9.
        assert harmful > 0.9, row
    assert "What it does not show" in summary


@pytest.mark.parametrize("scope", ["group", "batch"])
def test_empty_batch_gives_empty_advantages(scope):
    out = compute_ifpo_advantages(torch.zeros(0, dtype=torch.float64), [], [], scope=scope)
    assert out.shape == (0,) and out.dtype == torch.float64
