"""Real student training under any merge plan (THEORY §2, §3, §6).

Every merge of a plan (THEORY §3) becomes one student (``students``) trained with torch on sampled
inputs against the product of its children, exactly as THEORY §2 describes and §6 asks to reproduce,
and is recorded next to what the closed form predicts (``closed_form``):

- **init** (``setting.init``, THEORY §2): ``teacher`` A(0) = the first child (for an MLP child: a copy
  of it), ``zero``, ``coarse`` (one DDIM jump s → e, ``operators.coarse_jump``), ``identity``.
- **inputs** (``config.inputs``, THEORY §2 model choice): ``forward`` ``z_s ~ N(0, r_s²)``, or ``boot``
  (``z_T`` pushed to time s through the current model, see ``graph``).
- **target**: the children applied, in order, to the same inputs.
- **loss**: per-coordinate mean squared error, *mean over the batch and summed over coordinates and
  merges*: ``L = Σ_{merge, i} mean_b (f(z_bi) − y_bi)²``. Each parameter then receives exactly the
  gradient of its own coordinate's MSE, so for the linear student gradient flow is
  ``dA_i/dτ = −2 E[z_i²] (A_i − A_tgt,i)`` with optimisation time ``τ = η n`` for SGD with learning
  rate η and n steps: ``γ_s = exp(−2 η n r_s²)`` and the effective budget is ``S_eff = 2 η n``
  (κ = 2, THEORY §6). Loss curves are reported as the mean over coordinates.

Batched execution: the merges of all plans form one graph (``graph``: identical subtrees are trained
once) and the merges of one height train together. The sampling noise of a merge depends only on
(seed, height, step) — never on which other merges share its wave — so training all strategies
together equals training them one by one with the same seed. Different heights use independent noise,
so a parent never reuses the noise its children were trained on; merges of equal height share theirs
(common random numbers), which leaves each merge's expectation unchanged.

Bounds (``ValueError`` beyond them): T ≤ 1024, d ≤ 4096, steps ≤ 100 000, batch ≤ 65 536,
0 < lr ≤ 100, MLP hidden width ≤ 256, batch × d (× hidden for the MLP) ≤ 2²⁴ elements per sample tensor,
(MLP students) × d × hidden ≤ 2²⁴.
A wave is processed in chunks of at most 2²² sample elements, so memory stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from opmerge_core.basics.device import pick_device
from opmerge_core.basics.progress import CancelFlag, Progress, check_cancel
from opmerge_core.basics.validation import (
    check_lam,
    check_T,
)
from opmerge_core.theory import shrinkage
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting
from opmerge_core.training.closed_form import fill_theory, initial_operator, sgd_moments
from opmerge_core.training.config import TrainConfig
from opmerge_core.training.graph import MergeGraph, Node, build_graph
from opmerge_core.training.results import MergeRecord, PlanResult, TrainResult
from opmerge_core.training.students import (
    MergeChunk,
    Params,
    StudentBank,
    apply_students,
    fresh_hidden,
    seed_of,
    slope_stats,
)

T_MAX_TRAIN = 1024
D_MAX_TRAIN = 4096
SAMPLE_ELEMENTS_MAX = 2**24   # batch × d (× hidden) in one sample tensor
CHUNK_ELEMENTS = 2**22        # merges × batch × d (× hidden) trained at once
MLP_BANK_MAX = 2**24          # MLP students × d × hidden kept in memory
LOSS_POINTS = 100             # loss-curve points kept per merge (about)
PROGRESS_POINTS = 20          # progress reports per chunk (about)


class TrainingFailed(ValueError):
    """The run cannot continue (non-finite loss). The message is the failure reason."""


# ---- the run ------------------------------------------------------------------------------------
def train(setting: Setting, lam: np.ndarray | float, plans: Mapping[str, Plan] | Plan,
          config: TrainConfig | None = None, *, progress: Progress | None = None,
          cancel: CancelFlag | None = None) -> TrainResult:
    """Train every merge of every plan (THEORY §2/§3/§6) and compare with the closed form.

    ``setting`` supplies T, the schedule, the init and the surrogate (its S is ignored: the budget is
    ``config.S_eff``); ``lam`` is the (d,) spectrum. ``progress(done, total, info)`` is called in units
    of merge-steps; a set ``cancel`` flag stops the run between two steps (``basics.progress.Cancelled``).
    A non-finite loss raises ``TrainingFailed`` whose message is the reason.
    """
    config = config or TrainConfig()
    lam, plans = _checked(setting, lam, plans, config)
    device = pick_device(config.device)
    t0 = time.perf_counter()
    graph = build_graph(plans, setting.T, config.inputs)
    run = _Run.start(setting, lam, config, graph, device, progress, cancel)
    for wave in run.waves:
        for start in range(0, len(wave), run.chunk_size):
            _train_chunk(run, wave[start:start + run.chunk_size])
    results = {name: _plan_result(run, name, plan) for name, plan in plans.items()}
    if progress is not None:
        progress(run.total, run.total, {"merges_done": len(run.records),
                                        "merges_total": len(run.records)})
    return TrainResult(setting, lam, config, str(device), results, run.records,
                       time.perf_counter() - t0)


def _checked(setting: Setting, lam: np.ndarray | float, plans: Mapping[str, Plan] | Plan,
             config: TrainConfig) -> tuple[np.ndarray, dict[str, Plan]]:
    """The spectrum and the named plans, after the size bounds of the module docstring."""
    lam = check_lam(lam)
    if lam.size > D_MAX_TRAIN:
        raise ValueError(f"d (number of λ values) must be <= {D_MAX_TRAIN}, got {lam.size}")
    T = check_T(setting.T, hi=T_MAX_TRAIN)
    plans = {"plan": plans} if isinstance(plans, Plan) else dict(plans)
    if not plans:
        raise ValueError("no plan to train")
    for name, plan in plans.items():
        if plan.T != T:
            raise ValueError(f"plan {name!r} is for T = {plan.T} but the setting has T = {T}")
    mlp = config.student == "mlp"
    elements = config.batch * lam.size * (config.hidden if mlp else 1)
    if elements > SAMPLE_ELEMENTS_MAX:
        raise ValueError(f"batch × d{' × hidden' if mlp else ''} = {elements} "
                         f"exceeds {SAMPLE_ELEMENTS_MAX}; lower the batch size")
    return lam, plans


@dataclass
class _Run:
    """What every chunk of one ``train`` call shares, and the records it has produced so far."""

    setting: Setting
    lam: np.ndarray
    config: TrainConfig
    graph: MergeGraph
    device: torch.device
    bank: StudentBank
    theory: np.ndarray              # (n_nodes, d) every node by the closed form at S_eff
    r2: np.ndarray                  # (T + 1, d) forward input variances r_t²
    waves: list[list[int]]          # merge ids by height (graph.waves)
    progress: Progress | None
    cancel: CancelFlag | None
    records: dict[int, MergeRecord] = field(default_factory=dict)
    done: int = 0                   # merge-steps trained so far

    @classmethod
    def start(cls, setting: Setting, lam: np.ndarray, config: TrainConfig, graph: MergeGraph,
              device: torch.device, progress: Progress | None, cancel: CancelFlag | None) -> _Run:
        """The bank holds the teacher steps and the identity; merges are trained into it."""
        mlp, d = config.student == "mlp", lam.size
        if mlp and graph.n_nodes * d * config.hidden > MLP_BANK_MAX:
            raise ValueError(f"MLP students × d × hidden = {graph.n_nodes * d * config.hidden} "
                             f"exceeds {MLP_BANK_MAX}; use fewer steps T, coordinates or hidden units")
        bank = StudentBank(graph.n_nodes, d, config.hidden, mlp, device)
        bank.a[:graph.T] = torch.as_tensor(setting.A_star(lam), dtype=torch.float32, device=device)
        bank.a[graph.identity] = 1.0
        theory = fill_theory(graph, setting, lam, config.S_eff)
        return cls(setting, lam, config, graph, device, bank, theory, setting.r2(lam), graph.waves(),
                   progress, cancel)

    @property
    def mlp(self) -> bool:
        return self.bank.mlp

    @property
    def chunk_size(self) -> int:
        """Merges trained at once: at most ``CHUNK_ELEMENTS`` sample elements."""
        width = self.config.hidden if self.mlp else 1
        return max(1, CHUNK_ELEMENTS // (self.config.batch * self.lam.size * width))

    @property
    def total(self) -> int:
        return len(self.graph.merges) * self.config.steps


def _plan_result(run: _Run, name: str, plan: Plan) -> PlanResult:
    nodes, root = run.graph.plan_nodes[name], run.graph.root(name)
    empirical = run.records[root].learned if root in run.records else run.theory[root].copy()
    return PlanResult(name, plan, {span: nodes[span] for span in plan.merges}, empirical,
                      run.theory[root], run.setting.w2(empirical, run.lam),
                      run.setting.w2(run.theory[root], run.lam))


def distinct_merges(plans: Mapping[str, Plan], inputs: str = "forward") -> int:
    """How many students ``train`` fits for these plans (identical subtrees are trained once)."""
    T = next(iter(plans.values())).T if plans else 1
    return len(build_graph(plans, T, inputs).merges)


def train_one_by_one(setting: Setting, lam: np.ndarray, plans: Mapping[str, Plan],
                     config: TrainConfig | None = None) -> dict[str, TrainResult]:
    """Each plan in its own run (reference for the batched path; same seed, same result)."""
    return {name: train(setting, lam, {name: plan}, config) for name, plan in plans.items()}


# ---- one chunk: merges of one height trained together -------------------------------------------
@dataclass
class _Moments:
    """(M, d) statistics of a chunk's inputs and targets: exact for linear, sampled for the MLP."""

    A0: np.ndarray       # the init's operator (MLP: least-squares slope)
    target: np.ndarray   # the product of the children (MLP: least-squares slope)
    var: np.ndarray      # E[z_s²]


