"""Gaussian-mixture data: exact denoiser, exact sampling, 2-D teaching presets, EM fit, sliced W2.

THEORY §7 ("beyond the paper"): with mixture data the teacher is nonlinear, so every merge of teacher
steps incurs an approximation error that grows with the number of merged steps. The mixture's denoiser
is still available in closed form, which makes it an exact teacher for SFD (SFD.md "The project's
scaled-down SFD").

Model: ``x0 ~ Σ_k π_k N(μ_k, diag(v_k))`` (isotropic components are the case ``v_k = const``). In the
EDM/VE form ``x_t = x0 + t ε`` the noised data are ``Σ_k π_k N(μ_k, diag(v_k + t²))`` and

    E[x0 | x_t = x] = Σ_k r_k(x) (μ_k + v_k / (v_k + t²) (x − μ_k)),
    r_k(x) ∝ π_k N(x; μ_k, diag(v_k + t²))        (posterior responsibilities).

With one component this is the Gaussian (Wiener) denoiser of THEORY §1 shifted by the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opmerge_core.basics.validation import check_choice, check_int
from opmerge_core.sfd import solvers
from opmerge_core.sfd.solvers import Array

K_MAX = 512                 # largest number of components
D_MAX = 4096                # largest dimension
N_FIT_MAX = 1_000_000       # largest data set the EM fit accepts
EM_ITERS_MAX = 1000         # largest number of EM iterations
SLICES_MAX = 10_000         # largest number of random projections for sliced W2
CHUNK = 4096                # rows per block in the denoiser / EM (bounds memory to CHUNK·K·d floats)


@dataclass(frozen=True)
class GaussianMixture:
    """Weights ``weights`` (K,), means ``means`` (K, d), per-coordinate variances ``variances`` (K, d)."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        mu = np.atleast_2d(np.asarray(self.means, dtype=np.float64))
        var = np.asarray(self.variances, dtype=np.float64)
        if var.ndim <= 1 and var.size in (1, w.size):          # isotropic: one variance per component
            var = np.broadcast_to(var.reshape(-1, 1), mu.shape)
        var = np.broadcast_to(var, mu.shape).copy()
        K, d = mu.shape
        if not (1 <= K <= K_MAX and 1 <= d <= D_MAX) or w.shape != (K,):
            raise ValueError(f"mixture needs K in [1, {K_MAX}] weights matching means (K, d), d <= {D_MAX}; "
                             f"got weights {w.shape}, means {mu.shape}")
        if not (np.isfinite(w).all() and np.isfinite(mu).all() and np.isfinite(var).all()):
            raise ValueError("mixture parameters must be finite")
        if (w <= 0).any() or (var <= 0).any():
            raise ValueError("mixture weights and variances must be > 0")
        object.__setattr__(self, "weights", w / w.sum())
        object.__setattr__(self, "means", mu)
        object.__setattr__(self, "variances", var)

    @property
    def K(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> np.ndarray:
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """Total covariance Σ_k π_k (diag(v_k) + μ_k μ_kᵀ) − μ μᵀ."""
        m = self.mean()
        second = np.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        return np.diag(self.weights @ self.variances) + second - np.outer(m, m)

    def sample(self, n: int, rng: np.random.Generator | int | None = 0, t: float = 0.0) -> np.ndarray:
        """Exact samples of ``x_t = x0 + t ε`` (``t = 0``: the data), n in [1, 10^7]."""
        n = check_int(n, "number of samples", hi=10**7)
        rng = np.random.default_rng(rng)
        k = rng.choice(self.K, size=n, p=self.weights)
        std = np.sqrt(self.variances[k] + t * t)
        return self.means[k] + std * rng.standard_normal((n, self.dim))

    def denoise(self, x: Array, t: float) -> Array:
        """The exact denoiser ``E[x0 | x_t = x]`` for a batch ``x`` (B, d), numpy or torch (a
        :class:`~opmerge_core.sfd.solvers.Denoiser`)."""
        if type(x).__module__.startswith("torch"):
            return _denoise_torch(self, x, float(t))
        x = np.asarray(x, dtype=np.float64)
        return np.concatenate([_denoise_block(self, x[i:i + CHUNK], float(t))
                               for i in range(0, len(x), CHUNK)]) if len(x) else x.copy()

    def log_density(self, x: np.ndarray, t: float = 0.0) -> np.ndarray:
        """log p_t(x) of the noised mixture (for density plots)."""
        logp = _component_logp(self, np.asarray(x, dtype=np.float64), t)
        top = logp.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(logp - top).sum(axis=1, keepdims=True)))[:, 0]


def _component_logp(g: GaussianMixture, x: np.ndarray, t: float) -> np.ndarray:
    """log π_k + log N(x; μ_k, diag(v_k + t²)), shape (B, K)."""
    v = g.variances + t * t
    inv = 1.0 / v                                                   # (K, d)
    quad = (x * x) @ inv.T - 2.0 * x @ (g.means * inv).T + (g.means**2 * inv).sum(-1)   # (B, K), BLAS
    return np.log(g.weights) - 0.5 * np.log(2 * np.pi * v).sum(-1) - 0.5 * quad


