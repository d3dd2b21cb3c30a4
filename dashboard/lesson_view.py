"""The lesson bar: ``?lesson=NAME&step=K`` opens step K of a lesson on its page, in its state.

Opening a step (a link, Previous / Next, the ←/→ keys) only writes ``lesson`` and ``step`` into the URL;
the next run applies the step *before any widget exists* (``open_step``): every parameter of the step's
page is seeded with the step's value or its default (the lesson's values were checked when it loaded,
by the page's own URL checks), then, if the step lives on another page, the app switches to it. So a
step is a bookmarkable URL and looks the same whichever way it was reached.

The bar (``bar``) shows "step k of n", the narrative, the buttons and the step's question. The
question panel (``question_panel``) works alone (pick → reveal in this browser tab) or driven by a
room (``vote``, ``revealed``, ``counts`` given by ``room_view``). Lessons are parsed once per process
(``lessons``); a rerun costs a dict lookup and a directory listing.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from opmerge_dashboard import lessons, presentation, questions, room_view, untrusted
from opmerge_dashboard.lessons import Lesson, LessonError, Step
from opmerge_dashboard.params import ERROR

APPLIED = "_lesson_applied"          # (lesson, step) whose state was last seeded in this session
SWITCH = "_lesson_switch"            # a page the app must switch to before drawing anything


def requested() -> tuple[str, str] | None:
    """(lesson, step) from the URL, as given."""
    name = st.query_params.get("lesson")
    return None if not name else (str(name), str(st.query_params.get("step", "1")))


def current() -> tuple[Lesson, Step] | None:
    """The lesson and step of this session's URL, or None (no lesson, or a bad one: see ``open_step``)."""
    req = requested()
    if req is None:
        return None
    try:
        lesson = lessons.load(req[0])
    except LessonError:
        return None
    return lesson, lesson.step(_step_number(req[1], len(lesson.steps)))


def _step_number(text: str, n: int) -> int:
    try:
        return min(max(int(text), 1), n)
    except ValueError:
        return 1


def open_step() -> None:
    """Before any widget: when the URL names a lesson step not yet applied in this session, seed the
    state of the step's page and remember to switch to it. A bad lesson or step: one line on the page
    (``_lesson_error``), the page as it is."""
    req = requested()
    if req is None:
        st.session_state.pop(APPLIED, None)
        return
    if st.session_state.get(APPLIED) == req:
        return
    st.session_state[APPLIED] = req
    st.session_state.pop("_lesson_error", None)
    try:
        lesson = lessons.load(req[0])
    except LessonError as exc:
        st.session_state["_lesson_error"] = str(exc)
        return
    k = _step_number(req[1], len(lesson.steps))
    if str(k) != req[1]:
        st.session_state["_lesson_error"] = (f"Lesson {lesson.name!r} has steps 1 to {len(lesson.steps)}; "
                                             f"step {req[1]!r} is shown as step {k}.")
        st.query_params["step"] = str(k)
        st.session_state[APPLIED] = (req[0], str(k))
    step = lesson.step(k)
    for key, value in step.state.items():
        st.session_state[key] = value
    # the URL check of this session is done: the step's values stand (no reseeding from an old URL)
    st.session_state["_url_checked"] = True
    st.session_state[f"_url_checked_{step.page}"] = True
    st.session_state[SWITCH] = step.page


def switch_if_needed(current_page: str, pages: dict[str, st.Page]) -> None:
    """After ``st.navigation``: go to the page of the step just opened (keeps lesson, step, present)."""
    target = st.session_state.pop(SWITCH, None)
    if target and target != current_page and target in pages:
        keep = {k: st.query_params[k] for k in ("lesson", "step", "present", "room", "key")
                if k in st.query_params}
        st.switch_page(pages[target], query_params=keep)


def go(k: int) -> None:
    """Callback of Previous / Next (and the ←/→ keys): only the URL changes, the next run applies it."""
    st.query_params["step"] = str(k)


def leave() -> None:
    for key in ("lesson", "step"):
        st.query_params.pop(key, None)


