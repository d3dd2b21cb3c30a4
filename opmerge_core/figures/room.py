"""The class's votes on one question: a horizontal bar per choice (pure: counts in, figure out).

Bars keep the question's choice order (top to bottom), each labelled with its count and share; after
the reveal the correct choice is drawn in the palette's green and the others in grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

LIVE, CORRECT, OTHER = "#0072B2", "#009E73", "#BBBBBB"    # the lesson's histogram: correct in green


def votes_bar(choices: Sequence[tuple[str, str]], counts: Mapping[str, int], *,
              correct: str | None = None, font_size: int = 18) -> go.Figure:
    """``choices``: (key, label) pairs in the question's order; ``counts``: votes per key."""
    keys = [k for k, _ in choices]
    labels = [label for _, label in choices]
    n = [int(counts.get(k, 0)) for k in keys]
    total = sum(n)
    text = [f"{v}  ({100 * v / total:.0f}%)" if total else "0" for v in n]
    colors = [LIVE if correct is None else CORRECT if k == correct else OTHER for k in keys]
    fig = go.Figure(go.Bar(x=n, y=labels, orientation="h", marker_color=colors, text=text,
                           textposition="outside", cliponaxis=False, hoverinfo="skip",
                           textfont_size=font_size))
    fig.update_layout(height=70 + 64 * len(keys), margin=dict(l=10, r=40, t=10, b=10),
                      font=dict(size=font_size), showlegend=False, bargap=0.3,
                      plot_bgcolor="white", paper_bgcolor="white")
    fig.update_xaxes(visible=False, range=[0, max([*n, 1]) * 1.35])
    fig.update_yaxes(autorange="reversed", automargin=True, ticksuffix="  ", tickfont_size=font_size,
                     tickfont_color="#222222")                   # dark labels for a projector
    return fig
