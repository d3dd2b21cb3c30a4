"""Benchmark: CLI start-up. `opmerge plan --T 64 --lam 0.5 --json` against `python -c "import numba"`,
both run here as fresh processes, interleaved, best of N.

Targets: <= 0.5 s wall and <= 3x the numba import.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_cli.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

PLAN = [sys.executable, "-m", "opmerge_core", "plan", "--T", "64", "--lam", "0.5", "--json"]
NUMBA = [sys.executable, "-c", "import numba"]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    plan, numba = [], []
    for _ in range(args.repeat):
        plan.append(wall(PLAN))
        numba.append(wall(NUMBA))
    p, n = min(plan), min(numba)
    print(f"opmerge plan --T 64 --lam 0.5 --json: {p:.3f} s (target 0.5 s: {p / 0.5:.2f} of it)")
    print(f"python -c 'import numba':             {n:.3f} s")
    print(f"ratio plan / numba import: {p / n:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
