"""Predict, then reveal (home page, ``?predict=1``): the optimal plan, its tree and the metrics stay
hidden until the student has picked which strategy wins at the current λ and T; then the answer is
shown with the reason (THEORY §4–§5: where every plan over- or undershoots the target P).

Nothing about the student is stored: the pick lives in this browser session's memory only (not in
the URL, not in the run store) and is forgotten when λ, T or a model choice changes.
"""

from __future__ import annotations

import streamlit as st

from opmerge_core.theory import planner, plans
from opmerge_core.theory.setting import Setting
from opmerge_dashboard.params import Params, keep_in_url
from opmerge_dashboard.questions import REGIME_ANSWER, STRATEGY_CHOICES, why_optimal

# the "optimal strategy" question of the lessons, asked at the current state (questions.py)
CHOICES, ANSWER, why = STRATEGY_CHOICES, REGIME_ANSWER, why_optimal
PICK, REVEALED = "_predict_pick", "_predict_revealed"     # session memory only
URL_ON = ("1", "true", "yes", "on")                       # ?predict=1 (also ?predict=true)


def _question(p: Params) -> tuple[Setting, float]:
    return p.setting, p.lam


def _reveal(question: tuple[Setting, float]) -> None:
    st.session_state[PICK] = st.session_state.get("predict_choice")
    st.session_state[REVEALED] = question


def _again() -> None:
    st.session_state.pop(REVEALED, None)
    st.session_state.pop(PICK, None)


def _named_w2(p: Params, name: str) -> float:
    v = float(plans.named_plans(p.T)[name].evaluate(p.setting, [p.lam])[0])
    return float(p.setting.w2([v], [p.lam])[0])


def gate(p: Params, best: planner.OptimalPlan | None, lam_B: float, lam_V: float) -> bool:
    """The toggle, and with it on the question or the revealed answer. True when the page may
    show the optimal plan (predict mode off, or answered)."""
    if "predict" not in st.session_state:                  # first visit: the URL decides
        st.session_state["predict"] = str(st.query_params.get("predict", "")).lower() in URL_ON
    on = st.toggle("Predict, then reveal", key="predict", persist_state="session",
                   help="Hide the answer until a prediction is made (for a classroom). Nothing is stored.")
    if on:                                                 # kept in the URL: the link shares the mode
        keep_in_url("predict", "1")
    else:
        st.query_params.pop("predict", None)
    if not on:
        return True
    question = _question(p)
    if st.session_state.get(REVEALED) != question:
        with st.container(border=True, key="predict_question"):
            st.markdown(f"### Predict: at λ = {p.lam:g} and T = {p.T}, which strategy gives the smallest "
                        "W2 error?")
            pick = st.radio("Your prediction", list(CHOICES), index=None, key="predict_choice",
                            format_func=CHOICES.get)
            st.button("Reveal the answer", key="predict_reveal", type="primary", disabled=pick is None,
                      on_click=_reveal, args=(question,), icon=":material/visibility:")
            st.caption("Your pick stays in this browser tab only: nothing is recorded or sent. Changing "
                       "λ, T or a model choice asks again.")
        return False
    if best is None:                                       # still computing (its placeholder shows)
        return False
    pick = st.session_state.get(PICK)
    answer = ANSWER[best.regime]
    verdict = "Right!" if pick == answer else f"Not quite: you picked *{CHOICES.get(pick, pick)}*."
    text = f"**{verdict}** The optimum here is **{best.label}**. {why(best, p.lam, p.T, lam_B, lam_V)}"
    if pick in ("boot", "vanilla") and pick != answer:
        text += f" Your pick's W2 is {_named_w2(p, pick):.4g} against {best.w2:.4g} for the optimum."
    (st.success if pick == answer else st.info)(text, icon=":material/lightbulb:")
    st.button("Ask again", key="predict_again", on_click=_again, icon=":material/replay:")
    return True
