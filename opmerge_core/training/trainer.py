"""Real student training under any merge plan (THEORY §2, §3, §6).

Every merge of a plan (THEORY §3) becomes one student trained with torch on sampled inputs against the
product of its children, exactly as THEORY §2 describes and §6 asks to reproduce:

- **student**: a diagonal linear operator ``A`` over the d coordinates (``student="linear"``), or a tiny
  scalar-in scalar-out MLP per coordinate ``f(z) = a z + Σ_h w2_h tanh(w1_h z + b1_h) + b2``
  (``student="mlp"``) to show where the closed form stops holding. The MLP's *effective one-step gain* is
  its least-squares slope ``E[z f(z)] / E[z²]`` under the merge's input distribution.
- **init** (``setting.init``, THEORY §2): ``teacher`` A(0) = the first child (for an MLP child: a copy
  of it), ``zero``, ``coarse`` (one DDIM jump s → e, ``operators.coarse_jump``), ``identity``.
- **inputs**: ``forward`` (default, THEORY §2 model choice) ``z_s ~ N(0, r_s²)`` per coordinate;
  ``boot``: ``z_T ~ N(0, r_T²)`` pushed to time s through the *current model*, i.e. for every position
  T, T − 1, …, s + 1 the largest node of the same plan trained in an earlier wave (lower height), else
  the teacher step. For BOOT every merge starts at s = T, so both options coincide.
- **target**: the children applied, in order, to the same inputs.
- **loss**: per-coordinate mean squared error, *mean over the batch and summed over coordinates and
  merges*: ``L = Σ_{merge, i} mean_b (f(z_bi) − y_bi)²``. Each parameter then receives exactly the
  gradient of its own coordinate's MSE, so for the linear student gradient flow is
  ``dA_i/dτ = −2 E[z_i²] (A_i − A_tgt,i)`` with optimisation time ``τ = η n`` for SGD with learning
  rate η and n steps: ``γ_s = exp(−2 η n r_s²)`` and the effective budget is ``S_eff = 2 η n``
  (κ = 2). Loss curves are reported as the mean over coordinates.
- SGD is discrete: since the per-step batch second moments are independent with mean r_s²,
  ``E[A_n] = A_tgt + (A(0) − A_tgt)(1 − 2η r_s²)^n`` *exactly* (``sgd_moments`` also gives the Monte-Carlo
  standard deviation); this tends to the closed form ``exp(−S_eff r_s²)`` as η r_s² → 0. Both are recorded.

Batched execution: the merges of all plans form one graph (identical subtrees are trained once). Merges
of equal *height* (1 + max height of their children; leaves have height 0) train together in one
parameter tensor of shape (n_merges, d) — a "wave" — so BOOT at T = 64 is 63 waves of one merge and
vanilla is one wave. The sampling noise of a merge depends only on (seed, height, step) — never on
which other merges share its wave — so training all strategies together equals training them one by
one with the same seed. Different heights use independent noise, so a parent never reuses the noise
its children were trained on; merges of equal height share theirs (common random numbers), which
leaves each merge's expectation unchanged.

Bounds (``ValueError`` beyond them): T ≤ 1024, d ≤ 4096, steps ≤ 100 000, batch ≤ 65 536,
0 < lr ≤ 100, MLP hidden width ≤ 256, batch × d (× hidden for the MLP) ≤ 2²⁴ elements per sample tensor,
(MLP students) × d × hidden ≤ 2²⁴.
A wave is processed in chunks of at most 2²² sample elements, so memory stays bounded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from opmerge_core.infra.device import DEVICES, pick_device
from opmerge_core.infra.validation import check_choice, check_int, check_lam, check_positive, check_T
from opmerge_core.theory import operators, shrinkage
from opmerge_core.theory.plans import Plan, Span
from opmerge_core.theory.setting import Setting, total_w2

T_MAX_TRAIN = 1024
D_MAX_TRAIN = 4096
STEPS_MAX = 100_000
BATCH_MAX = 65_536
LR_MAX = 100.0
HIDDEN_MAX = 256
SAMPLE_ELEMENTS_MAX = 2**24   # batch × d (× hidden) in one sample tensor
CHUNK_ELEMENTS = 2**22        # merges × batch × d (× hidden) trained at once
MLP_BANK_MAX = 2**24          # MLP students × d × hidden kept in memory
LOSS_POINTS = 100             # loss-curve points kept per merge (about)
EVAL_SAMPLES = 4096           # samples per coordinate for the MLP's least-squares slope

OPTIMIZERS = ("sgd", "adam")
INPUTS = ("forward", "boot")
STUDENTS = ("linear", "mlp")

ProgressFn = Callable[[int, int, dict], None]


class TrainingFailed(ValueError):
    """The run cannot continue (non-finite loss). The message is the failure reason."""


class TrainingCancelled(Exception):
    """The cancel flag was set; the run stopped between two optimisation steps."""


# ---- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (THEORY §6). ``S_eff = 2 · lr · steps`` is the budget SGD realises."""

    steps: int = 200
    lr: float = 0.05
    batch: int = 256
    optimizer: str = "sgd"
    seed: int = 0
    inputs: str = "forward"
    student: str = "linear"
    hidden: int = 16
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _check_count(self.steps, "steps", STEPS_MAX))
        object.__setattr__(self, "batch", _check_count(self.batch, "batch", BATCH_MAX))
        object.__setattr__(self, "hidden", _check_count(self.hidden, "hidden", HIDDEN_MAX))
        object.__setattr__(self, "lr", check_positive(self.lr, "lr", hi=LR_MAX))
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.inputs, INPUTS, "inputs")
        check_choice(self.student, STUDENTS, "student")
        check_choice(self.device, DEVICES, "device")
        object.__setattr__(self, "seed", check_int(self.seed, "seed", lo=0, hi=2**31 - 1))

    @property
    def S_eff(self) -> float:
        """The shrinkage budget S = κτ = 2 η n realised by SGD (THEORY §2, §6)."""
        return 2.0 * self.lr * self.steps

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_count(value: object, name: str, hi: int) -> int:
    """A positive integer ≤ hi; non-positive values get a message that says so."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if math.isfinite(number) and number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return check_int(value, name, hi=hi)


def sgd_moments(A0: np.ndarray, target: np.ndarray, var: np.ndarray, lr: float, steps: int,
                batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and standard deviation of plain SGD on one linear merge (THEORY §6).

    Per step A − A_tgt is multiplied by x_k = 1 − 2η m_k with m_k = (v/B)·χ²_B the batch second moment,
    so E[x] = 1 − 2ηv, E[x²] = E[x]² + 8η²v²/B, and after n independent steps
    mean = A_tgt + (A0 − A_tgt) E[x]^n, std = |A0 − A_tgt| √(E[x²]^n − E[x]^{2n}).
    """
    gap = np.asarray(A0, dtype=np.float64) - target
    mu = 1.0 - 2.0 * lr * np.asarray(var, dtype=np.float64)
    second = mu**2 + 8.0 * lr**2 * np.asarray(var, dtype=np.float64) ** 2 / batch
    mean = target + gap * mu**steps
    std = np.abs(gap) * np.sqrt(np.maximum(second**steps - mu ** (2 * steps), 0.0))
    return mean, std


