"""Paper experiments (arXiv 2505.16024, synthetic studies), reproduced live."""

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from opmerge_core import figures
from opmerge_core.cli import theory as theory_cli
from opmerge_core.theory import plans
from opmerge_core.theory.setting import Setting
from opmerge_dashboard import plan_views as views
from opmerge_dashboard.output import command, figure, show_cli
from opmerge_dashboard.params import BOUND, WARN, default, model_choices_text, params
from opmerge_dashboard.url_params import EXPERIMENT_T, EXPERIMENT_T_C

p = params()
st.title("Paper experiments, live")
st.caption("The model choices of the sidebar apply ("
           + model_choices_text(p).split(" · T =")[0] + ").")


def setting_at(T: int, S: float | None = None) -> Setting:
    """The sidebar's model at this section's T (and S)."""
    return (p.model if S is None else dataclasses.replace(p.model, S=S)).at(T)


def _not_exact_note(df: pd.DataFrame) -> None:
    if not df["exact"].all():
        st.warning(f"{int((~df['exact']).sum())} points lie in the mixed band at large T: the DP "
                   "reference there is the best known plan, **not proven optimal**.", icon=WARN)


# ---- (a) gap of every strategy vs λ -------------------------------------------------------------
st.header("(a) Gap of every named strategy to the DP optimum")
A_LAMS = tuple(np.geomspace(0.05, 20.0, 50))
T_a = st.select_slider("T", EXPERIMENT_T, value=default("ex_T"), key="ex_T", **BOUND)
df_a = views.compare(setting_at(T_a), A_LAMS)
th_a = views.thresholds(setting_at(T_a))


def gaps(df_a: pd.DataFrame, lam_B: float, lam_V: float) -> None:
    """(a) Every strategy's gap to the DP optimum vs λ."""
    left, right = st.columns([3, 2])
    with left:
        figure(figures.strategy_curves(df_a, 1.0, lam_B, lam_V, quantity="gap",
                                              title=f"Gap to the DP optimum vs λ (T = {T_a})"),
                      "exp_a_gaps", df_a)
    with right:
        st.markdown("**What to notice.** BOOT's gap is exactly zero up to λ_B(T) ≈ 1 + 1.6/T and vanilla's "
                    "from λ_V on; in between every named strategy is beaten by a hybrid plan — no fixed "
                    "recipe is optimal everywhere.")
        _not_exact_note(df_a)
        show_cli(theory_cli.to_argv(theory_cli.SweepCommand((T_a,), "0.05:20:50:log", p.model)))


if df_a is not None and th_a is not None:
    gaps(df_a, *th_a)

# ---- (b) the grid -------------------------------------------------------------------------------
st.header("(b) The grid λ × T")
B_LAMS = (0.2, 0.5, 1.0, 1.02, 2.0, 5.0)
B_TS = (64, 128, 256, 512)
parts_b = [views.compare(setting_at(T), B_LAMS) for T in B_TS]


def grid(df_b: pd.DataFrame) -> None:
    """(b) The gap of each strategy on the λ × T grid."""
    left, right = st.columns([3, 2])
    with left:
        strategy = st.segmented_control("Colour by the gap of", plans.STRATEGIES, key="ex_strategy",
                                        default=default("ex_strategy"), format_func=plans.STRATEGY_LABELS.get,
                                        **BOUND) or default("ex_strategy")
        figure(figures.gap_grid_heatmap(df_b, strategy), "exp_b_grid", df_b)
    with right:
        st.markdown("**What to notice.** The optimal regime flips between λ = 1.02 and 2 for every T "
                    "(λ = 1.02 is already past λ_B(T) for T ≥ 128); the gap of the wrong strategy grows with "
                    "T.")
        _not_exact_note(df_b)
        show_cli(theory_cli.to_argv(theory_cli.SweepCommand(B_TS, ",".join(f"{x:g}" for x in B_LAMS),
                                                            p.model, out="grid.csv")))
    cols = ["T", "lam", "regime", "exact"] + [f"gap_{s}" for s in plans.STRATEGIES]
    st.dataframe(df_b[cols], hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4g") for c in cols[4:]})


if all(part is not None for part in parts_b):
    grid(pd.concat(parts_b, ignore_index=True))

# ---- (c) the shrinkage budget does not move the switch ------------------------------------------
st.header("(c) The switch point does not depend on S")
C_S = (1.0, 3.0, 6.4, 10.0)
C_LAMS = tuple(np.geomspace(0.05, 20.0, 50))
T_c = st.select_slider("T ", EXPERIMENT_T_C, value=default("ex_T_c"), key="ex_T_c", **BOUND)
parts_c = [(S, views.compare(setting_at(T_c, S), C_LAMS), views.thresholds(setting_at(T_c, S))) for S in C_S]


def shrinkage(df_c: pd.DataFrame) -> None:
    """(c) The optimal regime vs λ for several budgets S: the switch does not move."""
    left, right = st.columns([3, 2])
    with left:
        table = df_c.pivot(index="S", columns="lam", values="regime")
        fig = figures.regime_heatmap(table.columns.to_numpy(), np.arange(len(C_S)), table.to_numpy(), "S",
                                     f"Optimal regime vs λ for each shrinkage budget S (T = {T_c})")
        fig.update_yaxes(tickvals=list(range(len(C_S))), ticktext=[f"S = {s:g}" for s in C_S])
        figure(fig, "exp_c_shrinkage", df_c)
    with right:
        th = df_c.groupby("S")[["lam_B", "lam_V"]].first().reset_index()
        six = st.column_config.NumberColumn(format="%.6f")
        st.dataframe(th, hide_index=True, column_config={"lam_B": six, "lam_V": six})
        st.markdown("**What to notice.** λ_B(T) and λ_V are the same for every S: the budget changes how "
                    "much each merge shrinks, not on which side of P the plans fall.")
        _not_exact_note(df_c)
        st.caption("Reproduce with the CLI")
        st.code("\n".join(command(theory_cli.to_argv(theory_cli.SweepCommand((T_c,), "0.05:20:50:log",
                                                                              setting_at(T_c, S).model)))
                          for S in C_S), language="bash")


if all(d is not None and th is not None for _, d, th in parts_c):
    shrinkage(pd.concat([d.assign(S=S, lam_B=th[0], lam_V=th[1]) for S, d, th in parts_c],
                        ignore_index=True))
