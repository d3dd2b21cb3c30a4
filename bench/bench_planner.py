"""Benchmark: the exact min/max DP (THEORY §4) against a straightforward loop implementation.

Prints, for T in {64, 256, 1024, 4096}, the compiled planner's time (both extremes, with plans) and,
for T <= 256, the time of a plain Python loop over the same recurrence run in this same process,
with their ratio. Targets (issue 2, one core): T = 1024 <= 0.2 s, T = 4096 <= 15 s, >= 500x at T = 256.

    .venv/bin/python bench/bench_planner.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from opmerge_core import planner
from opmerge_core.setting import Setting
from opmerge_core.shrinkage import merge_coefficients


def loop_dp(setting: Setting, lam: float) -> tuple[float, float]:
    """The recurrence written the obvious way: nested Python loops over lists (teacher init)."""
    T = setting.T
    A = setting.A_star([lam])[:, 0].tolist()
    a, b, _, _ = (x.tolist() for x in merge_coefficients(setting.init, setting.rho([lam])[:, 0]))
    result = []
    for sign in (1.0, -1.0):                        # min, then max (as min of the negation)
        W = [[0.0] * (T + 1) for _ in range(T + 1)]
        U = [[0.0] * (T + 1) for _ in range(T + 1)]
        for s in range(1, T + 1):
            W[s - 1][s] = U[s - 1][s] = A[s - 1]
        for length in range(2, T + 1):
            for e in range(T - length + 1):
                s = e + length
                best_w = best_run = float("inf")
                for m in range(e + 1, s):
                    w = sign * W[m][s] * (b[s] + a[s] * U[e][m])
                    if w < best_w:
                        best_w = w
                    run = sign * W[m][s] * U[e][m]
                    if run < best_run:
                        best_run = run
                W[e][s] = sign * best_w
                U[e][s] = sign * min(best_w, best_run)
        result.append(W[0][T])
    return result[0], result[1]


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip T = 4096")
    args = ap.parse_args()
    planner.extremes(Setting(T=8), 0.5)            # JIT warm-up (cached on disk after first run)
    print(f"{'T':>6} {'planner [s]':>12} {'loop [s]':>10} {'ratio':>8}")
    for T in (64, 256, 1024) if args.quick else (64, 256, 1024, 4096):
        setting = Setting(T=T)
        fast = best_of(lambda s=setting: planner.extremes(s, 0.5), 3 if T <= 1024 else 1)
        if T <= 256:
            lo, hi = loop_dp(setting, 0.5)
            ex = planner.extremes(setting, 0.5)
            assert np.isclose(lo, ex.lo[0], rtol=1e-12) and np.isclose(hi, ex.hi[0], rtol=1e-12)
            slow = best_of(lambda s=setting: loop_dp(s, 0.5), 2)
            print(f"{T:>6} {fast:>12.4f} {slow:>10.3f} {slow / fast:>7.0f}x")
        else:
            print(f"{T:>6} {fast:>12.4f} {'-':>10} {'-':>8}")


if __name__ == "__main__":
    main()