def _train_chunk(run: _Run, ids: list[int]) -> None:
    """Train the merges ``ids`` (all of one height) together; store them in the bank and records."""
    chunk = MergeChunk(run.bank, run.graph, ids, run.r2, run.config.inputs == "boot", run.device)
    init = _initial_params(run, chunk)
    moments = _moments(run, chunk, init)
    final, loss_steps, loss = _optimise(run, chunk, init, moments.var)
    run.bank.store(torch.tensor(ids, dtype=torch.long, device=run.device), final)
    _record(run, chunk, moments, _learned(run, chunk, final), loss_steps, loss)
    run.done += len(ids) * run.config.steps


def _initial_params(run: _Run, chunk: MergeChunk) -> Params:
    """A(0) per ``setting.init`` (THEORY §2); an MLP student gets fresh hidden weights unless it
    copies an MLP first child."""
    config, device, M = run.config, run.device, len(chunk.ids)
    if run.setting.init == "teacher":
        first = torch.tensor([n.children[0] for n in chunk.nodes], dtype=torch.long, device=device)
        p = run.bank.params(first)
        if run.mlp:  # a leaf first child has no residual: give the student fresh hidden weights
            new, leaf = _fresh_hidden(run, chunk), ~run.bank.is_mlp[first.cpu()].to(device)
            for k in ("w1", "b1"):
                p[k] = torch.where(leaf[:, None, None], new[k], p[k])
        return p
    d = run.lam.size
    A0 = np.stack([initial_operator(run.setting, run.lam, n, np.zeros(d)) for n in chunk.nodes])
    p = {"a": torch.as_tensor(A0, dtype=torch.float32, device=device)}
    if run.mlp:
        p |= _fresh_hidden(run, chunk) | {"w2": torch.zeros((M, d, config.hidden), device=device),
                        "b2": torch.zeros((M, d), device=device)}
    return p


