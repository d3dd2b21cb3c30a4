"""Plotly builders for the theory pages (THEORY.md §1–§5): plans, strategy curves, regime maps, the
playground, the spectrum and the paper experiments (the operators: ``figures.operators``). Pure: data
in, ``go.Figure`` out.

Conventions: λ axes are logarithmic; regimes use one colour-blind-safe palette everywhere
(BOOT blue, hybrid pink, mixed grey, vanilla vermillion); a dotted line marks λ = 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from opmerge_core.theory.planner import REGIME_LABELS, REGIMES
from opmerge_core.theory.plans import STRATEGY_LABELS, Plan

REGIME_COLORS = {"boot": "#0072B2", "hybrid": "#CC79A7", "mixed": "#999999", "vanilla": "#D55E00"}
STRATEGY_COLORS = {"vanilla": "#D55E00", "boot": "#0072B2", "temporal": "#009E73",
                   "progressive": "#E69F00", "uniform": "#56B4E9", "dp": "#000000"}
LAM_TICKS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
FONT = dict(size=15)


class TrustedFigure(go.Figure):
    """A figure spec built by this module, handed to ``st.plotly_chart`` as it is.

    ``st.plotly_chart`` serialises a ``go.Figure`` through ``to_dict()``, which deep-copies and
    re-walks every property (tens of ms for a figure with a few thousand points, on every rerun).
    Specs built here are trusted, so this figure skips plotly's validation and the copy: ``to_dict``
    returns the spec itself. Use ``go.Figure(figure.to_dict())`` for a full, mutable figure.
    """

    def __init__(self, spec: dict):     # deliberately no super().__init__: nothing is validated
        self._spec = spec

    def to_dict(self) -> dict:
        return self._spec

    def to_plotly_json(self) -> dict:
        return self._spec

    @property
    def layout(self):                   # read-only view for code that inspects the layout
        return go.Layout(self._spec.get("layout", {}), _validate=False)


def from_dict(spec: dict) -> go.Figure:
    """A figure from a plain spec without plotly's validation or copying (``TrustedFigure``).
    Used for the figures redrawn on every λ change; the specs are built here, by trusted code."""
    return TrustedFigure(spec)


def plain_spec(fig: go.Figure) -> dict:
    """A figure as plain JSON-ready data (numpy arrays already encoded), cheap to serialise again."""
    return json.loads(pio.to_json(fig.to_dict(), validate=False))


def _base_layout(title: str, height: int = 420, **kw) -> dict:
    return dict(title=dict(text=title, x=0.01), height=height, font=FONT,
                margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2), **kw)


def add_lam_line(spec: dict, lam: float) -> dict:
    """A new spec: ``spec`` (a log λ x axis; shared, left unchanged) with the current λ marked."""
    shape, notes = _vline(lam, text=f"λ = {lam:g}", log_x=True)
    layout = spec.get("layout", {})
    return {**spec, "layout": {**layout, "shapes": [*layout.get("shapes", ()), shape],
                               "annotations": [*layout.get("annotations", ()), *notes]}}


def add_phase_point(spec: dict, lam: float, T: int) -> dict:
    """A new spec: the phase diagram ``spec`` (x = log10 λ, y = log2 T; shared, left unchanged) with
    the current (λ, T) marked."""
    star = dict(type="scatter", x=[float(np.log10(lam))], y=[float(np.log2(T))], mode="markers",
                name=f"you: λ={lam:g}, T={T}",
                marker=dict(size=18, symbol="star", color="#F0E442", line=dict(color="black", width=2)))
    return {**spec, "data": [*spec.get("data", ()), star]}


def _layout(fig: go.Figure, title: str, height: int = 420, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), height=height, font=FONT,
                      margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2), **kw)
    return fig


# Shapes and annotations are collected as plain dicts and set in one layout update: plotly's
# add_vline/add_vrect validate every property incrementally, a cost a λ drag pays for every line
# (bench/bench_dashboard.py times the drag).
# Shapes take data values on log axes, annotations take log10 values.
def _vline(x: float, *, text: str | None = None, dash: str = "solid", color: str = "black", width: float = 2,
           log_x: bool = False, anchor: str = "center", yref: str = "paper") -> tuple[dict, list[dict]]:
    shape = dict(type="line", xref="x", yref=yref, x0=x, x1=x, y0=0, y1=1,
                 line=dict(color=color, width=width, dash=dash))
    notes = [] if text is None else [dict(x=float(np.log10(x)) if log_x else x, y=1.0, xref="x", yref="paper",
                                          text=text, showarrow=False, yanchor="bottom", xanchor=anchor)]
    return shape, notes


def _hline(y: float, *, text: str | None = None, dash: str = "solid", color: str = "#888",
           width: float = 1) -> tuple[dict, list[dict]]:
    shape = dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=y, y1=y,
                 line=dict(color=color, width=width, dash=dash))
    notes = [] if text is None else [dict(x=1.0, y=y, xref="paper", yref="y", text=text, showarrow=False,
                                          xanchor="right", yanchor="bottom")]
    return shape, notes


def _decorate(fig: go.Figure, items: list[tuple[dict, list[dict]]]) -> None:
    fig.update_layout(shapes=[s for s, _ in items], annotations=[a for _, notes in items for a in notes])


# ---- the optimal plan as a tree -----------------------------------------------------------------
def plan_tree(plan: Plan, values: Mapping[tuple[int, int], float], title: str = "Merge plan",
              label_limit: int = 15) -> go.Figure:
    """Leaves = teacher steps T … 1 (left to right, in application order) at height 0; each merge
    (a trained student) sits above the centre of its leaf span at its height (student generation),
    annotated with its value."""
    T = plan.T
    height: dict[tuple[int, int], int] = {(t - 1, t): 0 for t in range(1, T + 1)}
    for span in plan.post_order():
        height[span] = 1 + max(height[c] for c in plan.children(span))

    def x_of(span: tuple[int, int]) -> float:
        e, s = span
        return T - (e + 1 + s) / 2  # leaf t sits at x = T − t

    ex, ey = [], []
    for span in plan.merges:
        for child in plan.children(span):
            ex += [x_of(span), x_of(child), None]
            ey += [height[span], height[child], None]
    data = [dict(type="scatter", x=ex, y=ey, mode="lines", line=dict(color="#888", width=1.5),
                 hoverinfo="skip", showlegend=False)]
    leaves = [(t - 1, t) for t in range(T, 0, -1)]
    show_leaf_text = T <= 24
    data.append(dict(
        type="scatter",
        x=[x_of(s) for s in leaves], y=[0] * T, mode="markers+text" if show_leaf_text else "markers",
        text=[str(s[1]) for s in leaves], textposition="bottom center",
        marker=dict(size=9 if T <= 64 else 4, color="#444", symbol="square"), name="teacher step",
        customdata=[[s[1], values.get(s, np.nan)] for s in leaves],
        hovertemplate="teacher step %{customdata[0]}<br>A* = %{customdata[1]:.5f}<extra></extra>"))
    merges = sorted(plan.merges, key=lambda sp: (height[sp], sp))
    show_text = len(merges) <= label_limit  # else only the root is labelled (hover shows the rest)
    data.append(dict(
        type="scatter",
        x=[x_of(s) for s in merges], y=[height[s] for s in merges], mode="markers+text",
        text=[f"{values.get(s, np.nan):.3f}" if show_text or s == (0, T) else "" for s in merges],
        textposition="top center",
        marker=dict(size=13 if len(merges) <= 64 else 6, color="#0072B2", line=dict(color="white", width=1)),
        name="student (merge)", customdata=[[s[1], s[0], values.get(s, np.nan)] for s in merges],
        hovertemplate="student z_%{customdata[0]} → z_%{customdata[1]}<br>value %{customdata[2]:.5f}"
                      "<extra></extra>"))
    top = max(height.values())
    layout = _base_layout(title, height=380 if top <= 12 else 460,
                          xaxis=dict(visible=False, range=[-1, T]),
                          yaxis=dict(title=dict(text="student generation"), zeroline=False,
                                     range=[-0.12 * top - 0.6, top * 1.1 + 0.6],
                                     dtick=1 if top <= 12 else None))
    return from_dict(dict(data=data, layout=layout))


# ---- strategy curves ----------------------------------------------------------------------------
def _regime_bands(lam_lo: float, lam_hi: float, lam_B: float, lam_V: float) -> list[tuple[dict, list]]:
    """Shaded λ bands (log x axis): BOOT below λ_B, hybrid/mixed between, vanilla above λ_V."""
    b = min(max(lam_B, lam_lo), lam_hi) if np.isfinite(lam_B) else lam_hi
    v = min(max(lam_V, lam_lo), lam_hi) if np.isfinite(lam_V) else lam_hi
    items = []
    for x0, x1, regime, text, y in ((lam_lo, b, "boot", "BOOT optimal", 0.99),
                                    (b, max(v, b), "hybrid", "hybrid / mixed", 0.92),
                                    (max(v, b), lam_hi, "vanilla", "vanilla optimal", 0.99)):
        if x1 > x0:
            shape = dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, layer="below",
                         fillcolor=REGIME_COLORS[regime], opacity=0.10, line=dict(width=0))
            note = dict(x=float(np.log10(x0)), y=y, xref="x", yref="paper", text=text, showarrow=False,
                        xanchor="left", yanchor="top", font=dict(size=12, color="#555"))
            items.append((shape, [note]))
    return items


def log_ticks(values: np.ndarray) -> list[float]:
    """Labelled ticks for a log axis over the positive ``values``: 1-2-5 in every decade while the
    range spans at most three decades, else one tick per decade (Plotly's own minor labels on a
    short log range are bare mantissas: "1 2 5 1 2 5")."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return []
    lo, hi = int(np.floor(np.log10(positive.min()))), int(np.ceil(np.log10(positive.max())))
    steps = (1, 2, 5) if hi - lo <= 3 else (1,)
    ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in steps]
    inside = [x for x in ticks if positive.min() / 1.0001 <= x <= positive.max() * 1.0001]
    if len(inside) >= 2:
        return inside
    return sorted({float(f"{positive.min():.2g}"), float(f"{positive.max():.2g}")})   # a narrow range


