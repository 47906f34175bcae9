"""IFPO advantage speed vs verl's ``grpo`` and ``grpo_vectorized``, on the same batches, in one run.

    .venv/bin/python benchmarks/advantage_speed.py [--device cpu|cuda] [--threads N]

Each batch looks like a verl multi-turn batch: int64 ``response_mask`` with 0-2 tool responses
(0-runs) between model segments and trailing padding, float32 ``token_level_rewards`` with the
reward on the last model token, and ``index`` an object array of uuid strings (verl's ``uid``).
All three estimators are called through verl's registry with the same arguments, interleaved
round by round so that load from other processes hits them alike. Prints the median time of
each and the ratios IFPO / grpo_vectorized and IFPO / grpo.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import statistics
import time
import uuid
from collections.abc import Callable

import numpy as np
import torch
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

import verl_recipes.ifpo_estimator  # noqa: F401  registers "ifpo" even where entry points are off

SHAPES = ((1024, 4096), (8192, 1024))
GROUP_SIZES = (8, 16)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Make glibc keep freed large blocks in the heap instead of returning them to the OS.

    By default a block above glibc's mmap threshold (the 4-16 MB tensors here) is mmapped on
    allocation and unmapped on free, so every call page-faults its outputs in afresh. On a VM
    that reclaims memory that cost is large and erratic: without this, timings here jump between
    two levels (e.g. grpo_vectorized 7 or 21 ms) from round to round. A caching allocator (CUDA's,
    or jemalloc/tcmalloc on CPU) behaves like this setting. Returns False where it is unavailable.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    )


def make_batch(
    batch_size: int, length: int, group_size: int, seed: int, device: str
) -> dict[str, object]:
    """A verl-like batch: rewards, multi-turn response mask and uid strings."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((batch_size, length), dtype=np.int64)
    last = np.zeros(batch_size, dtype=np.int64)
    for row in range(batch_size):
        pos = int(rng.integers(0, 3))  # Continuous-Token boundary tokens: leading zeros
        for turn in range(int(rng.integers(0, 3)) + 1):
            if turn:
                pos += int(rng.integers(length // 64, length // 16))  # a tool response
            seg = int(rng.integers(length // 32, length // 4))
            if pos >= length:
                break
            mask[row, pos : pos + seg] = 1
            last[row] = min(pos + seg, length) - 1
            pos += seg
    rewards = np.zeros((batch_size, length), dtype=np.float32)
    rewards[np.arange(batch_size), last] = rng.integers(0, 3, batch_size) / 2
    uid_rng = np.random.default_rng(seed + 1)
    uids = [str(uuid.UUID(bytes=uid_rng.bytes(16))) for _ in range(batch_size // group_size)]
    index = np.array([u for u in uids for _ in range(group_size)], dtype=object)
    return {
        "token_level_rewards": torch.from_numpy(rewards).to(device),
        "response_mask": torch.from_numpy(mask).to(device),
        "index": index,
    }


def time_call(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(batch: dict[str, object], device: str, rounds: int, grpo_every: int) -> dict[str, float]:
    """Median seconds per call; the slow loop-based ``grpo`` runs every ``grpo_every`` rounds."""
    config = {"norm_adv_by_std_in_grpo": True, "ifpo": {"scope": "group"}}
    calls = {
        "grpo": lambda: get_adv_estimator_fn("grpo")(**batch),
        "grpo_vectorized": lambda: get_adv_estimator_fn("grpo_vectorized")(**batch),
        "ifpo": lambda: get_adv_estimator_fn("ifpo")(**batch, config=config),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():  # warm-up (allocator, first-call dispatch)
        time_call(fn, device)
    for r in range(rounds):
        for name, fn in calls.items():
            if name == "grpo" and r % grpo_every:
                continue
            times[name].append(time_call(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--grpo-every", type=int, default=1, help="time loop-based grpo less")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc's malloc settings alone (see keep_freed_memory)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)

    name = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    malloc = "glibc defaults"
    if args.device == "cpu" and not args.system_malloc:
        malloc = "freed memory kept" if keep_freed_memory() else "glibc defaults (mallopt failed)"
    print(f"device: {name}, torch {torch.__version__}, rounds {args.rounds}, malloc: {malloc}")
    header = f"{'batch':>12} {'G':>3} {'grpo ms':>9} {'grpo_vec ms':>12} {'ifpo ms':>9}"
    print(header + f" {'ifpo/grpo_vec':>14} {'ifpo/grpo':>10}")
    for bs, length in SHAPES:
        for group_size in GROUP_SIZES:
            batch = make_batch(bs, length, group_size, args.seed, args.device)
            t = bench(batch, args.device, args.rounds, args.grpo_every)
            print(
                f"{bs:>5} x {length:<4} {group_size:>3} {t['grpo'] * 1e3:>9.1f} "
                f"{t['grpo_vectorized'] * 1e3:>12.2f} {t['ifpo'] * 1e3:>9.2f} "
                f"{t['ifpo'] / t['grpo_vectorized']:>14.2f} {t['ifpo'] / t['grpo']:>10.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
