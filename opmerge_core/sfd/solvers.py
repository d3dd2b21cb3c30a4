"""ODE solvers for diffusion sampling in the EDM / VE form (SFD.md "Parameterisation and schedule",
"Teacher solvers").

Data are noised as ``x_t = x0 + t ε``; a denoiser ``D(x, t) ≈ E[x0 | x_t = x]`` gives the probability-flow
ODE direction ``d(x, t) = (x − D(x, t)) / t`` (``dx/dt = d``). Sampling starts from ``t_max · N(0, I)`` and
walks down a decreasing time grid ``t_0 = t_max > t_1 > … > t_N`` (``t_N = t_min``, or 0).

All solvers share one signature, k-diffusion style::

    x = solve(denoiser, x, grid, solver="dpmpp3m", afs=False)
    x, traj = solve(denoiser, x, grid, return_trajectory=True)   # traj[i] = state at grid[i]

The denoiser is a :class:`Denoiser`: any callable ``denoiser(x, t) -> x0_hat`` taking an array (numpy or
torch) and a Python float; the solvers use only arithmetic, so numpy arrays and torch tensors both work.
Count network evaluations with :class:`CountingDenoiser`; :func:`nfe` gives the count without running
anything. The default grid ends are :data:`DEFAULT_T_MAX` and :data:`DEFAULT_T_MIN` (times, SFD.md).

Solvers (SFD.md): ``euler`` (= DDIM), ``heun`` (EDM 2nd order, no correction into ``s = 0``),
``dpmpp1`` / ``dpmpp2`` / ``dpmpp3m`` (DPM-Solver++ multistep, data prediction, ``λ(t) = −ln t``,
lower order on the first steps and on the last ones: by default as SFD's official sampler does, for every
step count; DPM-Solver's rule, only when there are < 10 steps, is an option, see :func:`dpmpp_orders`).
AFS (analytical first step) replaces the first network call at ``t_0`` by ``d = x / √(1 + t_0²)``.

For Gaussian data ``N(0, λ)`` the exact denoiser is ``λ/(λ + t²) x`` and every solver is a linear map per
coordinate: one Euler step multiplies by ``(λ + s t)/(λ + t²)``, the exact flow map ``t → s`` by
``√((λ + s²)/(λ + t²))`` (tests/test_solvers.py checks each solver against these).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from opmerge_core.basics.validation import check_choice, check_int, check_positive

SOLVER_LABELS = {
    "euler": "Euler (= DDIM)",
    "heun": "Heun (EDM 2nd order)",
    "dpmpp1": "DPM-Solver++ 1st order",
    "dpmpp2": "DPM-Solver++(2M)",
    "dpmpp3m": "DPM-Solver++(3M)",
}
SOLVERS = tuple(SOLVER_LABELS)
DPMPP_ORDER = {"dpmpp1": 1, "dpmpp2": 2, "dpmpp3m": 3}
LOWER_ORDER_FINAL = ("sfd", "dpm-solver", "none")   # final-step order rules of DPM-Solver++ (dpmpp_orders)

DEFAULT_T_MIN = 0.006   # default last grid time t_min (SFD raises EDM's 0.002: a "small but vital factor")
DEFAULT_T_MAX = 80.0    # default first grid time t_max (the noise level sampling starts from)
RHO = 7.0
N_MAX = 4097       # largest number of timestamps in a grid
M_MAX = 64         # largest number of intermediate teacher steps per student step
THRESHOLD_QUANTILE = 0.995   # dynamic thresholding (Imagen; DPM-Solver's port): quantile of |x0_hat|
THRESHOLD_FLOOR = 1.0        # ... never clip below this value

Array = Any          # numpy.ndarray or torch.Tensor


class Denoiser(Protocol):
    """``D(x, t) ≈ E[x0 | x_t = x]`` for a batch ``x`` (B, d), numpy or torch, at the time ``t`` (a
    Python float): the one signature every solver calls (SFD.md "Parameterisation and schedule")."""

    def __call__(self, x: Array, t: float) -> Array: ...


# --------------------------------------------------------------------------------------------- grids

def time_grid(n: int, t_min: float = DEFAULT_T_MIN, t_max: float = DEFAULT_T_MAX,
              rho: float = RHO) -> np.ndarray:
    """The ρ-polynomial grid of ``n`` timestamps from ``t_max`` down to ``t_min`` (SFD.md
    "Parameterisation and schedule"): ``t_i = (t_max^{1/ρ} + i/(n−1) (t_min^{1/ρ} − t_max^{1/ρ}))^ρ``,
    i = 0..n−1 (n in [2, N_MAX])."""
    n = check_int(n, "number of timestamps n", lo=2, hi=N_MAX)
    t_min, t_max = check_times(t_min, t_max)
    rho = check_positive(rho, "rho", hi=100.0)
    frac = np.arange(n) / (n - 1)   # integer / integer: correctly rounded, so i/(n−1) == i(M+1)/((M+1)(n−1))
    grid = (t_max ** (1 / rho) + frac * (t_min ** (1 / rho) - t_max ** (1 / rho))) ** rho
    grid[0], grid[-1] = t_max, t_min  # exact end points (the power round trip can be off by an ulp)
    return grid


def teacher_grid(n: int, M: int = 3, t_min: float = DEFAULT_T_MIN, t_max: float = DEFAULT_T_MAX,
                 rho: float = RHO) -> np.ndarray:
    """The teacher's fine grid: ``K = M + 1`` steps per student step, ``(M+1)(n−1)+1`` timestamps of the
    same formula, so that ``teacher_grid(n, M)[i (M+1)] == time_grid(n)[i]`` exactly (SFD.md)."""
    n = check_int(n, "number of timestamps n", lo=2, hi=N_MAX)
    M = check_int(M, "M (intermediate teacher steps)", lo=0, hi=M_MAX)
    K = M + 1
    if K * (n - 1) + 1 > N_MAX:
        raise ValueError(f"teacher grid of (M+1)(n-1)+1 = {K * (n - 1) + 1} timestamps exceeds {N_MAX}")
    return time_grid(K * (n - 1) + 1, t_min, t_max, rho)


def check_times(t_min: object, t_max: object) -> tuple[float, float]:
    """0 < t_min < t_max <= 1e4."""
    t_min = check_positive(t_min, "t_min", hi=1e4)
    t_max = check_positive(t_max, "t_max", hi=1e4)
    if t_min >= t_max:
        raise ValueError(f"t_min must be < t_max, got t_min = {t_min:g}, t_max = {t_max:g}")
    return t_min, t_max


def check_grid(grid: Sequence[float] | np.ndarray) -> np.ndarray:
    """A strictly decreasing 1-D grid of at least two finite times, all > 0 except possibly the last."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or not 2 <= g.size <= N_MAX:
        raise ValueError(f"time grid must be 1-D with 2..{N_MAX} timestamps, got shape {g.shape}")
    if not np.isfinite(g).all() or (g[:-1] <= 0).any() or g[-1] < 0:
        raise ValueError("time grid must be finite and > 0 (the last time may be 0)")
    if (np.diff(g) >= 0).any():
        raise ValueError("time grid must be strictly decreasing (noise end first)")
    return g


