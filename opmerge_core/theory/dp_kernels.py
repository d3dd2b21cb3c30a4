"""Compiled kernels of the merge-plan DP (THEORY §4). Imported lazily by ``dp`` (numba's import and
first cached dispatch cost more than a whole DP at T <= 64, which numpy does instead; bench/bench_cli.py).

Every kernel is ``nogil`` (pages call them from threads) and ``cache=True``. Sentinels are finite
(±BIG) and every sentinel is overwritten by a real candidate before it is read, so ``fastmath``'s
finite-math assumption holds. The sweeps for large T use fastmath (FMA contraction); ``fill_small``,
for the T where the numpy DP may run instead, rounds exactly as numpy does.
Tables: Wt[s, m] = W[m, s] and Ut[s, m] = U[m, s] (rows contiguous).
"""

from __future__ import annotations

import numba
import numpy as np

from opmerge_core.theory import operators
from opmerge_core.theory.dp_numpy import BIG, rebuild_merges

_JIT = dict(cache=True, nogil=True, fastmath=True)
_EXACT = dict(cache=True, nogil=True)   # IEEE rounding of every operation, as numpy does
GROUP = 4            # finished rows folded per pass by the blocked sweep

# operators.coarse_jump itself, compiled: inlined, it is rounded under the flags of each kernel
_coarse_jump = numba.njit(inline="always", **_EXACT)(operators.coarse_jump)


@numba.njit(inline="always", **_JIT)
def _better(x, y, is_max):  # pragma: no cover
    return max(x, y) if is_max else min(x, y)


@numba.njit(**_JIT)
def fold2(acc_w, acc_p, r1, w1, r2, w2, a_s, b_s, n, is_max):  # pragma: no cover
    """acc[e] ← opt(acc[e], candidates of first children w1 (rest row r1) and w2 (row r2)), e < n."""
    wa1, wb1, wa2, wb2 = w1 * a_s, w1 * b_s, w2 * a_s, w2 * b_s
    if is_max:
        for e in range(n):
            y1, y2 = r1[e], r2[e]
            acc_w[e] = max(acc_w[e], max(wa1 * y1 + wb1, wa2 * y2 + wb2))
            acc_p[e] = max(acc_p[e], max(w1 * y1, w2 * y2))
    else:
        for e in range(n):
            y1, y2 = r1[e], r2[e]
            acc_w[e] = min(acc_w[e], min(wa1 * y1 + wb1, wa2 * y2 + wb2))
            acc_p[e] = min(acc_p[e], min(w1 * y1, w2 * y2))


@numba.njit(**_JIT)
def fold4(acc_w, acc_p, rows, ws, a_s, b_s, n, is_max):  # pragma: no cover
    """``fold2`` for the four first children ws[k] with rest rows rows[k] (k = 0..3), e < n."""
    r1, r2, r3, r4 = rows[0], rows[1], rows[2], rows[3]
    w1, w2, w3, w4 = ws[0], ws[1], ws[2], ws[3]
    wa1, wa2, wa3, wa4 = w1 * a_s, w2 * a_s, w3 * a_s, w4 * a_s
    wb1, wb2, wb3, wb4 = w1 * b_s, w2 * b_s, w3 * b_s, w4 * b_s
    if is_max:
        for e in range(n):
            y1, y2, y3, y4 = r1[e], r2[e], r3[e], r4[e]
            acc_w[e] = max(max(acc_w[e], max(wa1 * y1 + wb1, wa2 * y2 + wb2)),
                           max(wa3 * y3 + wb3, wa4 * y4 + wb4))
            acc_p[e] = max(max(acc_p[e], max(w1 * y1, w2 * y2)), max(w3 * y3, w4 * y4))
    else:
        for e in range(n):
            y1, y2, y3, y4 = r1[e], r2[e], r3[e], r4[e]
            acc_w[e] = min(min(acc_w[e], min(wa1 * y1 + wb1, wa2 * y2 + wb2)),
                           min(wa3 * y3 + wb3, wa4 * y4 + wb4))
            acc_p[e] = min(min(acc_p[e], min(w1 * y1, w2 * y2)), min(w3 * y3, w4 * y4))


