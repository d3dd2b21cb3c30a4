"""The switch points of the optimal regime (THEORY §5): λ_V in closed form, λ_B(T) by a certified
search over exact DPs (every probe is ``planner.optimal`` at one λ)."""

from __future__ import annotations

import numpy as np

from opmerge_core.basics.validation import check_lam
from opmerge_core.theory import dp, plans
from opmerge_core.theory.planner import REL_TOL, optimal_and_extremes
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting

CROSSING_T_MIN = 384   # from this T on a DP costs more than the plan evaluations of a crossing search
KERNELS_T_MIN = 17     # from this T on a threshold (~15-25 DPs) is worth the compiled kernels' start-up


def lam_V(setting: Setting) -> float:
    """λ at which A*_1 = 1 (A*_1 ≥ 1 iff λ ≥ λ_V): σ_1² / (α_1 (1 − α_1)); 1 + 1/α_1 under VP."""
    a1, s1 = setting.alpha[1], setting.sigma[1]
    return float(s1**2 / (a1 * (1.0 - a1))) if 0 < a1 < 1 else float("inf")


def switch_points(setting: Setting) -> tuple[float, float]:
    """(λ_B(T), λ_V): BOOT is exactly optimal up to the first, vanilla from the second on."""
    return lam_B(setting), lam_V(setting)


def _probe(setting: Setting, lam: float) -> tuple[bool, Plan | None]:
    """(is BOOT the optimal regime at λ, the min-plan if the min-DP ran)."""
    best, sides = optimal_and_extremes(setting, check_lam(lam), exact_mixed=False, bounds=False)
    return best[0].regime == "boot", sides.cache.get((False, 0), (None, None))[1]


def lam_B(setting: Setting, lo: float = 0.05, hi: float | None = None, rtol: float = 1e-6) -> float:
    """The largest λ for which sequential BOOT is exactly optimal: a switch point of the regime,
    returned as the lower end λ of a bracket [λ, λ'] with λ' − λ <= rtol·λ', BOOT optimal at λ and
    not at λ' (as a bisection on the regime would return; every probe is a full exact DP).

    Each probe runs one extreme only (``planner.optimal(..., bounds=False)``). For large T the probes are
    placed by certificates rather than halving: BOOT stops being optimal where its value crosses
    the target, or where another plan q (the min-plan the DP found on the non-BOOT side) overtakes
    it. Those crossings are located without any DP (plans and P are O(T) to evaluate) and the DP
    at the crossing either moves the upper end there (with a new challenger q) or, BOOT still
    optimal, the lower end; the result is certified by the two DPs at its bracket either way.
    """
    if setting.T >= KERNELS_T_MIN:
        dp.load_kernels()
    is_boot, _ = _probe(setting, lo)
    if not is_boot:
        return float("nan")
    v = lam_V(setting)
    hi = hi or max(2.0 * v if np.isfinite(v) else 10.0, 4.0)
    is_boot, challenger = _probe(setting, hi)
    if is_boot:
        return float("inf")
    crossings = setting.T >= CROSSING_T_MIN
    below = None             # after the upper end moved by d, a probe 2d below it
    while hi - lo > rtol * hi:
        x = below if below is not None else _first_crossing(setting, lo, hi, challenger) \
            if crossings else None
        if x is None or not lo < x < hi:
            x = 0.5 * (lo + hi)
        x = min(max(x, lo + 0.5 * rtol * hi), hi - 0.5 * rtol * hi)   # progress of >= rtol/2
        is_boot, q = _probe(setting, x)
        below = None
        if is_boot:
            lo = x
        else:
            if crossings and x - 2 * (hi - x) > lo:
                below = x - 2 * (hi - x)
            hi, challenger = x, q
    return lo


def _first_crossing(setting: Setting, lo: float, hi: float, challenger: Plan | None) -> float | None:
    """Just below the first λ in (lo, hi) where BOOT falls below the target or ``challenger`` falls
    below BOOT, to about (hi − lo)/65²; None if neither happens on the grid (or already at lo)."""
    boot = plans.named_plans(setting.T)["boot"]
    rivals = [challenger] if challenger is not None and challenger != boot else []
    for _ in range(2):
        grid = np.linspace(lo, hi, 65)
        b = boot.evaluate(setting, grid)
        ok = _at_least(b, setting.target(grid))
        for q in rivals:
            ok &= _at_least(q.evaluate(setting, grid), b)
        if ok.all() or not ok[0]:
            return None
        k = int(np.argmin(ok))           # the first grid point where BOOT is beaten
        lo, hi = float(grid[k - 1]), float(grid[k])
    return lo


def _at_least(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x >= y up to the tolerance the regime decisions use (``planner.close``)."""
    return (x >= y) | (np.abs(x - y) <= REL_TOL * np.maximum(1.0, np.maximum(np.abs(x), np.abs(y))))
