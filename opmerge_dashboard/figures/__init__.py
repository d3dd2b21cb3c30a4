"""All Plotly figure builders of the dashboard (pure: data in, ``go.Figure`` out).

One module per area: ``theory`` (phase transition, operators, plans, spectrum, paper experiments);
other areas add ``train``, ``celeba``, ``sfd``, ``mixtures`` and re-export here.
"""

from opmerge_dashboard.figures.theory import (
    REGIME_COLORS,
    STRATEGY_COLORS,
    add_lam_line,
    add_phase_point,
    composite_vs_exact,
    from_dict,
    gap_grid_heatmap,
    geometry_animation,
    operators_per_step,
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
    "spectrum_regimes",
    "strategy_bars",
    "strategy_curves",
]
