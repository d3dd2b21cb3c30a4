"""Sweeps over λ (THEORY §4–§5): every named strategy against the optimum over a λ grid (``compare``),
phase diagrams over a λ grid × list of T (``phase``), the regime of every direction of a spectrum
(``per_direction``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from opmerge_core.basics.validation import check_lam, check_T
from opmerge_core.theory import planner, plans
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.thresholds import switch_points

SWEEP_POINTS_MAX = 200_000   # λ values × T values accepted in one sweep


def compare(setting: Setting, lam: np.ndarray | float) -> pd.DataFrame:
    """One row per λ: the DP optimum and every named strategy's value, W2 and gap to the optimum
    (only the extremes each choice needs are computed: ``planner.optimal(..., bounds=False)``)."""
    lam = check_lam(lam)
    best = planner.optimal(setting, lam, bounds=False)
    rows = {
        "T": setting.T, "lam": lam, "regime": [b.regime for b in best],
        "exact": [b.exact for b in best], "plan": [b.plan.text for b in best],
        "P": [b.P for b in best], "value_dp": [b.value for b in best], "w2_dp": [b.w2 for b in best],
    }
    for name, plan in plans.named_plans(setting.T, setting.uniform_K).items():
        value = plan.evaluate(setting, lam)
        w2 = setting.w2(value, lam)
        rows[f"value_{name}"] = value
        rows[f"w2_{name}"] = w2
        rows[f"gap_{name}"] = w2 - rows["w2_dp"]
    return pd.DataFrame(rows)


def check_grid(lams: np.ndarray, Ts: list[int]) -> tuple[np.ndarray, list[int]]:
    """A valid λ grid and list of T, bounded to SWEEP_POINTS_MAX points."""
    lams = check_lam(lams)
    Ts = [check_T(T) for T in Ts]
    if not Ts:
        raise ValueError("give at least one T")
    if lams.size * len(Ts) > SWEEP_POINTS_MAX:
        raise ValueError(f"sweep has {lams.size * len(Ts)} points; at most {SWEEP_POINTS_MAX}")
    return lams, Ts


def phase_sweep(lams: np.ndarray, Ts: list[int], model: Model | None = None) -> pd.DataFrame:
    """The λ × T phase diagram of ``model`` (default ``Model()``) as a long DataFrame (one row per (T, λ))."""
    lams, Ts = check_grid(lams, Ts)
    model = model or Model()
    frames = [compare(model.at(T), lams) for T in Ts]
    return pd.concat(frames, ignore_index=True)


def thresholds(Ts: list[int], model: Model | None = None) -> pd.DataFrame:
    """λ_B(T) (largest λ with BOOT exactly optimal, a certified switch point: ``thresholds.lam_B``) and
    λ_V (A*_1 = 1) of ``model`` (default ``Model()``) for each T."""
    model, rows = model or Model(), []
    for T in Ts:
        lo, hi = switch_points(model.at(T))
        rows.append({"T": T, "lam_B": lo, "lam_V": hi})
    return pd.DataFrame(rows)


def phase(lams: tuple[float, ...], Ts: tuple[int, ...], model: Model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The λ × T phase diagram of ``model`` and the thresholds of each T (THEORY §5)."""
    return phase_sweep(np.asarray(lams), list(Ts), model), thresholds(list(Ts), model)


def per_direction(setting: Setting, lams: np.ndarray) -> tuple[list[str], dict[float, float]]:
    """Each direction's own optimal regime and W2 (THEORY §1, §4): the DP runs only inside the
    transition band (λ_B, λ_V); outside it the regime is known."""
    lams = np.asarray(lams, dtype=float)
    lo, hi = switch_points(setting)
    distinct = np.unique(lams)
    best = dict(zip(distinct.tolist(), planner.optimal(setting, distinct)))
    regimes = ["boot" if x <= lo else "vanilla" if x >= hi else best[float(x)].regime for x in lams]
    return regimes, {x: b.w2 for x, b in best.items()}
