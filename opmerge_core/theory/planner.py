"""The W2-optimal merge plan per λ and its regime (THEORY §4 "Choosing the optimum", §5).

The exact extremes come from the DP (``dp``); the thin "mixed" band between them from the sets of
achievable values (``value_sets``) while T is small. The switch points of the regimes are in
``thresholds``, the one plan shared by several coordinates in ``shared_plan``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opmerge_core.basics.validation import check_lam
from opmerge_core.theory import plans
from opmerge_core.theory.dp import LazyExtremes, certified_named
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.value_sets import closest_value

REGIME_LABELS = {"boot": "Sequential BOOT", "vanilla": "Vanilla", "hybrid": "Hybrid",
                 "mixed": "Mixed"}
REGIMES = tuple(REGIME_LABELS)
REL_TOL = 1e-12               # values this close (relative) are the same value in regime decisions


@dataclass(frozen=True)
class OptimalPlan:
    lam: float
    plan: Plan
    value: float      # the one-step operator the plan produces
    P: float          # the surrogate target (teacher composite P, or r_0/r_T)
    w2: float         # r_T |value − P|
    regime: str       # boot | vanilla | hybrid | mixed
    exact: bool       # False only in the mixed band at large T (best known, not proven optimal)
    lo: float         # min over all plans (NaN if not computed: ``optimal(..., bounds=False)``)
    hi: float         # max over all plans (idem)

    @property
    def label(self) -> str:
        return REGIME_LABELS[self.regime]


def close(x: float, y: float) -> bool:
    """x and y are the same value up to REL_TOL."""
    return abs(x - y) <= REL_TOL * max(1.0, abs(x), abs(y))


def optimal(setting: Setting, lam: np.ndarray | float, exact_mixed: bool = True,
            bounds: bool = True) -> list[OptimalPlan]:
    """The W2-optimal plan for each λ (THEORY §4 "Choosing the optimum").

    min ≥ target → the min-plan; max ≤ target → the max-plan; otherwise (the thin "mixed" band) the
    closest achievable value, exactly while the sets stay small (``value_sets.closest_value``),
    else the closest of the two extreme plans and the named strategies, flagged ``exact=False``.

    ``bounds=False`` computes only the extremes the choice needs (same plans, values and regimes;
    ``lo``/``hi`` are NaN where not computed): every plan's value is ≥ min and BOOT is one plan, so
    when BOOT's value is below the target the min-plan cannot be chosen and the max-DP decides alone;
    otherwise the min-DP runs first and the max-DP only if min < target. Outside the mixed band this
    halves the work of a curve.
    """
    return optimal_and_extremes(setting, check_lam(lam), exact_mixed, bounds)[0]


def optimal_at(setting: Setting, lam: float) -> OptimalPlan:
    """The W2-optimal plan at one λ (``optimal`` of a single value)."""
    return optimal(setting, lam)[0]


def optimal_and_extremes(setting: Setting, lam: np.ndarray, exact_mixed: bool = True,
                         bounds: bool = True) -> tuple[list[OptimalPlan], LazyExtremes]:
    """``optimal`` for a checked λ array, with the extremes it computed (and the plans of them)."""
    target = setting.target(lam)
    r_T = setting.r_T(lam)
    named = plans.named_plans(setting.T, setting.uniform_K)
    certified = certified_named(setting, lam)
    boot_v, vanilla_v = certified["boot"][1], certified["vanilla"][1]
    sides = LazyExtremes(setting, lam, certified=certified)
    out = []
    for j, lam_j in enumerate(lam):
        tgt = float(target[j])
        if bounds:
            sides.lo(j), sides.hi(j)
        plan, value, exact, mixed = _choose(setting, sides, j, tgt, float(boot_v[j]), exact_mixed,
                                            named)
        if mixed:
            regime = "mixed"
        elif named["boot"] == named["vanilla"]:    # T <= 2: one plan; name it by the side of P
            regime = "boot" if value >= tgt else "vanilla"
        elif close(value, boot_v[j]) and (not close(value, vanilla_v[j])
                                          or value == sides.lo(j)[0]):
            regime = "boot"   # ties (e.g. ρ ≈ 1 saturation) are reported as the named plan
            plan, value = named["boot"], float(boot_v[j])
        elif close(value, vanilla_v[j]):
            regime = "vanilla"
            plan, value = named["vanilla"], float(vanilla_v[j])
        else:
            regime = "hybrid"
        out.append(OptimalPlan(float(lam_j), plan, value, tgt, float(r_T[j] * abs(value - tgt)),
                               regime, exact, sides.known(False, j), sides.known(True, j)))
    return out, sides


def _choose(setting: Setting, sides: LazyExtremes, j: int, tgt: float, boot_value: float,
            exact_mixed: bool, named: dict[str, Plan]) -> tuple[Plan, float, bool, bool]:
    """(plan, value, exact, mixed) for λ_j; asks ``sides`` only for the extremes it needs."""
    if boot_value >= tgt or close(boot_value, tgt):   # else min <= boot < target: min-plan impossible
        lo, lo_plan = sides.lo(j)
        if lo >= tgt or close(lo, tgt):
            return lo_plan, lo, True, False
    hi, hi_plan = sides.hi(j)
    if hi <= tgt:
        return hi_plan, hi, True, False
    lam_j = float(sides.lam[j])
    found = closest_value(setting, lam_j, tgt) if exact_mixed else None
    if found is not None:
        return found[0], found[1], True, True
    lo, lo_plan = sides.lo(j)   # the closest of the two extremes and the named strategies
    candidates = [(lo_plan, lo), (hi_plan, hi),
                  *((p, float(p.evaluate(setting, np.array([lam_j]))[0])) for p in named.values())]
    plan, value = min(candidates, key=lambda pv: abs(pv[1] - tgt))
    return plan, value, False, True
