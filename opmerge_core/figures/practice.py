"""Plotly builders for the "Theory vs practice" page (THEORY §8). Pure: a run's result (the JSON of
``opmerge practice``, ``opmerge_core.practice.experiment.public``) in, ``go.Figure`` / tables out.

Conventions as in ``figures.theory``: λ on a log axis with a dotted line at λ = 1, one colour per plan
(BOOT blue, vanilla vermillion, …); measured values are points with error bars (± sd over seeds), the
theory's predictions lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from opmerge_core.figures.theory import STRATEGY_COLORS, _layout

MEASURED = {"boot": "#0072B2", "vanilla": "#D55E00", "unresolved": "#BBBBBB"}


def color(plan: str) -> str:
    return STRATEGY_COLORS.get(plan, "#777777")


def plan_label(result: dict, plan: str) -> str:
    return result["plans"][plan]["label"]


def _lam_axis(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    fig.update_xaxes(type="log", title="λ (eigenvalue of the data covariance, log scale)", row=row, col=col)
    fig.add_vline(x=1.0, line=dict(color="#999999", dash="dot", width=1), row=row, col=col)


def w2_vs_lambda(result: dict, shown: Sequence[str] | None = None) -> go.Figure:
    """Measured W2_i (points, ± sd over seeds) against λ_i for every plan, over the theory's W2(λ)
    curves (THEORY §4: r_T |S − P| per direction)."""
    lam, curves = np.array(result["teacher"]["lam"]), result["curves"]
    fig = go.Figure()
    if "linear_floor" in result["teacher"]:
        fig.add_trace(go.Scatter(x=lam, y=result["teacher"]["linear_floor"], mode="markers",
                                 name="best any linear one-step map can do", legendgroup="floor",
                                 marker=dict(color="#999999", size=7, symbol="line-ew-open")))
    for plan in shown or list(result["w2"]):
        w = result["w2"][plan]
        label = plan_label(result, plan)
        hover = f"{label} theory<br>λ %{{x:.3g}}<br>W2 %{{y:.4g}}<extra></extra>"
        fig.add_trace(go.Scatter(x=curves["lam"], y=curves[plan], mode="lines", name=f"{label} (theory)",
                                 legendgroup=plan, line=dict(color=color(plan), width=2),
                                 hovertemplate=hover))
        fig.add_trace(go.Scatter(
            x=lam, y=w["mean"], mode="markers", name=f"{label} (measured)", legendgroup=plan,
            error_y=dict(type="data", array=w["sd"], visible=True, thickness=1, width=2),
            marker=dict(color=color(plan), size=6, line=dict(color="white", width=0.5)),
            customdata=np.stack([np.arange(1, lam.size + 1), w["theory"]], axis=1),
            hovertemplate=(f"{label}<br>direction %{{customdata[0]}}, λ %{{x:.3g}}<br>measured %{{y:.4g}}"
                           "<br>theory %{customdata[1]:.4g}<extra></extra>")))
    _lam_axis(fig)
    fig.update_yaxes(title="W2 of the one-step student in that direction", rangemode="tozero")
    return _layout(fig, "Per direction: measured W2 (points, ± sd over seeds) and the theory (lines)",
                   height=520)


def boot_minus_vanilla(result: dict) -> go.Figure | None:
    """W2_boot − W2_vanilla per direction (± its significance threshold t·se) against λ, coloured by the
    measured winner, over the theory's difference curve: the agreement at a glance."""
    ag, curves = result.get("agreement"), result["curves"]
    if not ag or "boot" not in curves or "vanilla" not in curves:
        return None
    lam = np.array(result["teacher"]["lam"])
    diff, thr = np.array(ag["diff_mean"]), np.array(ag["diff_threshold"], dtype=float)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curves["lam"], y=np.array(curves["boot"]) - np.array(curves["vanilla"]),
                             mode="lines", name="theory", line=dict(color="#000000", width=2)))
    measured = np.array(ag["measured"])
    agree = np.array([m == p for m, p in zip(ag["measured"], ag["predicted"], strict=True)])
    for kind, name in (("boot", "measured: BOOT better"), ("vanilla", "measured: vanilla better"),
                       ("unresolved", "no significant difference")):
        sel = measured == kind
        if not sel.any():
            continue
        symbols = np.where(agree[sel], "circle", "x") if kind != "unresolved" else "circle-open"
        fig.add_trace(go.Scatter(
            x=lam[sel], y=diff[sel], mode="markers", name=name,
            error_y=dict(type="data", array=np.nan_to_num(thr[sel]), visible=True, thickness=1, width=2),
            marker=dict(color=MEASURED[kind], size=8, symbol=symbols),
            customdata=np.stack([np.flatnonzero(sel) + 1, np.array(ag["predicted"])[sel]], axis=1),
            hovertemplate=("direction %{customdata[0]}, λ %{x:.3g}<br>W2 boot − vanilla %{y:.3g}"
                           "<br>theory expects %{customdata[1]}<extra></extra>")))
    fig.add_hline(y=0, line=dict(color="#999999", width=1))
    _lam_axis(fig)
    fig.update_yaxes(title="W2 BOOT − W2 vanilla (< 0: BOOT better)")
    return _layout(fig, "BOOT vs vanilla per direction (error bars: the significance threshold; "
                        "× = the theory picked the other plan)", height=420)