# ---- the merge graph ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Node:
    span: Span
    height: int
    children: tuple[int, ...]   # node ids in application order
    chain: tuple[int, ...]      # boot inputs: node ids taking z_T to z_s, in application order


@dataclass
class _Graph:
    """Node ids: 0..T−1 are the teacher steps 1..T, T is the identity, merges follow (topological)."""

    T: int
    merges: list[_Node]
    plan_nodes: dict[str, dict[Span, int]]   # plan name -> span -> node id (leaves included)

    def node(self, i: int) -> _Node:
        return self.merges[i - self.T - 1]

    @property
    def n_nodes(self) -> int:
        return self.T + 1 + len(self.merges)


def _build_graph(plans: Mapping[str, Plan], T: int, inputs: str) -> _Graph:
    merges: list[_Node] = []
    index: dict[tuple, int] = {}
    plan_nodes: dict[str, dict[Span, int]] = {}
    for name, plan in plans.items():
        ids: dict[Span, int] = {(t - 1, t): t - 1 for t in range(1, T + 1)}
        height: dict[Span, int] = dict.fromkeys(ids, 0)
        for span in plan.post_order():
            height[span] = 1 + max(height[c] for c in plan.children(span))
        by_start: dict[int, list[Span]] = {}
        for e, s in sorted(plan.merges):                  # ascending e: longest first
            by_start.setdefault(s, []).append((e, s))
        for span in sorted(plan.merges, key=lambda sp: (height[sp], sp[0] - sp[1], -sp[1])):
            h = height[span]
            kids = tuple(ids[c] for c in plan.children(span))
            chain: list[int] = []
            if inputs == "boot":
                pos = T
                while pos > span[1]:
                    node = next((c for c in by_start.get(pos, [])
                                 if c[0] >= span[1] and height[c] < h), (pos - 1, pos))
                    chain.append(ids[node])
                    pos = node[0]
            key = (span, kids, tuple(chain))
            if key not in index:
                index[key] = T + 1 + len(merges)
                merges.append(_Node(span, h, kids, tuple(chain)))
            ids[span] = index[key]
        plan_nodes[name] = ids
    return _Graph(T, merges, plan_nodes)


