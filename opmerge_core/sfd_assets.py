"""Build the SFD lab's latent teachers (``opmerge sfd teacher``): the EDM-MLP denoiser trained by DSM
on the CelebA VAE latents (``assets/sfd_latent_teacher.pt``) and a diagonal GMM fitted to them
(``assets/sfd_latent_gmm.npz``). Both are aggregate artifacts (weights, mixture parameters, mean and
covariance); the per-image latents stay outside the repository (e.g. /work/scratch/).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from opmerge_core import mixtures, sfd
from opmerge_core.latents import assets_dir

N_LATENTS_MAX = 1_000_000


def load_latents(path: str | Path) -> np.ndarray:
    """A finite (n, d) float array from a .npy file (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"latents file {path} is missing; encode the images first (issue 5, latents.py)")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"latents file {path} is unreadable ({type(exc).__name__})") from None
    if z.ndim != 2 or not 2 <= z.shape[0] <= N_LATENTS_MAX or not 1 <= z.shape[1] <= 4096:
        raise ValueError(f"latents must be (n, d) with 2 <= n <= {N_LATENTS_MAX}, got shape {z.shape}")
    z = z.astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("latents must be finite")
    return z


def build(latents: str | Path, assets: str | Path | None = None, *, steps: int = 3000, batch: int = 512,
          width: int = 256, blocks: int = 3, gmm_k: int = 32, gmm_iters: int = 100, seed: int = 0,
          device: str = "auto", log=print) -> dict:
    """Train the MLP teacher, fit the GMM, write both to the assets folder, and report their quality
    (latent FD of the teacher at 32 NFE and of GMM samples against the latents' Gaussian fit)."""
    z = load_latents(latents)
    folder = assets_dir(assets)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = sfd.TeacherTraining(steps=steps, batch=batch, width=width, blocks=blocks, seed=seed)
    every = max(1, steps // 20)
    net = sfd.train_teacher(z, cfg, device=device,
                            progress=lambda i, n, loss: log(f"teacher step {i}/{n} loss {loss:.4f}")
                            if i % every == 0 else None)
    teacher_seconds = time.perf_counter() - t0
    net = net.cpu()
    size = sfd.save_teacher(net, str(folder / sfd.TEACHER_FILE), z,
                            meta={"steps": steps, "batch": batch, "n_latents": len(z), "seed": seed})
    t1 = time.perf_counter()
    gmm = mixtures.fit_gmm(z, K=gmm_k, iters=gmm_iters, seed=seed)
    gmm_seconds = time.perf_counter() - t1
    mixtures.save_gmm(gmm, str(folder / sfd.GMM_FILE))
    mu, cov = sfd.gaussian_fit(z)
    x = sfd.noise(4000, z.shape[1], seed=1234)
    with torch.no_grad():
        teacher_fd = sfd.latent_fd(sfd.sample_solver(net, x, 32, "dpmpp3m"), mu, cov)
    return {"teacher": str(folder / sfd.TEACHER_FILE), "teacher_bytes": size,
            "teacher_seconds": round(teacher_seconds, 1), "sigma_data": net.sigma_data,
            "teacher_latent_fd_32nfe": teacher_fd, "gmm": str(folder / sfd.GMM_FILE), "gmm_K": gmm.K,
            "gmm_seconds": round(gmm_seconds, 1),
            "gmm_latent_fd": sfd.latent_fd(gmm.sample(4000, 1), mu, cov), "n_latents": len(z),
            "dim": int(z.shape[1])}
