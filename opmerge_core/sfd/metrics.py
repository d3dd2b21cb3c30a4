"""The latent FD of the SFD lab (SFD.md "An honest latent FD"): Fréchet distances between Gaussian fits
in latent space, their floor (what exact samples score) and mean ± sd over seeds."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from opmerge_core.basics.validation import check_int

FD_LABEL = "latent FD (Fréchet distance of Gaussian fits in latent space, not image FID)"


def gaussian_fit(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of samples (n, d)."""
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"need (n >= 2, d) samples for a Gaussian fit, got {a.shape}")
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between Gaussians: ``‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)``
    (symmetric eigendecompositions only, so it is stable for singular covariances)."""
    s1 = _sqrtm_psd(cov1)
    inner = s1 @ cov2 @ s1
    w = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(w, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def latent_fd(samples: np.ndarray | torch.Tensor, ref_mean: np.ndarray, ref_cov: np.ndarray) -> float:
    """Latent FD of generated samples against the reference Gaussian fit (see :data:`FD_LABEL`)."""
    mu, cov = gaussian_fit(samples)
    return frechet_distance(mu, cov, ref_mean, ref_cov)


def fd_floor(ref_mean: np.ndarray, ref_cov: np.ndarray, n_samples: int, ref_n: int | None,
             seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[float, float]:
    """The latent FD a perfect generator scores (mean, sd over ``seeds``): the FD between the Gaussian
    fits of ``n_samples`` exact samples of ``N(ref_mean, ref_cov)`` and of ``ref_n`` other exact samples
    (the reference's own estimation noise; ``ref_n = None``: against the exact moments). A latent FD
    within a few sd of this floor cannot be told apart from the data."""
    n_samples = check_int(n_samples, "number of samples", lo=2, hi=1_000_000)
    d = ref_mean.shape[0]
    w, v = np.linalg.eigh((ref_cov + ref_cov.T) / 2)
    root = v * np.sqrt(np.clip(w, 0, None))

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return ref_mean + rng.standard_normal((n, d)) @ root.T

    scores = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        mu, cov = gaussian_fit(draw(rng, n_samples))
        ref = (ref_mean, ref_cov) if ref_n is None else gaussian_fit(draw(rng, int(ref_n)))
        scores.append(frechet_distance(mu, cov, *ref))
    return mean_sd(scores)


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    a = np.asarray(list(values), dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
