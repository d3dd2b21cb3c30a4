"""The three teachers of the experiment as T-step DDIM samplers in centred eigen-coordinates (THEORY §1, §8).

A teacher has data with mean μ and covariance Σ = U Λ Uᵀ. Everything here works in the centred
eigen-coordinates of the noised state, ``u_t = Uᵀ(z_t − α_t μ)``, where a Gaussian teacher is diagonal
with variances r_t² = α_t² λ + σ_t² (THEORY §1): the coordinates the linear students and the
per-direction judgement use. With the denoiser's estimate in the same coordinates,
``ξ = Uᵀ(x̂0(z_t) − μ)``, one DDIM step t → t−1 is (THEORY §1, the step rule of the theory)

    u_{t−1} = α_{t−1} ξ + (σ_{t−1}/σ_t) (u_t − α_t ξ),

exactly ``A*_t u_t`` per direction for Gaussian data. The denoisers are the EDM/VE ones of the SFD lab,
``D(x, τ)`` with ``x = z/α``, ``τ = σ/α`` (SFD.md "Parameterisation"); where ``α_t = 0`` (pure noise) the
posterior mean is the data mean, ξ = 0.

- ``gaussian``: N(0, diag λ) with the exact Wiener denoiser ξ = α λ/(α² λ + σ²) u — the calibration case;
- ``mixture-2d``: a 2-D teaching mixture (``sfd.mixtures.PRESETS``) with its exact denoiser; λ, U from
  the exact covariance;
- ``latent-mlp``: the shipped CelebA latent MLP denoiser (d = 128). Its training latents are not shipped,
  so its *data* is a fixed set of :data:`N_DATA` samples of the teacher itself (DPM-Solver++(3M),
  32 NFE); λ and U are that set's covariance spectrum (the distribution every student's inputs are
  drawn from), and the latent FD is measured against the held-out real latents (SFD.md).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from opmerge_core.basics.validation import check_choice, check_lam, parse_lam_grid
from opmerge_core.practice.spec import GAUSSIAN_LAM, TEACHER_LABELS, TEACHERS
from opmerge_core.sfd import mixtures, sampling
from opmerge_core.sfd.lab import TEACHER_REF_NFE
from opmerge_core.sfd.metrics import gaussian_fit
from opmerge_core.sfd.solvers import Denoiser
from opmerge_core.sfd.teachers import load_teacher

GAUSSIAN_D_MAX = 256             # directions of the Gaussian teacher
N_DATA = 8192                    # samples of the latent teacher that stand in for its data
DATA_SEED = 20_250_519           # their noise (fixed: the data set, not a training seed)


@dataclass(frozen=True)
class Teacher:
    """A teacher with its data in centred eigen-coordinates (module docstring)."""

    name: str
    label: str
    lam: np.ndarray                 # (d,) eigenvalues of the data covariance, descending
    U: np.ndarray                   # (d, d) eigenvectors as columns
    mu: np.ndarray                  # (d,) data mean
    denoiser: Denoiser | None       # EDM denoiser D(x, τ) in data coordinates; None: the exact Gaussian
    ref_mean: np.ndarray            # FD reference (data coordinates)
    ref_cov: np.ndarray
    ref_n: int | None               # samples behind the reference (None: exact moments)
    fd_reference: str               # what the FD is measured against
    data: np.ndarray | None = None  # (n, d) a fixed data set in eigen-coordinates (latent teacher)
    mixture: mixtures.GaussianMixture | None = None
    lam_source: str = ""

    @property
    def d(self) -> int:
        return int(self.lam.size)

    def sample_data(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` data points x0 in centred eigen-coordinates (n, d): exact draws for the Gaussian and
        the mixtures, rows of the fixed data set (with replacement) for the latent teacher."""
        if self.mixture is not None:
            return (self.mixture.sample(n, rng) - self.mu) @ self.U
        if self.data is not None:
            return self.data[rng.integers(0, len(self.data), n)]
        return rng.standard_normal((n, self.d)) * np.sqrt(self.lam)

    def to_data(self, u: np.ndarray) -> np.ndarray:
        """Eigen-coordinates at t = 0 → data coordinates: z = U u + μ."""
        return np.asarray(u, dtype=np.float64) @ self.U.T + self.mu


