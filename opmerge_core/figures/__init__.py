"""All Plotly figure builders (pure: data in, ``go.Figure`` out): the dashboard draws with them and so
can a notebook. They live in the core, not in the dashboard's folder, because the core's Python API
(``opmerge_core.api``) returns them and the core never imports the dashboard.

One module per page group: ``theory`` (phase transition, plans, spectrum, paper experiments) and
``operators``, re-exported here for the theory pages; ``train``, ``celeba`` and ``sfd`` (SFD and
Mixtures pages) as submodules (``figures.train.w2_bars``).
"""

from opmerge_core.figures import celeba, sfd, train
from opmerge_core.figures.operators import composite_vs_exact, geometry_animation, operators_per_step
from opmerge_core.figures.theory import (
    REGIME_COLORS,
    STRATEGY_COLORS,
    add_lam_line,
    add_phase_point,
    from_dict,
    gap_grid_heatmap,
    phase_diagram,
    plain_spec,
    plan_tree,
    plan_value_hist,
    regime_heatmap,
    spectrum_regimes,
    strategy_bars,
    strategy_curves,
)

__all__ = [
    "REGIME_COLORS",
    "STRATEGY_COLORS",
    "add_lam_line",
    "add_phase_point",
    "celeba",
    "composite_vs_exact",
    "from_dict",
    "gap_grid_heatmap",
    "geometry_animation",
    "operators_per_step",
    "phase_diagram",
    "plain_spec",
    "plan_tree",
    "plan_value_hist",
    "regime_heatmap",
    "sfd",
    "spectrum_regimes",
    "strategy_bars",
    "strategy_curves",
    "train",
]
