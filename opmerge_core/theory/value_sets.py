"""Sets of achievable values per interval (THEORY §4, "Choosing the optimum", small T).

The recurrences of the DP (``dp``) with every candidate kept instead of the best one: W[(e, s)] holds
the values of every single trained student on the segment z_s → z_e, U[(e, s)] those of every run.
They give the exact optimum in the thin "mixed" band (``closest_value``: the achievable value
closest to the target, with a plan attaining it) and the value of every plan (``all_plan_values``).
Provenance rows (m, i, j) — first child W[(m, s)][i], rest U[(e, m)][j]; for U, m = −1 is the single
student W[(e, s)][i] — rebuild a plan; the shared-plan DP (``shared_plan``) uses the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opmerge_core.basics.validation import check_int, check_lam
from opmerge_core.theory.dp import coefficients_at
from opmerge_core.theory.operators import coarse_jump
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting

EXACT_SET_LIMIT = 2_000_000   # achievable values kept per interval when solving the mixed band exactly
EXACT_MIXED_T_MAX = 10        # beyond this T the mixed band returns the better extreme, flagged
ALL_VALUES_T_MAX = 10         # all plans' values up to this T: 103,049 plans at T = 10

Table = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]   # (e, s) → (values, provenance)


def closest_value(setting: Setting, lam: float, target: float) -> tuple[Plan, float] | None:
    """The achievable value closest to ``target`` over all plans, with a plan attaining it. None
    beyond EXACT_MIXED_T_MAX, or when a set would exceed EXACT_SET_LIMIT values."""
    T = setting.T
    if T > EXACT_MIXED_T_MAX:
        return None
    a, b, c1, c2 = coefficients_at(setting, lam)
    A = setting.A_star(np.array([lam]))[:, 0]
    W: Table = {}
    U: Table = {}
    for s in range(1, T + 1):
        W[(s - 1, s)] = U[(s - 1, s)] = (np.array([A[s - 1]]), np.array([[-1, 0, 0]]))
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            c = c1[s] + c2[s] * coarse_jump(setting.alpha, setting.sigma, lam, s, e)
            w_parts, u_parts = [], []
            for m in range(e + 1, s):
                x, y = W[(m, s)][0], U[(e, m)][0]
                if x.size * y.size > EXACT_SET_LIMIT:
                    return None
                prov = candidate_pairs(m, x.size, y.size)
                xi, yj = x[prov[:, 1]], y[prov[:, 2]]
                w_parts.append((c + (xi * a[s] * yj + xi * b[s]), prov))
                u_parts.append((xi * yj, prov))
            W[(e, s)] = _unique(w_parts)
            u_parts.append((W[(e, s)][0], single_runs(W[(e, s)][0].size)))
            U[(e, s)] = _unique(u_parts)
            if W[(e, s)][0].size > EXACT_SET_LIMIT or U[(e, s)][0].size > EXACT_SET_LIMIT:
                return None
    values = W[(0, T)][0]
    k = int(np.argmin(np.abs(values - target)))
    return backtrack(T, k, W, U), float(values[k])


def all_plan_values(setting: Setting, lam: float) -> np.ndarray:
    """The one-step value of every plan (with multiplicity; count = little Schröder number), by
    products of per-interval value sets — no plan objects, so T <= 10 takes milliseconds."""
    T = check_int(setting.T, "T (teacher steps, all plans)", hi=ALL_VALUES_T_MAX)
    lam = float(check_lam(lam)[0])
    a, b, c1, c2 = coefficients_at(setting, lam)
    A = setting.A_star(np.array([lam]))[:, 0]
    W = {(s - 1, s): A[s - 1:s] for s in range(1, T + 1)}
    U = dict(W)
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            c = c1[s] + c2[s] * coarse_jump(setting.alpha, setting.sigma, lam, s, e)
            pairs = [(W[(m, s)][:, None], U[(e, m)][None, :]) for m in range(e + 1, s)]
            W[(e, s)] = np.concatenate([(c + (x * a[s] * y + x * b[s])).ravel() for x, y in pairs])
            U[(e, s)] = np.concatenate([W[(e, s)], *((x * y).ravel() for x, y in pairs)])
    return W[(0, T)]


# ---- provenance ---------------------------------------------------------------------------------
def candidate_pairs(m: int, n_first: int, n_rest: int) -> np.ndarray:
    """Provenance rows (m, i, j) for every pair of a first-child and a rest candidate."""
    i = np.repeat(np.arange(n_first), n_rest)
    j = np.tile(np.arange(n_rest), n_first)
    return np.stack([np.full(i.size, m), i, j], axis=1)


def single_runs(n: int) -> np.ndarray:
    """Provenance rows of runs made of one node: (−1, i, 0)."""
    return np.stack([np.full(n, -1), np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)


def backtrack(T: int, k: int, W: Table, U: Table) -> Plan:
    """The plan of candidate k of W[(0, T)], from the tables' provenance rows."""
    return walk(T, k, lambda kind, e, s, idx: (W if kind == "W" else U)[(e, s)][1][idx])


def walk(T: int, k: int, prov: Callable[[str, int, int, int], np.ndarray]) -> Plan:
    """The plan of candidate k of W[0, T]; ``prov(kind, e, s, idx)`` gives its (m, i, j) row."""
    merges: set[tuple[int, int]] = set()
    stack = [("W", 0, T, k)]
    while stack:
        kind, e, s, idx = stack.pop()
        if s - e == 1:
            continue
        m, i, j = (int(v) for v in prov(kind, e, s, idx))
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
