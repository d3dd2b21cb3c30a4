"""The experiment (THEORY §8): train every merge of every plan on a teacher, judge the one-step students
direction by direction against the teacher and against the closed form.

1. The teacher (``teachers``) is a T-step DDIM sampler on the setting's schedule; its data spectrum λ
   and eigenbasis U fix the coordinates.
2. The plans: named strategies (THEORY §3) and ``dp``, the DP-optimal plan at the run's budget S for
   the teacher's spectrum (THEORY §4): one plan per direction for linear students (directions train
   independently), the shared plan for MLP students (their directions interact).
3. Every merge (e, s) of every plan is one student per seed (``students``), trained exactly as THEORY
   §2 describes: inputs u_s = α_s x0 + σ_s ε from the forward marginal (x0 from the teacher's data),
   target = the merge's children applied in order to the *same* inputs (teacher steps, or students
   trained before), init per the setting's ``init`` (``teacher``: the first child — copied when it is a
   student, its per-direction least-squares gain when it is a teacher step, which is exact for a
   Gaussian teacher), plain SGD on the per-direction mean squared error with learning rate
   η = S/(2n) for n steps — the same optimiser, steps and learning rate for every merge, so
   S = 2ηn is the theory's budget (THEORY §6). Merges of all plans and seeds train together, stacked,
   wave by wave (merges of equal height, ``training.graph``); identical subtrees train once.
   Each (seed, start s, height) draws one pool of inputs: ``pool`` = steps × batch gives every SGD step
   fresh samples (the default for the cheap teachers); a smaller pool is cycled in random epochs
   (the latent teacher's default, whose denoiser calls dominate the cost).
4. Evaluation: per training seed one set of z_T (drawn from the seed, the same for every plan) through
   every plan's one-step student and through the teacher, so the spread over seeds holds training and
   evaluation noise; per direction the 1-D W2 of the projections (``judge``), and the aggregate
   metrics: FD of Gaussian fits (the held-out latent FD for the latent teacher) with its floor, sliced
   W2 and mode coverage for the 2-D mixtures.
5. Theory: per plan and direction the closed form's W2 at the same S (THEORY §2–§4), its curve over λ,
   and the agreement of the measured BOOT-vs-vanilla winner with the predicted one.

``run(spec)`` returns plain data (JSON-ready, plus ``samples``: small numpy arrays for the faces and the
2-D densities) — the job function of ``opmerge practice`` and the "Theory vs practice" page.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from opmerge_core.basics.device import pick_device, torch_threads
from opmerge_core.basics.progress import CancelFlag, Progress, check_cancel
from opmerge_core.practice import judge, students
from opmerge_core.practice.spec import PLAN_LABELS, POOL_ELEMENTS_MAX, PracticeSpec
from opmerge_core.practice.students import Params
from opmerge_core.practice.teachers import DDIM, Teacher, load
from opmerge_core.sfd import mixtures
from opmerge_core.sfd.metrics import fd_floor, latent_fd, mean_sd
from opmerge_core.theory import planner, plans
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting, total_w2
from opmerge_core.theory.shared_plan import shared_plan
from opmerge_core.training.graph import MergeGraph, build_graph
from opmerge_core.training.students import seed_of

KIND = "practice"
LR_STABLE = 0.5             # SGD needs η · E[u²] < 1 per direction; we ask for half of that
CHUNK_ELEMENTS = 1 << 24    # pool elements (inputs and targets) of the merges trained at once
EVAL_SEED = 1234            # with the training seed: its evaluation z_T (and 2-D exact samples), every plan
KEEP_FACES = 8              # one-step latents kept per plan for decoded faces
KEEP_POINTS = 2000          # 2-D samples kept per plan for the densities
CURVE_POINTS = 96           # points of each theory curve over λ
PROGRESS_POINTS = 20        # progress reports per chunk (about)
SLICES = 64                 # random directions of the 2-D sliced W2


def plan_set(spec: PracticeSpec, setting: Setting, lam: np.ndarray) -> tuple[dict[str, Plan], list[str]]:
    """(plans to train by name, and for ``dp`` per direction the name of each direction's plan).

    ``dp`` for linear students: each direction's W2-optimal plan (``planner.optimal``); the distinct
    ones train as ``dp·1``, ``dp·2``, … and direction i reads its own. For MLP students: one shared
    plan (``shared_plan``) named ``dp``."""
    out: dict[str, Plan] = {}
    per_direction: list[str] = []
    for name in spec.plans:
        if name != "dp":
            out[name] = plans.strategy(name, spec.T, spec.K)
        elif spec.student == "mlp":
            out["dp"] = shared_plan(setting, lam).plan
        else:
            keys: dict[str, str] = {}
            for best in planner.optimal(setting, lam):
                key = keys.setdefault(best.plan.text, f"dp·{len(keys) + 1}")
                out.setdefault(key, best.plan)
                per_direction.append(key)
    return out, per_direction


# ---- training ----------------------------------------------------------------------------------
class _Training:
    """Every merge of the graph for every seed, wave by wave (module docstring, step 3)."""

    def __init__(self, spec: PracticeSpec, teacher: Teacher, ddim: DDIM, graph: MergeGraph,
                 device: torch.device, progress: Progress | None, cancel: CancelFlag | None):
        self.spec, self.teacher, self.ddim, self.graph, self.device = spec, teacher, ddim, graph, device
        self.progress, self.cancel = progress, cancel
        self.mlp = spec.student == "mlp"
        self.store: dict[tuple[int, int], Params] = {}       # (node, seed index) → student
        self.records: dict[tuple[int, int], dict] = {}       # (node, seed index) → diagnostics
        self.waves = graph.waves()
        self.total = sum(len(w) for w in self.waves) * len(spec.seeds) * spec.steps
        self.done = 0

    def run(self) -> None:
        d, N = self.teacher.d, self.spec.pool_size
        per_chunk = max(1, CHUNK_ELEMENTS // (2 * N * d))
        for h, wave in enumerate(self.waves):
            jobs = [(node, k) for node in wave for k in range(len(self.spec.seeds))]
            pools: dict[tuple[int, int, int], torch.Tensor] = {}
            for start in range(0, len(jobs), per_chunk):
                self._chunk(jobs[start:start + per_chunk], pools, h)

    # ---- inputs, targets, init -------------------------------------------------------------------
    def _key(self, node: int, k: int) -> tuple[int, int, int]:
        n = self.graph.node(node)
        return self.spec.seeds[k], n.span[1], n.height

    def _pool(self, key: tuple[int, int, int], pools: dict) -> torch.Tensor:
        """Inputs u_s = α_s x0 + σ_s ε (N, d) of one (seed, s, height) — shared by its merges."""
        if key not in pools:
            seed, s, height = key
            rng = np.random.default_rng(seed_of(seed, s, height, 11))
            x0 = self.teacher.sample_data(self.spec.pool_size, rng)
            eps = rng.standard_normal(x0.shape)
            u = float(self.ddim.alpha[s]) * x0 + float(self.ddim.sigma[s]) * eps
            pools[key] = torch.as_tensor(u, dtype=torch.float32, device=self.device)
        return pools[key]

    def _batches(self, key: tuple[int, int, int]) -> torch.Tensor:
        """(steps, batch) pool indices: random epochs over the pool (one epoch: fresh samples)."""
        seed, s, height = key
        g = torch.Generator().manual_seed(seed_of(seed, s, height, 12))
        N, need = self.spec.pool_size, self.spec.steps * self.spec.batch
        perms = [torch.randperm(N, generator=g) for _ in range(math.ceil(need / N))]
        return torch.cat(perms)[:need].reshape(self.spec.steps, self.spec.batch)

    def apply_node(self, node: int, k: int, u: torch.Tensor) -> torch.Tensor:
        """A node on inputs (B, d): teacher step (leaf ``t − 1`` is step t) or a trained student."""
        if node < self.graph.T:
            return self.ddim.step(u, node + 1)
        with torch.no_grad():
            return students.apply_one(self.store[(node, k)], u)

    def _target(self, node: int, k: int, x: torch.Tensor) -> tuple[torch.Tensor, Params, dict]:
        """The merge's target on its inputs x (the children in order), its initial student (THEORY §2
        ``init``) and the compute spent."""
        n, spec = self.graph.node(node), self.spec
        e, s = n.span
        calls0 = self.ddim.calls
        y, first = x, None
        for j, child in enumerate(n.children):
            y = self.apply_node(child, k, y)
            if j == 0:
                first = y
        init = spec.init
        if init == "teacher" and n.children[0] > self.graph.T:      # a trained first child: copy it
            student = {key: v.clone() for key, v in self.store[(n.children[0], k)].items()}
        else:
            if init == "teacher":
                a0 = students.ls_slope(x, first)
            elif init == "coarse":
                a0 = students.ls_slope(x, self.ddim.jump(x, s, e))
            else:
                a0 = torch.full((x.shape[1],), 1.0 if init == "identity" else 0.0, device=self.device)
            scale = torch.sqrt((x * x).mean(0))
            student = students.fresh(a0, scale, spec.hidden, self.mlp, spec.seeds[k], n.span, n.height)
        n_students = sum(c > self.graph.T for c in n.children)
        cost = {"teacher_steps": self.ddim.calls - calls0, "student_evals": n_students * x.shape[0]}
        return y, student, cost

    # ---- one chunk of merges trained together ----------------------------------------------------
    def _chunk(self, jobs: list[tuple[int, int]], pools: dict, h: int) -> None:
        spec = self.spec
        xs, ys, inits, batches, costs = [], [], [], [], []
        for node, k in jobs:
            check_cancel(self.cancel)
            t0 = time.perf_counter()
            key = self._key(node, k)
            x = self._pool(key, pools)
            y, student, cost = self._target(node, k, x)
            cost["seconds"] = time.perf_counter() - t0          # its inputs and targets: its own
            xs.append(x)
            ys.append(y)
            inits.append(student)
            batches.append(self._batches(key))
            costs.append(cost)
        t0 = time.perf_counter()
        X, Y = torch.stack(xs), torch.stack(ys)                       # (M, N, d)
        P0 = students.stack(inits)
        P = {key: v.clone().requires_grad_(self.mlp and key in students.TRAINED) for key, v in P0.items()}
        idx = torch.stack(batches).to(self.device)                    # (M, steps, batch)
        rows = torch.arange(len(jobs), device=self.device)[:, None]
        trained = [v for key, v in P.items() if key in students.TRAINED]
        every = max(1, spec.steps // PROGRESS_POINTS)
        loss_value = float("nan")
        for step in range(spec.steps):
            check_cancel(self.cancel)
            ib = idx[:, step]
            xb, yb = X[rows, ib], Y[rows, ib]                          # (M, B, d)
            per_direction = _sgd_step(P, trained, xb, yb, spec.lr, self.mlp)
            if step % every == 0 or step == spec.steps - 1:
                loss_value = float(per_direction.detach().mean())
                if not math.isfinite(loss_value):
                    raise ValueError(f"training diverged (loss {loss_value}) in wave {h + 1}; lower the "
                                     "budget S or raise --steps")
                if self.progress is not None:
                    self.progress(self.done + len(jobs) * (step + 1), self.total,
                                  {"wave": h + 1, "waves": len(self.waves), "loss": loss_value})
        self.done += len(jobs) * spec.steps
        shared = (time.perf_counter() - t0) / len(jobs)                # training together: split evenly
        final = students.unstack({k: v.detach() for k, v in P.items()})
        with torch.no_grad():
            learned = students.ls_slope(X, students.apply(P, X)) if self.mlp else P["a"]
            target = students.ls_slope(X, Y)
            residual = ((Y - target[:, None, :] * X) ** 2).sum((1, 2)) / (Y * Y).sum((1, 2)).clamp_min(1e-30)
            r2 = (X * X).mean(1)
        for m, (node, k) in enumerate(jobs):
            self.store[(node, k)] = final[m]
            self.records[(node, k)] = {
                "a0": students.as_numpy(P0["a"][m]), "target": students.as_numpy(target[m]),
                "learned": students.as_numpy(learned[m]), "r2": students.as_numpy(r2[m]),
                "nonlinear": float(residual[m]), "sgd_samples": spec.steps * spec.batch,
                **costs[m], "seconds": costs[m]["seconds"] + shared}


def _sgd_step(P: Params, trained: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, lr: float,
              mlp: bool) -> torch.Tensor:
    """One plain SGD step on L = Σ_{student, direction} mean_batch (f(u) − y)² (each parameter gets its
    own direction's gradient: THEORY §6's dA/dτ = −2 E[u²](A − A_tgt) for the gain); returns the
    (M, d) per-direction losses. The linear student's gradient is written out (autograd's overhead
    dominates a step that small)."""
    if mlp:
        per_direction = ((students.apply(P, xb) - yb) ** 2).mean(1)
        grads = torch.autograd.grad(per_direction.sum(), trained)
        with torch.no_grad():
            for v, g in zip(trained, grads, strict=True):
                v.sub_(lr * g)
        return per_direction.detach()
    with torch.no_grad():
        residual = P["a"][:, None, :] * xb - yb
        P["a"].sub_(lr * 2.0 * (residual * xb).mean(1))
        return (residual * residual).mean(1)


# ---- the run -----------------------------------------------------------------------------------
def run(spec: PracticeSpec, threads: int | None = 1, *, progress: Progress | None = None,
        cancel: CancelFlag | None = None) -> dict:
    """The job function of a run (``opmerge practice``, the "Theory vs practice" page): train, evaluate,
    judge. ``progress(done, total, info)`` in merge-steps with ``info`` = wave, waves, loss; a set
    ``cancel`` stops between two steps (``Cancelled``). Runs on ``threads`` torch CPU threads."""
    with torch_threads(threads):
        return _run(spec, progress, cancel)


def _run(spec: PracticeSpec, progress: Progress | None, cancel: CancelFlag | None) -> dict:
    t0 = time.perf_counter()
    teacher = load(spec.teacher, spec.preset, spec.lam)
    setting = spec.setting()
    lam = teacher.lam
    r2_max = float(np.max(setting.r2(lam)))
    if spec.lr * r2_max > LR_STABLE:
        raise ValueError(f"learning rate S/(2·steps) = {spec.lr:.3g} is too large for inputs of variance up "
                         f"to {r2_max:.3g} (SGD would diverge); raise --steps or lower --budget")
    if spec.pool_size * teacher.d > POOL_ELEMENTS_MAX:
        raise ValueError(f"pool × d = {spec.pool_size} × {teacher.d} exceeds {POOL_ELEMENTS_MAX:,}; "
                         "lower --pool (or --steps × --batch)")
    device = pick_device(spec.device)
    ddim = DDIM(teacher, setting.alpha, setting.sigma, device)
    trained_plans, dp_directions = plan_set(spec, setting, lam)
    graph = build_graph(trained_plans, spec.T, "forward")
    training = _Training(spec, teacher, ddim, graph, device, progress, cancel)
    training.run()
    train_seconds = time.perf_counter() - t0
    check_cancel(cancel)
    result = _evaluate(spec, teacher, setting, ddim, graph, training, trained_plans, dp_directions)
    result["seconds"] = {"total": time.perf_counter() - t0, "training": train_seconds}
    result["device"] = str(device)
    if progress is not None:
        progress(training.total, training.total, {"waves": len(training.waves)})
    return result


def _eval_set(spec: PracticeSpec, teacher: Teacher, ddim: DDIM, seed: int) -> tuple[torch.Tensor, ...]:
    """The evaluation set of one training seed: z_T (each direction's sample sd exactly 1), the teacher's
    T steps from it (the target) and, for the 2-D mixtures, as many exact data samples (else None). Drawn
    from the seed itself, so the spread over seeds is training and evaluation noise together."""
    rng = np.random.default_rng(seed_of(EVAL_SEED, seed))
    u0 = teacher.sample_data(spec.n_eval, rng)
    eps = rng.standard_normal(u0.shape)
    eps = (eps - eps.mean(0)) / eps.std(0)         # moment-matched: each direction's sd is exactly 1
    uT = float(ddim.alpha[-1]) * u0 + float(ddim.sigma[-1]) * eps
    z_T = torch.as_tensor(uT, dtype=torch.float32, device=ddim.device)
    exact = teacher.mixture.sample(spec.n_eval, rng) if teacher.mixture is not None else None
    return z_T, ddim.run(z_T, spec.T, 0), exact


def _evaluate(spec: PracticeSpec, teacher: Teacher, setting: Setting, ddim: DDIM, graph: MergeGraph,
              training: _Training, trained_plans: dict[str, Plan], dp_directions: list[str]) -> dict:
    """Module docstring, steps 4–5: samples, per-direction W2, aggregates, theory, agreement."""
    lam, d, n_seeds = teacher.lam, teacher.d, len(spec.seeds)

    def one_step(name: str, k: int, z_T: torch.Tensor) -> torch.Tensor:
        if name == "dp" and dp_directions:
            outs = {key: one_step(key, k, z_T) for key in dict.fromkeys(dp_directions)}
            return torch.stack([outs[key][:, i] for i, key in enumerate(dp_directions)], dim=1)
        return training.apply_node(graph.root(name), k, z_T)

    theory = _theory(spec, setting, lam, trained_plans, dp_directions)
    names = list(spec.plans)
    w2 = {name: np.zeros((n_seeds, d)) for name in names}
    gains = {name: np.zeros((n_seeds, d)) for name in names}
    aggregates: dict[str, dict[str, list[float]]] = {name: {} for name in [*names, "teacher"]}
    samples: dict[str, np.ndarray] = {}
    teacher_gain, linear_floor = np.zeros((n_seeds, d)), np.zeros((n_seeds, d))
    calls0 = ddim.calls
    for k, seed in enumerate(spec.seeds):       # seed k's evaluation set, the same for every plan
        z_T, target, exact = _eval_set(spec, teacher, ddim, seed)
        teacher_gain[k] = students.as_numpy(students.ls_slope(z_T, target))
        linear_floor[k] = judge.linear_floor(z_T, target)
        outs = {"teacher": target} | {name: one_step(name, k, z_T) for name in names}
        for name, out in outs.items():
            if name != "teacher":
                w2[name][k] = judge.w2_per_direction(out, target)
                gains[name][k] = students.as_numpy(students.ls_slope(z_T, out))
            for key, value in _aggregates(teacher, out, exact).items():
                aggregates[name].setdefault(key, []).append(value)
            if k == 0:                              # faces and densities: the first seed's z_T
                samples[name] = _keep(teacher, out)
        if k == 0 and exact is not None:
            samples["data"] = exact[:KEEP_POINTS].astype(np.float32)
    teacher_nfe = (ddim.calls - calls0) // (spec.n_eval * n_seeds)
    teacher_row = _mean_sd(aggregates.pop("teacher"))
    floor = dict(zip(("fd", "fd_sd"),
                     fd_floor(teacher.ref_mean, teacher.ref_cov, spec.n_eval, teacher.ref_n), strict=True))
    if teacher.mixture is not None:
        floor["sliced_w2"] = mixtures.sliced_w2(teacher.mixture.sample(spec.n_eval, EVAL_SEED + 1),
                                                teacher.mixture.sample(spec.n_eval, EVAL_SEED + 2),
                                                n_slices=SLICES)
    metrics = {}
    for name in names:
        aggregates[name]["w2_total"] = [float(np.sqrt(np.sum(row**2))) for row in w2[name]]
        metrics[name] = (_mean_sd(aggregates[name]) | {"w2_total_theory": theory[name]["total"]}
                         | _compute(graph, training, trained_plans, name, dp_directions))
    ag = None
    if "boot" in names and "vanilla" in names:
        ag = judge.agreement(w2["boot"], w2["vanilla"], np.array(theory["boot"]["w2"]),
                             np.array(theory["vanilla"]["w2"]))
    label = {"latent-mlp": "CelebA latent MLP teacher", "mixture-2d": f"2-D mixture '{spec.preset}'",
             "gaussian": "Gaussian teacher"}[spec.teacher]
    parts = judge.verdict_parts(ag, lam, label, spec.student, n_seeds,
                                {n: metrics[n]["w2_total"] for n in names},
                                {n: metrics[n]["w2_total_theory"] for n in names})
    return {
        "spec": spec.as_dict(),
        "teacher": {"name": teacher.name, "label": teacher.label, "d": d, "lam": lam.tolist(),
                    "lam_source": teacher.lam_source, "fd_reference": teacher.fd_reference,
                    "teacher_nfe": int(teacher_nfe), "metrics": teacher_row, "floor": floor,
                    "gain": teacher_gain.mean(0).tolist(), "linear_floor": linear_floor.mean(0).tolist(),
                    "P": setting.P(lam).tolist()},
        "setting": setting.as_dict() | {"lr": spec.lr, "pool": spec.pool_size},
        "plans": {name: _plan_info(name, trained_plans, dp_directions) for name in names},
        "w2": {name: {"seeds": w2[name].tolist(), "mean": w2[name].mean(0).tolist(),
                      "sd": _sd(w2[name]).tolist(),
                      "theory": theory[name]["w2"]} for name in names},
        "gains": {name: {"mean": gains[name].mean(0).tolist(), "sd": _sd(gains[name]).tolist(),
                         "theory": theory[name]["value"]} for name in names},
        "curves": _curves(spec, setting, lam, trained_plans, names),
        "metrics": metrics,
        "agreement": ag.as_dict() if ag is not None else None,
        "verdict": " ".join(parts), "verdict_parts": parts,
        "merges": _merge_rows(graph, training, trained_plans, setting),
        "samples": samples,
    }


def _mean_sd(per_seed: dict[str, list[float]]) -> dict[str, float]:
    """{key: mean, key_sd: sd} over seeds of every aggregate."""
    out = {}
    for key, values in per_seed.items():
        out[key], out[f"{key}_sd"] = mean_sd(values)
    return out


def _sd(per_seed: np.ndarray) -> np.ndarray:
    """Sample sd over seeds (axis 0); 0 for a single seed."""
    return per_seed.std(0, ddof=1) if len(per_seed) > 1 else np.zeros(per_seed.shape[1])


def _aggregates(teacher: Teacher, out: torch.Tensor, exact: np.ndarray | None) -> dict[str, float]:
    """FD of Gaussian fits against the teacher's reference (the held-out latent FD for the latent
    teacher); for the 2-D mixtures also sliced W2 against exact samples and the mode coverage."""
    x = teacher.to_data(out.double().cpu().numpy())
    row = {"fd": latent_fd(x, teacher.ref_mean, teacher.ref_cov)}
    if exact is not None:
        row["sliced_w2"] = mixtures.sliced_w2(x, exact, n_slices=SLICES)
        row["near_modes"], row["modes_hit"] = mixtures.mode_coverage(teacher.mixture, x)
    return row


def _keep(teacher: Teacher, out: torch.Tensor) -> np.ndarray:
    """A few samples in data coordinates: faces (latent) or points (2-D)."""
    n = KEEP_POINTS if teacher.mixture is not None else KEEP_FACES
    return teacher.to_data(out[:n].double().cpu().numpy()).astype(np.float32)


def _theory(spec: PracticeSpec, setting: Setting, lam: np.ndarray, trained_plans: dict[str, Plan],
            dp_directions: list[str]) -> dict[str, dict]:
    """Per plan: the closed form's one-step operator, W2 per direction and in total (THEORY §2–§4)."""
    out = {}
    for name in spec.plans:
        if name == "dp" and dp_directions:
            values = np.array([float(trained_plans[key].evaluate(setting, lam[i:i + 1])[0])
                               for i, key in enumerate(dp_directions)])
        else:
            values = trained_plans[name].evaluate(setting, lam)
        w2 = setting.w2(values, lam)
        out[name] = {"value": values.tolist(), "w2": w2.tolist(), "total": total_w2(w2)}
    return out