def _fresh_hidden(run: _Run, chunk: MergeChunk) -> Params:
    spans = [(*n.span, n.height) for n in chunk.nodes]
    return fresh_hidden(spans, run.config.hidden, run.config.seed, chunk.input_sd)


def _slopes(run: _Run, chunk: MergeChunk, p: Params) -> dict[str, torch.Tensor]:
    return slope_stats(p, chunk.inputs, chunk.kids, run.config.batch, run.lam.size,
                       seed_of(run.config.seed, chunk.height, 2), run.device)


def _moments(run: _Run, chunk: MergeChunk, init: Params) -> _Moments:
    if run.mlp:
        stats = _slopes(run, chunk, init)
        A0, target, var = stats["A0"], stats["target"], stats["var"]
    else:
        A0, target, var = init["a"], chunk.kids.linear, chunk.input_sd**2
    return _Moments(*(t.double().cpu().numpy() for t in (A0, target, var)))


def _optimise(run: _Run, chunk: MergeChunk, init: Params, var: np.ndarray,
              ) -> tuple[Params, np.ndarray, np.ndarray]:
    """``config.steps`` optimiser steps on fresh batches: (final params, loss steps, (M, points) loss).

    SGD is the plain update A ← A − η ∇L (what torch.optim.SGD does without momentum), written out
    because its per-step overhead dominated small merges; Adam is torch.optim.Adam."""
    config, steps, M = run.config, run.config.steps, len(chunk.ids)
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    adam = (torch.optim.Adam(list(params.values()), lr=config.lr) if config.optimizer == "adam"
            else None)
    gen = torch.Generator(device=run.device).manual_seed(seed_of(config.seed, chunk.height, 1))
    every, report_every = max(1, steps // LOSS_POINTS), max(1, steps // PROGRESS_POINTS)
    info = {"wave": chunk.height, "waves": len(run.waves), "merges_done": len(run.records),
            "merges_total": len(run.graph.merges)}
    points, curve = [], []
    eps = torch.empty((config.batch, run.lam.size), device=run.device)
    for k in range(steps):
        check_cancel(run.cancel)
        keep = k % every == 0 or k == steps - 1
        z = chunk.inputs(eps.normal_(generator=gen))
        with torch.no_grad():
            y = chunk.kids(z)
        per_coord = _set_gradient(params, z, y, run.mlp, keep)
        if adam is not None:
            adam.step()
        else:
            with torch.no_grad():
                for v in params.values():
                    v.sub_(config.lr * v.grad)
        if keep:
            loss = per_coord.detach().mean(dim=1)
            if not bool(torch.isfinite(loss).all()):
                raise TrainingFailed(_divergence_reason(chunk.nodes, loss, k, config, var))
            points.append(k)
            curve.append(loss)
        if run.progress is not None and (k % report_every == 0 or k == steps - 1):
            run.progress(run.done + M * (k + 1), run.total,
                         {**info, "step": k + 1, "steps": steps, "loss": float(curve[-1].mean())})
    final = {k: v.detach() for k, v in params.items()}
    if not all(bool(torch.isfinite(v).all()) for v in final.values()):
        raise TrainingFailed(_divergence_reason(chunk.nodes, torch.full((M,), float("inf")),
                                                steps - 1, config, var))
    return final, np.array(points), torch.stack(curve, dim=1).double().cpu().numpy()


def _set_gradient(params: Params, z: torch.Tensor, y: torch.Tensor, mlp: bool,
                  need_loss: bool) -> torch.Tensor | None:
    """Set every ``.grad`` to ∇L (module docstring); return the (M, d) per-coordinate MSE (the
    linear student only computes it when ``need_loss``)."""
    if mlp:
        per_coord = ((apply_students(params, z) - y) ** 2).mean(dim=1)
        for v in params.values():
            v.grad = None
        per_coord.sum().backward()
        return per_coord
    with torch.no_grad():  # the same gradient written out: ∂/∂A mean_b (A z − y)² = 2 mean_b (A z − y) z
        residual = params["a"][:, None, :] * z - y
        params["a"].grad = 2.0 * (residual * z).mean(dim=1)
        return (residual**2).mean(dim=1) if need_loss else None


def _learned(run: _Run, chunk: MergeChunk, final: Params) -> np.ndarray:
    """(M, d) trained operators (MLP: least-squares slopes under the merge's inputs)."""
    learned = _slopes(run, chunk, final)["A0"] if run.mlp else final["a"]
    return learned.double().cpu().numpy()


def _record(run: _Run, chunk: MergeChunk, m: _Moments, learned: np.ndarray, loss_steps: np.ndarray,
            loss: np.ndarray) -> None:
    """One MergeRecord per merge: what it learned next to the closed form (THEORY §2, §6)."""
    config = run.config
    closed = shrinkage.trained(m.target, m.A0, shrinkage.rho(config.S_eff, m.var))
    nan = np.full_like(closed, np.nan)
    sgd_mean, sgd_std = (sgd_moments(m.A0, m.target, m.var, config.lr, config.steps, config.batch)
                         if config.optimizer == "sgd" and not run.mlp else (nan, nan))
    for j, (i, node) in enumerate(zip(chunk.ids, chunk.nodes, strict=True)):
        run.records[i] = MergeRecord(i, node.span, node.height, learned[j], m.target[j], m.A0[j],
                                     m.var[j], closed[j], sgd_mean[j], sgd_std[j], run.theory[i],
                                     loss_steps, loss[j])


def _divergence_reason(nodes: list[Node], loss: torch.Tensor, step: int, config: TrainConfig,
                       var: np.ndarray) -> str:
    bad = int(torch.nonzero(~torch.isfinite(loss))[0, 0])
    e, s = nodes[bad].span
    reason = (f"loss became {float(loss[bad])} at step {step + 1} of the merge z_{s} → z_{e} "
              f"(optimizer {config.optimizer}, lr {config.lr:g})")
    vmax = float(np.max(var[bad]))
    if config.optimizer == "sgd":
        reason += (f": SGD diverges when lr × input variance ≥ 1 (max input variance {vmax:.3g}, "
                   f"so lr must be < {1.0 / vmax:.3g})")
    return reason
