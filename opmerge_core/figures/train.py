"""Plotly builders for the Train page (THEORY §2, §6). Pure: data in, ``go.Figure`` out."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from opmerge_core.figures.theory import STRATEGY_COLORS, _layout

OTHER_COLORS = ("#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#999999")


def color(name: str, i: int = 0) -> str:
    return STRATEGY_COLORS.get(name, OTHER_COLORS[i % len(OTHER_COLORS)])


def live_loss(points: Sequence[tuple[float, float]]) -> go.Figure:
    """The running job's loss (mean over the merges of the current wave) vs progress."""
    points = list(points)          # a snapshot: the job thread keeps appending
    x = [100 * p for p, _ in points]
    fig = go.Figure(go.Scatter(x=x, y=[v for _, v in points], mode="lines", line=dict(width=2)))
    fig.update_xaxes(title="progress (% of merge-steps)", range=[0, 100])
    fig.update_yaxes(title="loss (per-coordinate MSE)", type="log", exponentformat="power")
    return _layout(fig, "Live loss (current wave of merges)", height=300)


def merge_operators(df: pd.DataFrame, strategy: str, lam: float) -> go.Figure:
    """Per merge (post-order): the trained operator, the closed form with the empirical children at
    S_eff, and the full theory chain. ``df`` columns: merge, span, learned, closed_form, theory."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["merge"], y=df["theory"], mode="lines+markers", name="theory chain",
                             line=dict(color="#999999", width=3, dash="dash")))
    fig.add_trace(go.Scatter(x=df["merge"], y=df["closed_form"], mode="markers",
                             name="closed form (empirical children)",
                             marker=dict(symbol="circle-open", size=12, color="#000000")))
    fig.add_trace(go.Scatter(x=df["merge"], y=df["learned"], mode="markers", name="trained",
                             marker=dict(size=8, color=color(strategy)), customdata=df[["span"]],
                             hovertemplate="merge %{x}: %{customdata[0]}<br>trained %{y:.6f}"
                                           "<extra></extra>"))
    fig.update_xaxes(title="merge (post-order: children before parents)")
    fig.update_yaxes(title="student operator")
    return _layout(fig, f"{strategy}: trained vs closed-form operator per merge (λ = {lam:g})")


def merge_losses(curves: dict[str, tuple[Sequence[int], Sequence[float]]], limit: int = 40) -> go.Figure:
    """Loss curves of (up to ``limit``) merges, one line each."""
    fig = go.Figure()
    for label, (x, y) in list(curves.items())[:limit]:
        fig.add_trace(go.Scatter(x=list(x), y=list(y), mode="lines", name=label, line=dict(width=1.5)))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss (mean over coordinates)", type="log", exponentformat="power")
    return _layout(fig, "Loss curve of every merge", height=380, showlegend=len(curves) <= 12)


def w2_bars(df: pd.DataFrame) -> go.Figure:
    """Final W2 per strategy, empirical next to theory. ``df``: strategy, w2_empirical, w2_theory."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=df["strategy"], y=df["w2_empirical"], name="trained",
                         marker_color=[color(s, i) for i, s in enumerate(df["strategy"])]))
    fig.add_trace(go.Bar(x=df["strategy"], y=df["w2_theory"], name="theory at S_eff",
                         marker_color="rgba(0,0,0,0)", marker_line=dict(color="#000000", width=2)))
    fig.update_yaxes(title="W2 to the surrogate (all coordinates)")
    return _layout(fig, "Final W2 per strategy (lower is better)", height=380, barmode="group")


def budget_curve(sweep: pd.DataFrame, curve: pd.DataFrame, target: float, lam: float) -> go.Figure:
    """Shrinkage vs training budget: trained one-step operator at S_eff = 2ηn (markers) over the
    closed form as a function of S (lines), with the surrogate target P."""
    fig = go.Figure()
    for i, (name, group) in enumerate(curve[curve["lam"] == lam].groupby("strategy", sort=False)):
        fig.add_trace(go.Scatter(x=group["S"], y=group["theory"], mode="lines", name=f"{name} theory",
                                 line=dict(color=color(name, i), width=2)))
    for i, (name, group) in enumerate(sweep[sweep["lam"] == lam].groupby("strategy", sort=False)):
        fig.add_trace(go.Scatter(x=group["S_eff"], y=group["empirical"], mode="markers",
                                 name=f"{name} trained", marker=dict(size=10, color=color(name, i)),
                                 customdata=group[["steps"]],
                                 hovertemplate="%{customdata[0]} steps: S_eff = %{x:g}<br>trained "
                                               "%{y:.5f}<extra></extra>"))
    fig.add_hline(y=target, line_dash="dot", line_color="#000000", annotation_text="target P",
                  annotation_position="bottom right")
    fig.update_xaxes(title="budget S = 2 · lr · steps (log)", type="log")
    fig.update_yaxes(title="one-step operator")
    return _layout(fig, f"Shrinkage vs training budget (λ = {lam:g})", height=420)