def _denoise_block(g: GaussianMixture, x: np.ndarray, t: float) -> np.ndarray:
    logp = _component_logp(g, x, t)
    r = np.exp(logp - logp.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    shrink = g.variances / (g.variances + t * t)                   # (K, d)
    cond = g.means[None] + shrink[None] * (x[:, None, :] - g.means[None])
    return np.einsum("bk,bkd->bd", r, cond)


def _denoise_torch(g: GaussianMixture, x: Array, t: float) -> Array:
    import torch
    kw = dict(dtype=x.dtype, device=x.device)
    mu, var = torch.as_tensor(g.means, **kw), torch.as_tensor(g.variances, **kw)
    logw = torch.as_tensor(np.log(g.weights), **kw)
    out = []
    for xb in x.split(CHUNK):
        v = var + t * t
        diff = xb[:, None, :] - mu[None]
        logp = logw - 0.5 * torch.log(v).sum(-1) - 0.5 * (diff * diff / v).sum(-1)
        r = torch.softmax(logp, dim=1)
        out.append(torch.einsum("bk,bkd->bd", r, mu[None] + (var / v)[None] * diff))
    return torch.cat(out) if out else x.clone()


# --------------------------------------------------------------------------------------- presets

def _ring(k: int = 8, radius: float = 2.0, var: float = 0.02) -> GaussianMixture:
    angles = 2 * np.pi * np.arange(k) / k
    return GaussianMixture(np.ones(k), radius * np.stack([np.cos(angles), np.sin(angles)], 1),
                           np.full(k, var))


def _moons(per_moon: int = 8, var: float = 0.01) -> GaussianMixture:
    a = np.linspace(0, np.pi, per_moon)
    upper = np.stack([np.cos(a), np.sin(a)], 1)
    lower = np.stack([1 - np.cos(a), 0.5 - np.sin(a)], 1)
    means = np.concatenate([upper, lower]) - np.array([0.5, 0.25])
    return GaussianMixture(np.ones(2 * per_moon), 1.5 * means, np.full(2 * per_moon, var))


PRESETS = {
    "ring8": lambda: _ring(),
    "two-blobs": lambda: GaussianMixture([0.3, 0.7], [[-1.5, 0.0], [1.5, 0.5]], [[0.15, 0.4], [0.3, 0.1]]),
    "moons": lambda: _moons(),
    "gaussian": lambda: GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 0.25]]),
}
PRESET_LABELS = {
    "ring8": "8 Gaussians on a ring",
    "two-blobs": "two unequal diagonal blobs",
    "moons": "two moons (16 small Gaussians)",
    "gaussian": "one Gaussian, λ = (1, 0.25) (linear teacher)",
}


def preset(name: str) -> GaussianMixture:
    """A 2-D teaching mixture: one of :data:`PRESETS`."""
    return PRESETS[check_choice(name, PRESETS, "mixture preset")]()


# ---------------------------------------------------------------------------------------- EM fit