def strategy_curves(df: pd.DataFrame, lam: float | None, lam_B: float, lam_V: float,
                    quantity: str = "w2", title: str | None = None) -> go.Figure:
    """W2 error (or gap to the DP optimum) of every named strategy and the DP plan vs λ."""
    fig = go.Figure()
    lams = df["lam"].to_numpy()
    for name, label in STRATEGY_LABELS.items():
        fig.add_trace(go.Scatter(x=lams, y=df[f"{quantity}_{name}"], mode="lines", name=label,
                                 line=dict(color=STRATEGY_COLORS[name], width=2.5)))
    if quantity == "w2":
        fig.add_trace(go.Scatter(x=lams, y=df["w2_dp"], mode="lines", name="DP optimum",
                                 line=dict(color="black", width=2, dash="dash"),
                                 customdata=df["regime"].map(REGIME_LABELS),
                                 hovertemplate="λ=%{x:.3g}<br>W2=%{y:.4g}<br>%{customdata}<extra>DP</extra>"))
    items = [*_regime_bands(float(lams.min()), float(lams.max()), lam_B, lam_V),
             _vline(1.0, dash="dot", color="#555")]
    if lam is not None:
        items.append(_vline(lam, text=f"λ = {lam:g}", log_x=True))
    _decorate(fig, items)
    fig.update_xaxes(type="log", title="λ (data variance)", range=np.log10([lams.min(), lams.max()]),
                     tickvals=[t for t in LAM_TICKS if lams.min() <= t <= lams.max()])
    if quantity == "w2":
        ticks = log_ticks(np.concatenate([np.asarray(trace.y, dtype=float) for trace in fig.data]))
        fig.update_yaxes(type="log", title="W2 error", tickvals=ticks, ticktext=[f"{x:g}" for x in ticks])
    else:
        fig.update_yaxes(title="W2 gap to the DP optimum")
    return _layout(fig, title or ("W2 error of each strategy vs λ" if quantity == "w2"
                                  else "Gap of each strategy to the DP optimum"), hovermode="x unified")


