"""Phase diagrams (THEORY §5): the optimal plan and every named strategy over a λ grid × list of T."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from opmerge_core.basics.validation import check_lam, check_T
from opmerge_core.theory import planner, plans
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.thresholds import lam_B, lam_V

if TYPE_CHECKING:
    from distributed import Client

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


def _check_grid(lams: np.ndarray, Ts: list[int]) -> tuple[np.ndarray, list[int]]:
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
    lams, Ts = _check_grid(lams, Ts)
    model = model or Model()
    frames = [compare(model.at(T), lams) for T in Ts]
    return pd.concat(frames, ignore_index=True)


def thresholds(Ts: list[int], model: Model | None = None) -> pd.DataFrame:
    """λ_B(T) (largest λ with BOOT exactly optimal, a certified switch point: ``thresholds.lam_B``) and
    λ_V (A*_1 = 1) of ``model`` (default ``Model()``) for each T."""
    model, rows = model or Model(), []
    for T in Ts:
        setting = model.at(T)
        rows.append({"T": T, "lam_B": lam_B(setting), "lam_V": lam_V(setting)})
    return pd.DataFrame(rows)


def sweep_on_cluster(client: Client, lams: np.ndarray, Ts: list[int],
                     model: Model | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``phase_sweep`` and ``thresholds`` spread over a Dask cluster (``client``: a
    ``distributed.Client``), one task per T, the largest (one DP costs ∝ T³) first. Each task is the
    local run's own batch over λ, so the result is bit for bit the local one."""
    lams, Ts = _check_grid(lams, Ts)
    model = model or Model()
    order = sorted(range(len(Ts)), key=lambda i: -Ts[i])
    parts = client.map(compare, [model.at(Ts[i]) for i in order], [lams] * len(Ts), pure=False)
    limits = client.map(thresholds, [[Ts[i]] for i in order], model=model, pure=False)
    back = np.argsort(order)
    frames, rows = client.gather(parts), client.gather(limits)
    return (pd.concat([frames[j] for j in back], ignore_index=True),
            pd.concat([rows[j] for j in back], ignore_index=True))