def gains(result: dict) -> go.Figure:
    """The one-step gain per direction (least-squares slope of the one-step map z_T → z_0), measured
    against the closed form's operator, for every plan and for the teacher (against P)."""
    fig = go.Figure()
    teacher = result["teacher"]
    fig.add_trace(go.Scatter(x=teacher["P"], y=teacher["gain"], mode="markers", name="teacher vs P",
                             marker=dict(color="#000000", size=6, symbol="diamond")))
    for plan, g in result["gains"].items():
        fig.add_trace(go.Scatter(x=g["theory"], y=g["mean"], mode="markers", name=plan_label(result, plan),
                                 error_y=dict(type="data", array=g["sd"], visible=True, thickness=1),
                                 marker=dict(color=color(plan), size=6)))
    values = np.concatenate([teacher["P"], teacher["gain"], *[g["mean"] for g in result["gains"].values()],
                             *[g["theory"] for g in result["gains"].values()]])
    lo, hi = float(np.min(values)), float(np.max(values))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="measured = theory",
                             line=dict(color="#999999", dash="dash", width=1)))
    fig.update_xaxes(title="closed form (THEORY §2–§3)")
    fig.update_yaxes(title="measured one-step gain")
    return _layout(fig, "One-step gain per direction: measured vs closed form", height=420)


def quality_vs_compute(result: dict) -> go.Figure:
    """Total W2 (± sd over seeds) of every plan against the seconds its training took (per seed, trained
    alone), with the theory's total W2 as open markers. (Every plan applies each teacher step once per
    input, so the teacher's share of the cost is the same for all; they differ in students and rounds.)"""
    fig = go.Figure()
    for plan, m in result["metrics"].items():
        label = plan_label(result, plan)
        fig.add_trace(go.Scatter(x=[m["seconds"]], y=[m["w2_total"]], mode="markers+text", name=label,
                                 text=[plan], textposition="top center",
                                 error_y=dict(type="data", array=[m["w2_total_sd"]], visible=True),
                                 marker=dict(color=color(plan), size=12), legendgroup=plan))
        fig.add_trace(go.Scatter(x=[m["seconds"]], y=[m["w2_total_theory"]], mode="markers",
                                 name=f"{label} (theory)", legendgroup=plan, showlegend=False,
                                 marker=dict(color=color(plan), size=12, symbol="circle-open"),
                                 hovertemplate=f"{label} theory %{{y:.4g}}<extra></extra>"))
    fig.update_xaxes(type="log", title="training seconds (per seed, the plan trained alone; log)")
    fig.update_yaxes(title="total W2 √Σ W2_i² (filled: measured, open: theory)")
    return _layout(fig, "Quality vs compute", height=400)


def _pm(mean: float, sd: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def compute_table(result: dict) -> pd.DataFrame:
    """One row per plan: quality (mean ± sd over seeds, the theory) next to what it cost."""
    rows = []
    floor = result["teacher"]["floor"]
    for plan, m in result["metrics"].items():
        info = result["plans"][plan]
        row = {"plan": info["label"], "merge tree": info["text"],
               "total W2 (measured)": _pm(m["w2_total"], m["w2_total_sd"]),
               "total W2 (theory)": round(m["w2_total_theory"], 4),
               "FD": _pm(m["fd"], m["fd_sd"], 3)}
        if "sliced_w2" in m:
            row |= {"sliced W2": _pm(m["sliced_w2"], m["sliced_w2_sd"]),
                    "near a mode": _pm(m["near_modes"], m["near_modes_sd"], 2)}
        row |= {"students": m["students"], "sequential rounds": m["generations"],
                "teacher steps": m["teacher_steps"], "SGD samples": m["sgd_samples"],
                "seconds": m["seconds"]}
        rows.append(row)
    teacher = result["teacher"]
    row = {"plan": f"teacher ({teacher['teacher_nfe']} steps)", "merge tree": "",
           "total W2 (measured)": "0 (the target)", "total W2 (theory)": 0.0,
           "FD": f"{teacher['metrics']['fd']:.3f} (floor {_pm(floor['fd'], floor['fd_sd'], 3)})"}
    if "sliced_w2" in teacher["metrics"]:
        row |= {"sliced W2": f"{teacher['metrics']['sliced_w2']:.4f} (floor {floor['sliced_w2']:.4f})",
                "near a mode": f"{teacher['metrics']['near_modes']:.2f}"}
    rows.append(row)
    return pd.DataFrame(rows)


def merges_table(result: dict) -> pd.DataFrame:
    """Per merge: which plans use it, how nonlinear its target is, the learned fraction ρ measured and by
    the closed form."""
    rows = [{"merge z_s → z_e": f"{m['span'][1]} → {m['span'][0]}", "height": m["height"],
             "plans": ", ".join(p for p in m["plans"]), "nonlinear share of the target": m["nonlinear"],
             "ρ measured": m["rho_measured"], "ρ closed form": m["rho_theory"]} for m in result["merges"]]
    return pd.DataFrame(rows)


def densities_panels(result: dict, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """2-D samples keyed by panel title: exact data, the teacher, then every plan (same z_T)."""
    out = {}
    if "data" in samples:
        out["exact data"] = samples["data"]
    out[f"teacher, {result['teacher']['teacher_nfe']} steps"] = samples["teacher"]
    for plan in result["w2"]:
        if plan in samples:
            out[plan] = samples[plan]
    return out


def density_grid(result: dict, samples: dict[str, np.ndarray]) -> go.Figure:
    from opmerge_core.figures.sfd import densities

    return densities(densities_panels(result, samples), reference="exact data", cols=4)