# ---- regime heatmaps ----------------------------------------------------------------------------
def _regime_colorscale() -> list:
    n = len(REGIMES)
    scale = []
    for i, r in enumerate(REGIMES):
        scale += [[i / n, REGIME_COLORS[r]], [(i + 1) / n, REGIME_COLORS[r]]]
    return scale


def regime_heatmap(lams: Sequence[float], ys: Sequence[float], regimes: np.ndarray, y_title: str,
                   title: str, *, y_log2: bool = False, y_ticks: Sequence[float] | None = None) -> go.Figure:
    """Categorical regime map over (log λ, y); ``regimes`` is a (len(ys), len(lams)) array of names."""
    code = {r: i for i, r in enumerate(REGIMES)}
    z = np.vectorize(code.get)(regimes).astype(float)
    x = np.log10(np.asarray(lams, dtype=float))
    y = np.log2(np.asarray(ys, dtype=float)) if y_log2 else np.asarray(ys, dtype=float)
    hover = np.vectorize(REGIME_LABELS.get)(regimes)
    n = len(REGIMES)
    fig = go.Figure(go.Heatmap(
        x=x, y=y, z=z, zmin=-0.5, zmax=n - 0.5, colorscale=_regime_colorscale(),
        customdata=np.dstack([np.broadcast_to(np.asarray(lams, float), z.shape),
                              np.broadcast_to(np.asarray(ys, float)[:, None], z.shape)]),
        text=hover, hovertemplate="λ=%{customdata[0]:.3g}<br>" + y_title + "=%{customdata[1]:g}<br>"
                                  "%{text}<extra></extra>",
        colorbar=dict(tickvals=list(range(n)), ticktext=[REGIME_LABELS[r] for r in REGIMES],
                      title="optimal"), xgap=0, ygap=0))
    fig.update_xaxes(title="λ (data variance, log scale)", tickvals=np.log10(LAM_TICKS),
                     ticktext=[f"{t:g}" for t in LAM_TICKS], range=[x.min(), x.max()])
    ticks = list(ys) if y_ticks is None else list(y_ticks)
    fig.update_yaxes(title=y_title, tickvals=np.log2(ticks) if y_log2 else ticks,
                     ticktext=[f"{t:g}" for t in ticks])
    _decorate(fig, [_vline(0.0, dash="dot", color="white")])
    return _layout(fig, title, height=460)


