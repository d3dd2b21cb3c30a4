"""Teacher operators in the linear-Gaussian model (THEORY §1).

Shapes: ``alpha``, ``sigma`` are (T + 1,) for t = 0..T; ``lam`` is (d,). Step t maps z_t → z_{t−1};
arrays of per-step quantities have shape (T, d) with row t − 1 holding step t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _grid(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return alpha[:, None], sigma[:, None] * np.ones_like(np.asarray(lam, dtype=np.float64))[None, :]


def r(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """r_t = ‖v_t‖ = √(α_t² λ + σ_t²), the standard deviation of z_t. Shape (T + 1, d)."""
    a, s = _grid(alpha, sigma, lam)
    return np.sqrt(a**2 * lam + s**2)


def theta(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """θ_t = atan2(σ_t, α_t √λ), the angle of v_t = (α_t √λ, σ_t). Shape (T + 1, d)."""
    a, s = _grid(alpha, sigma, lam)
    return np.arctan2(s, a * np.sqrt(lam))


def A_star(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Teacher DDIM step t → t−1 (Cor. 3.1): A*_t = (α_{t−1} α_t λ + σ_{t−1} σ_t)/(α_t² λ + σ_t²).

    Shape (T, d); row t − 1 is step t.
    """
    a, s = _grid(alpha, sigma, lam)
    return (a[:-1] * a[1:] * lam + s[:-1] * s[1:]) / (a[1:] ** 2 * lam + s[1:] ** 2)


def coarse_jump(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray | float, s: int,
                e: int | np.ndarray) -> np.ndarray | float:
    """One DDIM jump s → e (e < s; THEORY §2, init ``coarse``): (α_e α_s λ + σ_e σ_s)/(α_s² λ + σ_s²).

    ``lam`` a float array (d,) or one float; ``e`` an index or an index array (e.g. (n, 1) for n ends
    at once). Plain arithmetic, also compiled by numba for the DP kernels (``dp_kernels``), so every
    path rounds the jump the same way."""
    return (alpha[e] * alpha[s] * lam + sigma[e] * sigma[s]) / (alpha[s] ** 2 * lam + sigma[s] ** 2)


def teacher_composite(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """P = ∏_{t=1..T} A*_t (eq. 8). Shape (d,)."""
    return np.prod(A_star(alpha, sigma, lam), axis=0)


def exact_flow_map(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The exact probability-flow map T → 0: r_0/r_T. Shape (d,)."""
    rr = r(alpha, sigma, lam)
    return rr[0] / rr[-1]


@dataclass(frozen=True)
class Geometry:
    """Eq. 7: A*_t = (r_{t−1}/r_t) · cos(θ_t − θ_{t−1}) — a projection, then a rescaling.

    ``v``: (T + 1, d, 2) vectors (α_t √λ, σ_t); ``r``, ``theta``: (T + 1, d);
    ``projection`` = cos Δθ_t and ``rescale`` = r_{t−1}/r_t: (T, d), row t − 1 is step t.
    """

    v: np.ndarray
    r: np.ndarray
    theta: np.ndarray
    projection: np.ndarray
    rescale: np.ndarray

    @property
    def A_star(self) -> np.ndarray:
        """(T, d): the teacher steps, projection times rescaling (the exact one-step flow map t → t−1
        is the rescaling alone)."""
        return self.projection * self.rescale


def geometry(alpha: np.ndarray, sigma: np.ndarray, lam: np.ndarray) -> Geometry:
    lam = np.asarray(lam, dtype=np.float64)
    a, s = _grid(alpha, sigma, lam)
    v = np.stack([a * np.sqrt(lam), s], axis=-1)
    rr, th = r(alpha, sigma, lam), theta(alpha, sigma, lam)
    return Geometry(v=v, r=rr, theta=th, projection=np.cos(th[1:] - th[:-1]),
                    rescale=rr[:-1] / rr[1:])