# ---- results ------------------------------------------------------------------------------------
@dataclass
class MergeRecord:
    """One trained student (THEORY §2). Operators are (d,) arrays; for an MLP they are LS slopes."""

    node: int
    span: Span
    height: int
    learned: np.ndarray        # the trained operator (MLP: least-squares slope)
    target: np.ndarray         # product of the (empirical) children
    A0: np.ndarray             # the init (MLP: slope of the initial function)
    input_var: np.ndarray      # E[z_s²] of the inputs actually used
    closed_form: np.ndarray    # shrinkage.trained(target, A0, ρ), ρ = 1 − exp(−S_eff · input_var)
    closed_form_sgd: np.ndarray  # exact SGD expectation (1 − 2η v)^n (linear + SGD; else NaN)
    mc_std: np.ndarray         # Monte-Carlo std of SGD around it (linear + SGD; else NaN)
    theory: np.ndarray         # the full theory chain (every node by the closed form)
    loss_steps: np.ndarray     # (n_points,) step index of each loss point
    loss: np.ndarray           # (n_points,) loss averaged over coordinates


@dataclass
class PlanResult:
    name: str
    plan: Plan
    nodes: dict[Span, int]     # merge span -> node id in TrainResult.records
    empirical: np.ndarray      # (d,) the trained one-step operator
    theory: np.ndarray         # (d,) THEORY §2 chain at S_eff
    w2_empirical: np.ndarray   # (d,) per-coordinate W2 to the surrogate (THEORY §4)
    w2_theory: np.ndarray

    @property
    def w2_empirical_total(self) -> float:
        return total_w2(self.w2_empirical)

    @property
    def w2_theory_total(self) -> float:
        return total_w2(self.w2_theory)