@numba.njit(**_EXACT)
def fill_small(A, a, b, c1, c2, alpha, sigma, lam, is_max, Wt, Ut):  # pragma: no cover
    """One extreme of the DP by its definition, for T <= ``dp.NUMPY_DP_T_MAX``, where the numpy DP
    (``dp_numpy.fill_tables``) may run instead: no fastmath (no FMA contraction, reassociation or
    reciprocal), and every candidate written as there, so both give the same tables bit for bit
    (min and max do not depend on the order of the candidates)."""
    T = A.shape[0]
    sentinel = -BIG if is_max else BIG
    for s in range(1, T + 1):
        Wt[s, s - 1] = A[s - 1]                             # the leaf: one teacher step
        Ut[s, s - 1] = A[s - 1]
        for e in range(s - 2, -1, -1):
            aw, ap = sentinel, sentinel
            for m in range(e + 1, s):                       # first child W[m, s], rest U[e, m]
                w, y = Wt[s, m], Ut[m, e]
                aw = _better(aw, w * a[s] * y + w * b[s], is_max)
                ap = _better(ap, w * y, is_max)
            w = aw + (c1[s] + c2[s] * _coarse_jump(alpha, sigma, lam, s, e))
            Wt[s, e] = w
            Ut[s, e] = _better(w, ap, is_max)


@numba.njit(**_JIT)
def fill_sweep(A, a, b, c1, c2, alpha, sigma, lam, is_max, Wt, Ut):  # pragma: no cover
    """One extreme (min, or max if ``is_max``) of the DP, column by column (THEORY §4).

    For each start s, m runs down from s − 1: once W[m, s] is final it is the first child of every
    segment [e, s] with e < m, and those candidates are folded in at once by an element-wise opt
    over e (no carried dependency: it vectorises). Two first children m, m − 1 are folded per pass
    (m − 1 first gets m's candidate for e = m − 1 alone), halving the accumulator traffic.
    """
    T = A.shape[0]
    sentinel = -BIG if is_max else BIG
    acc_w = np.empty(T + 1)
    acc_p = np.empty(T + 1)
    for s in range(1, T + 1):
        a_s, b_s = a[s], b[s]
        acc_w[:s] = sentinel
        acc_p[:s] = sentinel
        m = s - 1
        w = A[s - 1]                                        # the leaf: one teacher step
        Wt[s, m] = w
        Ut[s, m] = w
        while m >= 1:
            # W[m, s] = w is final; fold it into e = m − 1 alone, then finish W[m − 1, s]
            y = Ut[m, m - 1]
            acc_w[m - 1] = _better(acc_w[m - 1], w * (a_s * y + b_s), is_max)
            acc_p[m - 1] = _better(acc_p[m - 1], w * y, is_max)
            m1 = m - 1
            w1 = acc_w[m1] + (c1[s] + c2[s] * _coarse_jump(alpha, sigma, lam, s, m1))
            Wt[s, m1] = w1
            Ut[s, m1] = _better(w1, acc_p[m1], is_max)
            if m1 == 0:
                break
            # both first children m and m − 1 into every e < m − 1 in one pass
            fold2(acc_w, acc_p, Ut[m], w, Ut[m1], w1, a_s, b_s, m1, is_max)
            # W[m − 2, s] is now final
            m2 = m1 - 1
            w = acc_w[m2] + (c1[s] + c2[s] * _coarse_jump(alpha, sigma, lam, s, m2))
            Wt[s, m2] = w
            Ut[s, m2] = _better(w, acc_p[m2], is_max)
            m = m2


@numba.njit(**_JIT)
def fold1(acc_w, acc_p, row, w, a_s, b_s, n, is_max):  # pragma: no cover
    """acc[e] ← opt(acc[e], candidates of the first child w with rest row ``row``), e < n."""
    wa, wb = w * a_s, w * b_s
    if is_max:
        for e in range(n):
            y = row[e]
            acc_w[e] = max(acc_w[e], wa * y + wb)
            acc_p[e] = max(acc_p[e], w * y)
    else:
        for e in range(n):
            y = row[e]
            acc_w[e] = min(acc_w[e], wa * y + wb)
            acc_p[e] = min(acc_p[e], w * y)