# ---- the keyboard: ←/→ click Previous/Next, unless a control has the focus -----------------------
# streamlit-shortcuts (PyPI) binds keys to buttons, but its listener takes ←/→ from every element, so a
# focused slider could no longer be stepped with the keyboard (presentation mode relies on that). This
# listener leaves keys alone when a form control, slider, tab or menu has the focus.
# It runs in a hidden iframe (st.iframe: its script runs each time it is mounted; st.html's scripts did not
# run on a first page load) and replaces the listener a previous mount left on the app's document.
KEYS_JS = """<script>
(() => {
  const w = window.parent, doc = w.document;
  if (w.__opmergeLessonKeys) doc.removeEventListener("keydown", w.__opmergeLessonKeys);
  w.__opmergeLessonKeys = (e) => {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const key = {ArrowLeft: "lesson_prev", ArrowRight: "lesson_next"}[e.key];
    if (!key) return;
    const t = e.target;
    if (t && t.closest && t.closest('input, textarea, select, [contenteditable="true"], [role="slider"], '
        + '[role="combobox"], [role="listbox"], [role="option"], [role="radio"], [role="radiogroup"], '
        + '[role="tab"], [role="menu"], [role="menuitem"], [role="spinbutton"], .js-plotly-plot')) return;
    const button = doc.querySelector(`.st-key-${key} button:not([disabled])`);
    if (button) { e.preventDefault(); button.click(); }
  };
  doc.addEventListener("keydown", w.__opmergeLessonKeys);
})();
</script>"""

CSS = """<style>
  .st-key-lesson_keys { display: none; }
  .st-key-lesson_bar { border-left: 6px solid #0072B2; padding: 0.2rem 0 0.2rem 1rem; margin-bottom: 0.6rem; }
  .st-key-lesson_bar .lesson-where { color: #0072B2; font-weight: 600; letter-spacing: 0.02em; }
</style>"""
PRESENT_CSS = """<style>
  .st-key-lesson_keys { display: none; }
  .st-key-lesson_bar [data-testid="stMarkdownContainer"] p,
  .st-key-lesson_bar [data-testid="stMarkdownContainer"] li { font-size: 1.3rem; line-height: 1.45; }
  .st-key-lesson_bar h2 { font-size: 2.0rem !important; }
</style>"""