def fit_gmm(data: np.ndarray, K: int = 16, iters: int = 100, seed: int = 0, tol: float = 1e-6,
            var_floor: float = 1e-4) -> GaussianMixture:
    """Fit a diagonal GMM by EM (numpy; ``iters`` ≤ EM_ITERS_MAX, stops when the mean log-likelihood
    improves by < ``tol``). Means start at random data points, variances at the data variance;
    variances are floored at ``var_floor`` × the data variance per coordinate."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or not 1 <= x.shape[1] <= D_MAX or not 2 <= x.shape[0] <= N_FIT_MAX:
        raise ValueError(f"data must be (n, d) with 2 <= n <= {N_FIT_MAX}, d <= {D_MAX}; got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("data must be finite")
    K = check_int(K, "K (components)", hi=min(K_MAX, x.shape[0]))
    iters = check_int(iters, "EM iterations", hi=EM_ITERS_MAX)
    rng = np.random.default_rng(seed)
    floor = var_floor * x.var(axis=0) + 1e-12
    g = GaussianMixture(np.ones(K), x[rng.choice(len(x), K, replace=False)],
                        np.broadcast_to(x.var(axis=0) + 1e-12, (K, x.shape[1])))
    previous = -np.inf
    for _ in range(iters):
        resp, ll = _e_step(g, x)
        nk = resp.sum(0) + 1e-12
        means = (resp.T @ x) / nk[:, None]
        variances = np.maximum((resp.T @ (x * x)) / nk[:, None] - means**2, floor)
        g = GaussianMixture(nk, means, variances)
        if ll - previous < tol:
            break
        previous = ll
    return g


def _e_step(g: GaussianMixture, x: np.ndarray) -> tuple[np.ndarray, float]:
    resp, total = np.empty((len(x), g.K)), 0.0
    for i in range(0, len(x), CHUNK):
        logp = _component_logp(g, x[i:i + CHUNK], 0.0)
        top = logp.max(axis=1, keepdims=True)
        p = np.exp(logp - top)
        s = p.sum(axis=1, keepdims=True)
        resp[i:i + CHUNK] = p / s
        total += float((top + np.log(s)).sum())
    return resp, total / len(x)


def save_gmm(g: GaussianMixture, path: str | Path) -> None:
    """The mixture as an ``.npz`` of ``weights``, ``means``, ``variances`` (no pickles)."""
    np.savez(path, weights=g.weights, means=g.means, variances=g.variances)


def load_gmm(path: str | Path) -> GaussianMixture:
    """A mixture written by :func:`save_gmm` (``allow_pickle=False``; bad arrays → ValueError)."""
    with np.load(path, allow_pickle=False) as f:
        return GaussianMixture(f["weights"], f["means"], f["variances"])


# ------------------------------------------------------------- sample quality: modes, sliced W2

def mode_coverage(g: GaussianMixture, samples: np.ndarray, radius: float = 3.0,
                  min_share: float = 0.02) -> tuple[float, int]:
    """(fraction of samples within ``radius`` standard deviations (diagonal Mahalanobis) of some
    component mean, number of components that hold at least ``min_share``/K of the samples that way):
    how many of the mixture's modes a sampler recovers, and how much of its mass lands on one."""
    x = np.asarray(samples, dtype=np.float64)
    d = np.sqrt((((x[:, None, :] - g.means[None]) ** 2) / g.variances[None]).sum(-1))    # (n, K)
    near = d.min(1) < radius
    counts = np.bincount(d.argmin(1)[near], minlength=g.K)
    return float(near.mean()), int((counts > min_share * len(x) / g.K).sum())


def sliced_w2(a: np.ndarray, b: np.ndarray, n_slices: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between two sample sets (n, d) and (m, d): the root mean square,
    over ``n_slices`` random unit directions, of the 1-D W2 between the projections (quantiles matched
    on min(n, m) levels). 0 for identical sets; a Monte-Carlo estimate otherwise."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"sliced W2 needs two (n, d) sample sets with the same d, got {a.shape}, {b.shape}")
    n_slices = check_int(n_slices, "number of slices", hi=SLICES_MAX)
    dirs = np.random.default_rng(seed).standard_normal((a.shape[1], n_slices))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
    n = min(len(a), len(b))
    levels = (np.arange(n) + 0.5) / n
    qa = pa if len(a) == n else np.quantile(pa, levels, axis=0)
    qb = pb if len(b) == n else np.quantile(pb, levels, axis=0)
    return math.sqrt(float(np.mean((qa - qb) ** 2)))


# ------------------------------------------------------------------- merge error (THEORY §7)

def merge_errors(g: GaussianMixture, T: int = 16, ms: tuple[int, ...] = (1, 2, 4, 8, 16), n: int = 2000,
                 seed: int = 0) -> list[dict]:
    """How the error of replacing ``m`` consecutive teacher steps by one operator grows with ``m``
    (THEORY §7). The teacher: T Euler steps with the exact mixture denoiser on the ρ = 7 grid.
    For every block of ``m`` steps (``m`` divides ``T``), with inputs on the teacher's own trajectory:

    - ``affine``: the RMS residual of the best affine map z_s → z_e (least squares) — the best a
      linear student of THEORY §2 can do; exactly 0 for Gaussian data, where every operator is linear;
    - ``jump``: the RMS error of the untrained one-step Euler jump s → e (a student at initialisation).

    Errors are measured in VP scale (divided by √(1 + t_e²)) and averaged over the blocks."""
    T = check_int(T, "T (teacher steps)", hi=256)
    n = check_int(n, "number of samples", lo=16, hi=100_000)
    grid = solvers.time_grid(T + 1)
    x = grid[0] * np.random.default_rng(seed).standard_normal((n, g.dim))
    _, traj = solvers.solve(g.denoise, x, grid, "euler", return_trajectory=True)
    rows = []
    for m in ms:
        m = check_int(m, "merged steps m", hi=T)
        if T % m:
            raise ValueError(f"merged steps m = {m} must divide T = {T}")
        affine, jump = [], []
        for b in range(0, T, m):
            zs, ze, scale = traj[b], traj[b + m], math.sqrt(1 + grid[b + m] ** 2)
            design = np.hstack([zs, np.ones((n, 1))])
            coef, *_ = np.linalg.lstsq(design, ze, rcond=None)
            affine.append(np.sqrt(np.mean((design @ coef - ze) ** 2)) / scale)
            one = solvers.solve(g.denoise, zs, grid[[b, b + m]], "euler")
            jump.append(np.sqrt(np.mean((one - ze) ** 2)) / scale)
        rows.append({"m": m, "affine": float(np.mean(affine)), "jump": float(np.mean(jump))})
    return rows
