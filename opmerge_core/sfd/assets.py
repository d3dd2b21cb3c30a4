"""Build the SFD lab's latent teachers (``opmerge sfd teacher``): the EDM-MLP denoiser trained by DSM
on the CelebA VAE latents (``assets/sfd_latent_teacher.pt``) and a diagonal GMM fitted to them
(``assets/sfd_latent_gmm.npz``). Both are aggregate artifacts (weights, mixture parameters, mean and
covariance); the per-image latents stay outside the repository (assets/README.md, "Commands"). The
latents are split once and every latent FD is measured against the held-out split (SFD.md "An honest
latent FD").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from opmerge_core.latent.latents import assets_dir
from opmerge_core.sfd import metrics, mixtures, sampling, teachers

N_LATENTS_MAX = 1_000_000


def load_latents(path: str | Path) -> np.ndarray:
    """A finite (n, d) float array from a .npy file (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"latents file {path} is missing; encode the images first with "
                         f"`python -m opmerge_core.latent.latents --latents-out …` (assets/README.md)")
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


SPLIT_SEED = 0          # the one fixed split of the latents (recorded in the teacher meta, assets/README)
N_HELD_OUT = 4000       # held-out latents: the latent FD reference, never trained on
FD_SEEDS = (0, 1, 2)    # evaluation seeds of the quality figures (mean ± sd)
N_FD = 4000             # samples per latent FD


def split_latents(z: np.ndarray, n_held_out: int = N_HELD_OUT,
                  seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out): a fixed random permutation of the rows (``default_rng(seed)``), the last
    ``n_held_out`` rows of it held out (SFD.md "The project's scaled-down SFD": an honest latent FD)."""
    if not 2 <= n_held_out <= len(z) - 2:
        raise ValueError(f"held-out size must be in [2, {len(z) - 2}], got {n_held_out}")
    order = np.random.default_rng(seed).permutation(len(z))
    return z[order[:-n_held_out]], z[order[-n_held_out:]]


def build(latents: str | Path, assets: str | Path | None = None, *, steps: int = 3000, batch: int = 512,
          width: int = 256, blocks: int = 3, gmm_k: int = 32, gmm_iters: int = 100, seed: int = 0,
          n_held_out: int = N_HELD_OUT, n_fd: int = N_FD, device: str = "auto",
          log: Callable[[str], None] = print) -> dict:
    """Split the latents once (:func:`split_latents`), train the MLP teacher and fit the GMM on the
    training split only, write both to the assets folder with the held-out split's mean and covariance
    as the latent FD reference, and report their quality against it (mean ± sd over :data:`FD_SEEDS`),
    with the floors: exact Gaussian samples (``metrics.fd_floor``) and real training latents."""
    z = load_latents(latents)
    train, held = split_latents(z, n_held_out)
    folder = assets_dir(assets)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = teachers.TeacherTraining(steps=steps, batch=batch, width=width, blocks=blocks, seed=seed)
    every = max(1, steps // 20)

    def progress(step: int, total: int, info: dict) -> None:
        if step % every == 0:
            log(f"teacher step {step}/{total} loss {info['loss']:.4f}")

    net = teachers.train_teacher(train, cfg, device=device, progress=progress)
    teacher_seconds = time.perf_counter() - t0
    net = net.cpu()
    meta = {"steps": steps, "batch": batch, "n_latents": len(z), "seed": seed, "split_seed": SPLIT_SEED,
            "n_train": len(train), "n_held_out": len(held), "reference": "held-out split"}
    size = teachers.save_teacher(net, str(folder / teachers.TEACHER_FILE), held, meta=meta)
    t1 = time.perf_counter()
    gmm = mixtures.fit_gmm(train, K=gmm_k, iters=gmm_iters, seed=seed)
    gmm_seconds = time.perf_counter() - t1
    mixtures.save_gmm(gmm, str(folder / teachers.GMM_FILE))
    quality = quality_figures(net, gmm, train, held, n_fd)
    return {"teacher": str(folder / teachers.TEACHER_FILE), "teacher_bytes": size,
            "teacher_seconds": round(teacher_seconds, 1), "sigma_data": net.sigma_data,
            "gmm": str(folder / teachers.GMM_FILE), "gmm_K": gmm.K, "gmm_seconds": round(gmm_seconds, 1),
            **meta, "dim": int(z.shape[1]), **quality}


def quality_figures(net: torch.nn.Module, gmm: mixtures.GaussianMixture, train: np.ndarray,
                    held: np.ndarray, n: int = N_FD) -> dict:
    """Latent FD against the held-out fit, mean and sd over :data:`FD_SEEDS`, of: the teacher with
    DPM-Solver++(3M) at 32 NFE, GMM samples, ``n`` real training latents (the empirical floor) and ``n``
    exact Gaussian samples (``metrics.fd_floor``)."""
    mu, cov = metrics.gaussian_fit(held)
    scores: dict[str, list[float]] = {"teacher_32nfe": [], "gmm": [], "floor_real": []}
    for s in FD_SEEDS:
        x = sampling.noise(n, train.shape[1], seed=1234 + s)
        teacher_x = sampling.sample_solver(net, x, 32, "dpmpp3m")
        scores["teacher_32nfe"].append(metrics.latent_fd(teacher_x, mu, cov))
        scores["gmm"].append(metrics.latent_fd(gmm.sample(n, 1 + s), mu, cov))
        rows = np.random.default_rng(s).choice(len(train), size=min(n, len(train)), replace=False)
        scores["floor_real"].append(metrics.latent_fd(train[rows], mu, cov))
    out: dict = {}
    for key, values in scores.items():
        out[f"latent_fd_{key}"], out[f"latent_fd_{key}_sd"] = metrics.mean_sd(values)
    out["latent_fd_floor"], out["latent_fd_floor_sd"] = metrics.fd_floor(mu, cov, n, len(held), FD_SEEDS)
    out["fd_samples"] = n
    return out
