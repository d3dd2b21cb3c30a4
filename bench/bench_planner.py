"""Benchmark: the planner (THEORY §4–§5) against baselines measured in this same run.

1. kernel: both extremes with plans (``dp.extremes``) against a plain Python loop over the same
   recurrence (T <= 256; beyond, the loop is extrapolated as T³), and against the hardware limit:
   T³/6 (e, m, s) triples per extreme, each two fused steps (an FMA or a multiply, then a min/max),
   at ``TRIPLES_PER_CYCLE`` triples per cycle and core (see ``limit_note``).
2. curves: ``sweep.compare`` on the dashboard's λ grid against one full DP (both extremes) per λ
   (the baselines run without the certificates: ``full_dps``).
3. λ_B(T): the certified crossings of ``thresholds.lam_B`` against a bisection over full DPs.
4. the shared plan on the CelebA latent spectrum (d = 128): the beam DP against the former
   heuristic (Pareto fronts cut to 8) at a T where that finishes, and the beam's gap at T = 64.
5. the phase diagram (``phase_sweep`` + ``thresholds``, the dashboard's grid) against one full DP
   per point and bisection thresholds.

Targets: >= 500x the loop at T = 256, T = 1024 <= 0.2 s, T = 4096 <= 10 s, shared
plan at T = 64 <= 5 s cold. The machine is shared: timings are the best of a few runs.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_planner.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time
from pathlib import Path

import numpy as np

from opmerge_core.theory import dp, planner, plans, shared_plan, sweep, thresholds
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shrinkage import merge_coefficients

TRIPLES_PER_CYCLE = 4.0   # per core: 2 FMA/mul + 2 min/max pipes × 4 doubles (256-bit; Zen 4 splits zmm)
CURVE_LAMS = {256: 61, 512: 31, 1024: 21}            # the dashboard's strategy-curve grids
PHASE_TS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)
FORMER_FRONT_MAX = 8       # the former shared-plan heuristic: Pareto fronts cut to 8 by score
STATS = Path(__file__).resolve().parents[1] / "assets" / "celeba_latent_stats.npz"


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


@contextlib.contextmanager
def full_dps():
    """The former path for baselines: every extreme by its DP (no certificate)."""
    saved = dp.LazyExtremes.certificate
    dp.LazyExtremes.certificate = lambda self, is_max, j: None
    try:
        yield
    finally:
        dp.LazyExtremes.certificate = saved


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu() -> tuple[str, float, str]:
    """(model, MHz, SIMD flags) from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", text).group(1)
    mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", text).group(1))
    flags = re.search(r"flags\s*:\s*(.*)", text).group(1).split()
    simd = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512vl") if f in flags)
    return model, mhz, simd


def limit_s(T: int, mhz: float) -> float:
    """Hardware limit of both extremes on one core: 2 · (T³/6) triples at TRIPLES_PER_CYCLE."""
    return 2 * T**3 / 6 / (TRIPLES_PER_CYCLE * mhz * 1e6)


def bench_kernel(Ts: tuple[int, ...], mhz: float) -> None:
    print("\n1. kernel: both extremes + plans (planner time / baseline = ratio)")
    dp.load_kernels()          # the compiled planner at every T, as servers and cluster workers run it
    loop_256 = None
    for T in Ts:
        setting = Setting(T=T)
        dp._side(setting, 0.5, False, False)                     # load/compile outside timing
        fast = best_of(lambda s=setting: dp.extremes(s, 0.5), 9 if T <= 256 else 3 if T <= 1024 else 1)
        if T <= 256:
            lo, hi = loop_dp(setting, 0.5)
            ex = dp.extremes(setting, 0.5)
            assert np.isclose(lo, ex.lo[0], rtol=1e-12) and np.isclose(hi, ex.hi[0], rtol=1e-12)
            slow = best_of(lambda s=setting: loop_dp(s, 0.5), 2)
            loop_256 = slow * (256 / T) ** 3
            base = f"loop {slow:.3f} s = {slow / fast:.0f}x"
        else:
            base = f"loop (T³ extrapolated) {loop_256 * (T / 256) ** 3:.0f} s = " \
                   f"{loop_256 * (T / 256) ** 3 / fast:.0f}x"
        lim = limit_s(T, mhz)
        print(f"   T = {T:>5}: {fast:9.4f} s / {base}; hardware limit {lim:.4f} s "
              f"(planner at {lim / fast:.0%} of it)")