@numba.njit(**_JIT)
def _finalise(A, a, b, c1, c2, alpha, sigma, lam, is_max, Wt, Ut, acc_w, acc_p, m, s0,
              s1):  # pragma: no cover
    """W[m, s] and U[m, s] for every start s0 <= s < s1 above m, once every first child m' > m
    outside the block is folded in: the first children inside the block (s0 <= m' < s) are added
    here, for this position m alone (their rows are still being written)."""
    for s in range(max(s0, m + 1), s1):
        q = s - s0
        if m == s - 1:                                      # the leaf: one teacher step
            w = A[s - 1]
            u = w
        else:
            a_s, b_s = a[s], b[s]
            aw, ap = acc_w[q, m], acc_p[q, m]
            for mp in range(max(m + 1, s0), s):
                x = Wt[s, mp]
                y = Ut[mp, m]
                aw = _better(aw, x * (a_s * y + b_s), is_max)
                ap = _better(ap, x * y, is_max)
            w = aw + (c1[s] + c2[s] * _coarse_jump(alpha, sigma, lam, s, m))
            u = _better(w, ap, is_max)
        Wt[s, m] = w
        Ut[s, m] = u


@numba.njit(**_JIT)
def fill_sweep_blocked(A, a, b, c1, c2, alpha, sigma, lam, is_max, Wt, Ut, n_block):  # pragma: no cover
    """``fill_sweep`` for n_block starts s0 <= s < s1 at once, so each finished row Ut[m] (m < s0)
    is read from memory once per block instead of once per start: the column sweep of large T is
    bound by that traffic (the tables outgrow the caches). All starts of the block descend m
    together (``_finalise``); finished rows are folded GROUP at a time (each accumulator read and
    written once per GROUP rows), after their own candidates inside the group are added."""
    T = A.shape[0]
    sentinel = -BIG if is_max else BIG
    acc_w = np.empty((n_block, T + 1))
    acc_p = np.empty((n_block, T + 1))
    for s0 in range(1, T + 1, n_block):
        s1 = min(s0 + n_block, T + 1)
        for q in range(s1 - s0):
            acc_w[q, :s0 + q] = sentinel
            acc_p[q, :s0 + q] = sentinel
        m = s1 - 2
        while m >= 0:
            _finalise(A, a, b, c1, c2, alpha, sigma, lam, is_max, Wt, Ut, acc_w, acc_p, m, s0, s1)
            if m >= s0 or m == 0:                           # an unfinished row, or nothing below
                m -= 1
                continue
            g = min(GROUP, m)                  # finished rows m .. m − g + 1 (all >= 1), folded together
            for r in range(1, g):              # first their own candidates at e = m − r, then W[e, ·]
                e = m - r
                for s in range(s0, s1):
                    q = s - s0
                    aw, ap = acc_w[q, e], acc_p[q, e]
                    for k in range(e + 1, m + 1):
                        w = Wt[s, k]
                        y = Ut[k, e]
                        aw = _better(aw, w * (a[s] * y + b[s]), is_max)
                        ap = _better(ap, w * y, is_max)
                    acc_w[q, e], acc_p[q, e] = aw, ap
                _finalise(A, a, b, c1, c2, alpha, sigma, lam, is_max, Wt, Ut, acc_w, acc_p, e, s0, s1)
            n = m - g + 1                      # then every e < n at once
            for s in range(s0, s1):
                q = s - s0
                if g == GROUP:
                    fold4(acc_w[q], acc_p[q], (Ut[m], Ut[m - 1], Ut[m - 2], Ut[m - 3]),
                          (Wt[s, m], Wt[s, m - 1], Wt[s, m - 2], Wt[s, m - 3]), a[s], b[s], n, is_max)
                else:
                    for k in range(n, m + 1):
                        fold1(acc_w[q], acc_p[q], Ut[k], Wt[s, k], a[s], b[s], n, is_max)
            m -= g


rebuild = numba.njit(cache=True, nogil=True)(rebuild_merges)


@numba.njit(cache=True, nogil=True)
def pareto_select(key, free, k_max):  # pragma: no cover
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


@numba.njit(**_JIT)
def _offer(scores, slots, n, k_max, score, slot):  # pragma: no cover
    """Insert (score, slot) into the ascending top-k list (scores[:n], slots[:n]); returns new n."""
    if n == k_max and score >= scores[n - 1]:
        return n
    pos = n if n < k_max else k_max - 1
    while pos > 0 and scores[pos - 1] > score:
        if pos < k_max:
            scores[pos], slots[pos] = scores[pos - 1], slots[pos - 1]
        pos -= 1
    scores[pos], slots[pos] = score, slot
    return min(n + 1, k_max)


