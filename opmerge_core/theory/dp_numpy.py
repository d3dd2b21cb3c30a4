"""The merge-plan DP (THEORY §4) in plain numpy, batched over λ, for small T.

Same column sweep as ``dp_kernels.fill_sweep`` (Wt[s, m] = W[m, s], Ut[s, m] = U[m, s]), with every
numpy operation running over all λ of the batch at once: at T <= 64 this costs less than importing
numba and loading its cached kernels, which is what keeps ``opmerge plan`` quick (bench/bench_cli.py
measures both). Every candidate is rounded as in ``dp_kernels.fill_small`` (the compiled
DP at the same T), so the two give the same tables bit for bit. ``rebuild_merges`` is plain Python
that numba also compiles (``dp_kernels.rebuild``), so both paths rebuild plans the same way.
"""

from __future__ import annotations

import numpy as np

from opmerge_core.theory.operators import coarse_jump
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shrinkage import merge_coefficients

BIG = 1e300   # finite sentinel (see dp_kernels)
Tables = np.ndarray | list[list[float]]   # indexed X[i][j]: a 2-D array (numba) or nested lists
Row = np.ndarray | list[float]


def coefficients(setting: Setting, lam: np.ndarray) -> tuple[np.ndarray, ...]:
    """(a, b, c1, c2) of ``shrinkage.merge_coefficients``, each (T + 1, L)."""
    return tuple(np.ascontiguousarray(x, dtype=np.float64)
                 for x in merge_coefficients(setting.init, setting.rho(lam)))


def fill_tables(setting: Setting, lam: np.ndarray, is_max: bool) -> tuple[np.ndarray, np.ndarray]:
    """Tables (Wt, Ut), each (L, T + 1, T + 1), of one extreme (min, or max if ``is_max``)."""
    T, L = setting.T, lam.size
    A = setting.A_star(lam)                                       # (T, L)
    a, b, c1, c2 = coefficients(setting, lam)
    al, sg = setting.alpha, setting.sigma
    opt = np.maximum if is_max else np.minimum
    Wt = np.empty((L, T + 1, T + 1))
    Ut = np.empty((L, T + 1, T + 1))
    ends = np.arange(T + 1)[:, None]
    for s in range(1, T + 1):
        cs = c1[s] + c2[s] * coarse_jump(al, sg, lam, s, ends[:s])               # (s, L): c_{e,s}
        acc_w = np.full((L, s), -BIG if is_max else BIG)
        acc_p = acc_w.copy()
        for m in range(s - 1, -1, -1):
            if m == s - 1:                                        # the leaf: one teacher step
                w = u = A[s - 1]
            else:
                w = acc_w[:, m] + cs[m]
                u = opt(w, acc_p[:, m])
            Wt[:, s, m] = w
            Ut[:, s, m] = u
            if m:
                y = Ut[:, m, :m]                                  # first child W[m, s], rest U[e, m]
                opt(acc_w[:, :m], (w * a[s])[:, None] * y + (w * b[s])[:, None], out=acc_w[:, :m])
                opt(acc_p[:, :m], w[:, None] * y, out=acc_p[:, :m])
    return Wt, Ut


def rebuild_merges(Wt: Tables, Ut: Tables, a: Row, b: Row,
                   sign: float) -> np.ndarray:  # pragma: no cover (also compiled by numba)
    """Merges (e, s) of the plan attaining W[0, T], by re-scanning the O(T) candidates of each node
    on the path (O(T²) in all); sign = +1 for min, −1 for max. Tables are indexed ``X[i][j]``
    (Wt[s][m] = W[m, s], Ut[m][e] = U[e, m]) so nested lists (fast in Python) and 2-D arrays
    (numba) both work."""
    T = len(Wt) - 1
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
        row = Wt[s]
        if kind == 1:  # a run: a single operator, or first operator W[m, s] then the run U[e, m]
            best = sign * row[e]
            for m in range(e + 1, s):
                v = sign * row[m] * Ut[m][e]
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
            a_s, b_s = a[s], b[s]
            for m in range(e + 1, s):
                v = sign * (row[m] * a_s * Ut[m][e] + row[m] * b_s)
                if v < best:
                    best, best_m = v, m
        stack[top, 0], stack[top, 1], stack[top, 2] = best_m, s, 0
        stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2] = e, best_m, 1
        top += 2
    return out[:n]
