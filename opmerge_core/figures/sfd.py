"""Plotly builders for the SFD and Mixtures pages (SFD.md, THEORY §7). Pure: data in, ``go.Figure`` out.

Conventions: the teacher is solid black, the plain solver vermillion, SFD (Algorithm 2) blue,
Algorithm 1 green, SFD-v pink (colour-blind-safe palette, as in ``figures.theory``); students are
dashed with markers at their sampling timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from opmerge_core.figures.theory import _layout, log_ticks

METHOD_COLORS = {"teacher": "#000000", "solver": "#D55E00", "sfd": "#0072B2", "alg1": "#009E73",
                 "sfd-v": "#CC79A7", "data": "#555555"}
METHOD_LABELS = {"teacher": "teacher (fine grid)", "solver": "plain solver, same NFE",
                 "sfd": "SFD (Algorithm 2)", "alg1": "Algorithm 1", "sfd-v": "SFD-v", "data": "exact data"}


def vp(traj: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """EDM states in VP scale, x_t / √(1 + t²), so that noise and data fit on one plot."""
    return traj / np.sqrt(1 + np.asarray(grid, dtype=float) ** 2)[:, None, None]


def trajectories(paths: Mapping[str, tuple[np.ndarray, np.ndarray]], n_show: int = 12,
                 title: str = "Trajectories in VP scale x_t / √(1 + t²)") -> go.Figure:
    """2-D trajectories: ``paths[method] = (grid (N+1,), states (N+1, B, 2))``. The teacher solid,
    students dashed with markers at their timestamps; the start (pure noise) is a hollow circle."""
    fig = go.Figure()
    for method, (grid, states) in paths.items():
        z = vp(states, grid)
        student = method != "teacher"
        for j in range(min(n_show, z.shape[1])):
            fig.add_trace(go.Scatter(
                x=z[:, j, 0], y=z[:, j, 1], mode="lines+markers" if student else "lines",
                line=dict(color=METHOD_COLORS[method], dash="dash" if student else "solid",
                          width=1.5 if student else 2),
                marker=dict(size=7, symbol="circle"), name=METHOD_LABELS[method], legendgroup=method,
                showlegend=j == 0, hovertemplate=f"{METHOD_LABELS[method]}<extra></extra>"))
    if paths:
        grid, states = next(iter(paths.values()))
        z0 = vp(states, grid)[0, :n_show]
        fig.add_trace(go.Scatter(x=z0[:, 0], y=z0[:, 1], mode="markers", name="start (t = 80)",
                                 marker=dict(size=9, symbol="circle-open", color="#999999")))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return _layout(fig, title, height=520, xaxis_title="z₁", yaxis_title="z₂")


def densities(samples: Mapping[str, np.ndarray], extent: float = 3.5, bins: int = 60,
              reference: str = "data", cols: int | None = None) -> go.Figure:
    """Side-by-side 2-D histograms of final samples (same bins and colour scale), ``cols`` panels per row
    (default: one row). The scale tops at the ``reference`` panel's peak (if present; denser cells
    elsewhere saturate), so every panel reads on the data's scale instead of the one that happens to be
    most concentrated."""
    names = list(samples)
    cols = min(cols or len(names), len(names))
    rows = -(-len(names) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[METHOD_LABELS.get(n, n) for n in names],
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    edges = np.linspace(-extent, extent, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    hists = [np.histogram2d(s[:, 0], s[:, 1], bins=[edges, edges], density=True)[0].T
             for s in samples.values()]
    ref = [h for n, h in zip(names, hists, strict=True) if n == reference]
    top = float((ref[0] if ref else max(hists, key=np.max)).max()) or 1.0
    for i, h in enumerate(hists):
        row, col = i // cols + 1, i % cols + 1
        fig.add_trace(go.Heatmap(x=centres, y=centres, z=h, zmin=0, zmax=top, colorscale="Viridis",
                                 showscale=i == len(hists) - 1, colorbar=dict(title="density")),
                      row=row, col=col)
        # square panels that shrink their domain (not widen their range: no empty band, no stray ticks)
        bare = dict(showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=False,
                    constrain="domain", row=row, col=col)
        fig.update_xaxes(**bare)
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", **bare)
    return _layout(fig, "Final samples: densities side by side", height=60 + 230 * rows)


def merge_error(rows: Sequence[Mapping[str, float]]) -> go.Figure:
    """Error of replacing m teacher steps by one operator vs m (THEORY §7), log–log."""
    df = pd.DataFrame(rows)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["m"], y=df["affine"], mode="lines+markers", name="best affine student",
                             line=dict(color=METHOD_COLORS["sfd"], width=3)))
    jump = df[df["jump"] > 0]
    fig.add_trace(go.Scatter(x=jump["m"], y=jump["jump"], mode="lines+markers",
                             name="one Euler jump (student at init)",
                             line=dict(color=METHOD_COLORS["solver"], width=3, dash="dash")))
    fig.update_xaxes(type="log", title="merged teacher steps m", tickvals=list(df["m"]))
    fig.update_yaxes(type="log", title="RMS error (VP scale)", exponentformat="power")
    return _layout(fig, "Approximation error grows with the number of merged steps", height=420)


def quality_vs_seconds(runs: pd.DataFrame, fd_label: str) -> go.Figure:
    """The paper's teaser on our latents: latent FD vs fine-tuning seconds (+1, log axis), one point
    per stored run, plain solvers at 0 s. ``runs``: columns method, seconds, latent_fd, nfe, run_id."""
    fig = go.Figure()
    for method, group in runs.groupby("method", sort=False):
        fig.add_trace(go.Scatter(
            x=group["seconds"] + 1, y=group["latent_fd"], mode="markers+text", text=group["nfe"].map(
                lambda k: f"NFE {k}"), textposition="top center", name=METHOD_LABELS.get(method, method),
            marker=dict(size=12, color=METHOD_COLORS.get(method, "#777777"),
                        symbol="diamond" if method == "solver" else "circle"),
            customdata=group[["run_id"]].to_numpy(),
            hovertemplate="run %{customdata[0]}<br>%{x:.1f} s + 1<br>FD %{y:.4g}<extra></extra>"))
    fig.update_xaxes(type="log", title="fine-tuning seconds + 1 (log)")
    fig.update_yaxes(type="log", title=fd_label.split(" (")[0], exponentformat="power")
    return _layout(fig, "Quality vs fine-tuning time (lower is better)", height=440)


def loss_curve(losses: Sequence[float]) -> go.Figure:
    fig = go.Figure(go.Scatter(y=list(losses), mode="lines", line=dict(color=METHOD_COLORS["sfd"])))
    fig.update_xaxes(title="iteration (thinned)")
    ticks = log_ticks(np.asarray(losses, dtype=float))
    fig.update_yaxes(title="L1 segment loss", type="log", tickvals=ticks, ticktext=[f"{x:g}" for x in ticks])
    return _layout(fig, "Student loss", height=300)
