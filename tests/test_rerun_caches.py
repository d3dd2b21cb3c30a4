"""The per-rerun caches shared by every session (dashboard/plan_views.py, compute.result_key): shared
specs are never mutated by the λ markers, memoised result keys equal Dask's tokens (and tell 1 from
1.0), the strategies table is an Arrow table with the DP row, the λ steps a page prefetches are the
slider's neighbours."""

import copy

import numpy as np
import pytest
from streamlit.logger import set_log_level

set_log_level("ERROR")       # importing the dashboard outside a server warns "No runtime found"

from opmerge_core import figures  # noqa: E402
from opmerge_core.backend import compute  # noqa: E402
from opmerge_core.theory import planner, sweep  # noqa: E402
from opmerge_core.theory.setting import Model  # noqa: E402
from opmerge_dashboard import plan_views as views  # noqa: E402
from opmerge_dashboard.params import LAM_GRID  # noqa: E402


def test_lambda_markers_leave_the_shared_spec_unchanged():
    setting = Model().at(16)
    df = sweep.compare(setting, views.CURVE_LAMS)
    spec = views.curves_spec(setting, df, 1.1, 2.0)
    before = copy.deepcopy(spec)
    marked = figures.add_lam_line(spec, 0.5)
    assert spec == before                                    # the cached spec is shared: unchanged
    assert views.curves_spec(setting, df, 1.1, 2.0) is spec   # and still the cached object
    assert len(marked["layout"]["shapes"]) == len(spec["layout"].get("shapes", [])) + 1
    assert marked["layout"]["shapes"][-1]["x0"] == 0.5
    star = figures.add_phase_point({"data": [{"type": "heatmap"}]}, 0.5, 32)
    assert [d["type"] for d in star["data"]] == ["heatmap", "scatter"]
    assert star["data"][1]["y"] == [5.0]                      # log2(32)


def test_memoised_result_keys_are_dask_tokens():
    setting = Model().at(8)
    key = compute.result_key(planner.optimal_at, (setting, 0.5))
    assert key == compute._tokenized_key(planner.optimal_at, (setting, 0.5))
    assert compute.result_key(planner.optimal_at, (setting, 0.5)) == key            # memoised, same
    assert compute.result_key(planner.optimal_at, (Model().at(8), 0.5)) == key      # equal setting
    assert compute.result_key(planner.optimal_at, (setting, 1)) != \
        compute.result_key(planner.optimal_at, (setting, 1.0))                      # 1 is not 1.0
    arr = np.array([0.5, 1.0])                                                      # unhashable: tokenized
    assert compute.result_key(sweep.compare, (setting, arr)) == \
        compute._tokenized_key(sweep.compare, (setting, arr))


def test_strategies_table_is_arrow_with_the_dp_row():
    setting = Model().at(8)
    best = planner.optimal_at(setting, 0.5)
    table = views.strategies_table(setting, 0.5, best.label, best.value, best.w2)
    df = table.to_pandas()
    assert list(df.columns) == ["strategy", "value", "W2", "gap to DP"]
    dp = df[df["strategy"].str.startswith("DP optimum")]
    assert len(dp) == 1 and dp["W2"].iloc[0] == pytest.approx(best.w2) and dp["gap to DP"].iloc[0] == 0
    assert (df["gap to DP"] >= -1e-12).all()                  # no named plan beats the DP optimum


@pytest.mark.parametrize("i", [0, 17, len(LAM_GRID) - 1])
def test_prefetched_lambda_steps_are_the_slider_neighbours(i):
    lam = LAM_GRID[i]
    assert views.grid_neighbours(lam) == tuple(LAM_GRID[k] for k in (i - 1, i + 1) if 0 <= k < len(LAM_GRID))
    setting = Model().at(views.IN_PROCESS_T_MAX + 1)
    calls = views.home_calls(setting, lam)
    assert calls[0] == (planner.optimal_at, setting, lam)     # the current λ first, its neighbours last
    assert [c[2] for c in calls if c[0] is planner.optimal_at][1:] == list(views.grid_neighbours(lam))
    assert all(c[0] is not planner.optimal_at for c in views.home_calls(Model().at(32), lam))