def load(name: str, preset: str = "two-blobs", lam: str = GAUSSIAN_LAM, assets: str | None = None) -> Teacher:
    """A teacher by name (``preset`` for ``mixture-2d``, the spectrum ``lam`` for ``gaussian``, a λ grid
    'a:b:n[:log]' or a comma list). Missing assets → ValueError with the command that makes them."""
    check_choice(name, TEACHERS, "teacher")
    if name == "gaussian":
        spectrum = check_lam(parse_lam_grid(lam), name="lam (Gaussian teacher spectrum)")
        if spectrum.size > GAUSSIAN_D_MAX:
            raise ValueError(f"the Gaussian teacher takes at most {GAUSSIAN_D_MAX} λ values, "
                             f"got {spectrum.size}")
        spectrum, d = np.sort(spectrum)[::-1].copy(), spectrum.size     # descending, like every spectrum
        return Teacher(name, f"{TEACHER_LABELS[name]}, {d} directions", spectrum, np.eye(d), np.zeros(d),
                       None, np.zeros(d), np.diag(spectrum), None, "the exact data covariance",
                       lam_source="given")
    if name == "mixture-2d":
        g = mixtures.preset(preset)
        lam_, U = _eigen(g.covariance())
        return Teacher(name, f"{TEACHER_LABELS[name]}: {mixtures.PRESET_LABELS[preset]}", lam_, U, g.mean(),
                       g.denoise, g.mean(), g.covariance(), None, "the exact mixture moments", mixture=g,
                       lam_source="exact mixture covariance")
    return _latent(assets)


def _eigen(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues descending and eigenvectors (columns), each column's sign fixed (largest entry > 0)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    v = v * np.where(v[np.abs(v).argmax(0), np.arange(v.shape[1])] < 0, -1.0, 1.0)
    return np.maximum(w, 1e-12), v


def _latent(assets: str | None) -> Teacher:
    from opmerge_core.latent.latents import assets_dir
    from opmerge_core.sfd.teachers import TEACHER_FILE

    path = assets_dir(assets) / TEACHER_FILE
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    return _latent_cached(str(assets_dir(assets)), stamp)


@functools.lru_cache(maxsize=2)
def _latent_cached(folder: str, stamp: int) -> Teacher:
    """The latent teacher and its data set, once per process per weights file (``stamp``)."""
    t = load_teacher("latent-mlp", folder)
    with torch.no_grad():
        x = sampling.noise(N_DATA, t.model.dim, DATA_SEED)
        data = sampling.sample_solver(t.model, x, TEACHER_REF_NFE, "dpmpp3m").double().numpy()
    mu, cov = gaussian_fit(data)
    lam, U = _eigen(cov)
    return Teacher("latent-mlp", TEACHER_LABELS["latent-mlp"], lam, U, mu, t.model, t.ref_mean, t.ref_cov,
                   t.ref_n, "the held-out CelebA latents (never trained on)", data=(data - mu) @ U,
                   lam_source=f"covariance of {N_DATA} teacher samples (DPM-Solver++(3M), "
                              f"{TEACHER_REF_NFE} NFE)")


class DDIM:
    """The teacher as a DDIM sampler on a schedule (α, σ) (THEORY §1), in torch on ``device``."""

    def __init__(self, teacher: Teacher, alpha: np.ndarray, sigma: np.ndarray, device: torch.device):
        self.teacher, self.alpha, self.sigma, self.device = teacher, alpha, sigma, device
        as_t = functools.partial(torch.as_tensor, dtype=torch.float32, device=device)
        self.lam, self.U, self.mu = as_t(teacher.lam), as_t(teacher.U), as_t(teacher.mu)
        denoiser = teacher.denoiser
        if isinstance(denoiser, nn.Module) and device.type != "cpu":   # never move the cached teacher
            denoiser = copy.deepcopy(denoiser).to(device)
        self.denoiser = denoiser
        self.calls = 0     # denoiser evaluations (one per sample per call)

    @torch.no_grad()
    def xi(self, u: torch.Tensor, t: int) -> torch.Tensor:
        """ξ = Uᵀ(x̂0 − μ): the denoiser's estimate at time t in eigen-coordinates."""
        a, s = float(self.alpha[t]), float(self.sigma[t])
        self.calls += u.shape[0]
        if a == 0.0:
            return torch.zeros_like(u)
        if self.denoiser is None:
            return a * self.lam / (a * a * self.lam + s * s) * u
        x = (u @ self.U.T) / a + self.mu
        return (self.denoiser(x, s / a) - self.mu) @ self.U

    def jump(self, u: torch.Tensor, s: int, e: int) -> torch.Tensor:
        """One DDIM jump s → e (e < s): a teacher step when e = s − 1, the ``coarse`` init otherwise."""
        xi, a_s, a_e = self.xi(u, s), float(self.alpha[s]), float(self.alpha[e])
        return a_e * xi + float(self.sigma[e] / self.sigma[s]) * (u - a_s * xi)

    def step(self, u: torch.Tensor, t: int) -> torch.Tensor:
        """The teacher step t → t − 1."""
        return self.jump(u, t, t - 1)

    def run(self, u: torch.Tensor, s: int, e: int = 0) -> torch.Tensor:
        """The teacher's steps s → e."""
        for t in range(s, e, -1):
            u = self.step(u, t)
        return u