@numba.njit(**_JIT)
def shared_beam(A, a, b, c1, c2, alpha, sigma, lam, g, k_max):  # pragma: no cover
    """Beam DP for one plan shared by d coordinates (THEORY §4, last bullet): each interval keeps the
    k_max vectors with the smallest linear score g · v (g = the objective's gradient at a reference
    point), for W (one trained student) and U (a run). A heuristic: the caller bounds its gap.

    Returns (Wv, Wn, Wprov, Uv, Un, Uprov): vectors [e, s, k, :], counts [e, s] and provenance
    [e, s, k] = (m, i, j): first child W[m, s][i], rest U[e, m][j]; for U, m = −1 is W[e, s][i].
    """
    T, d = A.shape
    Wv = np.zeros((T + 1, T + 1, k_max, d))
    Uv = np.zeros((T + 1, T + 1, k_max, d))
    Wn = np.zeros((T + 1, T + 1), dtype=np.int64)
    Un = np.zeros((T + 1, T + 1), dtype=np.int64)
    Wprov = np.zeros((T + 1, T + 1, k_max, 3), dtype=np.int64)
    Uprov = np.zeros((T + 1, T + 1, k_max, 3), dtype=np.int64)
    for s in range(1, T + 1):
        Wv[s - 1, s, 0] = A[s - 1]
        Uv[s - 1, s, 0] = A[s - 1]
        Wn[s - 1, s] = Un[s - 1, s] = 1
        Wprov[s - 1, s, 0] = Uprov[s - 1, s, 0] = -1
    n_cand = T * k_max * k_max
    cand = np.empty((n_cand, 3), dtype=np.int64)
    w_scores = np.empty(k_max)
    w_slots = np.empty(k_max, dtype=np.int64)
    u_scores = np.empty(k_max + 1)
    u_slots = np.empty(k_max + 1, dtype=np.int64)
    c = np.empty(d)
    gxa = np.empty(d)
    gx = np.empty(d)
    for length in range(2, T + 1):
        for e in range(0, T - length + 1):
            s = e + length
            gc = 0.0
            for t in range(d):
                c[t] = c1[s, t] + c2[s, t] * _coarse_jump(alpha, sigma, lam[t], s, e)
                gc += g[t] * c[t]
            nw = 0
            nu = 0
            nc = 0
            for m in range(e + 1, s):
                for i in range(Wn[m, s]):
                    x = Wv[m, s, i]
                    gxb = 0.0
                    for t in range(d):
                        gx[t] = g[t] * x[t]
                        gxa[t] = gx[t] * a[s, t]
                        gxb += gx[t] * b[s, t]
                    for j in range(Un[e, m]):
                        y = Uv[e, m, j]
                        sw = 0.0
                        su = 0.0
                        for t in range(d):
                            sw += gxa[t] * y[t]
                            su += gx[t] * y[t]
                        cand[nc, 0], cand[nc, 1], cand[nc, 2] = m, i, j
                        nw = _offer(w_scores, w_slots, nw, k_max, gc + gxb + sw, nc)
                        nu = _offer(u_scores, u_slots, nu, k_max, su, nc)
                        nc += 1
            for k in range(nw):
                m, i, j = cand[w_slots[k], 0], cand[w_slots[k], 1], cand[w_slots[k], 2]
                x = Wv[m, s, i]
                y = Uv[e, m, j]
                for t in range(d):
                    Wv[e, s, k, t] = c[t] + (x[t] * a[s, t] * y[t] + x[t] * b[s, t])
                Wprov[e, s, k, 0], Wprov[e, s, k, 1], Wprov[e, s, k, 2] = m, i, j
            Wn[e, s] = nw
            for k in range(nw):             # a run made of the single student W[e, s][k]
                sc = 0.0
                for t in range(d):
                    sc += g[t] * Wv[e, s, k, t]
                nu = _offer(u_scores, u_slots, nu, k_max, sc, -1 - k)
            for k in range(nu):
                slot = u_slots[k]
                if slot < 0:
                    Uv[e, s, k] = Wv[e, s, -1 - slot]
                    Uprov[e, s, k, 0], Uprov[e, s, k, 1], Uprov[e, s, k, 2] = -1, -1 - slot, 0
                else:
                    m, i, j = cand[slot, 0], cand[slot, 1], cand[slot, 2]
                    x = Wv[m, s, i]
                    y = Uv[e, m, j]
                    for t in range(d):
                        Uv[e, s, k, t] = x[t] * y[t]
                    Uprov[e, s, k, 0], Uprov[e, s, k, 1], Uprov[e, s, k, 2] = m, i, j
            Un[e, s] = nu
    return Wv, Wn, Wprov, Uv, Un, Uprov
