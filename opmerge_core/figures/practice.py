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
from opmerge_core.practice.judge import lam_range

MEASURED = {"boot": "#0072B2", "vanilla": "#D55E00", "unresolved": "#BBBBBB"}


def color(plan: str) -> str:
    return STRATEGY_COLORS.get(plan, "#777777")


def plan_label(result: dict, plan: str) -> str:
    return result["plans"][plan]["label"]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 tick values in [lo, hi] (every digit when that gives fewer than three): plotly's own log
    ticks print 0.3 as a bare "3"."""
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    for mantissas in ((1, 2, 5), range(1, 10)):
        ticks = [float(f"{m * 10.0**e:.3g}") for e in decades for m in mantissas]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 3:
            break
    return ticks


def _log_x(fig: go.Figure, values: Sequence[float], title: str) -> None:
    lo, hi = float(np.min(values)), float(np.max(values))
    ticks = log_ticks(lo, hi) if hi > lo else [lo]
    fig.update_xaxes(type="log", title=title, tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def _lam_axis(fig: go.Figure, lam: Sequence[float]) -> None:
    _log_x(fig, lam, "λ (eigenvalue of the data covariance, log scale)")
    fig.add_vline(x=1.0, line=dict(color="#999999", dash="dot", width=1))


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
    _lam_axis(fig, curves["lam"])
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
    _lam_axis(fig, curves["lam"])
    fig.update_yaxes(title="W2 BOOT − W2 vanilla (< 0: BOOT better)")
    return _layout(fig, "BOOT − vanilla per direction (bars: noise threshold; ×: the other plan won)",
                   height=420)


def gains(result: dict) -> go.Figure:
    """Per direction the one-step gain (least-squares slope of the one-step map z_T → z_0) divided by
    the closed form's operator, against λ: 1 where the student reaches the theory's operator; the
    teacher's own T-step gain divided by P as grey diamonds."""
    fig = go.Figure()
    teacher = result["teacher"]
    lam = np.array(teacher["lam"])
    fig.add_trace(go.Scatter(x=lam, y=np.array(teacher["gain"]) / np.array(teacher["P"]), mode="markers",
                             name="teacher (T steps) ÷ P", marker=dict(color="#777777", size=7,
                                                                       symbol="diamond-open")))
    for plan, g in result["gains"].items():
        theory = np.array(g["theory"])
        fig.add_trace(go.Scatter(x=lam, y=np.array(g["mean"]) / theory, mode="markers",
                                 name=plan_label(result, plan),
                                 error_y=dict(type="data", array=np.array(g["sd"]) / np.abs(theory),
                                              visible=True, thickness=1),
                                 marker=dict(color=color(plan), size=6)))
    fig.add_hline(y=1.0, line=dict(color="#999999", dash="dash", width=1))
    _lam_axis(fig, lam)
    fig.update_yaxes(title="measured gain ÷ closed form")
    return _layout(fig, "One-step gain per direction ÷ the closed form's operator (1: as predicted)",
                   height=420)


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
    seconds = [m["seconds"] for m in result["metrics"].values()]
    _log_x(fig, [min(seconds) / 1.3, max(seconds) * 1.3],
           "training seconds (per seed, the plan trained alone; log)")
    fig.update_yaxes(title="total W2 (filled: measured, open: theory)")
    return _layout(fig, "Quality vs compute: total W2 = √Σ W2_i² against training seconds", height=420)