def phase_diagram(df: pd.DataFrame, th: pd.DataFrame, lam: float | None = None, T: int | None = None
                  ) -> go.Figure:
    """λ × T phase diagram (DP-optimal regime) with λ_B(T), λ_V(T) and the current point (if given;
    ``add_phase_point`` adds it to a cached spec)."""
    table = df.pivot(index="T", columns="lam", values="regime")
    Ts, lams = table.index.to_numpy(), table.columns.to_numpy()
    fig = regime_heatmap(lams, Ts, table.to_numpy(), "T", "Phase diagram: the optimal plan over λ × T",
                         y_log2=True,
                         y_ticks=[t for t in (2, 4, 8, 16, 32, 64, 128, 256, 512) if t <= Ts.max()])
    finite = th[np.isfinite(th["lam_B"])]
    fig.add_trace(go.Scatter(x=np.log10(finite["lam_B"]), y=np.log2(finite["T"]), mode="lines+markers",
                             name="λ_B(T): BOOT optimal below", line=dict(color="black", width=3),
                             marker=dict(size=7, color="white", line=dict(color="black", width=1.5)),
                             hovertemplate="λ_B=%{customdata:.4g}<extra></extra>",
                             customdata=finite["lam_B"]))
    fig.add_trace(go.Scatter(x=np.log10(th["lam_V"]), y=np.log2(th["T"]), mode="lines",
                             name="λ_V = 1 + 1/α_1: vanilla optimal above",
                             line=dict(color="black", width=3, dash="dash"),
                             hovertemplate="λ_V=%{customdata:.4g}<extra></extra>", customdata=th["lam_V"]))
    fig.update_layout(legend=dict(orientation="h", y=-0.22))
    if lam is not None and T is not None:
        return from_dict(add_phase_point(fig.to_dict(), lam, T))
    return fig