@dataclass
class TrainResult:
    setting: Setting
    lam: np.ndarray
    config: TrainConfig
    device: str
    plans: dict[str, PlanResult]
    records: dict[int, MergeRecord]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def S_eff(self) -> float:
        return self.config.S_eff

    def merges(self, name: str) -> list[MergeRecord]:
        """The records of one plan's merges, in post-order."""
        p = self.plans[name]
        return [self.records[p.nodes[span]] for span in p.plan.post_order()]

    def summary(self) -> dict:
        """JSON-ready: per plan the one-step operators and W2 (lists over λ)."""
        return {"S_eff": self.S_eff, "T": self.setting.T, "lam": self.lam.tolist(),
                "config": self.config.as_dict(), "setting": self.setting.as_dict(),
                "device": self.device, "seconds": self.seconds, "n_trained": len(self.records),
                "strategies": {name: {"plan": p.plan.text, "empirical": p.empirical.tolist(),
                                      "theory": p.theory.tolist(),
                                      "w2_empirical": p.w2_empirical.tolist(),
                                      "w2_theory": p.w2_theory.tolist(),
                                      "w2_empirical_total": p.w2_empirical_total,
                                      "w2_theory_total": p.w2_theory_total}
                               for name, p in self.plans.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez`` (no pickling): per node and per plan."""
        out: dict[str, np.ndarray] = {"lam": self.lam}
        for i, r in self.records.items():
            for key in ("learned", "target", "A0", "input_var", "closed_form", "theory", "loss"):
                out[f"node{i}_{key}"] = getattr(r, key)
            out[f"node{i}_span"] = np.array(r.span)
        for name, p in self.plans.items():
            out[f"plan_{name}_empirical"] = p.empirical
            out[f"plan_{name}_theory"] = p.theory
        return out


# ---- training -----------------------------------------------------------------------------------
class _Bank:
    """Every node's function on the device: a (N, d) gains; MLP residual params (N, d, H)."""

    def __init__(self, n: int, d: int, hidden: int, mlp: bool, device: torch.device):
        self.mlp = mlp
        self.a = torch.full((n, d), float("nan"), device=device)
        if mlp:
            self.w1 = torch.zeros((n, d, hidden), device=device)
            self.b1 = torch.zeros((n, d, hidden), device=device)
            self.w2 = torch.zeros((n, d, hidden), device=device)
            self.b2 = torch.zeros((n, d), device=device)
        self.is_mlp = torch.zeros(n, dtype=torch.bool)   # has a trained residual

    def params(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        names = ("a", "w1", "b1", "w2", "b2") if self.mlp else ("a",)
        return {k: getattr(self, k)[idx].clone() for k in names}

    def store(self, idx: torch.Tensor, p: dict[str, torch.Tensor]) -> None:
        for k, v in p.items():
            getattr(self, k)[idx] = v.detach()
        if self.mlp:
            self.is_mlp[idx.cpu()] = True


def _apply(p: dict[str, torch.Tensor], z: torch.Tensor, residual: bool = True) -> torch.Tensor:
    """f(z) for M stacked nodes: z (M, B, d); params a (M, d), w1/b1/w2 (M, d, H), b2 (M, d)."""
    out = p["a"][:, None, :] * z
    if residual and "w1" in p:
        h = torch.tanh(z[..., None] * p["w1"][:, None] + p["b1"][:, None])
        out = out + (h * p["w2"][:, None]).sum(-1) + p["b2"][:, None]
    return out


class _Chain:
    """A padded chain of nodes per merge (identity-padded), applied position by position."""

    def __init__(self, bank: _Bank, chains: list[tuple[int, ...]], identity: int, device):
        width = max((len(c) for c in chains), default=0)
        idx = torch.tensor([list(c) + [identity] * (width - len(c)) for c in chains],
                           dtype=torch.long).reshape(len(chains), width)
        self.linear = torch.prod(bank.a[idx.to(device)], dim=1) if width else \
            torch.ones((len(chains), bank.a.shape[1]), device=device)
        self.steps = []
        if bank.mlp and bank.is_mlp[idx].any():
            self.steps = [(bank.params(idx[:, j].to(device)), bool(bank.is_mlp[idx[:, j]].any()))
                          for j in range(width)]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if not self.steps:
            return self.linear[:, None, :] * z
        for p, residual in self.steps:
            z = _apply(p, z, residual)
        return z


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def train(setting: Setting, lam: np.ndarray | float, plans: Mapping[str, Plan] | Plan,
          config: TrainConfig | None = None, *, progress: ProgressFn | None = None,
          cancel: threading.Event | None = None) -> TrainResult:
    """Train every merge of every plan (THEORY §2/§3/§6) and compare with the closed form.

    ``setting`` supplies T, the schedule, the init and the surrogate (its S is ignored: the budget is
    ``config.S_eff``); ``lam`` is the (d,) spectrum. ``progress(done, total, info)`` is called in units
    of merge-steps; setting ``cancel`` stops the run between two steps (``TrainingCancelled``).
    A non-finite loss raises ``TrainingFailed`` whose message is the reason.
    """
    config = config or TrainConfig()
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
    d, mlp = lam.size, config.student == "mlp"
    width = config.hidden if mlp else 1
    if config.batch * d * width > SAMPLE_ELEMENTS_MAX:
        raise ValueError(f"batch × d{' × hidden' if mlp else ''} = {config.batch * d * width} "
                         f"exceeds {SAMPLE_ELEMENTS_MAX}; lower the batch size")
    device = pick_device(config.device)
    t0 = time.perf_counter()

    graph = _build_graph(plans, T, config.inputs)
    if mlp and graph.n_nodes * d * config.hidden > MLP_BANK_MAX:
        raise ValueError(f"MLP students × d × hidden = {graph.n_nodes * d * config.hidden} exceeds "
                         f"{MLP_BANK_MAX}; use fewer steps T, coordinates or hidden units")
    A_star = setting.A_star(lam)                         # (T, d)
    r2 = setting.r2(lam)                                 # (T + 1, d)
    identity = T
    bank = _Bank(graph.n_nodes, d, config.hidden, mlp, device)
    bank.a[:T] = torch.as_tensor(A_star, dtype=torch.float32, device=device)
    bank.a[identity] = 1.0
    theory = np.full((graph.n_nodes, d), np.nan)
    theory[:T], theory[identity] = A_star, 1.0
    _theory_chain(graph, setting, lam, config.S_eff, theory)

    waves: dict[int, list[int]] = {}
    for i in range(T + 1, graph.n_nodes):
        waves.setdefault(graph.node(i).height, []).append(i)
    chunk = max(1, CHUNK_ELEMENTS // (config.batch * d * width))
    total, done = len(graph.merges) * config.steps, 0
    records: dict[int, MergeRecord] = {}
    for h in sorted(waves):
        for start in range(0, len(waves[h]), chunk):
            ids = waves[h][start:start + chunk]
            ctx = dict(wave=h, waves=len(waves), merges_done=len(records),
                       merges_total=len(graph.merges))
            for rec in _train_chunk(graph, bank, ids, setting, lam, r2, config, device, theory,
                                    progress, cancel, done, total, ctx):
                records[rec.node] = rec
            done += len(ids) * config.steps

    results = {}
    for name, plan in plans.items():
        nodes = graph.plan_nodes[name]
        root = nodes[(0, T)] if T >= 2 else 0
        empirical = records[root].learned if T >= 2 else A_star[0].astype(np.float64)
        results[name] = PlanResult(name, plan, {sp: nodes[sp] for sp in plan.merges}, empirical,
                                   theory[root], setting.w2(empirical, lam),
                                   setting.w2(theory[root], lam))
    if progress:
        progress(total, total, {"merges_done": len(records), "merges_total": len(records)})
    return TrainResult(setting, lam, config, str(device), results, records,
                       time.perf_counter() - t0)


def _theory_chain(graph: _Graph, setting: Setting, lam: np.ndarray, S: float,
                  theory: np.ndarray) -> None:
    """Every node by the closed form of THEORY §2 at budget S (ids are in topological order)."""
    r2 = setting.r2(lam)
    for i in range(graph.T + 1, graph.n_nodes):
        node = graph.node(i)
        var = _input_var_theory(node, r2, theory)
        target = np.prod(theory[list(node.children)], axis=0)
        A0 = _init(setting, lam, node, theory[node.children[0]])
        theory[i] = shrinkage.trained(target, A0, shrinkage.rho(S, var))


def distinct_merges(plans: Mapping[str, Plan], inputs: str = "forward") -> int:
    """How many students ``train`` fits for these plans (identical subtrees are trained once)."""
    T = next(iter(plans.values())).T if plans else 1
    return len(_build_graph(plans, T, inputs).merges)


def theory(setting: Setting, lam: np.ndarray | float, plans: Mapping[str, Plan], S: float,
           inputs: str = "forward") -> dict[str, np.ndarray]:
    """The one-step operator each plan reaches by the closed form at budget S, with the trainer's
    input choice (for ``forward`` this is ``Plan.evaluate`` at S). Shape (d,) per plan."""
    lam = check_lam(lam)
    check_choice(inputs, INPUTS, "inputs")
    T = setting.T
    graph = _build_graph(plans, T, inputs)
    values = np.full((graph.n_nodes, lam.size), np.nan)
    values[:T], values[T] = setting.A_star(lam), 1.0
    _theory_chain(graph, setting, lam, float(S), values)
    return {name: values[graph.plan_nodes[name][(0, T)] if T >= 2 else 0] for name in plans}


def _input_var_theory(node: _Node, r2: np.ndarray, ops: np.ndarray) -> np.ndarray:
    if not node.chain:
        return r2[node.span[1]]
    return r2[-1] * np.prod(ops[list(node.chain)], axis=0) ** 2


def _init(setting: Setting, lam: np.ndarray, node: _Node, first: np.ndarray) -> np.ndarray:
    """A(0) per THEORY §2 (numpy, (d,))."""
    e, s = node.span
    if setting.init == "teacher":
        return np.asarray(first, dtype=np.float64)
    if setting.init == "coarse":
        return operators.coarse_jump(setting.alpha, setting.sigma, lam, s, e)
    return np.full(lam.size, 1.0 if setting.init == "identity" else 0.0)


def _train_chunk(graph: _Graph, bank: _Bank, ids: list[int], setting: Setting, lam: np.ndarray,
                 r2: np.ndarray, config: TrainConfig, device: torch.device, theory: np.ndarray,
                 progress: ProgressFn | None, cancel: threading.Event | None, done0: int,
                 total: int, ctx: dict) -> list[MergeRecord]:
    """Train the merges ``ids`` (all of one height) together; store them in the bank."""
    nodes = [graph.node(i) for i in ids]
    M, B, d, steps, mlp = len(ids), config.batch, lam.size, config.steps, bank.mlp
    h = nodes[0].height
    boot = config.inputs == "boot"
    # Input scale: forward marginal r_s, or r_T pushed through the chain (boot).
    base_sd = torch.as_tensor(np.sqrt(np.stack([r2[-1] if boot else r2[n.span[1]] for n in nodes])),
                              dtype=torch.float32, device=device)
    identity = graph.T
    push = _Chain(bank, [n.chain for n in nodes], identity, device) if boot else None
    kids = _Chain(bank, [n.children for n in nodes], identity, device)
    input_sd = base_sd * push.linear if push is not None else base_sd   # exact for linear models
    # Student init.
    first = torch.tensor([n.children[0] for n in nodes], dtype=torch.long, device=device)
    if setting.init == "teacher":
        p = bank.params(first)
        if mlp:  # a leaf first child has no residual: give the student fresh hidden weights
            fresh = _fresh_hidden(nodes, config, input_sd, device)
            leaf = ~bank.is_mlp[first.cpu()].to(device)
            for k in ("w1", "b1"):
                p[k] = torch.where(leaf[:, None, None], fresh[k], p[k])
    else:
        A0 = np.stack([_init(setting, lam, n, np.zeros(d)) for n in nodes])
        p = {"a": torch.as_tensor(A0, dtype=torch.float32, device=device)}
        if mlp:
            p |= _fresh_hidden(nodes, config, input_sd, device)
            p |= {"w2": torch.zeros((M, d, config.hidden), device=device),
                  "b2": torch.zeros((M, d), device=device)}

    def inputs(eps: torch.Tensor) -> torch.Tensor:
        z = base_sd[:, None, :] * eps[None]
        return push(z) if push is not None else z

    # Statistics of the input and target distributions (exact for linear, sampled for the MLP).
    if mlp:
        stats0 = _slope_stats(p, inputs, kids, config, d, device, _seed(config.seed, h, 2))
    params = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    A0_emp = (stats0["A0"] if mlp else p["a"]).double().cpu().numpy()
    target = (stats0["target"] if mlp else kids.linear).double().cpu().numpy()
    var = (stats0["var"] if mlp else input_sd**2).double().cpu().numpy()

    # SGD is the plain update A ← A − η ∇L (what torch.optim.SGD does without momentum), written
    # out because its per-step overhead dominated small merges; Adam is torch.optim.Adam.
    adam = torch.optim.Adam(list(params.values()), lr=config.lr) if config.optimizer == "adam" \
        else None
    gen = torch.Generator(device=device).manual_seed(_seed(config.seed, h, 1))
    every = max(1, steps // LOSS_POINTS)
    report = max(1, steps // 20)
    points, curve = [], []
    eps = torch.empty((B, d), device=device)
    for k in range(steps):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("cancelled")
        record = k % every == 0 or k == steps - 1
        z = inputs(eps.normal_(generator=gen))
        with torch.no_grad():
            y = kids(z)
        if mlp:
            pred = _apply(params, z)
            per_coord = ((pred - y) ** 2).mean(dim=1)          # (M, d): each coordinate's MSE
            for v in params.values():
                v.grad = None
            per_coord.sum().backward()
        else:  # the same gradient written out: ∂/∂A mean_b (A z − y)² = 2 mean_b (A z − y) z
            with torch.no_grad():
                residual = params["a"][:, None, :] * z - y
                params["a"].grad = 2.0 * (residual * z).mean(dim=1)
                per_coord = (residual**2).mean(dim=1) if record else None
        if adam is not None:
            adam.step()
        else:
            with torch.no_grad():
                for v in params.values():
                    v.sub_(config.lr * v.grad)
        if record:
            loss = per_coord.detach().mean(dim=1)
            if not bool(torch.isfinite(loss).all()):
                raise TrainingFailed(_divergence_reason(nodes, loss, k, config, var))
            points.append(k)
            curve.append(loss)
        if progress is not None and (k % report == 0 or k == steps - 1):
            progress(done0 + M * (k + 1), total,
                     {**ctx, "step": k + 1, "steps": steps, "loss": float(curve[-1].mean())})
    final = {k: v.detach() for k, v in params.items()}
    if not all(bool(torch.isfinite(v).all()) for v in final.values()):
        raise TrainingFailed(_divergence_reason(nodes, torch.full((M,), float("inf")), steps - 1,
                                                config, var))
    bank.store(torch.tensor(ids, dtype=torch.long, device=device), final)
    if mlp:
        learned = _slope_stats(final, inputs, kids, config, d, device,
                               _seed(config.seed, h, 2))["A0"].double().cpu().numpy()
    else:
        learned = final["a"].double().cpu().numpy()
    loss_curves = torch.stack(curve, dim=1).double().cpu().numpy()   # (M, n_points)
    rho = shrinkage.rho(config.S_eff, var)
    closed = shrinkage.trained(target, A0_emp, rho)
    nan = np.full_like(closed, np.nan)
    sgd_mean, sgd_std = (sgd_moments(A0_emp, target, var, config.lr, steps, B)
                         if config.optimizer == "sgd" and not mlp else (nan, nan))
    return [MergeRecord(i, n.span, n.height, learned[m], target[m], A0_emp[m], var[m], closed[m],
                        sgd_mean[m], sgd_std[m], theory[i], np.array(points), loss_curves[m])
            for m, (i, n) in enumerate(zip(ids, nodes))]


def _fresh_hidden(nodes: list[_Node], config: TrainConfig, input_sd: torch.Tensor,
                  device) -> dict[str, torch.Tensor]:
    """New MLP hidden weights per merge, seeded by the merge itself (independent of batching);
    w1 ~ N(0, 1/sd²) so that pre-activations are O(1) under the merge's inputs."""
    d = input_sd.shape[1]
    w1, b1 = [], []
    for n in nodes:
        g = torch.Generator().manual_seed(_seed(config.seed, n.span[0], n.span[1], n.height, 3))
        w1.append(torch.randn((d, config.hidden), generator=g))
        b1.append(torch.randn((d, config.hidden), generator=g))
    w1 = torch.stack(w1).to(device) / input_sd.clamp_min(1e-6)[..., None]
    return {"w1": w1, "b1": torch.stack(b1).to(device)}


def _slope_stats(p: dict[str, torch.Tensor], inputs, kids: _Chain, config: TrainConfig, d: int,
                 device, seed: int) -> dict[str, torch.Tensor]:
    """Least-squares slopes E[z f(z)]/E[z²] of the function p and of the target, and E[z²]."""
    gen = torch.Generator(device=device).manual_seed(seed)
    B = config.batch
    szf = szy = szz = 0.0
    with torch.no_grad():
        for _ in range(max(1, EVAL_SAMPLES // B)):
            z = inputs(torch.randn((B, d), generator=gen, device=device))
            szf = szf + (z * _apply(p, z)).sum(1)
            szy = szy + (z * kids(z)).sum(1)
            szz = szz + (z * z).sum(1)
    n = max(1, EVAL_SAMPLES // B) * B
    return {"A0": szf / szz, "target": szy / szz, "var": szz / n}


def _divergence_reason(nodes: list[_Node], loss: torch.Tensor, step: int, config: TrainConfig,
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


def train_one_by_one(setting: Setting, lam: np.ndarray, plans: Mapping[str, Plan],
                     config: TrainConfig | None = None) -> dict[str, TrainResult]:
    """Each plan in its own run (reference for the batched path; same seed, same result)."""
    return {name: train(setting, lam, {name: plan}, config) for name, plan in plans.items()}


def with_steps(config: TrainConfig, steps: int) -> TrainConfig:
    return replace(config, steps=steps)
