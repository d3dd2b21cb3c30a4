"""Theory results for the pages, cached (bounded) and shared by every session: the DP-optimal plan,
strategy curves, thresholds, the phase diagram, per-direction and shared plans, plan trees and tables.

Cheap results are computed in the server; heavy ones (large T, grids) on the compute backend
(``backend.shared_result``: None while they compute). Cached calls take the frozen ``Setting`` (or its
``Model`` for results over many T) as their key.

Every rerun of a page asks for its views again, so their caches are plain ``functools.lru_cache``s
shared by the sessions of the process: ``st.cache_data`` would hash the arguments with Streamlit's
hasher and unpickle a copy of the result on every call (1–2 ms each, several per rerun: half the
home page's server CPU under load, bench_load + py-spy). The results are shared, so they are never
mutated (``figures.add_lam_line`` and ``add_phase_point`` return new specs; tables are Arrow tables).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import streamlit as st

from opmerge_core import figures
from opmerge_core.theory import planner, plans, sweep, value_sets
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.shared_plan import SharedPlan, shared_plan
from opmerge_core.theory.thresholds import switch_points
from opmerge_dashboard.backend import shared_result
from opmerge_dashboard.params import LAM_GRID, LAM_MAX, LAM_MIN

# λ grids as tuples: hashable, so a result's cache key is memoised (compute.result_key)
CURVE_LAMS = tuple(np.geomspace(LAM_MIN, LAM_MAX, 61).tolist())   # strategy curves (DPs only in (1, λ_V))
PHASE_LAMS = tuple(np.geomspace(LAM_MIN, LAM_MAX, 41).tolist())
CURVE_GRID, PHASE_GRID = (f"{LAM_MIN:g}:{LAM_MAX:g}:{len(lams)}:log"
                          for lams in (CURVE_LAMS, PHASE_LAMS))
PHASE_TS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)  # larger T: most of the cold time
IN_PROCESS_T_MAX = 256   # one DP up to here costs a few ms: computed in the server, above on a worker


@dataclass(frozen=True)
class Data:
    """An argument left out of a memo's key (``st.cache_data``'s leading underscore): all ``Data``
    are equal. Only for data that the other arguments determine (e.g. the curves of a setting)."""

    value: Any = field(compare=False)


@functools.lru_cache(maxsize=256)
def _optimal_here(setting: Setting, lam: float) -> planner.OptimalPlan:
    return planner.optimal_at(setting, lam)


def _phase_args(model: Model) -> tuple:
    return PHASE_LAMS, PHASE_TS, model


def home_calls(setting: Setting, lam: float) -> list[tuple]:
    """The heavy calls of the home page for a setting (see ``backend.prefetch``). Above
    IN_PROCESS_T_MAX the optimum of each neighbouring λ on the slider's grid comes last: a presenter
    stepping λ with the arrow keys finds the next optimum computed."""
    calls = [(switch_points, setting), (sweep.compare, setting, CURVE_LAMS),
             (sweep.phase, *_phase_args(setting.model))]
    if setting.T > IN_PROCESS_T_MAX:
        calls.insert(0, (planner.optimal_at, setting, float(lam)))
        calls += [(planner.optimal_at, setting, x) for x in grid_neighbours(lam)]
    return calls


def grid_neighbours(lam: float) -> tuple[float, ...]:
    """The λ values one step left and right of ``lam`` on the slider's grid (LAM_GRID)."""
    i = min(range(len(LAM_GRID)), key=lambda k: abs(LAM_GRID[k] - lam))
    return tuple(LAM_GRID[k] for k in (i - 1, i + 1) if 0 <= k < len(LAM_GRID))


def optimal(setting: Setting, lam: float) -> planner.OptimalPlan | None:
    """The DP-optimal plan (None while a large-T DP computes on the backend)."""
    if setting.T <= IN_PROCESS_T_MAX:
        return _optimal_here(setting, lam)
    return shared_result(planner.optimal_at, setting, float(lam), label=f"Optimal plan at T = {setting.T}")


def compare(setting: Setting, lams: tuple[float, ...]) -> pd.DataFrame | None:
    return shared_result(sweep.compare, setting, np.asarray(lams), label=f"Strategies at T = {setting.T}")


def curves(setting: Setting) -> pd.DataFrame | None:
    return shared_result(sweep.compare, setting, CURVE_LAMS, label=f"Strategy curves at T = {setting.T}")