def _curves(spec: PracticeSpec, setting: Setting, lam: np.ndarray, trained_plans: dict[str, Plan],
            names: list[str]) -> dict:
    """The theory's W2(λ) of every plan over the spectrum's range (``dp`` per direction: the optimum at
    each λ, the lower envelope)."""
    grid = np.geomspace(lam.min() / 1.5, lam.max() * 1.5, CURVE_POINTS)
    curves = {"lam": grid.tolist()}
    for name in names:
        if name == "dp" and name not in trained_plans:
            values = np.array([b.value for b in planner.optimal(setting, grid)])
        else:
            values = trained_plans[name].evaluate(setting, grid)
        curves[name] = setting.w2(values, grid).tolist()
    return curves


def _plan_info(name: str, trained_plans: dict[str, Plan], dp_directions: list[str]) -> dict:
    if name == "dp" and dp_directions:
        counts: dict[str, int] = {}
        for key in dp_directions:
            counts[key] = counts.get(key, 0) + 1
        return {"label": "DP-optimal per direction", "text": f"{len(counts)} plans, one per direction",
                "plans": {trained_plans[key].text: n for key, n in counts.items()},
                "direction_plan": [trained_plans[key].text for key in dp_directions]}
    plan = trained_plans[name]
    label = "DP-optimal shared plan" if name == "dp" else PLAN_LABELS[name]
    return {"label": label, "text": plan.text, "merges": plan.n_merges, "depth": plan.depth}