def bar() -> None:
    """The lesson bar at the top of the page (nothing when the URL names no lesson)."""
    problem = st.session_state.get("_lesson_error")
    if problem and requested() is not None:
        st.error(untrusted.text(problem, limit=400), icon=ERROR)     # it quotes the URL's values
    found = current()
    if found is None:
        return
    lesson, step = found
    n = len(lesson.steps)
    st.html(CSS + (PRESENT_CSS if presentation.active() else ""))
    with st.container(key="lesson_keys"):
        st.iframe(KEYS_JS, height=1)
    with st.container(key="lesson_bar"):
        widths = [5, 2, 2] if presentation.active() else [3, 1, 1]     # room for the labels (large on stage)
        head, prev, nxt = st.columns(widths, vertical_alignment="center")
        head.markdown(f"<span class='lesson-where'>{_escape(lesson.title)} · step {step.index} of {n}</span>",
                      unsafe_allow_html=True)
        prev.button("Previous", key="lesson_prev", icon=":material/arrow_back:", on_click=go,
                    args=(step.index - 1,), disabled=step.index <= 1, width="stretch")
        nxt.button("Next", key="lesson_next", icon=":material/arrow_forward:", on_click=go,
                   args=(step.index + 1,), disabled=step.index >= n, type="primary", width="stretch")
        st.subheader(step.title, anchor=False)
        st.markdown(step.narrative)
        if step.question is not None:
            room = room_view.poll(lesson.name, step.index, tuple(k for k, _ in step.question.choices))
            if room is None:                        # alone, or away from the room's step
                question_panel(lesson, step)
            else:
                question_panel(lesson, step, vote=room.vote, revealed=room.revealed, counts=room.counts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- the question -------------------------------------------------------------------------------------
@st.cache_data(max_entries=256, show_spinner=False)
def _answer(kind: str, qparams: tuple, state: tuple) -> questions.Answer:
    return questions.solve(kind, dict(qparams), dict(state))


def answer(step: Step) -> questions.Answer | None:
    """The engine's answer to the step's question (None while a heavy one computes on the backend;
    a problem, e.g. a missing reference run, raises ValueError)."""
    q = step.question
    assert q is not None
    qparams, state = tuple(sorted(q.params.items())), tuple(sorted(step.state.items()))
    if questions.is_heavy(q.kind, q.params, step.state):
        from opmerge_dashboard.backend import shared_result
        return shared_result(questions.solve, q.kind, q.params, step.state, label="Computing the answer")
    return _answer(q.kind, qparams, state)


def _reveal(key: str) -> None:
    st.session_state[f"{key}_revealed"] = st.session_state.get(key)


def _again(key: str) -> None:
    st.session_state.pop(f"{key}_revealed", None)
    st.session_state.pop(key, None)


def question_panel(lesson: Lesson, step: Step, *, vote: Callable[[str], None] | None = None,
                   revealed: bool | None = None, counts: dict[str, int] | None = None) -> None:
    """The step's question. Alone (``vote`` and ``revealed`` None): pick, then reveal in this tab. In a
    room: a pick calls ``vote(choice)``, ``revealed`` says whether the teacher revealed it, and after
    the reveal ``counts`` (votes per choice) are drawn next to the answer."""
    q = step.question
    if q is None:
        return
    key = f"lq_{lesson.name}_{step.index}"
    labels = dict(q.choices)
    solo = vote is None and revealed is None
    shown = st.session_state.get(f"{key}_revealed", "__none__") != "__none__" if solo else bool(revealed)
    with st.container(border=True, key="lesson_question"):
        st.markdown(f"**Question.** {q.prompt}")
        pick = st.radio("Your answer", list(labels), index=None, key=key, format_func=labels.get,
                        disabled=shown or (not solo and vote is None), label_visibility="collapsed",
                        on_change=(lambda: vote(st.session_state[key])) if vote else None)
        if solo and not shown:
            st.button("Reveal the answer", key=f"{key}_reveal", type="primary", disabled=pick is None,
                      on_click=_reveal, args=(key,), icon=":material/visibility:")
            st.caption("Your pick stays in this browser tab: nothing is recorded or sent.")
        if not shown:
            return
        try:
            ans = answer(step)
        except ValueError as exc:
            st.error(f"The answer cannot be computed: {untrusted.text(exc)}", icon=ERROR)
            return
        if ans is None:
            return
        picked = st.session_state.get(f"{key}_revealed") if solo else pick
        right = picked == ans.correct
        verdict = ("**Right!** " if right else
                   f"**Not quite** (you picked *{labels.get(picked, picked)}*). " if picked else "")
        (st.success if right else st.info)(f"{verdict}Answer: **{labels[ans.correct]}**. {ans.why}",
                                           icon=":material/lightbulb:")
        if counts:
            _histogram(q.choices, counts, ans.correct)
        if ans.figure is not None:
            from opmerge_dashboard.output import figure
            figure(ans.figure, f"lesson_{lesson.name}_{step.index}_answer", key=f"fig_{key}_answer")
        if solo:
            st.button("Ask again", key=f"{key}_again", on_click=_again, args=(key,), icon=":material/replay:")


def _histogram(choices: tuple[tuple[str, str], ...], counts: dict[str, int], correct: str) -> None:
    import plotly.graph_objects as go

    from opmerge_dashboard.output import figure
    keys = [k for k, _ in choices]
    fig = go.Figure(go.Bar(y=[dict(choices)[k] for k in keys], x=[counts.get(k, 0) for k in keys],
                           orientation="h", text=[counts.get(k, 0) for k in keys], textposition="outside",
                           marker_color=["#009E73" if k == correct else "#88AACC" for k in keys]))
    fig.update_layout(title="What the class answered", height=120 + 50 * len(keys), showlegend=False,
                      margin=dict(l=10, r=10, t=50, b=30))
    fig.update_yaxes(autorange="reversed")
    figure(fig, "class_answers", key="fig_class_answers")
