"""Face grids large enough to see on a projector: integer nearest-neighbour enlargement (the 64-pixel
decodes stay honest, the labels grow with them) and a zoom onto a few columns. A column is one z_T, so
selecting columns keeps the same z_T across every row."""

from __future__ import annotations

import streamlit as st

from opmerge_dashboard import presentation
from opmerge_dashboard.params import BOUND

SCALES = (1, 2, 3, 4)          # 64, 128, 192, 256 px tiles


def tile_control(key: str, container=st) -> int:
    """Tile size selector (default 2×, 3× on stage)."""
    default = 3 if presentation.active() else 2
    scale = container.segmented_control("face size", SCALES, default=default, key=key,
                                        format_func=lambda s: f"{64 * s} px",
                                        help="Enlarge the 64×64 decodes (nearest neighbour).")
    return int(scale or default)


def column_control(n: int, key: str, container=st) -> tuple[int, ...] | None:
    """Zoom onto some columns (one z_T each), bound to the URL (``key`` is its parameter); None = all
    ``n``."""
    picked = container.multiselect("zoom on columns (same z_T in every row)", list(range(1, n + 1)),
                                   key=key, placeholder="all columns", **BOUND,
                                   help="Show only these columns, e.g. 2 or 3 faces at a large size.")
    picked = [c for c in picked if c <= n]
    return tuple(c - 1 for c in sorted(picked)) or None