def _plan_nodes(graph: MergeGraph, trained_plans: dict[str, Plan], name: str,
                dp_directions: list[str]) -> set[int]:
    keys = list(dict.fromkeys(dp_directions)) if name == "dp" and dp_directions else [name]
    return {graph.plan_nodes[key][span] for key in keys for span in trained_plans[key].merges}


def _compute(graph: MergeGraph, training: _Training, trained_plans: dict[str, Plan], name: str,
             dp_directions: list[str]) -> dict:
    """What the plan costs trained alone, per seed: students, generations (sequential rounds), teacher
    denoiser calls and student evaluations for the targets, SGD samples, seconds (a shared wave's time
    split evenly)."""
    nodes = _plan_nodes(graph, trained_plans, name, dp_directions)
    n_seeds = len(training.spec.seeds)
    total = {key: sum(training.records[(node, k)][key] for node in nodes for k in range(n_seeds)) / n_seeds
             for key in ("teacher_steps", "student_evals", "sgd_samples", "seconds")}
    return {"students": len(nodes), "generations": max(graph.node(n).height for n in nodes),
            **{key: (round(v, 3) if key == "seconds" else int(v)) for key, v in total.items()}}


def _merge_rows(graph: MergeGraph, training: _Training, trained_plans: dict[str, Plan],
                setting: Setting) -> list[dict]:
    """Per merge (mean over seeds): the share of its target a linear map cannot explain (THEORY §7) and
    the learned fraction ρ of the way from A(0) to the target, measured and by the closed form
    1 − exp(−S E[u_s²]) (median over directions whose gap exceeds 1e-3)."""
    rows = []
    n_seeds = len(training.spec.seeds)
    in_plans = {node: sorted(name for name, ids in graph.plan_nodes.items() if node in ids.values())
                for node in range(graph.T + 1, graph.n_nodes)}
    for node in range(graph.T + 1, graph.n_nodes):
        recs = [training.records[(node, k)] for k in range(n_seeds)]
        a0, tgt, learned, r2 = (np.mean([r[key] for r in recs], axis=0)
                                for key in ("a0", "target", "learned", "r2"))
        gap = tgt - a0
        ok = np.abs(gap) > 1e-3
        rho_m = float(np.median((learned[ok] - a0[ok]) / gap[ok])) if ok.any() else float("nan")
        rho_t = float(np.median(-np.expm1(-setting.S * r2[ok]))) if ok.any() else float("nan")
        n = graph.node(node)
        rows.append({"span": list(n.span), "height": n.height, "plans": in_plans[node],
                     "nonlinear": float(np.mean([r["nonlinear"] for r in recs])),
                     "rho_measured": rho_m, "rho_theory": rho_t})
    return rows


