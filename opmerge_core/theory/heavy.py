"""The heavy computations behind the dashboard's figures, as pure functions of plain settings.

Each can take more than ~100 ms (large-T DPs, λ sweeps, thresholds, spectra), so the dashboard never
runs them itself: the compute backend (compute.py) runs them on a worker, shares identical requests
and caches the results for everyone. The math lives in planner.py, thresholds.py and sweep.py (THEORY §4–§5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opmerge_core.theory import planner, sweep
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.thresholds import lam_B, lam_V


def optimal(setting: Setting, lam: float) -> planner.OptimalPlan:
    """The DP-optimal plan at one λ (THEORY §4)."""
    return planner.optimal(setting, lam)[0]


def thresholds(setting: Setting) -> tuple[float, float]:
    """λ_B(T) and λ_V (THEORY §5)."""
    return lam_B(setting), lam_V(setting)


def phase(lams: tuple[float, ...], Ts: tuple[int, ...], model: Model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The λ × T phase diagram of ``model`` and the thresholds of each T (THEORY §5)."""
    return sweep.phase_sweep(np.asarray(lams), list(Ts), model), sweep.thresholds(list(Ts), model)


def per_direction(setting: Setting, lams: np.ndarray) -> tuple[list[str], dict[float, float]]:
    """Each direction's own optimal regime and W2 (THEORY §1, §4): the DP runs only inside the
    transition band (λ_B, λ_V); outside it the regime is known."""
    lams = np.asarray(lams, dtype=float)
    lam_B, lam_V = thresholds(setting)
    distinct = np.unique(lams)
    best = dict(zip(distinct.tolist(), planner.optimal(setting, distinct)))
    regimes = ["boot" if x <= lam_B else "vanilla" if x >= lam_V else best[float(x)].regime
               for x in lams]
    return regimes, {x: b.w2 for x, b in best.items()}