def bench_curves(T: int) -> None:
    setting = Setting(T=T)
    lams = np.geomspace(0.05, 20, CURVE_LAMS[T])
    new = best_of(lambda: sweep.compare(setting, lams), 1)
    with full_dps():
        old = best_of(lambda: [planner.optimal(setting, lam) for lam in lams], 1)
    print(f"\n2. curves T = {T}, {lams.size} λ: compare {new:.2f} s / one full DP per λ {old:.2f} s "
          f"= {old / new:.1f}x faster")


def bisection_lam_B(setting: Setting, lo: float = 0.05, hi: float = 4.0, rtol: float = 1e-6) -> float:
    """The former λ_B: bisection on the regime, one full DP (both extremes) per step."""
    def boot(lam: float) -> bool:
        with full_dps():
            return planner.optimal(setting, lam, exact_mixed=False)[0].regime == "boot"

    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if boot(mid) else (lo, mid)
    return lo


def bench_lam_B(T: int) -> None:
    setting = Setting(T=T)
    t0 = time.perf_counter()
    new = thresholds.lam_B(setting)
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    old = bisection_lam_B(setting, hi=max(2 * thresholds.lam_V(setting), 4.0))
    t_old = time.perf_counter() - t0
    print(f"\n3. λ_B(T = {T}) = {new:.7f} (bisection {old:.7f}): {t_new:.2f} s / bisection "
          f"{t_old:.2f} s = {t_old / t_new:.1f}x faster")


def bench_shared(T_base: int, T_big: int) -> None:
    lam = np.load(STATS, allow_pickle=False)["eigvals"]
    print(f"\n4. shared plan, CelebA spectrum d = {lam.size}")
    for T in (T_base, T_big):
        setting = Setting(T=T)
        t0 = time.perf_counter()
        sp = shared_plan.shared_plan(setting, lam)
        t_new = time.perf_counter() - t0
        line = (f"   T = {T:>3}: {sp.method} {t_new:.2f} s, W2 {sp.w2:.6f}, lower bound "
                f"{sp.lower_bound:.6f}, gap {sp.gap:.6f} ({sp.gap / sp.w2:.1%}), exact {sp.exact}")
        if T == T_base:
            t0 = time.perf_counter()
            ex = dp.extremes(setting, lam)
            _, values = shared_plan.pareto_shared(setting, lam, ex, FORMER_FRONT_MAX,
                                               truncate=True)
            t_old = time.perf_counter() - t0
            w2_old = float(np.sqrt(shared_plan.objective(setting, lam, values)))
            line += f"; former cut fronts {t_old:.2f} s (W2 {w2_old:.6f}) = {t_old / t_new:.1f}x faster"
        else:
            line += f"; target 5 s = {5 / t_new:.1f}x margin"
        print(line)


def bench_phase() -> None:
    lams = np.geomspace(0.05, 20, 41)
    t0 = time.perf_counter()
    sweep.phase_sweep(lams, list(PHASE_TS))
    sweep.thresholds(list(PHASE_TS))
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    for T in PHASE_TS:
        setting = Setting(T=T)
        with full_dps():
            planner.optimal(setting, lams)
        for p in plans.named_plans(T).values():
            p.evaluate(setting, lams)
        bisection_lam_B(setting, hi=max(2 * thresholds.lam_V(setting), 4.0))
    t_old = time.perf_counter() - t0
    print(f"\n5. phase diagram ({lams.size} λ × {len(PHASE_TS)} T, with thresholds): {t_new:.2f} s / "
          f"full DPs + bisection {t_old:.2f} s = {t_old / t_new:.1f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip T = 4096 and the phase diagram")
    args = ap.parse_args()
    model, mhz, simd = cpu()
    print(f"CPU {model} at {mhz:.0f} MHz, SIMD {simd}; numba compiles for the host CPU. Limit: "
          f"{TRIPLES_PER_CYCLE:g} triples/cycle/core (2 FMA/mul + 2 min/max pipes × 4 doubles).")
    bench_kernel((64, 256, 1024) if args.quick else (64, 256, 1024, 4096), mhz)
    bench_curves(512 if args.quick else 1024)
    bench_lam_B(256 if args.quick else 1024)
    bench_shared(24, 64)
    if not args.quick:
        bench_phase()


if __name__ == "__main__":
    main()
