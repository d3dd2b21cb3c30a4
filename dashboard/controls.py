"""Which shared controls each page shows, and where.

Every page shows the shared, URL-bound teaching parameters that act on it and only those
(``url_params.PAGE_CONTROLS``); the SFD and Mixtures pages have only their own controls. Normally they
sit in the sidebar; in presentation mode (``?present=1``) λ, T and S move onto the *stage*, large
sliders at the top of the main area (keyboard steppable: focus a slider, then ←/→), and the rest stay
in the collapsed sidebar. The widgets are the same keyed, bound widgets either way, so URLs are unchanged.
"""

from __future__ import annotations

import streamlit as st

from opmerge_dashboard import presentation
from opmerge_dashboard.params import (
    SHARED_WIDGETS,
    model_choices_text,
    parameter_widget,
    parameter_widgets,
    params,
)
from opmerge_dashboard.url_params import PAGE_CONTROLS  # url path -> the shared parameters acting on it

STAGE = ("lam", "T", "S")
THEORY = SHARED_WIDGETS
WITHOUT_CONTROLS = ("lessons",)      # pages no teaching parameter acts on (and no lesson step opens)


def for_page(url_path: str) -> tuple[str, ...]:
    if url_path in WITHOUT_CONTROLS:
        return ()
    return PAGE_CONTROLS.get(url_path or "phase", SHARED_WIDGETS)


def stage(keys: tuple[str, ...]) -> None:
    """Presentation mode: λ, T, S (those that act on this page) as large sliders in the main area."""
    on_stage = [k for k in STAGE if k in keys]
    if not on_stage:
        return
    with st.container(key="stage"):
        for col, key in zip(st.columns(len(on_stage), gap="large"), on_stage):
            with col:
                parameter_widget(key)


def sidebar(keys: tuple[str, ...]) -> None:
    """The sidebar's share of the controls: everything not on the stage."""
    shown = tuple(k for k in keys if not (presentation.active() and k in STAGE))
    if keys:
        st.caption("Every control below is in the URL: share the link to share the state."
                   + (" λ, T and S are on the stage (top of the page)."
                      if presentation.active() and shown != keys else ""))
        parameter_widgets(shown)
        st.markdown("**Active model choices** (assumptions, see About)\n\n"
                    f":small[:gray[{model_choices_text(params())}]]")
    else:
        st.caption("This page has its own controls (on the page); the shared theory controls "
                   "(λ, T, S, schedule …) are on the theory pages.")