def pm(mean: float, sd: float) -> str:
    """mean ± sd with the sd's two significant digits (four decimals when the sd is 0)."""
    digits = min(6, max(0, 1 - int(np.floor(np.log10(sd))))) if sd > 0 and np.isfinite(sd) else 4
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def compute_table(result: dict) -> pd.DataFrame:
    """One row per plan: quality (mean ± sd over seeds, the theory) next to what it cost, per seed as if
    the plan were trained alone; then the teacher and exact samples (the floor). Cells are text, so the
    rows without a cost stay empty."""
    rows = []
    for plan, m in result["metrics"].items():
        row = {"plan": plan_label(result, plan), "total W2": pm(m["w2_total"], m["w2_total_sd"]),
               "theory": f"{m['w2_total_theory']:.4f}", "FD": pm(m["fd"], m["fd_sd"])}
        if "sliced_w2" in m:
            row |= {"sliced W2": pm(m["sliced_w2"], m["sliced_w2_sd"]),
                    "near a mode": pm(m["near_modes"], m["near_modes_sd"])}
        row |= {"students": str(m["students"]), "rounds": str(m["generations"]),
                "teacher steps": f"{m['teacher_steps']:,}", "seconds": f"{m['seconds']:.1f}",
                "merge tree": result["plans"][plan]["text"]}
        rows.append(row)
    teacher, floor = result["teacher"]["metrics"], result["teacher"]["floor"]
    row = {"plan": f"teacher ({result['teacher']['teacher_nfe']} steps)", "total W2": "0 (the target)",
           "FD": pm(teacher["fd"], teacher.get("fd_sd", 0.0))}
    if "sliced_w2" in teacher:
        row |= {"sliced W2": pm(teacher["sliced_w2"], teacher.get("sliced_w2_sd", 0.0)),
                "near a mode": f"{teacher['near_modes']:.2f}"}
    rows.append(row)
    row = {"plan": "exact samples (the floor)", "FD": pm(floor["fd"], floor["fd_sd"])}
    if "sliced_w2" in floor:
        row["sliced W2"] = f"{floor['sliced_w2']:.4f}"
    rows.append(row)
    return pd.DataFrame(rows).fillna("")


# ---- what to notice beside each figure (plain words, from the run's own numbers) -------------------
def theory_switch(result: dict) -> float | None:
    """The λ where the theory's W2_boot − W2_vanilla changes sign (geometric interpolation), if it does."""
    curves = result["curves"]
    lam, gap = np.array(curves["lam"]), np.array(curves["boot"]) - np.array(curves["vanilla"])
    flips = np.flatnonzero(np.sign(gap[:-1]) * np.sign(gap[1:]) < 0)
    if flips.size == 0:
        return None
    i = int(flips[0])
    t = gap[i] / (gap[i] - gap[i + 1])
    return float(lam[i] * (lam[i + 1] / lam[i]) ** t)


def notice_w2(result: dict) -> str:
    ratios = ", ".join(f"{plan_label(result, p)} {m['w2_total'] / m['w2_total_theory']:.2f}"
                       for p, m in result["metrics"].items() if m["w2_total_theory"] > 0)
    floor = ("a linear student cannot go below them" if result["spec"]["student"] == "linear"
             else "an MLP student may go below them")
    return (f"**Notice** whether each plan's points sit on its own line (its W2 by the closed form). "
            f"Measured total W2 ÷ the theory's: {ratios}. Grey dashes: the best any linear one-step map "
            f"reaches in that direction — {floor}; points resting on them are limited by the teacher's "
            f"non-Gaussian marginal, not by the plan.")


def notice_boot_vanilla(result: dict) -> str:
    ag = result.get("agreement") or {}
    switch = theory_switch(result)
    where = (f"The theory's curve crosses zero at λ ≈ {switch:.3g}: BOOT better below, vanilla above."
             if switch is not None else "The theory's curve keeps one sign over this spectrum.")
    if ag.get("value") is None:
        return f"**Notice** the sign (below 0: BOOT better). {where}"
    wrong = [i for i, (p, m) in enumerate(zip(ag["predicted"], ag["measured"], strict=True))
             if m != "unresolved" and p != "tie" and p != m]
    lam = np.array(result["teacher"]["lam"])
    crosses = (f"× marks the {len(wrong)} where the other plan won ({lam_range(lam[wrong])})" if wrong
               else "no point is on the wrong side")
    return (f"**Notice** the sign (below 0: BOOT better). {where} Measured: {ag['agree']} of "
            f"{ag['resolved']} resolved directions fall on the theory's side; {crosses}. Open circles "
            f"differ by less than their noise (t · se over seeds, the error bars) and are not counted.")


