"""The exact merge-plan dynamic program (THEORY §4) and the choice of the optimal plan.

Tables over intervals 0 <= e < s <= T (a segment maps z_s → z_e), for opt = min and opt = max:

    W[s−1, s] = A*_s                                                  (a leaf: one teacher step)
    W[e, s]   = opt_{e<m<s}  c_{e,s} + W[m, s] · (a_s · U[e, m] + b_s)   (one trained student)
    U[e, s]   = opt( W[e, s],  opt_{e<m<s} W[m, s] · U[e, m] )          (a run of operators)

with (a, b, c) from the init choice (``shrinkage.merge_coefficients``); for the default init
``teacher`` this is W[m, s] · ((1 − ρ_s) + ρ_s · U[e, m]). The merge map is increasing in both
arguments for non-negative operators, so min- and max-DP give the exact extremes over ALL multiway
plans. O(T³) time, O(T²) memory; the kernel is compiled with numba and keeps no argmin tables: plans
are rebuilt by re-scanning the O(T) candidates of each node on the path (O(T²) in all).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

from opmerge_core import plans
from opmerge_core.plans import Plan
from opmerge_core.setting import Setting
from opmerge_core.shrinkage import merge_coefficients
from opmerge_core.validation import check_lam, check_T

REGIMES = ("boot", "vanilla", "hybrid", "mixed")
REGIME_LABELS = {"boot": "Sequential BOOT", "vanilla": "Vanilla", "hybrid": "Hybrid",
                 "mixed": "Mixed"}
EXACT_SET_LIMIT = 2_000_000   # achievable values kept per interval when solving the mixed band exactly
EXACT_MIXED_T_MAX = 10        # beyond this T the mixed band returns the better extreme, flagged
_REL_TOL = 1e-12
_BLOCK = 32                   # starts per cache block in the compiled kernel
SWEEP_KERNEL_T_MAX = 1536     # the vectorised column sweep while its working set fits in cache


# ---- compiled kernel ----------------------------------------------------------------------------
@numba.njit(cache=True, fastmath=True)
def _fill_tables(A, a, b, c1, c2, alpha, sigma, lam, Wt_lo, U_lo, Wt_hi, U_hi):  # pragma: no cover
    """Fill min (lo) and max (hi) tables in place. Wt[s, m] = W[m, s] (rows contiguous in m).

    Starts s are processed in blocks of _BLOCK so each row U[e, ·] is read from cache once per
    block instead of once per s (the kernel is memory-bound for T >~ 1000).
    """
    T = A.shape[0]
    for s0 in range(1, T + 1, _BLOCK):
        s1 = min(s0 + _BLOCK, T + 1)                  # this block: starts s0 .. s1 − 1
        for s in range(s0, s1):
            Wt_lo[s, s - 1] = A[s - 1]
            U_lo[s - 1, s] = A[s - 1]
            Wt_hi[s, s - 1] = A[s - 1]
            U_hi[s - 1, s] = A[s - 1]
        for e in range(s1 - 3, -1, -1):
            for s in range(max(s0, e + 2), s1):
                a_s = a[s]
                b_s = b[s]
                w_lo = np.inf
                p_lo = np.inf
                w_hi = -np.inf
                p_hi = -np.inf
                for m in range(e + 1, s):
                    x = Wt_lo[s, m]
                    xy = x * U_lo[e, m]
                    w_lo = min(w_lo, a_s * xy + b_s * x)
                    p_lo = min(p_lo, xy)
                    x = Wt_hi[s, m]
                    xy = x * U_hi[e, m]
                    w_hi = max(w_hi, a_s * xy + b_s * x)
                    p_hi = max(p_hi, xy)
                c = c1[s] + c2[s] * ((alpha[e] * alpha[s] * lam + sigma[e] * sigma[s])
                                     / (alpha[s] * alpha[s] * lam + sigma[s] * sigma[s]))
                w_lo += c
                w_hi += c
                Wt_lo[s, e] = w_lo
                Wt_hi[s, e] = w_hi
                U_lo[e, s] = min(w_lo, p_lo)
                U_hi[e, s] = max(w_hi, p_hi)


@numba.njit(cache=True, fastmath=True, inline="always")
def _fold_min(acc_w, acc_p, row, w, a_s, b_s, m):  # pragma: no cover
    wa = w * a_s
    wb = w * b_s
    for e in range(m):
        y = row[e]
        acc_w[e] = min(acc_w[e], wa * y + wb)          # = w (a_s y + b_s)
        acc_p[e] = min(acc_p[e], w * y)


@numba.njit(cache=True, fastmath=True, inline="always")
def _fold_max(acc_w, acc_p, row, w, a_s, b_s, m):  # pragma: no cover
    wa = w * a_s
    wb = w * b_s
    for e in range(m):
        y = row[e]
        acc_w[e] = max(acc_w[e], wa * y + wb)          # = w (a_s y + b_s)
        acc_p[e] = max(acc_p[e], w * y)


@numba.njit(cache=True, fastmath=True)
def _fill_tables_sweep(A, a, b, c1, c2, alpha, sigma, lam, Wt_lo, Ut_lo, Wt_hi, Ut_hi):  # pragma: no cover
    """The same tables, with U stored transposed (Ut[m, e] = U[e, m]); faster while a column fits
    in cache (T <~ 1500). For each start s, m runs down from s − 1: once W[m, s] is final it is the
    first child of every segment [e, s] with e < m, and all those candidates are folded in at once
    by an element-wise min/max over e (a loop without a carried dependency, so it vectorises)."""
    T = A.shape[0]
    acc_w_lo = np.empty(T + 1)
    acc_p_lo = np.empty(T + 1)
    acc_w_hi = np.empty(T + 1)
    acc_p_hi = np.empty(T + 1)
    for s in range(1, T + 1):
        rs2 = alpha[s] * alpha[s] * lam + sigma[s] * sigma[s]
        acc_w_lo[:s] = np.inf
        acc_p_lo[:s] = np.inf
        acc_w_hi[:s] = -np.inf
        acc_p_hi[:s] = -np.inf
        for m in range(s - 1, -1, -1):
            if m == s - 1:                                   # the leaf: one teacher step
                w_lo = w_hi = u_lo = u_hi = A[s - 1]
            else:
                c = c1[s] + c2[s] * (alpha[m] * alpha[s] * lam + sigma[m] * sigma[s]) / rs2
                w_lo = acc_w_lo[m] + c
                w_hi = acc_w_hi[m] + c
                u_lo = min(w_lo, acc_p_lo[m])
                u_hi = max(w_hi, acc_p_hi[m])
            Wt_lo[s, m] = w_lo
            Wt_hi[s, m] = w_hi
            Ut_lo[s, m] = u_lo
            Ut_hi[s, m] = u_hi
            _fold_min(acc_w_lo, acc_p_lo, Ut_lo[m], w_lo, a[s], b[s], m)
            _fold_max(acc_w_hi, acc_p_hi, Ut_hi[m], w_hi, a[s], b[s], m)


@numba.njit(cache=True)
def _rebuild(Wt, U, a, b, sign, transposed):  # pragma: no cover
    """Merges (e, s) of the plan attaining W[0, T]; sign = +1 for min, −1 for max.
    ``transposed``: U is stored as Ut[m, e] (the sweep kernel) instead of U[e, m]."""
    T = Wt.shape[0] - 1
    out = np.empty((max(T - 1, 0), 2), dtype=np.int64)
    n = 0
    # stack of (e, s, kind): kind 0 = node W[e, s], kind 1 = run U[e, s]
    stack = np.empty((2 * T + 2, 3), dtype=np.int64)
    top = 0
    if T >= 2:
        stack[0, 0], stack[0, 1], stack[0, 2] = 0, T, 0
        top = 1
    while top > 0:
        top -= 1
        e, s, kind = stack[top, 0], stack[top, 1], stack[top, 2]
        if s - e == 1:
            continue  # a leaf
        best_m = -1
        if kind == 1:  # a run: a single operator, or first operator W[m, s] then the run U[e, m]
            best = sign * Wt[s, e]
            for m in range(e + 1, s):
                v = sign * Wt[s, m] * (U[m, e] if transposed else U[e, m])
                if v < best:
                    best, best_m = v, m
            if best_m < 0:
                stack[top, 0], stack[top, 1], stack[top, 2] = e, s, 0
                top += 1
                continue
        else:
            out[n, 0], out[n, 1] = e, s
            n += 1
            best = np.inf
            for m in range(e + 1, s):
                v = sign * Wt[s, m] * (a[s] * (U[m, e] if transposed else U[e, m]) + b[s])
                if v < best:
                    best, best_m = v, m
        stack[top, 0], stack[top, 1], stack[top, 2] = best_m, s, 0
        stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2] = e, best_m, 1
        top += 2
    return out[:n]


# ---- extremes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Extremes:
    """Min and max achievable one-step operator over all plans, per λ, with plans attaining them."""

    lam: np.ndarray          # (L,)
    lo: np.ndarray           # (L,)
    hi: np.ndarray           # (L,)
    lo_plans: list[Plan]
    hi_plans: list[Plan]


_BUFFERS = threading.local()   # per-thread table buffers for small T (page-faulting fresh tables
BUFFER_T_MAX = 512             # on every call costs about as much as the DP itself at T = 256)


def _tables(T: int) -> list[np.ndarray]:
    """Four C-contiguous (T+1)×(T+1) tables; the kernels write every entry they later read."""
    n = (T + 1) ** 2
    if T > BUFFER_T_MAX:
        return [np.empty((T + 1, T + 1)) for _ in range(4)]
    flat = getattr(_BUFFERS, "flat", None)
    if flat is None:
        flat = _BUFFERS.flat = [np.empty((BUFFER_T_MAX + 1) ** 2) for _ in range(4)]
    return [buf[:n].reshape(T + 1, T + 1) for buf in flat]


def _coefficients(setting: Setting, lam: float) -> tuple[np.ndarray, ...]:
    rho = setting.rho(np.array([lam]))[:, 0]
    return tuple(np.ascontiguousarray(x, dtype=np.float64)
                 for x in merge_coefficients(setting.init, rho))


def extremes(setting: Setting, lam: np.ndarray | float, with_plans: bool = True) -> Extremes:
    """Exact min- and max-DP (THEORY §4) for each λ (one O(T³) pass each)."""
    lam = check_lam(lam)
    T = setting.T
    A_all = setting.A_star(lam)                                   # (T, L)
    tables = _tables(T)
    lo, hi, lo_plans, hi_plans = [], [], [], []
    for j, lam_j in enumerate(lam):
        a, b, c1, c2 = _coefficients(setting, lam_j)
        A = np.ascontiguousarray(A_all[:, j])
        if T == 1:
            lo.append(A[0])
            hi.append(A[0])
            lo_plans.append(plans.vanilla(1))
            hi_plans.append(plans.vanilla(1))
            continue
        Wt_lo, U_lo, Wt_hi, U_hi = tables
        transposed = T <= SWEEP_KERNEL_T_MAX
        fill = _fill_tables_sweep if transposed else _fill_tables
        fill(A, a, b, c1, c2, setting.alpha, setting.sigma, float(lam_j), Wt_lo, U_lo, Wt_hi, U_hi)
        lo.append(Wt_lo[T, 0])
        hi.append(Wt_hi[T, 0])
        if with_plans:  # c_{e,s} is constant over m, so the argmin ignores it
            lo_plans.append(_plan_from(T, _rebuild(Wt_lo, U_lo, a, b, 1.0, transposed)))
            hi_plans.append(_plan_from(T, _rebuild(Wt_hi, U_hi, a, b, -1.0, transposed)))
    return Extremes(lam, np.array(lo), np.array(hi), lo_plans, hi_plans)


def _plan_from(T: int, merges: np.ndarray) -> Plan:
    return Plan(T, frozenset(map(tuple, merges.tolist())))


# ---- the mixed band, exactly (small T) ----------------------------------------------------------
def _closest_exact(setting: Setting, lam: float, target: float) -> tuple[Plan, float] | None:
    """The achievable value closest to ``target`` over all plans, by sets of achievable values per
    interval (THEORY §4, "mixed" band). None when a set would exceed EXACT_SET_LIMIT values."""
    T = setting.T
    if T > EXACT_MIXED_T_MAX:
        return None
    a, b, c1, c2 = _coefficients(setting, lam)
    A = setting.A_star(np.array([lam]))[:, 0]
    al, sg = setting.alpha, setting.sigma
    # W[(e, s)] = (values, prov): prov rows (m, i, j) = first child W[(m, s)][i], rest U[(e, m)][j]
    # U[(e, s)] = (values, prov): m = −1 → the single node W[(e, s)][i]
    W: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    U: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for s in range(1, T + 1):
        W[(s - 1, s)] = U[(s - 1, s)] = (np.array([A[s - 1]]), np.array([[-1, 0, 0]]))
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            c = c1[s] + c2[s] * (al[e] * al[s] * lam + sg[e] * sg[s]) / (al[s] ** 2 * lam
                                                                          + sg[s] ** 2)
            w_parts, u_parts = [], []
            for m in range(e + 1, s):
                x, y = W[(m, s)][0], U[(e, m)][0]
                if x.size * y.size > EXACT_SET_LIMIT:
                    return None
                prov = _pairs(m, x.size, y.size)
                xi, yj = x[prov[:, 1]], y[prov[:, 2]]
                w_parts.append((c + xi * (a[s] * yj + b[s]), prov))
                u_parts.append((xi * yj, prov))
            W[(e, s)] = _unique(w_parts)
            u_parts.append((W[(e, s)][0], _singles(W[(e, s)][0].size)))
            U[(e, s)] = _unique(u_parts)
            if W[(e, s)][0].size > EXACT_SET_LIMIT or U[(e, s)][0].size > EXACT_SET_LIMIT:
                return None
    values = W[(0, T)][0]
    k = int(np.argmin(np.abs(values - target)))
    return _backtrack(T, k, W, U), float(values[k])


def _pairs(m: int, n_first: int, n_rest: int) -> np.ndarray:
    """Provenance rows (m, i, j) for every pair of a first-child and a rest candidate."""
    i = np.repeat(np.arange(n_first), n_rest)
    j = np.tile(np.arange(n_rest), n_first)
    return np.stack([np.full(i.size, m), i, j], axis=1)


def _singles(n: int) -> np.ndarray:
    """Provenance rows of runs made of one node: (−1, i, 0)."""
    return np.stack([np.full(n, -1), np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)


def _backtrack(T: int, k: int, W: dict, U: dict) -> Plan:
    """Rebuild the plan of candidate k of W[(0, T)] from provenance rows (m, i, j)."""
    merges: set[tuple[int, int]] = set()
    stack = [("W", 0, T, k)]
    while stack:
        kind, e, s, idx = stack.pop()
        if s - e == 1:
            continue
        m, i, j = (int(v) for v in (W if kind == "W" else U)[(e, s)][1][idx])
        if kind == "U" and m < 0:
            stack.append(("W", e, s, i))
            continue
        if kind == "W":
            merges.add((e, s))
        stack += [("W", m, s, i), ("U", e, m, j)]
    return Plan(T, frozenset(merges))


def _unique(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    values, prov = (np.concatenate(col) for col in zip(*parts))
    _, keep = np.unique(values, return_index=True)
    return values[keep], prov[keep]


ALL_VALUES_T_MAX = 10   # 103,049 plans at T = 10


def all_plan_values(setting: Setting, lam: float) -> np.ndarray:
    """The one-step value of every plan (with multiplicity; count = little Schröder number), by
    products of per-interval value sets — no plan objects, so T <= 10 takes milliseconds."""
    T = check_T(setting.T, hi=ALL_VALUES_T_MAX, name="T (all plans)")
    lam = float(check_lam(lam)[0])
    a, b, c1, c2 = _coefficients(setting, lam)
    A = setting.A_star(np.array([lam]))[:, 0]
    al, sg = setting.alpha, setting.sigma
    W = {(s - 1, s): A[s - 1:s] for s in range(1, T + 1)}
    U = dict(W)
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            c = c1[s] + c2[s] * (al[e] * al[s] * lam + sg[e] * sg[s]) / (al[s] ** 2 * lam
                                                                          + sg[s] ** 2)
            pairs = [(W[(m, s)][:, None], U[(e, m)][None, :]) for m in range(e + 1, s)]
            W[(e, s)] = np.concatenate([(c + x * (a[s] * y + b[s])).ravel() for x, y in pairs])
            U[(e, s)] = np.concatenate([W[(e, s)], *((x * y).ravel() for x, y in pairs)])
    return W[(0, T)]


# ---- the optimum --------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimalPlan:
    lam: float
    plan: Plan
    value: float      # the one-step operator the plan produces
    P: float          # the surrogate target (teacher composite P, or r_0/r_T)
    w2: float         # r_T |value − P|
    regime: str       # boot | vanilla | hybrid | mixed
    exact: bool       # False only in the mixed band at large T (best known, not proven optimal)
    lo: float         # min over all plans
    hi: float         # max over all plans

    @property
    def label(self) -> str:
        return REGIME_LABELS[self.regime]


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= _REL_TOL * max(1.0, abs(x), abs(y))


def optimal(setting: Setting, lam: np.ndarray | float, exact_mixed: bool = True) -> list[OptimalPlan]:
    """The W2-optimal plan for each λ (THEORY §4 "Choosing the optimum").

    min ≥ target → the min-plan; max ≤ target → the max-plan; otherwise (the thin "mixed" band) the
    closest achievable value, exactly while the sets stay small (T <= EXACT_MIXED_T_MAX), else the
    closest of the two extreme plans and the named strategies, flagged ``exact=False``.
    """
    lam = check_lam(lam)
    ex = extremes(setting, lam)
    target = setting.target(lam)
    r_T = setting.r_T(lam)
    named = plans.named_plans(setting.T, setting.uniform_K)
    boot_v = named["boot"].evaluate(setting, lam)
    vanilla_v = named["vanilla"].evaluate(setting, lam)
    out = []
    for j, lam_j in enumerate(lam):
        lo, hi, tgt = float(ex.lo[j]), float(ex.hi[j]), float(target[j])
        exact, mixed = True, False
        if lo >= tgt or _close(lo, tgt):
            plan, value = ex.lo_plans[j], lo
        elif hi <= tgt:
            plan, value = ex.hi_plans[j], hi
        else:
            mixed = True
            found = _closest_exact(setting, float(lam_j), tgt) if exact_mixed else None
            if found is None:  # the closest of the two extremes and the named strategies
                exact = False
                candidates = [(ex.lo_plans[j], lo), (ex.hi_plans[j], hi),
                              *((p, float(p.evaluate(setting, lam[j:j + 1])[0]))
                                for p in named.values())]
                plan, value = min(candidates, key=lambda pv: abs(pv[1] - tgt))
            else:
                plan, value = found
        if mixed:
            regime = "mixed"
        elif named["boot"] == named["vanilla"]:    # T <= 2: one plan; name it by the side of P
            regime = "boot" if value >= tgt else "vanilla"
        elif _close(value, boot_v[j]) and (value == lo or not _close(value, vanilla_v[j])):
            regime = "boot"   # ties (e.g. ρ ≈ 1 saturation) are reported as the named plan
            plan, value = plans.boot(setting.T), float(boot_v[j])
        elif _close(value, vanilla_v[j]):
            regime = "vanilla"
            plan, value = plans.vanilla(setting.T), float(vanilla_v[j])
        else:
            regime = "hybrid"
        out.append(OptimalPlan(float(lam_j), plan, value, tgt, float(r_T[j] * abs(value - tgt)),
                               regime, exact, lo, hi))
    return out


# ---- thresholds (THEORY §5) ---------------------------------------------------------------------
def lam_V(setting: Setting) -> float:
    """λ at which A*_1 = 1 (A*_1 ≥ 1 iff λ ≥ λ_V): σ_1² / (α_1 (1 − α_1)); 1 + 1/α_1 under VP."""
    a1, s1 = setting.alpha[1], setting.sigma[1]
    return float(s1**2 / (a1 * (1.0 - a1))) if 0 < a1 < 1 else float("inf")


def lam_B(setting: Setting, lo: float = 0.05, hi: float | None = None, rtol: float = 1e-6) -> float:
    """The largest λ for which sequential BOOT is exactly optimal (bisection on the regime)."""
    def is_boot(lam: float) -> bool:
        return optimal(setting, lam, exact_mixed=False)[0].regime == "boot"

    if not is_boot(lo):
        return float("nan")
    hi = hi or max(2.0 * lam_V(setting) if np.isfinite(lam_V(setting)) else 10.0, 4.0)
    if is_boot(hi):
        return float("inf")
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if is_boot(mid) else (lo, mid)
    return lo


# ---- one plan shared by several coordinates (THEORY §4, last bullet) ----------------------------
PARETO_FRONT_MAX = 8    # vectors kept per interval; beyond, the best by a log-score are kept (flagged)
SHARED_T_MAX = 256


@dataclass(frozen=True)
class SharedPlan:
    plan: Plan
    values: np.ndarray    # (d,) one-step operator per coordinate
    w2: float             # √Σ_i r_T,i² (value_i − target_i)²
    exact: bool           # False when a Pareto front had to be cut (heuristic)


@numba.njit(cache=True)
def _pareto_select(key, free, k_max):  # pragma: no cover
    """Scan vectors in score order (``key`` rows; smaller is better in every non-free coordinate,
    free coordinates must be equal to dominate) and keep the non-dominated ones, at most k_max.
    Returns (kept row indices, truncated?). A dominator always scores lower, so one pass suffices."""
    n, d = key.shape
    keep = np.empty(k_max, dtype=np.int64)
    nk = 0
    for c in range(n):
        dominated = False
        for q in range(nk):
            o = keep[q]
            dom = True
            for t in range(d):
                if (key[o, t] != key[c, t]) if free[t] else (key[o, t] > key[c, t]):
                    dom = False
                    break
            if dom:
                dominated = True
                break
        if not dominated:
            if nk == k_max:
                return keep[:nk], True
            keep[nk] = c
            nk += 1
    return keep[:nk], False


def shared_plan(setting: Setting, lams: np.ndarray, front_max: int = PARETO_FRONT_MAX) -> SharedPlan:
    """One plan for coordinates that must share it, minimising Σ_i r_T,i² (S_i − P_i)² (Pareto DP).

    Each interval keeps the vectors not dominated in every coordinate's good direction (smaller
    when all plans overshoot its target, larger when all undershoot, equal when its target is inside
    the achievable range). Exact when no front exceeds ``front_max``; otherwise the fronts are cut to
    the best by a first-order score (the objective's gradient in log v_i at
    each coordinate's own optimum) and the result is flagged ``exact=False`` (it is
    still never worse than any named strategy or per-coordinate extreme plan, which are compared).
    """
    lams = check_lam(lams)
    T = check_T(setting.T, hi=SHARED_T_MAX, name="T (shared plan)")
    target, r_T = setting.target(lams), setting.r_T(lams)
    ex = extremes(setting, lams, with_plans=True)
    direction = np.where(ex.lo >= target, 1.0, np.where(ex.hi <= target, -1.0, 0.0))
    free = direction == 0
    sign = np.where(free, 1.0, direction)
    # score weights: ∂ objective / ∂ log v_i at each coordinate's own optimum (2 r_T² (v − P) v)
    best_v = np.where(direction > 0, ex.lo, ex.hi)
    weight = r_T**2 * np.abs(best_v - target) * best_v * direction
    A = setting.A_star(lams)                                   # (T, d)
    a, b, c1, c2 = merge_coefficients(setting.init, setting.rho(lams))   # (T + 1, d) each
    al, sg = setting.alpha, setting.sigma
    exact = True

    def prune(vecs: np.ndarray, prov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal exact
        order = np.argsort(np.log(np.maximum(vecs, 1e-300)) @ weight, kind="stable")
        keep, cut = _pareto_select(np.ascontiguousarray(vecs[order] * sign), free, front_max)
        exact &= not cut
        return vecs[order[keep]], prov[order[keep]]

    # fronts: (vectors (n, d), provenance (n, 3) = m, i, j); U with m = −1 is the single node W[i]
    W: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    U: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for s in range(1, T + 1):
        W[(s - 1, s)] = U[(s - 1, s)] = (A[s - 1][None, :], np.array([[-1, 0, 0]]))
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            c = c1[s] + c2[s] * (al[e] * al[s] * lams + sg[e] * sg[s]) / (al[s] ** 2 * lams
                                                                           + sg[s] ** 2)
            provs = [_pairs(m, len(W[(m, s)][0]), len(U[(e, m)][0])) for m in range(e + 1, s)]
            x = np.concatenate([W[(m, s)][0][p[:, 1]] for m, p in zip(range(e + 1, s), provs)])
            y = np.concatenate([U[(e, m)][0][p[:, 2]] for m, p in zip(range(e + 1, s), provs)])
            prov = np.concatenate(provs)
            W[(e, s)] = prune(c + x * (a[s] * y + b[s]), prov)
            single = W[(e, s)][0]
            U[(e, s)] = prune(np.concatenate([x * y, single]),
                              np.concatenate([prov, _singles(len(single))]))

    root = W[(0, T)][0]
    objective = np.sum((r_T * (root - target)) ** 2, axis=1)
    k = int(np.argmin(objective))
    best = (float(objective[k]), _backtrack(T, k, W, U), root[k])
    if not exact:  # a heuristic front: never return worse than a known candidate plan
        pool = [*plans.named_plans(T, setting.uniform_K).values(), *ex.lo_plans, *ex.hi_plans]
        for plan in dict.fromkeys(pool):
            values = plan.evaluate(setting, lams)
            obj = float(np.sum((r_T * (values - target)) ** 2))
            if obj < best[0]:
                best = (obj, plan, values)
    return SharedPlan(best[1], best[2], float(np.sqrt(best[0])), exact)