# ---- what a finished run gives out ---------------------------------------------------------------
def per_direction_rows(result: dict) -> list[dict]:
    """One row per eigen-direction: λ, and per plan the measured W2 (mean, sd over seeds), the theory's
    W2, the measured and predicted one-step gain; the predicted and measured better of BOOT/vanilla."""
    lam, ag = result["teacher"]["lam"], result.get("agreement")
    rows = []
    for i, lam_i in enumerate(lam):
        row: dict = {"direction": i + 1, "lam": lam_i, "teacher_gain": result["teacher"]["gain"][i],
                     "P": result["teacher"]["P"][i]}
        for name, w in result["w2"].items():
            g = result["gains"][name]
            row |= {f"{name}_w2": w["mean"][i], f"{name}_w2_sd": w["sd"][i],
                    f"{name}_w2_theory": w["theory"][i], f"{name}_gain": g["mean"][i],
                    f"{name}_gain_theory": g["theory"][i]}
        if ag is not None:
            row |= {"predicted": ag["predicted"][i], "measured": ag["measured"][i]}
        rows.append(row)
    return rows


def public(result: dict) -> dict:
    """The result as JSON-ready data: everything but the kept samples, plus the per-direction table."""
    return {k: v for k, v in result.items() if k != "samples"} | {"per_direction": per_direction_rows(result)}