def notice_compute(result: dict) -> str:
    metrics = result["metrics"]
    best = min(metrics, key=lambda p: metrics[p]["w2_total"])
    text = (f"**Notice** what quality costs: the best measured plan, {plan_label(result, best)} (total W2 "
            f"{pm(metrics[best]['w2_total'], metrics[best]['w2_total_sd'])}), trains "
            f"{metrics[best]['students']} students in {metrics[best]['generations']} rounds")
    if "vanilla" in metrics and best != "vanilla":
        v = metrics["vanilla"]
        text += (f", {metrics[best]['seconds'] / max(v['seconds'], 1e-9):.1f}× vanilla's seconds "
                 f"(vanilla: {pm(v['w2_total'], v['w2_total_sd'])})")
    return (text + ". Open markers are the theory's total W2: the vertical gap to the filled one is what "
            "the theory misses for that plan. Seconds depend on the machine; students, rounds and teacher "
            "steps (the table) do not.")


def _fd_range(result: dict) -> str:
    metrics = result["metrics"]
    best, worst = (f(metrics, key=lambda p: metrics[p]["fd"]) for f in (min, max))
    floor, teacher = result["teacher"]["floor"], result["teacher"]["metrics"]
    def fd(plan: str) -> str:
        return f"{plan_label(result, plan)} {pm(metrics[plan]['fd'], metrics[plan]['fd_sd'])}"

    return (f"FD against {result['teacher']['fd_reference']} (lower is better): best {fd(best)}, worst "
            f"{fd(worst)}; the teacher {teacher['fd']:.3f}, exact samples "
            f"{pm(floor['fd'], floor['fd_sd'])}")


def notice_faces(result: dict, gain: float) -> str:
    return (f"**Notice** the difference rows (×{gain:g} around mid-grey): the greyer a plan's row, the "
            f"closer its one-step faces are to the teacher's from the same z_T. {_fd_range(result)}.")


def notice_densities(result: dict) -> str:
    metrics = result["metrics"]
    near = ", ".join(f"{plan_label(result, p)} {m['near_modes']:.2f}" for p, m in metrics.items()
                     if "near_modes" in m)
    teacher = result["teacher"]["metrics"].get("near_modes")
    linear = (" A linear student maps Gaussian noise to a Gaussian: it cannot split the modes, whatever "
              "the plan." if result["spec"]["student"] == "linear" else "")
    return (f"**Notice** the modes: share of samples near a mode — {near}; the teacher "
            f"{teacher:.2f}.{linear} {_fd_range(result)}.")


def notice_gains(result: dict) -> str:
    teacher = result["teacher"]
    ratio = np.array(teacher["gain"]) / np.array(teacher["P"])
    plans = ", ".join(f"{plan_label(result, p)} {np.median(np.array(g['mean']) / np.array(g['theory'])):.3f}"
                      for p, g in result["gains"].items())
    return (f"**Notice** how far from 1 the points sit: on the dashed line a student reaches the one-step "
            f"operator the closed form predicts, below it contracts more. Medians over directions: "
            f"{plans}. The grey diamonds are the teacher's own T-step map against the theory's P: median "
            f"{np.median(ratio):.3f}, from {ratio.min():.3f} to {ratio.max():.3f} (exactly 1 for a Gaussian "
            f"teacher) — where a nonlinear teacher's map is not P, every plan's target moves with it.")


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
            out[plan_label(result, plan)] = samples[plan]
    return out


def density_grid(result: dict, samples: dict[str, np.ndarray]) -> go.Figure:
    from opmerge_core.figures.sfd import densities

    return densities(densities_panels(result, samples), reference="exact data", cols=4)
