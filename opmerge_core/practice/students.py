"""The experiment's students, stacked over merges and seeds (THEORY §2, §8).

A student maps the centred eigen-coordinates u_s of its merge's start time to those of its end time.

- ``linear``: the theory's student, one gain per eigen-direction, ``f(u) = a ⊙ u`` (THEORY §2).
- ``mlp``: the same gain plus a small MLP over all d directions (the directions of a nonlinear teacher
  interact), in the neural-tangent parameterisation::

      f(u) = a ⊙ u + W2ᵀ tanh(W1ᵀ (u / c) + b1) / √H + b2

  with ``c`` the per-direction standard deviation of the merge's inputs, ``W1 ~ N(0, 1/d)``,
  ``b1 ~ N(0, 1)``, ``W2 = b2 = 0`` at initialisation (so a fresh student is its linear part). The
  1/√H keeps every function-space mode of the residual learning at a rate of order one, like the linear
  part's r_s², so the same SGD budget S = 2ηn means roughly the same for both parts — how far that
  carries is what the experiment measures. One MLP per merge (and seed).

Parameters of M students are tensors with a leading axis M (``a`` (M, d), ``c`` (M, d), ``w1`` (M, d, H),
``b1`` (M, H), ``w2`` (M, H, d), ``b2`` (M, d)); ``apply`` runs them on inputs (M, B, d).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from opmerge_core.training.students import seed_of

Params = dict[str, torch.Tensor]
TRAINED = ("a", "w1", "b1", "w2", "b2")      # what SGD updates (``c`` is fixed at initialisation)


def apply(p: Params, u: torch.Tensor) -> torch.Tensor:
    """f(u) for M stacked students on inputs u (M, B, d)."""
    out = p["a"][:, None, :] * u
    if "w1" in p:
        h = torch.tanh(torch.bmm(u / p["c"][:, None, :], p["w1"]) + p["b1"][:, None, :])
        out = out + torch.bmm(h, p["w2"]) / math.sqrt(p["w1"].shape[-1]) + p["b2"][:, None, :]
    return out


def apply_one(p: Params, u: torch.Tensor) -> torch.Tensor:
    """f(u) for one student (unstacked parameters) on inputs u (B, d)."""
    return apply({k: v[None] for k, v in p.items()}, u[None])[0]


def stack(students: list[Params]) -> Params:
    return {k: torch.stack([s[k] for s in students]) for k in students[0]}


def unstack(p: Params) -> list[Params]:
    M = next(iter(p.values())).shape[0]
    return [{k: v[m].detach().clone() for k, v in p.items()} for m in range(M)]


def fresh(a0: torch.Tensor, scale: torch.Tensor, hidden: int, mlp: bool, seed: int,
          span: tuple[int, int], height: int) -> Params:
    """A new student with gains ``a0`` (d,); for the MLP also fresh hidden weights, seeded by the merge
    itself (``seed``, ``span``, ``height``: independent of which other merges train alongside)."""
    if not mlp:
        return {"a": a0.clone()}
    d, device = a0.shape[0], a0.device
    g = torch.Generator().manual_seed(seed_of(seed, *span, height, 3))
    w1 = torch.randn((d, hidden), generator=g) / math.sqrt(d)
    b1 = torch.randn(hidden, generator=g)
    return {"a": a0.clone(), "c": scale.clamp_min(1e-6).clone(), "w1": w1.to(device), "b1": b1.to(device),
            "w2": torch.zeros((hidden, d), device=device), "b2": torch.zeros(d, device=device)}


def ls_slope(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-direction least-squares slopes E[x y]/E[x²] over the sample axis (…, N, d) → (…, d): the best
    gain a linear student can have for the map x → y (for a Gaussian teacher, the map's own gain)."""
    return (x * y).sum(-2) / (x * x).sum(-2).clamp_min(1e-30)


def n_params(student: str, d: int, hidden: int) -> int:
    """Trained parameters of one student."""
    return d if student == "linear" else d + d * hidden + hidden + hidden * d + d


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()
