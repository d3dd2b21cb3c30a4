"""Noise schedules (THEORY §1): α_t, σ_t for t = 0..T with z_t = α_t x0 + σ_t ε.

In every schedule t = 0 is clean data (α_0 = 1, σ_0 = 0) and t = T is the noise end. Nothing in the
rest of the code assumes variance preservation.
"""

from __future__ import annotations

import numpy as np

from opmerge_core.basics.validation import check_choice, check_T

SCHEDULE_LABELS = {
    "trig": "trigonometric VP (default)",
    "cosine": "VP cosine (Nichol–Dhariwal)",
    "linear": "VP linear-β (DDPM)",
    "edm": "EDM / VE ρ = 7, mapped to VP",
    "rf": "rectified flow",
}
SCHEDULES = tuple(SCHEDULE_LABELS)

COSINE_OFFSET = 0.008                 # Nichol & Dhariwal (2021), eq. 17
DDPM_BETA = (1e-4, 0.02, 1000)        # Ho et al. (2020): β_1, β_N, N
EDM_SIGMA = (0.002, 80.0, 7.0)        # Karras et al. (2022): σ_min, σ_max, ρ


def trig(T: int) -> tuple[np.ndarray, np.ndarray]:
    """Trigonometric VP: α_t = cos(πt/2T), σ_t = sin(πt/2T)."""
    phi = np.pi * np.arange(T + 1) / (2 * T)
    alpha, sigma = np.cos(phi), np.sin(phi)
    alpha[-1], sigma[0] = 0.0, 0.0  # exact end points: α_T = 0, σ_0 = 0
    return alpha, sigma


def cosine(T: int, s: float = COSINE_OFFSET) -> tuple[np.ndarray, np.ndarray]:
    """VP cosine: ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2); α = √ᾱ, σ = √(1 − ᾱ)."""
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    abar = np.clip(f / f[0], 0.0, 1.0)
    abar[0], abar[-1] = 1.0, 0.0
    return np.sqrt(abar), np.sqrt(1.0 - abar)


def linear(T: int) -> tuple[np.ndarray, np.ndarray]:
    """VP linear-β (DDPM): β from 1e-4 to 0.02 over 1000 steps, ᾱ_i = ∏_{j≤i}(1 − β_j),
    sub-sampled evenly to T steps (log ᾱ interpolated at t·1000/T; exact when T divides 1000)."""
    beta_1, beta_N, N = DDPM_BETA
    log_abar = np.concatenate([[0.0], np.cumsum(np.log1p(-np.linspace(beta_1, beta_N, N)))])
    idx = np.arange(T + 1) * (N / T)
    abar = np.exp(np.interp(idx, np.arange(N + 1), log_abar))
    abar[0] = 1.0
    return np.sqrt(abar), np.sqrt(1.0 - abar)


def edm_sigmas(T: int, sigma_min: float = EDM_SIGMA[0], sigma_max: float = EDM_SIGMA[1],
               rho: float = EDM_SIGMA[2]) -> np.ndarray:
    """EDM noise levels σ_0 = 0 < σ_1 < … < σ_T on the ρ = 7 polynomial grid (Karras et al. eq. 5)."""
    if T == 1:
        return np.array([0.0, sigma_max])
    i = np.arange(T) / (T - 1)
    levels = (sigma_min ** (1 / rho) + i * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho
    return np.concatenate([[0.0], levels])


def edm(T: int) -> tuple[np.ndarray, np.ndarray]:
    """EDM/VE levels mapped to VP: α = 1/√(1 + σ²), σ_vp = σ/√(1 + σ²)."""
    ve = edm_sigmas(T)
    alpha = 1.0 / np.sqrt(1.0 + ve**2)
    return alpha, ve * alpha


def rf(T: int) -> tuple[np.ndarray, np.ndarray]:
    """Rectified flow: α_t = 1 − t/T, σ_t = t/T."""
    t = np.arange(T + 1) / T
    return 1.0 - t, t


_BUILDERS = {"trig": trig, "cosine": cosine, "linear": linear, "edm": edm, "rf": rf}


def schedule(name: str, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(α, σ), each of shape (T + 1,), for the named schedule."""
    check_choice(name, SCHEDULES, "schedule")
    T = check_T(T)
    alpha, sigma = _BUILDERS[name](T)
    return alpha.astype(np.float64), sigma.astype(np.float64)
