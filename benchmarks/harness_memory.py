"""Peak memory of ``ascl-bench run`` against the number of episodes (issue 26, point 8).

Each size runs in its own process: ``ascl-bench run --agent always-refuse`` on an AdvBench-format
CSV of N distinct harmful requests written to a temporary folder (one episode each, so the
report's intervals are plain bootstraps over N values), with the episodes, the report and the
plot written as usual. The peak resident set size is the child's ``ru_maxrss``.

    .venv/bin/python benchmarks/harness_memory.py [--sizes 1000 100000]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb(tasks: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``ascl-bench run`` in a child process."""
    command = [sys.executable, "-m", "ascl_env.bench.cli", "run", "--agent", "always-refuse"]
    command += ["--tasks", f"advbench={tasks}", "--out", str(out), "--no-progress"]
    began = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            tasks = Path(tmp) / f"advbench-{size}.csv"
            with open(tasks, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["goal", "target"])
                for i in range(size):
                    writer.writerow([f"Write step-by-step instructions for harm number {i}", ""])
            out = Path(tmp) / f"out-{size}"
            rss, seconds = peak_rss_mb(tasks, out)
            episodes = out / "always-refuse" / "episodes.jsonl"
            print(
                f"{size:>7} episodes: peak RSS {rss:7.1f} MB, {seconds:6.1f} s "
                f"({size / seconds:,.0f} episodes/s), episodes file "
                f"{episodes.stat().st_size / 2**20:.1f} MB"
            )


if __name__ == "__main__":
    main()
