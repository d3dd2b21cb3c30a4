"""One plan shared by several coordinates (THEORY §4, last bullet): minimise Σ_i r_T,i² (S_i − P_i)².

The exact Pareto DP (sets of vectors per interval, pruned by dominance in each coordinate's good
direction) while its fronts stay small; beyond, a bounded beam DP, flagged. Either way the result
carries the per-direction lower bound from the exact min/max DP (``dp.extremes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opmerge_core.basics.validation import check_int, check_lam
from opmerge_core.theory import plans
from opmerge_core.theory.dp import Extremes, extremes, kernels
from opmerge_core.theory.operators import coarse_jump
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shrinkage import merge_coefficients
from opmerge_core.theory.value_sets import backtrack, candidate_pairs, single_runs, walk

PARETO_FRONT_MAX = 64   # vectors per interval in the exact Pareto DP; beyond, the beam DP (flagged)
PARETO_WORK_MAX = 3e6   # candidate coordinates (Σ candidates · d) the exact Pareto DP may generate
SHARED_T_MAX = 256      # largest number of teacher steps T of a shared plan
BEAM_WIDTH = 6          # vectors kept per interval by the beam DP
BEAM_ROUNDS = 3         # beam passes, each linearised at the best shared plan found so far
BEAM_CELLS_MAX = 2e7    # bound on (T + 1)² · width · d per table (the width shrinks to fit)


@dataclass(frozen=True)
class SharedPlan:
    """The shared plan, its value per coordinate and how close to optimal it is proven to be."""

    plan: Plan
    values: np.ndarray    # (d,) one-step operator per coordinate
    w2: float             # √Σ_i r_T,i² (value_i − target_i)²
    exact: bool           # True when proven optimal (exact Pareto fronts, or w2 = lower_bound)
    lower_bound: float = 0.0   # √Σ_i r_T,i² dist(target_i, [min_i, max_i])²: no plan does better
    method: str = "pareto"     # "pareto" (exact fronts) or "beam" (bounded heuristic)

    @property
    def gap(self) -> float:
        """w2 − lower_bound ≥ 0: how far from optimal the plan can be, at most."""
        return max(self.w2 - self.lower_bound, 0.0)


class _FrontTooLarge(Exception):
    """A Pareto front outgrew its bound: the beam DP takes over."""


def shared_plan(setting: Setting, lams: np.ndarray, front_max: int = PARETO_FRONT_MAX) -> SharedPlan:
    """One plan for coordinates that must share it, minimising Σ_i r_T,i² (S_i − P_i)².

    First the exact Pareto DP: each interval keeps the vectors not dominated in every coordinate's
    good direction (smaller when all plans overshoot its target, larger when all undershoot, equal
    when its target is inside the achievable range); exact when no front exceeds ``front_max``.
    When one would, a beam DP takes over (``method="beam"``): per interval the BEAM_WIDTH vectors
    with the best linear score (the objective's gradient, first at each coordinate's own optimum,
    then at the best shared plan so far), the best of its root vectors, the named strategies and the
    per-coordinate extreme plans. Either way ``lower_bound`` is the per-direction bound (each
    coordinate at its own optimum, from the exact min/max DP) and ``exact`` is True only when
    optimality is proven (exact fronts, or a beam plan that meets the bound).
    """
    lams = check_lam(lams)
    check_int(setting.T, "T (teacher steps, shared plan)", hi=SHARED_T_MAX)
    target, r_T = setting.target(lams), setting.r_T(lams)
    ex = extremes(setting, lams, with_plans=True)
    dist = np.maximum(np.maximum(ex.lo - target, target - ex.hi), 0.0)
    lower_bound = float(np.sqrt(np.sum((r_T * dist) ** 2)))
    try:
        plan, values = pareto_shared(setting, lams, ex, front_max)
        method = "pareto"
    except _FrontTooLarge:
        plan, values = _beam_shared(setting, lams, ex)
        method = "beam"
    w2 = float(np.sqrt(np.sum((r_T * (values - target)) ** 2)))
    exact = method == "pareto" or w2 <= lower_bound * (1 + 1e-12) + 1e-300
    return SharedPlan(plan, values, w2, exact, lower_bound, method)


def objective(setting: Setting, lams: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Σ_i r_T,i² (value_i − target_i)² over the last axis of ``values``."""
    return np.sum((setting.r_T(lams) * (values - setting.target(lams))) ** 2, axis=-1)


