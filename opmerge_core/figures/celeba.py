"""Plotly builders for the CelebA latent page (THEORY §6). Pure: data in, ``go.Figure`` out.

Same conventions as ``figures.theory``: λ on a log axis, λ = 1 dotted, the shared regime palette.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from opmerge_core.figures.theory import _layout, spectrum_regimes

SPLIT_COLORS = {"w2": "#333333", "w2_low": "#0072B2", "w2_high": "#D55E00"}
SPLIT_LABELS = {"w2": "all directions", "w2_low": "directions with λ < 1", "w2_high": "directions with λ ≥ 1"}


def latent_spectrum(eigvals: np.ndarray, regimes: Sequence[str], T: int) -> go.Figure:
    """The VAE latent covariance eigenvalues (log scale, λ = 1 marked), coloured by optimal regime."""
    fig = spectrum_regimes(np.asarray(eigvals), regimes)
    frac = float(np.mean(np.asarray(eigvals) < 1.0))
    fig.update_layout(title=dict(text=f"Latent spectrum ({len(eigvals)} directions, {100 * frac:.0f}% "
                                      f"below λ = 1): regime each direction wants alone at T = {T}"))
    return fig


def w2_split_bars(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: W2 of each method over all directions, over λ < 1 and over λ ≥ 1."""
    fig = go.Figure([go.Bar(x=table["label"], y=table[col], name=SPLIT_LABELS[col],
                            marker_color=SPLIT_COLORS[col]) for col in ("w2", "w2_low", "w2_high")])
    fig.update_yaxes(title="W2 to the surrogate (theory)")
    return _layout(fig, "Error of each method, split by eigenvalue", barmode="group")