# ------------------------------------------------------------------------------------- NFE counting

class CountingDenoiser:
    """Wraps a denoiser and counts its calls (number of function evaluations, NFE)."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser
        self.nfe = 0

    def __call__(self, x: Array, t: float) -> Array:
        self.nfe += 1
        return self.denoiser(x, t)


def nfe(solver: str, grid: Sequence[float] | np.ndarray, afs: bool = False) -> int:
    """Network evaluations :func:`solve` makes on ``grid``: one per step (two for Heun, except into 0),
    minus one with AFS (SFD.md: NFE = n − 2 with AFS, n − 1 without, for one-call solvers)."""
    solver = check_choice(solver, SOLVERS, "solver")
    g = check_grid(grid)
    steps = g.size - 1
    count = steps if solver != "heun" else 2 * steps - int(g[-1] == 0)
    return count - int(bool(afs))


def afs_denoised(x: Array, t: float) -> Array:
    """Analytical first step (SFD.md "Analytical first step (AFS)"): ``d = x / √(1 + t²)``, i.e. the
    implied denoiser output ``x − t d``, no network call. For unit-variance data it differs from the
    exact direction ``t x / (1 + t²)`` by the factor ``√(1 + t²)/t = 1 + O(1/t²)`` (1 + 7.8e-5 at
    t = 80)."""
    return x - (t / math.sqrt(1.0 + t * t)) * x


# --------------------------------------------------------------------------------- thresholding

def dynamic_threshold(x0: Array, quantile: float = THRESHOLD_QUANTILE,
                      floor: float = THRESHOLD_FLOOR) -> Array:
    """Imagen dynamic thresholding as in DPM-Solver: per sample, ``s = max(q-quantile of |x0|, floor)``,
    then ``x0 ← clip(x0, −s, s) / s``. Off by default (the latents are not bounded images)."""
    if _is_torch(x0):
        import torch
        flat = x0.reshape(x0.shape[0], -1).abs()
        flat = flat if flat.is_floating_point() else flat.float()
        s = torch.quantile(flat, quantile, dim=1).to(x0.dtype).clamp(min=floor)
        s = s.reshape((-1,) + (1,) * (x0.ndim - 1))
        return torch.maximum(torch.minimum(x0, s), -s) / s
    arr = np.asarray(x0)
    s = np.maximum(np.quantile(np.abs(arr.reshape(arr.shape[0], -1)), quantile, axis=1), floor)
    s = s.reshape((-1,) + (1,) * (arr.ndim - 1))
    return np.clip(arr, -s, s) / s


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(states: list[Array]) -> Array:
    if _is_torch(states[0]):
        import torch
        return torch.stack(states)
    return np.stack(states)


# ------------------------------------------------------------------------------------------ solve

def dpmpp_orders(max_order: int, n_timestamps: int, lower_order_final: str = "sfd") -> list[int]:
    """The order of each DPM-Solver++ multistep update on a grid of ``n_timestamps`` (SFD.md "Teacher
    solvers"). Step i (0-based) of N timestamps: always ``min(max_order, i + 1)`` on the first steps;

    - ``"sfd"`` (SFD's official ``dpm_pp_sampler``, the default): ``i + 1`` if ``i + 1 < max_order``, else
      ``min(max_order, N − (i + 1))`` — the last steps drop to 2nd and 1st order for every step count;
    - ``"dpm-solver"`` (DPM-Solver's rule): additionally ``≤ N − 1 − i`` but only when there are < 10 steps;
    - ``"none"``: never lowered at the end.
    """
    rule = check_choice(lower_order_final, LOWER_ORDER_FINAL, "lower-order-final rule")
    steps = n_timestamps - 1
    orders = []
    for i in range(steps):
        order = min(max_order, i + 1)
        if rule == "sfd" and i + 1 >= max_order:
            order = min(max_order, n_timestamps - (i + 1))
        elif rule == "dpm-solver" and steps < 10:
            order = min(order, steps - i)
        orders.append(order)
    return orders


def solve(denoiser: Denoiser, x: Array, grid: Sequence[float] | np.ndarray, solver: str = "dpmpp3m",
          afs: bool = False, return_trajectory: bool = False,
          callback: Callable[[dict], None] | None = None, *, lower_order_final: str = "sfd",
          thresholding: bool = False) -> Array | tuple[Array, Array]:
    """Integrate the probability-flow ODE from ``x`` at ``grid[0]`` down to ``grid[-1]``.

    ``solver``: one of :data:`SOLVERS`. ``afs``: analytical first step (no network call at ``grid[0]``).
    ``return_trajectory``: also return the states at every grid time, stacked (``traj[0] = x``).
    ``callback``: called after every step with ``{"i", "t", "s", "x", "denoised"}``.
    ``lower_order_final``: the final-step order rule of DPM-Solver++, one of :data:`LOWER_ORDER_FINAL`
    (default ``"sfd"``, SFD's official sampler; see :func:`dpmpp_orders`).
    ``thresholding``: dynamic thresholding of the denoiser output (DPM-Solver++ only).
    """
    solver = check_choice(solver, SOLVERS, "solver")
    g = check_grid(grid)
    steps = g.size - 1
    orders = dpmpp_orders(DPMPP_ORDER.get(solver, 1), g.size, lower_order_final)

    def denoise(x: Array, i: int, t: float) -> Array:
        x0 = afs_denoised(x, t) if (afs and i == 0) else denoiser(x, t)
        return dynamic_threshold(x0) if thresholding and solver in DPMPP_ORDER else x0

    trajectory = [x]
    history: list[Array] = []   # DPM-Solver++: denoiser outputs at the previous grid times
    for i in range(steps):
        t, s = float(g[i]), float(g[i + 1])
        denoised = denoise(x, i, t)
        if solver == "euler":
            x = x + (s - t) * ((x - denoised) / t)
        elif solver == "heun":
            d = (x - denoised) / t
            x_euler = x + (s - t) * d
            if s == 0:
                x = x_euler
            else:
                d_next = (x_euler - denoiser(x_euler, s)) / s
                x = x + (s - t) * (0.5 * d + 0.5 * d_next)
        else:
            x = _dpmpp_step(x, denoised, history, g, i, orders[i])
            history = [denoised, *history][:2]
        trajectory.append(x)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "x": x, "denoised": denoised})
    return (x, _stack(trajectory)) if return_trajectory else x


def _dpmpp_step(x: Array, m0: Array, history: list[Array], g: np.ndarray, i: int, order: int) -> Array:
    """One DPM-Solver++ multistep update t_i → t_{i+1} in the EDM form (α = 1, σ = t, λ = −ln t):
    ``x_s = (s/t) x − φ1 m0 + φ2 D1 − φ3 D2`` with ``h = ln(t/s)``, ``φ1 = e^{−h} − 1``,
    ``φ2 = φ1/h + 1``, ``φ3 = φ2/h − 1/2`` (Lu et al. 2022, DPM-Solver++ 2M/3M)."""
    t, s = float(g[i]), float(g[i + 1])
    if s == 0:                       # h = ∞: the update is the denoiser output itself
        return m0
    h = math.log(t / s)
    phi1 = math.expm1(-h)            # = s/t − 1
    if order == 1:
        return (s / t) * x - phi1 * m0
    m1 = history[0]
    h0 = math.log(float(g[i - 1]) / t)
    r0 = h0 / h
    D1_0 = (m0 - m1) / r0
    if order == 2:
        return (s / t) * x - phi1 * m0 - 0.5 * phi1 * D1_0
    m2 = history[1]
    h1 = math.log(float(g[i - 2]) / float(g[i - 1]))
    r1 = h1 / h
    D1_1 = (m1 - m2) / r1
    D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1)
    D2 = (D1_0 - D1_1) / (r0 + r1)
    phi2 = phi1 / h + 1.0
    phi3 = phi2 / h - 0.5
    return (s / t) * x - phi1 * m0 + phi2 * D1 - phi3 * D2


# --------------------------------------------------------------------------- Gaussian closed forms

def gaussian_denoiser(lam: float | np.ndarray) -> Denoiser:
    """The exact denoiser of ``N(0, λ)`` data: ``D(x, t) = λ/(λ + t²) x`` (THEORY §1 in EDM form)."""
    def D(x: Array, t: float) -> Array:
        return (lam / (lam + t * t)) * x
    return D


def gaussian_exact_factor(lam: float | np.ndarray, t: float, s: float) -> float | np.ndarray:
    """The exact probability-flow map ``t → s`` for ``N(0, λ)`` data: ``√((λ + s²)/(λ + t²))``."""
    return np.sqrt((lam + s * s) / (lam + t * t))


def gaussian_euler_factor(lam: float | np.ndarray, t: float, s: float) -> float | np.ndarray:
    """One Euler step ``t → s`` with the exact Gaussian denoiser: ``(λ + s t)/(λ + t²)``."""
    return (lam + s * t) / (lam + t * t)
