"""The exact merge-plan dynamic program (THEORY §4) and the choice of the optimal plan.

Tables over intervals 0 <= e < s <= T (a segment maps z_s → z_e), for opt = min and opt = max:

    W[s−1, s] = A*_s                                                  (a leaf: one teacher step)
    W[e, s]   = opt_{e<m<s}  c_{e,s} + W[m, s] · (a_s · U[e, m] + b_s)   (one trained student)
    U[e, s]   = opt( W[e, s],  opt_{e<m<s} W[m, s] · U[e, m] )          (a run of operators)

with (a, b, c) from the init choice (``shrinkage.merge_coefficients``); for the default init
``teacher`` this is W[m, s] · ((1 − ρ_s) + ρ_s · U[e, m]). The merge map is increasing in both
arguments for non-negative operators, so min- and max-DP give the exact extremes over ALL multiway
plans. O(T³) time, O(T²) memory, one extreme at a time; no argmin tables: plans are rebuilt by
re-scanning the O(T) candidates of each node on the path (O(T²) in all). The kernels are compiled
with numba (``dp_kernels``, loaded on first use); a small one-off DP runs in numpy instead
(``dp_numpy``), which is faster than numba's start-up.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

import numpy as np

from opmerge_core.infra.validation import check_int, check_lam
from opmerge_core.theory import dp_numpy, plans
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shrinkage import merge_coefficients

REGIMES = ("boot", "vanilla", "hybrid", "mixed")
REGIME_LABELS = {"boot": "Sequential BOOT", "vanilla": "Vanilla", "hybrid": "Hybrid",
                 "mixed": "Mixed"}
EXACT_SET_LIMIT = 2_000_000   # achievable values kept per interval when solving the mixed band exactly
EXACT_MIXED_T_MAX = 10        # beyond this T the mixed band returns the better extreme, flagged
_REL_TOL = 1e-12
SWEEP_KERNEL_T_MAX = 1024     # the plain column sweep while its tables fit in cache; beyond, blocked
SWEEP_BLOCK = 16              # starts per block of the blocked sweep (rows read once per block)
NUMPY_DP_T_MAX = 64           # up to here a small DP may run in numpy, batched over λ: no numba
NUMPY_DP_WORK_MAX = 2 * 64**3  # start-up (~0.7 s, once per process) for a one-off plan; see _use_numpy


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


def _kernels():
    """The compiled kernels (imports numba on first use: ~0.7 s, once per process)."""
    from opmerge_core.theory import dp_kernels
    return dp_kernels


def load_kernels(warm: bool = False) -> None:
    """Import the compiled kernels now: from then on every DP of this process runs in them, so its
    results (equal to the numpy DP's to ~1e-16) do not depend on which job came first. Servers,
    cluster workers and sweeps call this; one-off CLI commands do not (numba's start-up).
    ``warm``: also run one small DP, so the compiled code is loaded before the first real request."""
    _kernels()
    if warm:
        optimal(Setting(T=NUMPY_DP_T_MAX + 1, S=1.0), np.array([0.5, 1.3, 3.0]))


def _use_numpy(T: int, n_lam: int) -> bool:
    """The numpy DP for a small one-off job (L · T³ <= NUMPY_DP_WORK_MAX) while the compiled
    kernels are not loaded yet; both give the same extremes (to rounding, ~1e-16)."""
    return (T <= NUMPY_DP_T_MAX and n_lam * T**3 <= NUMPY_DP_WORK_MAX
            and "opmerge_core.theory.dp_kernels" not in sys.modules)


def _tables(T: int) -> list[np.ndarray]:
    """Two C-contiguous (T+1)×(T+1) tables; the kernels write every entry they later read."""
    n = (T + 1) ** 2
    if T > BUFFER_T_MAX:
        return [np.empty((T + 1, T + 1)) for _ in range(2)]
    flat = getattr(_BUFFERS, "flat", None)
    if flat is None:
        flat = _BUFFERS.flat = [np.empty((BUFFER_T_MAX + 1) ** 2) for _ in range(2)]
    return [buf[:n].reshape(T + 1, T + 1) for buf in flat]


def _coefficients(setting: Setting, lam: float) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(x[:, 0]) for x in dp_numpy.coefficients(setting,
                                                                                np.array([lam])))


def _side(setting: Setting, lam: float, is_max: bool, with_plan: bool) -> tuple[float, Plan | None]:
    """One extreme (min, or max if ``is_max``) of the compiled DP at one λ, and a plan attaining it."""
    T = setting.T
    if T == 1:
        return float(setting.A_star(np.array([lam]))[0, 0]), plans.vanilla(1)
    k = _kernels()
    a, b, c1, c2 = _coefficients(setting, lam)
    A = np.ascontiguousarray(setting.A_star(np.array([lam]))[:, 0])
    Wt, Ut = _tables(T)
    args = (A, a, b, c1, c2, setting.alpha, setting.sigma, float(lam), is_max, Wt, Ut)
    if T <= SWEEP_KERNEL_T_MAX:
        k.fill_sweep(*args)
    else:
        k.fill_sweep_blocked(*args, SWEEP_BLOCK)
    plan = None
    if with_plan:  # c_{e,s} is constant over m, so the argmin ignores it
        plan = _plan_from(T, k.rebuild(Wt, Ut, a, b, -1.0 if is_max else 1.0))
    return float(Wt[T, 0]), plan


def _numpy_sides(setting: Setting, lam: np.ndarray, with_plans: bool) -> dict[bool, list]:
    """Both extremes for every λ by the numpy DP: {is_max: [(value, plan | None) per λ]}."""
    T = setting.T
    a, b = dp_numpy.coefficients(setting, lam)[:2]
    out = {}
    for is_max in (False, True):
        Wt, Ut = dp_numpy.fill_tables(setting, lam, is_max)
        sign = -1.0 if is_max else 1.0
        out[is_max] = [(float(Wt[j, T, 0]),
                        _plan_from(T, dp_numpy.rebuild_merges(Wt[j].tolist(), Ut[j].tolist(),
                                                              a[:, j].tolist(), b[:, j].tolist(),
                                                              sign)) if with_plans else None)
                       for j in range(lam.size)]
    return out


class _Sides:
    """Extremes per λ, computed on demand (the compiled path runs one O(T³) pass per side asked
    for; at T <= NUMPY_DP_T_MAX both sides of every λ come from one batched numpy pass).

    ``certified`` ({"boot": (plan, values), "vanilla": (plan, values)}) lets an extreme be read off
    without any DP where it is proven (teacher init, ``_certificate``)."""

    def __init__(self, setting: Setting, lam: np.ndarray, with_plans: bool = True,
                 certified: dict[str, tuple[Plan, np.ndarray]] | None = None):
        self.setting, self.lam, self.with_plans = setting, lam, with_plans
        self.certified = certified if setting.init == "teacher" and setting.T >= 2 else None
        self.A = setting.A_star(lam) if self.certified else None
        self.cache: dict[tuple[bool, int], tuple[float, Plan | None]] = {}
        if _use_numpy(setting.T, lam.size):
            for is_max, values in _numpy_sides(setting, lam, with_plans).items():
                self.cache.update({(is_max, j): v for j, v in enumerate(values)})

    def get(self, is_max: bool, j: int) -> tuple[float, Plan | None]:
        if (is_max, j) not in self.cache:
            self.cache[(is_max, j)] = self._certificate(is_max, j) or \
                _side(self.setting, float(self.lam[j]), is_max, self.with_plans)
        return self.cache[(is_max, j)]

    def _certificate(self, is_max: bool, j: int) -> tuple[float, Plan] | None:
        """Teacher init, every A*_t <= 1 for t < T: BOOT is the min-plan; every A*_t >= 1 for
        t < T: vanilla is the max-plan (THEORY §2 key identity; ``certified_extreme``)."""
        if self.certified is None:
            return None
        A = self.A[:-1, j]                                  # A*_1 .. A*_{T−1}
        if not is_max and np.all(A <= 1.0):
            plan, values = self.certified["boot"]
        elif is_max and np.all(A >= 1.0):
            plan, values = self.certified["vanilla"]
        else:
            return None
        return float(values[j]), plan

    def lo(self, j: int) -> tuple[float, Plan | None]:
        return self.get(False, j)

    def hi(self, j: int) -> tuple[float, Plan | None]:
        return self.get(True, j)

    def known(self, is_max: bool, j: int) -> float:
        """The extreme if it was computed, else NaN."""
        return self.cache[(is_max, j)][0] if (is_max, j) in self.cache else float("nan")


def certified_extreme(setting: Setting, lam: float, is_max: bool) -> tuple[float, Plan] | None:
    """An extreme over all plans proven without the DP, or None (THEORY §2 key identity).

    Teacher init, f_s(x) = 1 − ρ_s + ρ_s x: a merge is first · f_s(rest), increasing in both.
    Suppose every A*_t <= 1 for t < T (A*_T only needs >= 0). A node not starting at T is <= 1 and
    >= the product of its leaves (f(x) >= x for x <= 1); a node starting at T (its first child
    starts at T too, down to the leaf A*_T) with other leaves q_i is >= A*_T ∏ f_T(q_i), by induction
    with f(xy) >= f(x) f(y) for x, y <= 1 (f(xy) − f(x) f(y) = ρ(1 − ρ)(1 − x)(1 − y)). That bound is
    BOOT's value: BOOT is the min-plan. If every A*_t >= 1 for t < T every inequality flips and the
    bound A*_T f_T(∏ q_i) is vanilla's value: vanilla is the max-plan. (Then BOOT >= P, resp.
    vanilla <= P, since f(x) >= x, resp. <= x.) ``optimal`` skips those DPs; tested against the DP.
    """
    lam_a = check_lam(lam)
    named = plans.named_plans(setting.T, setting.uniform_K)
    sides = _Sides(setting, lam_a, certified={k: (named[k], named[k].evaluate(setting, lam_a))
                                              for k in ("boot", "vanilla")})
    return sides._certificate(is_max, 0)


def extremes(setting: Setting, lam: np.ndarray | float, with_plans: bool = True) -> Extremes:
    """Exact min- and max-DP (THEORY §4) for each λ (one O(T³) pass per side and λ)."""
    lam = check_lam(lam)
    sides = _Sides(setting, lam, with_plans)
    lo = [sides.lo(j) for j in range(lam.size)]
    hi = [sides.hi(j) for j in range(lam.size)]
    return Extremes(lam, np.array([v for v, _ in lo]), np.array([v for v, _ in hi]),
                    [p for _, p in lo] if with_plans else [], [p for _, p in hi] if with_plans else [])


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
    return _walk(T, k, lambda kind, e, s, idx: (W if kind == "W" else U)[(e, s)][1][idx])


def _walk(T: int, k: int, prov) -> Plan:
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


ALL_VALUES_T_MAX = 10   # 103,049 plans at T = 10


def all_plan_values(setting: Setting, lam: float) -> np.ndarray:
    """The one-step value of every plan (with multiplicity; count = little Schröder number), by
    products of per-interval value sets — no plan objects, so T <= 10 takes milliseconds."""
    T = check_int(setting.T, "T (all plans)", hi=ALL_VALUES_T_MAX)
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
    lo: float         # min over all plans (NaN if not computed: ``optimal(..., bounds=False)``)
    hi: float         # max over all plans (idem)

    @property
    def label(self) -> str:
        return REGIME_LABELS[self.regime]


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= _REL_TOL * max(1.0, abs(x), abs(y))


def optimal(setting: Setting, lam: np.ndarray | float, exact_mixed: bool = True,
            bounds: bool = True) -> list[OptimalPlan]:
    """The W2-optimal plan for each λ (THEORY §4 "Choosing the optimum").

    min ≥ target → the min-plan; max ≤ target → the max-plan; otherwise (the thin "mixed" band) the
    closest achievable value, exactly while the sets stay small (T <= EXACT_MIXED_T_MAX), else the
    closest of the two extreme plans and the named strategies, flagged ``exact=False``.

    ``bounds=False`` computes only the extremes the choice needs (same plans, values and regimes;
    ``lo``/``hi`` are NaN where not computed): every plan's value is ≥ min and BOOT is one plan, so
    when BOOT's value is below the target the min-plan cannot be chosen and the max-DP decides alone;
    otherwise the min-DP runs first and the max-DP only if min < target. Outside the mixed band this
    halves the work of a curve.
    """
    return _optimal(setting, check_lam(lam), exact_mixed, bounds)[0]


def _optimal(setting: Setting, lam: np.ndarray, exact_mixed: bool,
             bounds: bool) -> tuple[list[OptimalPlan], _Sides]:
    target = setting.target(lam)
    r_T = setting.r_T(lam)
    named = plans.named_plans(setting.T, setting.uniform_K)
    boot_v = named["boot"].evaluate(setting, lam)
    vanilla_v = named["vanilla"].evaluate(setting, lam)
    sides = _Sides(setting, lam, certified={"boot": (named["boot"], boot_v),
                                            "vanilla": (named["vanilla"], vanilla_v)})
    out = []
    for j, lam_j in enumerate(lam):
        tgt = float(target[j])
        if bounds:
            sides.lo(j), sides.hi(j)
        plan, value, exact, mixed = _choose(setting, sides, j, tgt, float(boot_v[j]), exact_mixed,
                                            named)
        if mixed:
            regime = "mixed"
        elif named["boot"] == named["vanilla"]:    # T <= 2: one plan; name it by the side of P
            regime = "boot" if value >= tgt else "vanilla"
        elif _close(value, boot_v[j]) and (not _close(value, vanilla_v[j])
                                           or value == sides.lo(j)[0]):
            regime = "boot"   # ties (e.g. ρ ≈ 1 saturation) are reported as the named plan
            plan, value = named["boot"], float(boot_v[j])
        elif _close(value, vanilla_v[j]):
            regime = "vanilla"
            plan, value = named["vanilla"], float(vanilla_v[j])
        else:
            regime = "hybrid"
        out.append(OptimalPlan(float(lam_j), plan, value, tgt, float(r_T[j] * abs(value - tgt)),
                               regime, exact, sides.known(False, j), sides.known(True, j)))
    return out, sides


def _choose(setting: Setting, sides: _Sides, j: int, tgt: float, boot_value: float,
            exact_mixed: bool, named: dict[str, Plan]) -> tuple[Plan, float, bool, bool]:
    """(plan, value, exact, mixed) for λ_j; asks ``sides`` only for the extremes it needs."""
    if boot_value >= tgt or _close(boot_value, tgt):   # else min <= boot < target: min-plan impossible
        lo, lo_plan = sides.lo(j)
        if lo >= tgt or _close(lo, tgt):
            return lo_plan, lo, True, False
    hi, hi_plan = sides.hi(j)
    if hi <= tgt:
        return hi_plan, hi, True, False
    lam_j = float(sides.lam[j])
    found = _closest_exact(setting, lam_j, tgt) if exact_mixed else None
    if found is not None:
        return found[0], found[1], True, True
    lo, lo_plan = sides.lo(j)   # the closest of the two extremes and the named strategies
    candidates = [(lo_plan, lo), (hi_plan, hi),
                  *((p, float(p.evaluate(setting, np.array([lam_j]))[0])) for p in named.values())]
    plan, value = min(candidates, key=lambda pv: abs(pv[1] - tgt))
    return plan, value, False, True


# ---- thresholds (THEORY §5) ---------------------------------------------------------------------
def lam_V(setting: Setting) -> float:
    """λ at which A*_1 = 1 (A*_1 ≥ 1 iff λ ≥ λ_V): σ_1² / (α_1 (1 − α_1)); 1 + 1/α_1 under VP."""
    a1, s1 = setting.alpha[1], setting.sigma[1]
    return float(s1**2 / (a1 * (1.0 - a1))) if 0 < a1 < 1 else float("inf")


def _probe(setting: Setting, lam: float) -> tuple[bool, Plan | None]:
    """(is BOOT the optimal regime at λ, the min-plan if the min-DP ran)."""
    best, sides = _optimal(setting, check_lam(lam), exact_mixed=False, bounds=False)
    return best[0].regime == "boot", sides.cache.get((False, 0), (None, None))[1]


CROSSING_T_MIN = 384   # from here a DP costs more than the plan evaluations of a crossing search


def lam_B(setting: Setting, lo: float = 0.05, hi: float | None = None, rtol: float = 1e-6) -> float:
    """The largest λ for which sequential BOOT is exactly optimal: a switch point of the regime,
    returned as the lower end λ of a bracket [λ, λ'] with λ' − λ <= rtol·λ', BOOT optimal at λ and
    not at λ' (as a bisection on the regime would return; every probe is a full exact DP).

    Each probe runs one extreme only (``optimal(..., bounds=False)``). For large T the probes are
    placed by certificates rather than halving: BOOT stops being optimal where its value crosses
    the target, or where another plan q (the min-plan the DP found on the non-BOOT side) overtakes
    it. Those crossings are located without any DP (plans and P are O(T) to evaluate) and the DP
    at the crossing either moves the upper end there (with a new challenger q) or, BOOT still
    optimal, the lower end; the result is certified by the two DPs at its bracket either way.
    """
    if setting.T > 16:
        _kernels()           # a threshold takes ~15-25 DPs: worth the compiled kernels' start-up
    is_boot, _ = _probe(setting, lo)
    if not is_boot:
        return float("nan")
    v = lam_V(setting)
    hi = hi or max(2.0 * v if np.isfinite(v) else 10.0, 4.0)
    is_boot, challenger = _probe(setting, hi)
    if is_boot:
        return float("inf")
    crossings = setting.T >= CROSSING_T_MIN
    below = None             # after the upper end moved by d, a probe 2d below it
    while hi - lo > rtol * hi:
        x = below if below is not None else _first_crossing(setting, lo, hi, challenger) \
            if crossings else None
        if x is None or not lo < x < hi:
            x = 0.5 * (lo + hi)
        x = min(max(x, lo + 0.5 * rtol * hi), hi - 0.5 * rtol * hi)   # progress of >= rtol/2
        is_boot, q = _probe(setting, x)
        below = None
        if is_boot:
            lo = x
        else:
            if crossings and x - 2 * (hi - x) > lo:
                below = x - 2 * (hi - x)
            hi, challenger = x, q
    return lo


def _first_crossing(setting: Setting, lo: float, hi: float, challenger: Plan | None) -> float | None:
    """Just below the first λ in (lo, hi) where BOOT falls below the target or ``challenger`` falls
    below BOOT, to about (hi − lo)/65²; None if neither happens on the grid (or already at lo)."""
    boot = plans.named_plans(setting.T)["boot"]
    rivals = [challenger] if challenger is not None and challenger != boot else []
    for _ in range(2):
        grid = np.linspace(lo, hi, 65)
        b = boot.evaluate(setting, grid)
        ok = _at_least(b, setting.target(grid))
        for q in rivals:
            ok &= _at_least(q.evaluate(setting, grid), b)
        if ok.all() or not ok[0]:
            return None
        k = int(np.argmin(ok))           # the first grid point where BOOT is beaten
        lo, hi = float(grid[k - 1]), float(grid[k])
    return lo


def _at_least(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x >= y up to the tolerance the regime decisions use (``_close``)."""
    return (x >= y) | (np.abs(x - y) <= _REL_TOL * np.maximum(1.0, np.maximum(np.abs(x), np.abs(y))))


# ---- one plan shared by several coordinates (THEORY §4, last bullet) ----------------------------
PARETO_FRONT_MAX = 64   # vectors per interval in the exact Pareto DP; beyond, the beam DP (flagged)
PARETO_WORK_MAX = 3e6   # candidate coordinates (Σ candidates · d) the exact Pareto DP may generate
SHARED_T_MAX = 256
BEAM_WIDTH = 6          # vectors kept per interval by the beam DP
BEAM_ROUNDS = 3         # beam passes, each linearised at the best shared plan found so far
BEAM_CELLS_MAX = 2e7    # bound on (T + 1)² · width · d per table (the width shrinks to fit)


@dataclass(frozen=True)
class SharedPlan:
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
    pass


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
    check_int(setting.T, "T (shared plan)", hi=SHARED_T_MAX)
    target, r_T = setting.target(lams), setting.r_T(lams)
    ex = extremes(setting, lams, with_plans=True)
    dist = np.maximum(np.maximum(ex.lo - target, target - ex.hi), 0.0)
    lower_bound = float(np.sqrt(np.sum((r_T * dist) ** 2)))
    try:
        plan, values = _pareto_shared(setting, lams, ex, front_max)
        method = "pareto"
    except _FrontTooLarge:
        plan, values = _beam_shared(setting, lams, ex)
        method = "beam"
    w2 = float(np.sqrt(np.sum((r_T * (values - target)) ** 2)))
    exact = method == "pareto" or w2 <= lower_bound * (1 + 1e-12) + 1e-300
    return SharedPlan(plan, values, w2, exact, lower_bound, method)


def _objective(setting: Setting, lams: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.sum((setting.r_T(lams) * (values - setting.target(lams))) ** 2, axis=-1)


def _pareto_shared(setting: Setting, lams: np.ndarray, ex: Extremes, front_max: int,
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
    al, sg = setting.alpha, setting.sigma
    select = _kernels().pareto_select

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
            c = c1[s] + c2[s] * (al[e] * al[s] * lams + sg[e] * sg[s]) / (al[s] ** 2 * lams
                                                                           + sg[s] ** 2)
            provs = [_pairs(m, len(W[(m, s)][0]), len(U[(e, m)][0])) for m in range(e + 1, s)]
            work += sum(len(p) for p in provs) * lams.size
            if work > PARETO_WORK_MAX and not truncate:
                raise _FrontTooLarge
            x = np.concatenate([W[(m, s)][0][p[:, 1]] for m, p in zip(range(e + 1, s), provs)])
            y = np.concatenate([U[(e, m)][0][p[:, 2]] for m, p in zip(range(e + 1, s), provs)])
            prov = np.concatenate(provs)
            W[(e, s)] = prune(c + x * (a[s] * y + b[s]), prov)
            single = W[(e, s)][0]
            U[(e, s)] = prune(np.concatenate([x * y, single]),
                              np.concatenate([prov, _singles(len(single))]))
    root = W[(0, T)][0]
    k = int(np.argmin(_objective(setting, lams, root)))
    return _backtrack(T, k, W, U), root[k]


def _beam_shared(setting: Setting, lams: np.ndarray, ex: Extremes) -> tuple[Plan, np.ndarray]:
    """The best of BEAM_ROUNDS beam DPs and the known candidate plans (see ``shared_plan``)."""
    T, d = setting.T, lams.size
    target, r2 = setting.target(lams), setting.r_T(lams) ** 2
    width = int(max(1, min(BEAM_WIDTH, BEAM_CELLS_MAX // ((T + 1) ** 2 * d))))
    pool = [*plans.named_plans(T, setting.uniform_K).values(), *ex.lo_plans, *ex.hi_plans]
    best: tuple[float, Plan, np.ndarray] | None = None
    for plan in dict.fromkeys(pool):
        values = plan.evaluate(setting, lams)
        obj = float(_objective(setting, lams, values))
        if best is None or obj < best[0]:
            best = (obj, plan, values)
    coeffs = [np.ascontiguousarray(x) for x in merge_coefficients(setting.init, setting.rho(lams))]
    A = np.ascontiguousarray(setting.A_star(lams))
    reference = np.where(ex.lo >= target, ex.lo, np.where(ex.hi <= target, ex.hi, target))
    for _ in range(BEAM_ROUNDS):
        g = np.ascontiguousarray(r2 * (reference - target))
        if not np.any(g):
            break
        Wv, Wn, Wprov, _, _, Uprov = _kernels().shared_beam(A, *coeffs, setting.alpha, setting.sigma,
                                                            lams, g, width)
        root = Wv[0, T, :Wn[0, T]]
        objective = _objective(setting, lams, root)
        k = int(np.argmin(objective))
        if objective[k] < best[0]:
            plan = _backtrack_arrays(T, k, Wprov, Uprov)
            best = (float(objective[k]), plan, plan.evaluate(setting, lams))
        elif np.array_equal(reference, best[2]):
            break
        reference = best[2]
    return best[1], best[2]


def _backtrack_arrays(T: int, k: int, Wprov: np.ndarray, Uprov: np.ndarray) -> Plan:
    """``_backtrack`` for the beam's provenance arrays [e, s, k] = (m, i, j)."""
    return _walk(T, k, lambda kind, e, s, idx: (Wprov if kind == "W" else Uprov)[e, s, idx])
