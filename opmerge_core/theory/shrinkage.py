"""Student training under a finite budget (THEORY §2).

Gradient flow on E‖A z_s − A_tgt z_s‖² for time τ, inputs z_s ~ N(0, r_s²), gives per coordinate
A(τ) = (1 − γ_s) A_tgt + γ_s A(0) with γ_s = exp(−κ τ r_s²), κ = 2. The shrinkage parameter is the
budget S := κτ, so γ_s = exp(−S r_s²) and ρ_s = 1 − γ_s.

Every merge is then  value = c_{e,s} + first · (a_s · rest + b_s)  with coefficients that depend on the
init choice (``merge_coefficients``); it is increasing in ``first`` and ``rest`` when both are ≥ 0,
which is what makes the min/max dynamic program exact (THEORY §4).
"""

from __future__ import annotations

import numpy as np

INITS = ("teacher", "zero", "coarse", "identity")
INIT_LABELS = {
    "teacher": "teacher: A(0) = first child (default)",
    "zero": "zero: A(0) = 0",
    "coarse": "coarse: A(0) = one DDIM jump s → e",
    "identity": "identity: A(0) = 1",
}


def rho(S: float, r2: np.ndarray) -> np.ndarray:
    """ρ_s = 1 − γ_s = 1 − exp(−S r_s²), the fraction of the target a student learns (−expm1 keeps
    small S accurate)."""
    return -np.expm1(-S * np.asarray(r2, dtype=np.float64))


def merge_coefficients(init: str, rho_s: np.ndarray) -> tuple[np.ndarray, ...]:
    """(a, b, c1, c2) with  merge = c1 + c2 · coarse(s, e) + first · (a · rest + b), each shaped
    like ``rho_s``; coarse(s, e) is ``operators.coarse_jump``.

    - teacher:  A(0) = first child  →  first · ((1 − ρ) + ρ · rest)
    - zero:     A(0) = 0            →  ρ · first · rest
    - identity: A(0) = 1            →  ρ · first · rest + (1 − ρ)
    - coarse:   A(0) = DDIM jump    →  ρ · first · rest + (1 − ρ) · coarse(s, e)
    """
    zero = np.zeros_like(rho_s)
    keep = 1.0 - rho_s
    return {
        "teacher": (rho_s, keep, zero, zero),
        "zero": (rho_s, zero, zero, zero),
        "identity": (rho_s, zero, keep, zero),
        "coarse": (rho_s, zero, zero, keep),
    }[init]


def trained(target: np.ndarray, A0: np.ndarray, rho_s: np.ndarray) -> np.ndarray:
    """The closed form itself: A(τ) = ρ A_tgt + (1 − ρ) A(0)."""
    return rho_s * target + (1.0 - rho_s) * A0