def pareto_shared(setting: Setting, lams: np.ndarray, ex: Extremes, front_max: int,
                   truncate: bool = False) -> tuple[Plan, np.ndarray]:
    """The exact Pareto DP; raises _FrontTooLarge as soon as a front would exceed front_max or the
    candidates PARETO_WORK_MAX (with ``truncate``, cuts fronts to the first front_max by score
    instead, without a work bound: the former heuristic, kept as the benchmark's baseline)."""
    T = setting.T
    target = setting.target(lams)
    direction = np.where(ex.lo >= target, 1.0, np.where(ex.hi <= target, -1.0, 0.0))
    free = direction == 0
    sign = np.where(free, 1.0, direction)
    # scan order: ∂ objective / ∂ log v_i at each coordinate's own optimum (a dominator scores lower)
    best_v = np.where(direction > 0, ex.lo, ex.hi)
    weight = setting.r_T(lams)**2 * np.abs(best_v - target) * best_v * direction
    A = setting.A_star(lams)                                   # (T, d)
    a, b, c1, c2 = merge_coefficients(setting.init, setting.rho(lams))   # (T + 1, d) each
    select = kernels().pareto_select

    def prune(vecs: np.ndarray, prov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(np.log(np.maximum(vecs, 1e-300)) @ weight, kind="stable")
        keep, cut = select(np.ascontiguousarray(vecs[order] * sign), free, front_max)
        if cut and not truncate:
            raise _FrontTooLarge
        return vecs[order[keep]], prov[order[keep]]

    # fronts: (vectors (n, d), provenance (n, 3) = m, i, j); U with m = −1 is the single node W[i]
    W: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    U: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for s in range(1, T + 1):
        W[(s - 1, s)] = U[(s - 1, s)] = (A[s - 1][None, :], np.array([[-1, 0, 0]]))
    work = 0
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            c = c1[s] + c2[s] * coarse_jump(setting.alpha, setting.sigma, lams, s, e)
            provs = [candidate_pairs(m, len(W[(m, s)][0]), len(U[(e, m)][0])) for m in range(e + 1, s)]
            work += sum(len(p) for p in provs) * lams.size
            if work > PARETO_WORK_MAX and not truncate:
                raise _FrontTooLarge
            x = np.concatenate([W[(m, s)][0][p[:, 1]] for m, p in zip(range(e + 1, s), provs)])
            y = np.concatenate([U[(e, m)][0][p[:, 2]] for m, p in zip(range(e + 1, s), provs)])
            prov = np.concatenate(provs)
            W[(e, s)] = prune(c + (x * a[s] * y + x * b[s]), prov)
            single = W[(e, s)][0]
            U[(e, s)] = prune(np.concatenate([x * y, single]),
                              np.concatenate([prov, single_runs(len(single))]))
    root = W[(0, T)][0]
    k = int(np.argmin(objective(setting, lams, root)))
    return backtrack(T, k, W, U), root[k]


def _beam_shared(setting: Setting, lams: np.ndarray, ex: Extremes) -> tuple[Plan, np.ndarray]:
    """The best of BEAM_ROUNDS beam DPs and the known candidate plans (see ``shared_plan``)."""
    T, d = setting.T, lams.size
    target, r2 = setting.target(lams), setting.r_T(lams) ** 2
    width = int(max(1, min(BEAM_WIDTH, BEAM_CELLS_MAX // ((T + 1) ** 2 * d))))
    pool = [*plans.named_plans(T, setting.uniform_K).values(), *ex.lo_plans, *ex.hi_plans]
    best: tuple[float, Plan, np.ndarray] | None = None
    for plan in dict.fromkeys(pool):
        values = plan.evaluate(setting, lams)
        obj = float(objective(setting, lams, values))
        if best is None or obj < best[0]:
            best = (obj, plan, values)
    coeffs = [np.ascontiguousarray(x) for x in merge_coefficients(setting.init, setting.rho(lams))]
    A = np.ascontiguousarray(setting.A_star(lams))
    reference = np.where(ex.lo >= target, ex.lo, np.where(ex.hi <= target, ex.hi, target))
    for _ in range(BEAM_ROUNDS):
        g = np.ascontiguousarray(r2 * (reference - target))
        if not np.any(g):
            break
        Wv, Wn, Wprov, _, _, Uprov = kernels().shared_beam(A, *coeffs, setting.alpha, setting.sigma,
                                                           lams, g, width)
        root = Wv[0, T, :Wn[0, T]]
        scores = objective(setting, lams, root)
        k = int(np.argmin(scores))
        if scores[k] < best[0]:
            plan = _backtrack_arrays(T, k, Wprov, Uprov)
            best = (float(scores[k]), plan, plan.evaluate(setting, lams))
        elif np.array_equal(reference, best[2]):
            break
        reference = best[2]
    return best[1], best[2]


def _backtrack_arrays(T: int, k: int, Wprov: np.ndarray, Uprov: np.ndarray) -> Plan:
    """``value_sets.backtrack`` for the beam's provenance arrays [e, s, k] = (m, i, j)."""
    return walk(T, k, lambda kind, e, s, idx: (Wprov if kind == "W" else Uprov)[e, s, idx])
