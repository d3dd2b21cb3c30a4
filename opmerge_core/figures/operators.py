"""Plotly builders for the Operators page (THEORY.md §1): the teacher's step operators, the geometry
of one step in the (α√λ, σ) plane, the composite against the exact flow map. Pure: data in,
``go.Figure`` out.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from opmerge_core.figures.theory import FONT, _decorate, _hline, _layout, from_dict


def operators_per_step(A: np.ndarray, projection: np.ndarray, rescale: np.ndarray) -> go.Figure:
    """A*_t = projection (cos Δθ_t) × rescaling (r_{t−1}/r_t) for every step t (eq. 7)."""
    t = np.arange(1, len(A) + 1)
    fig = go.Figure()
    for y, name, color, dash in ((A, "A*_t (teacher DDIM step)", "#000000", "solid"),
                                 (projection, "projection cos(θ_t − θ_{t−1})", "#0072B2", "dot"),
                                 (rescale, "rescaling r_{t−1}/r_t (= exact step)", "#D55E00", "dash")):
        fig.add_trace(go.Scatter(x=t, y=y, mode="lines+markers" if len(t) <= 64 else "lines", name=name,
                                 line=dict(color=color, width=2.5, dash=dash), marker=dict(size=5)))
    _decorate(fig, [_hline(1.0)])
    fig.update_xaxes(title="step t (z_t → z_{t−1})", autorange="reversed")
    fig.update_yaxes(title="operator")
    return _layout(fig, "Teacher operators per step", hovermode="x unified")


def geometry_animation(v: np.ndarray, A: np.ndarray, rescale: np.ndarray, max_frames: int = 64) -> go.Figure:
    """The (α√λ, σ) plane: the curve of v_t, and per step t the projection of v_{t−1} onto the line
    of v_t (landing at A*_t v_t) versus the rescaling to ‖v_{t−1}‖ (the exact step). Plotly frames
    scrub through the steps in the browser (no Python rerun)."""
    T = len(A)
    steps = np.unique(np.linspace(T, 1, min(T, max_frames)).round().astype(int))[::-1]
    start = len(steps) // 2          # open in the middle, where a step visibly turns v

    def frame_data(t: int) -> list[dict]:
        vt, vp = v[t], v[t - 1]
        proj = A[t - 1] * vt            # ⟨v_{t−1}, v_t⟩/‖v_t‖² · v_t
        exact = rescale[t - 1] * vt     # ‖v_{t−1}‖ along v_t
        return [
            dict(type="scatter", x=[0, vt[0]], y=[0, vt[1]], mode="lines+markers", name=f"v_t (t={t})",
                 line=dict(color="#000", width=3), marker=dict(size=[0, 10])),
            dict(type="scatter", x=[0, vp[0]], y=[0, vp[1]], mode="lines+markers", name="v_{t−1}",
                 line=dict(color="#009E73", width=3), marker=dict(size=[0, 10])),
            dict(type="scatter", x=[vp[0], proj[0]], y=[vp[1], proj[1]], mode="lines", name="projection",
                 line=dict(color="#0072B2", dash="dot", width=2)),
            dict(type="scatter", x=[proj[0], exact[0]], y=[proj[1], exact[1]], mode="markers",
                 name="A*_t·v_t (teacher) · r_{t−1}/r_t·v_t (exact)",
                 marker=dict(size=[12, 12], color=["#0072B2", "#D55E00"], symbol=["circle", "x"])),
        ]

    curve = dict(type="scatter", x=v[:, 0], y=v[:, 1], mode="lines+markers" if T <= 64 else "lines",
                 name="v_t = (α_t√λ, σ_t)", line=dict(color="#BBB", width=2), marker=dict(size=4),
                 hoverinfo="skip")
    frames = [dict(data=frame_data(int(t)), traces=[1, 2, 3, 4], name=str(t)) for t in steps]
    lim = float(np.max(np.abs(v))) * 1.08
    layout = dict(
        title=dict(text="Geometry of a DDIM step: projection, then rescaling", x=0.01), height=600, font=FONT,
        xaxis=dict(title=dict(text="α√λ"), range=[-0.02 * lim, lim], constrain="domain"),
        yaxis=dict(title=dict(text="σ"), range=[-0.02 * lim, lim], scaleanchor="x", scaleratio=1),
        legend=dict(orientation="v", x=1.02, y=1.0, xanchor="left", yanchor="top"),
        margin=dict(l=60, r=20, t=50, b=120),
        updatemenus=[dict(type="buttons", showactive=False, x=0.0, y=-0.16, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, dict(frame=dict(duration=250, redraw=False),
                                                         fromcurrent=True, transition=dict(duration=0))]),
                                   dict(label="❚❚ pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0))])])],
        sliders=[dict(active=start, x=0.2, len=0.8, y=-0.1, yanchor="top",
                      currentvalue=dict(prefix="step t = "),
                      steps=[dict(label=str(t), method="animate",
                                  args=[[str(t)], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                       transition=dict(duration=0))]) for t in steps])])
    return from_dict(dict(data=[curve, *frame_data(int(steps[start]))], layout=layout, frames=frames))


def composite_vs_exact(A: np.ndarray, r: np.ndarray) -> go.Figure:
    """Running products from the noise end: teacher ∏_{t'>t} A*_{t'} vs exact r_t/r_T (Prop. 3.2)."""
    T = len(A)
    t = np.arange(T, -1, -1)                                    # after reaching time t
    teacher = np.concatenate([[1.0], np.cumprod(A[::-1])])      # ∏_{t' = T..t+1} A*_{t'}
    exact = r[::-1] / r[-1]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=exact, mode="lines", name="exact flow map r_t / r_T",
                             line=dict(color="#D55E00", width=3, dash="dash")))
    fig.add_trace(go.Scatter(x=t, y=teacher, mode="lines", name="teacher composite ∏ A*",
                             line=dict(color="#000", width=3)))
    fig.update_xaxes(title="time t (the sampler runs from T down to 0)", autorange="reversed")
    fig.update_yaxes(title="operator z_T → z_t")
    fig.add_annotation(x=0, y=teacher[-1], text=f"P = {teacher[-1]:.4f}", showarrow=True, ax=-60, ay=30)
    fig.add_annotation(x=0, y=exact[-1], text=f"r_0/r_T = {exact[-1]:.4f}", showarrow=True, ax=-60, ay=-30)
    return _layout(fig, "Teacher composite vs exact flow map", hovermode="x unified")
