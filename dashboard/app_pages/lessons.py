"""Lessons: the index of every lesson (shipped, and the teacher's own in $OPMERGE_LESSONS) with a link
to each step. A lesson file that cannot be read is listed with its one-line problem (docs/LESSONS.md)."""

import streamlit as st

from opmerge_dashboard import lessons
from opmerge_dashboard.params import ERROR

st.title("Lessons")
st.caption("A lesson walks through the lab step by step: each step opens a page in a given state, says "
           "what to notice and may ask a question whose answer the engine computes. Open a step, then "
           "move with **Previous / Next** or the **← / →** keys. Every step is a link you can share; "
           "add `&present=1` for a projector.")

catalog = lessons.available()
for problem in catalog.errors:
    st.error(problem, icon=ERROR)
if not catalog.lessons:
    st.info("No lessons found.")
present = {"present": "1"} if st.session_state.get("_present") == "1" else {}
for lesson in catalog.lessons.values():
    with st.container(border=True, key=f"lesson_card_{lesson.name}"):
        st.subheader(lesson.title, anchor=False)
        if lesson.summary:
            st.markdown(lesson.summary)
        own = not lesson.source.startswith(str(lessons.SHIPPED))
        st.caption(f"`{lesson.name}` · {len(lesson.steps)} steps · "
                   f"{sum(s.question is not None for s in lesson.steps)} questions"
                   + (f" · your own lesson ({lesson.source})" if own else ""))
        for step in lesson.steps:
            st.page_link(f"app_pages/{step.page}.py", label=f"{step.index}. {step.title}"
                         + ("  ·  question" if step.question else ""),
                         query_params={"lesson": lesson.name, "step": str(step.index), **present})