# ---- playground ---------------------------------------------------------------------------------
def plan_value_hist(values: np.ndarray, plan_value: float, dp_value: float, target: float,
                    T: int) -> go.Figure:
    fig = go.Figure(go.Histogram(x=values, nbinsx=60, marker_color="#BBBBBB", name="all plans"))
    _decorate(fig, [_vline(target, text="target P", color="#009E73", dash="dot", width=3),
                    _vline(dp_value, text="DP optimum", color="#000", dash="dash", width=3, anchor="right"),
                    _vline(plan_value, text="your plan", color="#0072B2", width=3, anchor="left")])
    fig.update_xaxes(title="one-step operator produced by the plan")
    fig.update_yaxes(title="number of plans")
    return _layout(fig, f"All {len(values):,} plans for T = {T}", showlegend=False)


# ---- spectrum -----------------------------------------------------------------------------------
def spectrum_regimes(lams: np.ndarray, regimes: Sequence[str]) -> go.Figure:
    """Eigenvalues along the eigen-index, coloured by the regime each direction wants alone."""
    idx = np.arange(1, len(lams) + 1)
    fig = go.Figure()
    for r in REGIMES:
        mask = np.asarray(regimes) == r
        if mask.any():
            fig.add_trace(go.Scatter(x=idx[mask], y=np.asarray(lams)[mask], mode="markers",
                                     name=REGIME_LABELS[r], marker=dict(color=REGIME_COLORS[r], size=8)))
    _decorate(fig, [_hline(1.0, text="λ = 1", dash="dot", color="#333", width=2)])
    fig.update_xaxes(title="eigen-index i")
    fig.update_yaxes(title="λ_i", type="log")
    return _layout(fig, "Per-direction optimal regime along the spectrum")


def strategy_bars(names: Sequence[str], w2: Sequence[float], highlight: str, *,
                  title: str = "One plan for the whole spectrum: error by plan",
                  y_title: str = "total W2 over all directions") -> go.Figure:
    """W2 per plan as bars, ``highlight`` in black."""
    colors = ["#000" if n == highlight else "#88AACC" for n in names]
    fig = go.Figure(go.Bar(x=list(names), y=list(w2), marker_color=colors,
                           text=[f"{w:.4g}" for w in w2], textposition="outside"))
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, showlegend=False)


# ---- paper experiments --------------------------------------------------------------------------
def gap_grid_heatmap(df: pd.DataFrame, strategy: str) -> go.Figure:
    """(b): rows T, columns λ; colour = gap of ``strategy`` to the DP optimum, text = optimal regime."""
    table = df.pivot(index="T", columns="lam", values=f"gap_{strategy}")
    short = {"boot": "BOOT", "vanilla": "Vanilla", "hybrid": "Hybrid", "mixed": "Mixed"}
    regimes = df.pivot(index="T", columns="lam", values="regime").map(short.get)
    text = [[f"{regimes.iat[i, j]}<br>{table.iat[i, j]:.3g}" for j in range(table.shape[1])]
            for i in range(table.shape[0])]
    fig = go.Figure(go.Heatmap(
        x=[f"{x:g}" for x in table.columns], y=[str(t) for t in table.index], z=table.to_numpy(),
        text=text, texttemplate="%{text}", textfont=dict(size=13), colorscale="Viridis",
        colorbar=dict(title="gap"),
        hovertemplate="λ=%{x}<br>T=%{y}<br>gap=%{z:.4g}<extra></extra>"))
    fig.update_xaxes(title="λ", type="category")
    fig.update_yaxes(title="T", type="category")
    return _layout(fig, f"Gap of {STRATEGY_LABELS[strategy]} to the DP optimum (text: optimal regime)",
                   height=480)
