"""Plan playground: type or edit a merge plan and see its value, W2 and rank (THEORY §3)."""

import re

import pandas as pd
import streamlit as st

from opmerge_core import figures
from opmerge_core.cli import theory as theory_cli
from opmerge_core.theory import plans
from opmerge_dashboard import plan_views as views
from opmerge_dashboard import untrusted
from opmerge_dashboard.output import figure, show_cli
from opmerge_dashboard.params import ERROR, PLAN_URL_MAX, WARN, params

p = params()
st.title("Plan playground")
st.caption("A plan is a tree over the teacher steps T … 1: numbers are steps, brackets are trained "
           "students. For T = 4: vanilla `[4 3 2 1]`, sequential BOOT `[[[4 3] 2] 1]`.")
best = views.optimal(p.setting, p.lam)
if best is None:
    st.stop()                 # a large-T DP is computing: its placeholder reruns the page when done


def _set_plan(text: str) -> None:
    st.session_state["plan"] = text


def _load_strategy() -> None:
    _set_plan(plans.strategy(st.session_state["pg_start"], p.T).text)


def _current_plan() -> plans.Plan | None:
    try:
        return plans.parse(st.session_state.get("plan") or best.plan.text, p.T)
    except ValueError:
        return None


def _split(span: tuple[int, int]) -> None:
    plan = _current_plan()
    if plan is not None and span != (0, p.T):
        _set_plan(plans.Plan(p.T, plan.merges - {span}).text)


def _merge(span: tuple[int, int], k: int) -> None:
    plan = _current_plan()
    if plan is None:
        return
    kids = plan.children(span)
    if len(kids) <= 2 or not 0 <= k < len(kids) - 1:
        return
    _set_plan(plans.Plan(p.T, plan.merges | {(kids[k + 1][0], kids[k][1])}).text)


c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
c1.selectbox("Start from", plans.STRATEGIES, key="pg_start", format_func=plans.STRATEGY_LABELS.get)
c2.button("Load this strategy", on_click=_load_strategy, key="pg_load")
if st.session_state.pop("_reset_plan", False):  # see below: a rejected URL plan is cleared here
    st.session_state["plan"] = ""
text = st.text_input("Plan in bracket notation (empty = the DP optimum)", key="plan", bind="query-params",
                     max_chars=PLAN_URL_MAX, placeholder=best.plan.text[:200])
if text and text == st.session_state.get("_rejected_plan"):
    # On its first render a bound text box takes the URL's value even when the URL check rejected
    # it (any text is a valid string); clear it on an immediate rerun, before the box exists.
    st.session_state["_rejected_plan"] = None
    st.session_state["_reset_plan"] = True
    st.rerun()

try:
    plan = plans.parse(text or best.plan.text, p.T)
except ValueError as exc:
    msg = str(exc)
    st.error(f"Cannot read this plan (T = {p.T}): {untrusted.text(msg)}", icon=ERROR)
    m = re.match(r"position (\d+)", msg)
    if m:
        pos = int(m.group(1))
        st.code(text + "\n" + " " * (pos - 1) + "^", language=None, wrap_lines=True)
    st.stop()

values = views.span_values(p.setting, plan.text, p.lam)
value = values[(0, p.T)] if p.T >= 2 else values[(0, 1)]
w2 = float(p.setting.w2([value], [p.lam])[0])

m1, m2, m3, m4 = st.columns(4)
m1.metric("Your plan's one-step value", f"{value:.5f}")
m2.metric("Target P", f"{best.P:.5f}")
m3.metric("W2", f"{w2:.4g}")
m4.metric("Gap to the DP optimum", f"{w2 - best.w2:.3g}", help=f"DP optimum: {best.label}, W2 {best.w2:.4g}")
if not best.exact:
    st.warning("The DP reference here is in the mixed band and **not proven optimal**.", icon=WARN)

left, right = st.columns([3, 2])
with left:
    tree_df = pd.DataFrame([{"e": e, "s": s, "value": v} for (e, s), v in sorted(values.items())])
    figure(figures.plan_tree(plan, values, "Your plan"), "playground_tree", tree_df)
with right:
    st.markdown("#### Edit the tree")
    nodes = sorted(plan.merges, key=lambda sp: (-(sp[1] - sp[0]), -sp[1]))
    node = st.selectbox("Student (merge node)", nodes, key="pg_node",
                        format_func=lambda sp: f"z_{sp[1]} → z_{sp[0]}"
                        + (" (root)" if sp == (0, p.T) else ""))
    if node is not None and node in plan.merges:
        kids = plan.children(node)
        labels = [f"{c[1]}" if c[1] - c[0] == 1 else f"[{c[1]}…{c[0] + 1}]" for c in kids]
        st.caption("Children in application order: " + "  ·  ".join(labels))
        if len(kids) > 2:
            k = st.selectbox("Adjacent pair", range(len(kids) - 1), key="pg_pair",
                             format_func=lambda i: f"{labels[i]} + {labels[i + 1]}")
            st.button("Merge these two into a new student", on_click=_merge, args=(node, k),
                      key="pg_merge")
        else:
            st.caption("This student has two children: nothing to merge below it.")
        st.button("Split this student (its children join its parent)", on_click=_split, args=(node,),
                  key="pg_split", disabled=node == (0, p.T))
    st.markdown("**What it means.** Merging two segments first trains one more student (an extra "
                "shrinkage step); splitting removes one. Below λ = 1 extra shrinkage helps; above λ_V "
                "it hurts.")
    show_cli(theory_cli.to_argv(theory_cli.EvalCommand(plan.text, p.setting, (p.lam,)))
             if len(plan.text) <= 400 else "(plan too long to show; use the CSV of the tree)")

if p.T <= views.ENUMERATE_T_MAX:
    left, right = st.columns([3, 2])
    with left:
        all_values = views.all_plan_values(p.setting, p.lam)
        figure(figures.plan_value_hist(all_values, value, best.value, best.P, p.T), "plan_values",
                      pd.DataFrame({"value": all_values}))
    with right:
        target = best.P
        better = (abs(all_values - target) < abs(value - target) - 1e-15).sum()
        st.markdown("#### Where your plan ranks")
        st.markdown(f"{better:,} of {len(all_values):,} plans are closer to P than yours. The DP optimum "
                    "(dashed) is the closest achievable value; the histogram is every plan "
                    f"(little Schröder number for T = {p.T}).")
else:
    st.info(f"The distribution of all plans' values is shown for T ≤ {views.ENUMERATE_T_MAX} "
            f"({plans.little_schroeder(views.ENUMERATE_T_MAX):,} plans there; the count grows like "
            "5.8^T). Set T in the sidebar to see it.")
