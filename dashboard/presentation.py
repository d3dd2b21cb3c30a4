"""Presentation mode (``?present=1``): readable from the back of a room on a 1280×720 projector.

Page text is scaled by CSS; Plotly figures (whose fonts CSS cannot reach) are restyled by
``style_figure`` just before they are drawn, so cached figure specs stay unchanged.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from opmerge_core.figures.theory import TrustedFigure

FIG_FONT = 22            # px, Plotly base font on stage (15 otherwise, figures.theory.FONT)
FIG_HEIGHT_SCALE = 1.2   # larger type needs a taller plot area

CSS = """<style>
  html, body, [data-testid="stAppViewContainer"] { font-size: 22px; }
  [data-testid="stMetricValue"] { font-size: 2.4rem; }
  [data-testid="stMetricLabel"] p { font-size: 1.05rem; }
  [data-testid="stMetricValue"] *, [data-testid="stMetricLabel"] * {
    white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }
  h1 { font-size: 2.4rem !important; } h2, h3 { font-size: 1.9rem !important; }
  .stCaption, [data-testid="stCaptionContainer"] { font-size: 1.05rem; }
  [data-testid="stMainBlockContainer"] { padding-top: 4rem; }
  .katex-display { font-size: 0.85em; overflow-x: auto; overflow-y: hidden; }
  .st-key-stage { border: 2px solid #0072B2; border-radius: 0.6rem; padding: 0.3rem 1.6rem 0.1rem; }
  .st-key-stage [data-testid="stWidgetLabel"] p { font-size: 1.25rem; font-weight: 600; }
  .st-key-stage [data-testid="stSliderThumbValue"],
  .st-key-stage [data-testid="stSliderTickBarMin"],
  .st-key-stage [data-testid="stSliderTickBarMax"] { font-size: 1.3rem; }
  .st-key-stage [role="slider"] { width: 1.9rem; height: 1.9rem; }
  .st-key-stage [data-baseweb="slider"] > div > div { height: 0.5rem; }
</style>"""


def active() -> bool:
    return st.session_state.get("_present") == "1"


def style_figure(fig: go.Figure) -> go.Figure:
    """On stage: large fonts everywhere in the figure (title, axes, legend, annotations, cell text),
    automatic margins so the bigger tick labels fit, a taller plot. Otherwise unchanged."""
    if not active():
        return fig
    if isinstance(fig, TrustedFigure):      # a trusted spec: a real figure to restyle
        fig = go.Figure(fig.to_dict(), _validate=False)
    height = fig.layout.height or 450
    fig.update_layout(font=dict(size=FIG_FONT), title_font_size=FIG_FONT + 4, legend_font_size=FIG_FONT - 2,
                      height=round(height * FIG_HEIGHT_SCALE))
    fig.update_xaxes(automargin=True, tickfont_size=FIG_FONT - 2, title_font_size=FIG_FONT)
    fig.update_yaxes(automargin=True, tickfont_size=FIG_FONT - 2, title_font_size=FIG_FONT)
    if fig.layout.legend.orientation == "h":        # below the plot: clear the larger axis title
        fig.update_layout(legend=dict(y=-0.3, yanchor="top"))
    fig.update_annotations(font_size=FIG_FONT - 2)
    fig.for_each_trace(lambda t: t.update(textfont_size=FIG_FONT - 4) if "textfont" in t else None)
    return fig
