"""The denoiser networks of the SFD lab (SFD.md "The project's scaled-down SFD"), torch and device-agnostic.

Every network is called ``net(x, t, n=None)`` on a batch ``x`` (B, d) at a time ``t`` (a float or a
(B,) / (B, 1) tensor); ``n`` is the step count SFD-v conditions on (SFD.md "Training"). A solver sees
the network through :func:`conditioned`, as a :class:`~opmerge_core.sfd.solvers.Denoiser` ``D(x, t)``.

- :class:`MLPDenoiser`: a small MLP with EDM preconditioning (Karras et al. 2022, Table 1)::

      D(x, σ) = c_skip x + c_out F(c_in x, c_noise),   c_skip = σd²/(σ² + σd²),
      c_out = σ σd/√(σ² + σd²),   c_in = 1/√(σ² + σd²),   c_noise = ln(σ)/4

  trained by denoising score matching (:func:`opmerge_core.sfd.teachers.train_teacher`).
- :class:`GMMDenoiser`: the exact denoiser of a Gaussian mixture (mixtures.py) as a torch module whose
  mixture parameters are ``nn.Parameter`` s, plus a residual ``c_out F`` whose output layer starts at
  zero. The frozen teacher is exact; a student copied from it starts exactly at the teacher (SFD.md
  "student ← copy of teacher weights") and can bend both the mixture and the residual.
- :class:`Backbone` = F: input layer, :class:`FiLMBlock` s modulated by the time embedding (and, for
  SFD-v, by a step-count embedding that starts at zero), output layer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from opmerge_core.basics.validation import check_int, check_positive
from opmerge_core.sfd.mixtures import GaussianMixture
from opmerge_core.sfd.solvers import Denoiser

N_STEPS_MAX = 8                    # largest step count n the step embedding knows (n ≤ 7 used)
WIDTH_MAX, BLOCKS_MAX = 2048, 16
BATCH_MAX = 4096                   # largest training batch of any network here (rows or trajectories)


def _sigma_column(t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The time as a column of x's dtype/device: (B, 1) for one time per row, (1, 1) for one time for
    the whole batch (it broadcasts, so the time embedding and every FiLM modulation are computed once
    per batch instead of once per row: half a sampler's network cost)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(1, 1) if t.numel() == 1 else t.reshape(-1, 1).expand(x.shape[0], 1)


class FiLMBlock(nn.Module):
    """A residual MLP block whose hidden layer is modulated by the time embedding (scale/shift) and,
    for SFD-v, by a step-count embedding (zero at init, so a fresh student equals its teacher)."""

    def __init__(self, width: int, emb: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.film = nn.Linear(emb, 2 * width)
        self.step_film = nn.Embedding(N_STEPS_MAX + 1, 2 * width)
        nn.init.zeros_(self.step_film.weight)

    def forward(self, h: torch.Tensor, emb: torch.Tensor, n: int | None) -> torch.Tensor:
        mod = self.film(emb)
        if n is not None:
            mod = mod + self.step_film.weight[n]
        scale, shift = mod.chunk(2, dim=-1)
        y = self.fc1(nn.functional.silu(self.norm(h))) * (1 + scale) + shift
        return h + self.fc2(nn.functional.silu(y))


class Backbone(nn.Module):
    """F(c_in x, c_noise, n): input layer, FiLM blocks, output layer."""

    def __init__(self, dim: int, width: int = 256, blocks: int = 3, freqs: int = 8, zero_out: bool = False):
        super().__init__()
        check_int(dim, "dim", hi=4096)
        check_int(width, "width", lo=4, hi=WIDTH_MAX)
        check_int(blocks, "blocks", hi=BLOCKS_MAX)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(freqs, dtype=torch.float32))
        self.time_mlp = nn.Sequential(nn.Linear(2 * freqs, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(FiLMBlock(width, width) for _ in range(blocks))
        self.out = nn.Linear(width, dim)
        if zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, n: int | None = None) -> torch.Tensor:
        angles = c_noise * self.freqs
        emb = nn.functional.silu(self.time_mlp(torch.cat([angles.sin(), angles.cos()], dim=-1)))
        h = self.inp(x_in)
        for block in self.blocks:
            h = block(h, emb, n)
        return self.out(nn.functional.silu(h))


class MLPDenoiser(nn.Module):
    """EDM-preconditioned MLP denoiser (Karras et al. 2022, Table 1)."""

    def __init__(self, dim: int, sigma_data: float = 1.0, width: int = 256, blocks: int = 3,
                 data_mean: np.ndarray | None = None):
        super().__init__()
        self.dim, self.width, self.n_blocks = dim, width, blocks
        self.sigma_data = check_positive(sigma_data, "sigma_data", hi=1e4)
        mean = torch.zeros(dim) if data_mean is None else torch.as_tensor(data_mean, dtype=torch.float32)
        self.register_buffer("data_mean", mean.reshape(dim))   # data are centred before the network
        self.net = Backbone(dim, width, blocks)

    def config(self) -> dict:
        return {"kind": "mlp", "dim": self.dim, "sigma_data": self.sigma_data, "width": self.width,
                "blocks": self.n_blocks}

    def forward(self, x: torch.Tensor, t: float | torch.Tensor, n: int | None = None) -> torch.Tensor:
        sigma, sd = _sigma_column(t, x), self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        xc = x - self.data_mean
        return self.data_mean + c_skip * xc + c_out * self.net(c_in * xc, c_noise, n)


class GMMDenoiser(nn.Module):
    """The exact mixture denoiser (mixtures.py) with trainable mixture parameters, plus a residual
    ``c_out(σ) F(c_in x, c_noise, n)`` whose output layer starts at zero (so at init it is exact)."""

    def __init__(self, gmm: GaussianMixture, width: int = 128, blocks: int = 2):
        super().__init__()
        self.dim, self.K, self.width, self.n_blocks = gmm.dim, gmm.K, width, blocks
        self.log_weights = nn.Parameter(torch.as_tensor(np.log(gmm.weights), dtype=torch.float32))
        self.means = nn.Parameter(torch.as_tensor(gmm.means, dtype=torch.float32))
        self.log_vars = nn.Parameter(torch.as_tensor(np.log(gmm.variances), dtype=torch.float32))
        cov = gmm.covariance()
        self.sigma_data = float(np.sqrt(np.trace(cov) / gmm.dim))
        self.register_buffer("data_mean", torch.as_tensor(gmm.mean(), dtype=torch.float32))
        with torch.random.fork_rng(devices=[]):   # the same hidden init whatever ran before: reproducible
            torch.manual_seed(0)
            self.residual = Backbone(gmm.dim, width, blocks, zero_out=True)

    def config(self) -> dict:
        return {"kind": "gmm", "dim": self.dim, "K": self.K, "width": self.width, "blocks": self.n_blocks}

    def forward(self, x: torch.Tensor, t: float | torch.Tensor, n: int | None = None) -> torch.Tensor:
        sigma, sd = _sigma_column(t, x), self.sigma_data
        var = self.log_vars.exp()                                      # (K, d)
        v = var[None] + sigma[:, :, None] ** 2                         # (B, K, d)
        diff = x[:, None, :] - self.means[None]
        logp = torch.log_softmax(self.log_weights, 0) - 0.5 * (v.log() + diff**2 / v).sum(-1)
        r = torch.softmax(logp, dim=1)
        exact = torch.einsum("bk,bkd->bd", r, self.means[None] + var[None] / v * diff)
        c_in, c_out = 1 / (sigma**2 + sd**2).sqrt(), sigma * sd / (sigma**2 + sd**2).sqrt()
        return exact + c_out * self.residual(c_in * (x - self.data_mean), sigma.log() / 4, n)


def conditioned(net: nn.Module, n: int | None) -> Denoiser:
    """``net`` as a solver :class:`~opmerge_core.sfd.solvers.Denoiser` ``D(x, t)``, with the step count
    ``n`` fixed (SFD-v; None for the teacher and the plain students)."""
    return lambda x, t: net(x, t, n)