def thresholds(setting: Setting) -> tuple[float, float] | None:
    return shared_result(switch_points, setting, label=f"Thresholds λ_B(T), λ_V at T = {setting.T}")


def phase(model: Model) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    return shared_result(sweep.phase, *_phase_args(model),
                 label="λ × T phase diagram (computed once for everyone, then cached)")


def per_direction(setting: Setting, lams: np.ndarray) -> tuple[list[str], dict[float, float]] | None:
    return shared_result(sweep.per_direction, setting, np.asarray(lams, dtype=float),
                 label=f"Per-direction DP for {np.unique(lams).size} eigenvalues")


def shared(setting: Setting, lams: tuple[float, ...]) -> SharedPlan | None:
    return shared_result(shared_plan, setting, np.asarray(lams),
                 label=f"Shared plan for {len(lams)} directions (Pareto DP)")


# Figures that do not depend on λ are cached as plain specs (keyed by the setting alone: the data
# comes from the backend's results for that setting); the page adds the λ marker and builds the figure
# without re-validation (figures.from_dict), which keeps a λ change cheap.
def curves_spec(setting: Setting, df: pd.DataFrame, lam_B: float, lam_V: float) -> dict:
    return _curves_spec(setting, lam_B, lam_V, Data(df))


@functools.lru_cache(maxsize=64)
def _curves_spec(setting: Setting, lam_B: float, lam_V: float, df: Data) -> dict:
    return figures.plain_spec(figures.strategy_curves(df.value, None, lam_B, lam_V))


def phase_spec(model: Model, ph: pd.DataFrame, th: pd.DataFrame) -> dict:
    return _phase_spec(model, Data((ph, th)))


@functools.lru_cache(maxsize=16)
def _phase_spec(model: Model, data: Data) -> dict:
    return figures.plain_spec(figures.phase_diagram(*data.value))


def not_proven(key: tuple, df: pd.DataFrame) -> int:
    """Rows of ``df`` (the result of the views call ``key``) whose DP value is the best known, not
    proven optimal (column ``exact`` false)."""
    return _not_proven(key, Data(df))


@functools.lru_cache(maxsize=256)
def _not_proven(key: tuple, df: Data) -> int:
    return int((~df.value["exact"]).sum())


@functools.lru_cache(maxsize=128)
def span_values(setting: Setting, plan_text: str, lam: float) -> dict:
    plan = plans.parse(plan_text, setting.T)
    return {span: float(v[0]) for span, v in plans.evaluate_spans(plan, setting, [lam]).items()}


# The λ slider has LAM_GRID's 40 values, so every (setting, λ) view below is computed once for all
# sessions: a classroom moving λ mostly reads these caches.
@functools.lru_cache(maxsize=1024)
def plan_view(setting: Setting, lam: float, plan_text: str, title: str) -> tuple[dict, pd.DataFrame]:
    """A plan's tree figure (plain spec) at one λ and the span values behind it."""
    values = span_values(setting, plan_text, lam)
    tree_df = pd.DataFrame([{"e": e, "s": s, "kind": "teacher step" if s - e == 1 else "student",
                             "value": v} for (e, s), v in sorted(values.items())])
    return figures.plain_spec(figures.plan_tree(plans.parse(plan_text, setting.T), values, title)), tree_df


@functools.lru_cache(maxsize=1024)
def strategies_table(setting: Setting, lam: float, dp_label: str, dp_value: float,
                     dp_w2: float) -> pa.Table:
    """Every named strategy's one-step value and W2 at one λ, next to the DP optimum (an Arrow table:
    ``st.dataframe`` shows it without converting a DataFrame on every rerun)."""
    rows = []
    for name, plan in plans.named_plans(setting.T).items():
        v = float(plan.evaluate(setting, [lam])[0])
        rows.append({"strategy": plans.STRATEGY_LABELS[name], "value": v,
                     "W2": float(setting.w2([v], [lam])[0])})
    rows.append({"strategy": f"DP optimum ({dp_label})", "value": dp_value, "W2": dp_w2})
    table = pd.DataFrame(rows)
    table["gap to DP"] = table["W2"] - dp_w2
    return pa.Table.from_pandas(table, preserve_index=False)


ENUMERATE_T_MAX = value_sets.ALL_VALUES_T_MAX  # all plans' values: 103,049 plans at T = 10


@st.cache_data(max_entries=32, show_spinner="Evaluating every plan …")
def all_plan_values(setting: Setting, lam: float) -> np.ndarray:
    return value_sets.all_plan_values(setting, lam)
