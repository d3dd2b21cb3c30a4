"""The students of a merge graph as stacked torch tensors (THEORY §2, §6).

A student is a diagonal linear operator ``A`` over the d coordinates (``student="linear"``), or a tiny
scalar-in scalar-out MLP per coordinate ``f(z) = a z + Σ_h w2_h tanh(w1_h z + b1_h) + b2``
(``student="mlp"``), which shows where the closed form stops holding. The MLP's *effective one-step
gain* is its least-squares slope ``E[z f(z)] / E[z²]`` under the merge's input distribution
(``slope_stats``).

``StudentBank`` holds every node of the graph (teacher steps, identity, trained merges) on the device;
``NodeChain`` applies a sequence of them per merge — a merge's children (its target) or its boot input
chain (``graph``); ``MergeChunk`` is the merges of one height trained together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from opmerge_core.training.graph import MergeGraph

EVAL_SAMPLES = 4096           # samples per coordinate for the MLP's least-squares slope

Params = dict[str, torch.Tensor]


def seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class StudentBank:
    """Every node's function on the device: gains ``a`` (N, d); MLP residual params (N, d, H)."""

    def __init__(self, n: int, d: int, hidden: int, mlp: bool, device: torch.device):
        self.mlp = mlp
        self.a = torch.full((n, d), float("nan"), device=device)
        if mlp:
            self.w1 = torch.zeros((n, d, hidden), device=device)
            self.b1 = torch.zeros((n, d, hidden), device=device)
            self.w2 = torch.zeros((n, d, hidden), device=device)
            self.b2 = torch.zeros((n, d), device=device)
        self.is_mlp = torch.zeros(n, dtype=torch.bool)   # has a trained residual

    def params(self, idx: torch.Tensor) -> Params:
        names = ("a", "w1", "b1", "w2", "b2") if self.mlp else ("a",)
        return {k: getattr(self, k)[idx].clone() for k in names}

    def store(self, idx: torch.Tensor, p: Params) -> None:
        for k, v in p.items():
            getattr(self, k)[idx] = v.detach()
        if self.mlp:
            self.is_mlp[idx.cpu()] = True


def apply_students(p: Params, z: torch.Tensor, residual: bool = True) -> torch.Tensor:
    """f(z) for M stacked nodes: z (M, B, d); params a (M, d), w1/b1/w2 (M, d, H), b2 (M, d)."""
    out = p["a"][:, None, :] * z
    if residual and "w1" in p:
        h = torch.tanh(z[..., None] * p["w1"][:, None] + p["b1"][:, None])
        out = out + (h * p["w2"][:, None]).sum(-1) + p["b2"][:, None]
    return out


class NodeChain:
    """A chain of nodes per merge (padded with the identity), applied position by position.

    ``linear`` is the product of the chain's gains, exact when every node is linear."""

    def __init__(self, bank: StudentBank, chains: Sequence[tuple[int, ...]], identity: int,
                 device: torch.device):
        width = max((len(c) for c in chains), default=0)
        idx = torch.tensor([list(c) + [identity] * (width - len(c)) for c in chains],
                           dtype=torch.long).reshape(len(chains), width)
        self.linear = torch.prod(bank.a[idx.to(device)], dim=1) if width else \
            torch.ones((len(chains), bank.a.shape[1]), device=device)
        self.steps: list[tuple[Params, bool]] = []
        if bank.mlp and bank.is_mlp[idx].any():
            self.steps = [(bank.params(idx[:, j].to(device)), bool(bank.is_mlp[idx[:, j]].any()))
                          for j in range(width)]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if not self.steps:
            return self.linear[:, None, :] * z
        for p, residual in self.steps:
            z = apply_students(p, z, residual)
        return z


class MergeChunk:
    """Merges of one height trained together: their input distribution and their target.

    Inputs are ``base_sd · ε`` with ``base_sd`` = r_s (forward) or r_T (boot), pushed to z_s through
    the ``push`` chain (boot); the target is the ``kids`` chain, the children in application order."""

    def __init__(self, bank: StudentBank, graph: MergeGraph, ids: Sequence[int], r2: np.ndarray,
                 boot: bool, device: torch.device):
        self.ids, self.nodes = list(ids), [graph.node(i) for i in ids]
        sd = np.sqrt(np.stack([r2[-1] if boot else r2[n.span[1]] for n in self.nodes]))
        self.base_sd = torch.as_tensor(sd, dtype=torch.float32, device=device)   # (M, d)
        chains = [n.chain for n in self.nodes]
        self.push = NodeChain(bank, chains, graph.identity, device) if boot else None
        self.kids = NodeChain(bank, [n.children for n in self.nodes], graph.identity, device)

    @property
    def height(self) -> int:
        return self.nodes[0].height

    @property
    def input_sd(self) -> torch.Tensor:
        """(M, d) sd of the inputs, exact for linear models."""
        return self.base_sd * self.push.linear if self.push is not None else self.base_sd

    def inputs(self, eps: torch.Tensor) -> torch.Tensor:
        """Inputs (M, B, d) from standard normal noise (B, d)."""
        z = self.base_sd[:, None, :] * eps[None]
        return self.push(z) if self.push is not None else z


def fresh_hidden(spans: Sequence[tuple[int, int, int]], hidden: int, seed: int,
                 input_sd: torch.Tensor) -> Params:
    """New MLP hidden weights per merge ``(e, s, height)``, seeded by the merge itself (independent of
    batching); w1 ~ N(0, 1/sd²) so that pre-activations are O(1) under the merge's inputs."""
    d = input_sd.shape[1]
    w1, b1 = [], []
    for e, s, height in spans:
        g = torch.Generator().manual_seed(seed_of(seed, e, s, height, 3))
        w1.append(torch.randn((d, hidden), generator=g))
        b1.append(torch.randn((d, hidden), generator=g))
    device = input_sd.device
    return {"w1": torch.stack(w1).to(device) / input_sd.clamp_min(1e-6)[..., None],
            "b1": torch.stack(b1).to(device)}


def slope_stats(p: Params, inputs: Callable[[torch.Tensor], torch.Tensor], target: NodeChain,
                batch: int, d: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Least-squares slopes E[z f(z)]/E[z²] of the students ``p`` (``A0``) and of the ``target``,
    and E[z²] (``var``), from ``EVAL_SAMPLES`` inputs ``inputs(ε)`` per coordinate."""
    gen = torch.Generator(device=device).manual_seed(seed)
    rounds = max(1, EVAL_SAMPLES // batch)
    szf = szy = szz = 0.0
    with torch.no_grad():
        for _ in range(rounds):
            z = inputs(torch.randn((batch, d), generator=gen, device=device))
            szf = szf + (z * apply_students(p, z)).sum(1)
            szy = szy + (z * target(z)).sum(1)
            szz = szz + (z * z).sum(1)
    return {"A0": szf / szz, "target": szy / szz, "var": szz / (rounds * batch)}