def summary(result: dict) -> dict:
    """A small summary for the run store: the agreement, each plan's total W2 (± sd) and the verdict."""
    ag = result.get("agreement") or {}
    return {"teacher": result["spec"]["teacher"], "student": result["spec"]["student"],
            "agreement": ag.get("value"), "agreement_ci": ag.get("ci"), "resolved": ag.get("resolved"),
            "w2_total": {n: [m["w2_total"], m["w2_total_sd"]] for n, m in result["metrics"].items()},
            "verdict": result["verdict"], "seconds": result["seconds"]["total"]}


def record(result: dict, run_dir) -> dict:
    """The ``finalize`` step of a run (store/runs.py): result.json and samples.npz in its directory."""
    import json
    from pathlib import Path

    folder = Path(run_dir)
    (folder / "result.json").write_text(json.dumps(public(result)))
    np.savez_compressed(folder / "samples.npz", **result["samples"])
    return {"metrics": summary(result),
            "artifacts": {"result": str(folder / "result.json"), "samples": str(folder / "samples.npz")}}


def faces_png(stamp: tuple[str, int, int], samples: dict[str, np.ndarray], labels: dict[str, str],
              scale: int, gain: float = 5.0) -> bytes:
    """Decoded faces of the teacher and every plan (rows, the same z_T in every column), then each
    plan's difference from the teacher amplified ``gain`` times around mid-grey, as PNG bytes — a pure
    result for the compute backend (``stamp``: ``latents.assets_stamp``)."""
    from opmerge_core.latent import latents
    from opmerge_core.latent.celeba import difference
    from opmerge_core.latent.images import enlarge, labelled_grid, png_bytes

    model = latents.cached_assets(stamp)[0]
    faces = {k: latents.decode(model, v[:KEEP_FACES]) for k, v in samples.items()}
    rows = [(labels.get(k, k), f) for k, f in faces.items()]
    rows += [(f"{labels.get(k, k)} - teacher x{gain:g}", difference(f, faces["teacher"], gain))
             for k, f in faces.items() if k != "teacher"]
    return png_bytes(enlarge(labelled_grid(rows, label_width=190), scale))
