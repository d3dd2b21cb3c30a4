"""The exact merge-plan dynamic program (THEORY §4): the min and max one-step operator over all plans.

Tables over intervals 0 <= e < s <= T (a segment maps z_s → z_e), for opt = min and opt = max:

    W[s−1, s] = A*_s                                                  (a leaf: one teacher step)
    W[e, s]   = opt_{e<m<s}  c_{e,s} + W[m, s] · (a_s · U[e, m] + b_s)   (one trained student)
    U[e, s]   = opt( W[e, s],  opt_{e<m<s} W[m, s] · U[e, m] )          (a run of operators)

with (a, b, c) from the init choice (``shrinkage.merge_coefficients``, c_{e,s} = c1_s + c2_s ·
``operators.coarse_jump``); for the default init ``teacher`` this is W[m, s] · ((1 − ρ_s) + ρ_s ·
U[e, m]). The merge map is increasing in both arguments for non-negative operators, so min- and
max-DP give the exact extremes over ALL multiway plans. O(T³) time, O(T²) memory, one extreme at a
time; no argmin tables: plans are rebuilt by re-scanning the O(T) candidates of each node on the path
(O(T²) in all).

Which code runs: for T <= NUMPY_DP_T_MAX either the numpy DP batched over λ (``dp_numpy``: a one-off
small DP, faster than numba's start-up) or, in a process that chose the compiled kernels with
``load_kernels()`` (servers, workers, thresholds), ``dp_kernels.fill_small`` — the two round every
candidate the same way, so their results are equal bit for bit; above, the fastmath sweeps of
``dp_kernels`` (plain, then cache-blocked beyond SWEEP_KERNEL_T_MAX). The choice is that one explicit
call, never which modules happen to be imported.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from opmerge_core.basics.validation import check_lam
from opmerge_core.theory import dp_numpy, plans
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting

SWEEP_KERNEL_T_MAX = 1024     # the plain column sweep while its tables fit in cache; beyond, blocked
SWEEP_BLOCK = 16              # starts per block of the blocked sweep (rows read once per block)
NUMPY_DP_T_MAX = 64           # up to this T: numpy or fill_small (same bits); above, fastmath sweeps
NUMPY_DP_WORK_MAX = 2 * 64**3  # numpy DP work below numba's start-up (once per process); see _use_numpy
BUFFER_T_MAX = 512            # per-thread table buffers up to this T (page-faulting fresh tables on
_BUFFERS = threading.local()  # every call costs about as much as the DP itself at T = 256)
_kernels_chosen = False       # set by load_kernels(): small DPs of this process run in the kernels too


@dataclass(frozen=True)
class Extremes:
    """Min and max achievable one-step operator over all plans, per λ, with plans attaining them."""

    lam: np.ndarray          # (L,)
    lo: np.ndarray           # (L,)
    hi: np.ndarray           # (L,)
    lo_plans: list[Plan]
    hi_plans: list[Plan]


# ---- which DP runs ------------------------------------------------------------------------------
def kernels() -> ModuleType:
    """The compiled kernels (imports numba on first use: a start-up cost, once per process)."""
    from opmerge_core.theory import dp_kernels
    return dp_kernels


def load_kernels(warm: bool = False) -> None:
    """Import the compiled kernels now, so every later DP of this process runs in them (the fastest
    path once loaded; at small T their results are the numpy DP's bit for bit). Servers, cluster
    workers and thresholds call this; one-off CLI commands do not (numba's start-up). ``warm``: also
    run a small DP with each small-T and large-T kernel, so their compiled code is loaded before the
    first real request."""
    global _kernels_chosen
    kernels()
    _kernels_chosen = True
    if warm:
        for T in (NUMPY_DP_T_MAX, NUMPY_DP_T_MAX + 1):
            extremes(Setting(T=T, S=1.0), np.array([0.5, 1.3, 3.0]))


def _use_numpy(T: int, n_lam: int) -> bool:
    """The numpy DP for a small one-off job (L · T³ <= NUMPY_DP_WORK_MAX) unless the process chose
    the compiled kernels (a speed choice: at these T both DPs give the same bits)."""
    return T <= NUMPY_DP_T_MAX and n_lam * T**3 <= NUMPY_DP_WORK_MAX and not _kernels_chosen


# ---- one extreme in the kernels -----------------------------------------------------------------
def _tables(T: int) -> list[np.ndarray]:
    """Two C-contiguous (T+1)×(T+1) tables; the kernels write every entry they later read."""
    n = (T + 1) ** 2
    if T > BUFFER_T_MAX:
        return [np.empty((T + 1, T + 1)) for _ in range(2)]
    flat = getattr(_BUFFERS, "flat", None)
    if flat is None:
        flat = _BUFFERS.flat = [np.empty((BUFFER_T_MAX + 1) ** 2) for _ in range(2)]
    return [buf[:n].reshape(T + 1, T + 1) for buf in flat]


def coefficients_at(setting: Setting, lam: float) -> tuple[np.ndarray, ...]:
    """(a, b, c1, c2) of ``shrinkage.merge_coefficients`` at one λ, each (T + 1,) contiguous."""
    return tuple(np.ascontiguousarray(x[:, 0])
                 for x in dp_numpy.coefficients(setting, np.array([lam])))


def plan_from(T: int, merges: np.ndarray) -> Plan:
    """A plan from rebuilt merges, rows (e, s)."""
    return Plan(T, frozenset(map(tuple, merges.tolist())))


def _side(setting: Setting, lam: float, is_max: bool, with_plan: bool) -> tuple[float, Plan | None]:
    """One extreme (min, or max if ``is_max``) of the compiled DP at one λ, and a plan attaining it."""
    T = setting.T
    if T == 1:
        return float(setting.A_star(np.array([lam]))[0, 0]), plans.vanilla(1)
    k = kernels()
    a, b, c1, c2 = coefficients_at(setting, lam)
    A = np.ascontiguousarray(setting.A_star(np.array([lam]))[:, 0])
    Wt, Ut = _tables(T)
    args = (A, a, b, c1, c2, setting.alpha, setting.sigma, float(lam), is_max, Wt, Ut)
    if T <= NUMPY_DP_T_MAX:
        k.fill_small(*args)                  # the numpy DP's rounding: the same bits on either path
    elif T <= SWEEP_KERNEL_T_MAX:
        k.fill_sweep(*args)
    else:
        k.fill_sweep_blocked(*args, SWEEP_BLOCK)
    plan = None
    if with_plan:  # c_{e,s} is constant over m, so the argmin ignores it
        plan = plan_from(T, k.rebuild(Wt, Ut, a, b, -1.0 if is_max else 1.0))
    return float(Wt[T, 0]), plan


def _numpy_sides(setting: Setting, lam: np.ndarray,
                 with_plans: bool) -> dict[bool, list[tuple[float, Plan | None]]]:
    """Both extremes for every λ by the numpy DP: {is_max: [(value, plan | None) per λ]}."""
    T = setting.T
    a, b = dp_numpy.coefficients(setting, lam)[:2]
    out = {}
    for is_max in (False, True):
        Wt, Ut = dp_numpy.fill_tables(setting, lam, is_max)
        sign = -1.0 if is_max else 1.0
        out[is_max] = [(float(Wt[j, T, 0]),
                        plan_from(T, dp_numpy.rebuild_merges(Wt[j].tolist(), Ut[j].tolist(),
                                                             a[:, j].tolist(), b[:, j].tolist(),
                                                             sign)) if with_plans else None)
                       for j in range(lam.size)]
    return out


# ---- extremes on demand, with certificates ------------------------------------------------------
class LazyExtremes:
    """Extremes per λ, computed when first asked for: one O(T³) kernel pass per side and λ, or, on
    the numpy path, both sides of every λ in one batched pass on the first request.

    ``certified`` ({"boot": (plan, values), "vanilla": (plan, values)}) lets an extreme be read off
    without any DP where it is proven (teacher init, ``certified_extreme``); the certificate comes
    first on either path, so the values do not depend on which DP runs."""

    def __init__(self, setting: Setting, lam: np.ndarray, with_plans: bool = True,
                 certified: dict[str, tuple[Plan, np.ndarray]] | None = None) -> None:
        self.setting, self.lam, self.with_plans = setting, lam, with_plans
        self.certified = certified if setting.init == "teacher" and setting.T >= 2 else None
        self.A = setting.A_star(lam) if self.certified else None
        self.cache: dict[tuple[bool, int], tuple[float, Plan | None]] = {}
        self._batch: dict[bool, list[tuple[float, Plan | None]]] | None = None
        self._numpy = _use_numpy(setting.T, lam.size)

    def get(self, is_max: bool, j: int) -> tuple[float, Plan | None]:
        """(value, plan) of the min (or max if ``is_max``) at λ_j."""
        if (is_max, j) not in self.cache:
            self.cache[(is_max, j)] = self.certificate(is_max, j) or self._dp(is_max, j)
        return self.cache[(is_max, j)]

    def _dp(self, is_max: bool, j: int) -> tuple[float, Plan | None]:
        if not self._numpy:
            return _side(self.setting, float(self.lam[j]), is_max, self.with_plans)
        if self._batch is None:
            self._batch = _numpy_sides(self.setting, self.lam, self.with_plans)
        return self._batch[is_max][j]

    def certificate(self, is_max: bool, j: int) -> tuple[float, Plan] | None:
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
        """The extreme if it was asked for, else NaN."""
        return self.cache[(is_max, j)][0] if (is_max, j) in self.cache else float("nan")


def certified_named(setting: Setting, lam: np.ndarray) -> dict[str, tuple[Plan, np.ndarray]]:
    """BOOT and vanilla with their values at every λ: the candidates of ``LazyExtremes.certificate``."""
    named = plans.named_plans(setting.T, setting.uniform_K)
    return {k: (named[k], named[k].evaluate(setting, lam)) for k in ("boot", "vanilla")}


def certified_extreme(setting: Setting, lam: float, is_max: bool) -> tuple[float, Plan] | None:
    """An extreme over all plans proven without the DP, or None (THEORY §2 key identity).

    Teacher init, f_s(x) = 1 − ρ_s + ρ_s x: a merge is first · f_s(rest), increasing in both.
    Suppose every A*_t <= 1 for t < T (A*_T only needs >= 0). A node not starting at T is <= 1 and
    >= the product of its leaves (f(x) >= x for x <= 1); a node starting at T (its first child
    starts at T too, down to the leaf A*_T) with other leaves q_i is >= A*_T ∏ f_T(q_i), by induction
    with f(xy) >= f(x) f(y) for x, y <= 1 (f(xy) − f(x) f(y) = ρ(1 − ρ)(1 − x)(1 − y)). That bound is
    BOOT's value: BOOT is the min-plan. If every A*_t >= 1 for t < T every inequality flips and the
    bound A*_T f_T(∏ q_i) is vanilla's value: vanilla is the max-plan. (Then BOOT >= P, resp.
    vanilla <= P, since f(x) >= x, resp. <= x.) ``planner.optimal`` skips those DPs; tested against
    the DP.
    """
    lam_a = check_lam(lam)
    return LazyExtremes(setting, lam_a, certified=certified_named(setting, lam_a)).certificate(is_max, 0)


def extremes(setting: Setting, lam: np.ndarray | float, with_plans: bool = True) -> Extremes:
    """Exact min- and max-DP (THEORY §4) for each λ (one O(T³) pass per side and λ)."""
    lam = check_lam(lam)
    sides = LazyExtremes(setting, lam, with_plans)
    lo = [sides.lo(j) for j in range(lam.size)]
    hi = [sides.hi(j) for j in range(lam.size)]
    return Extremes(lam, np.array([v for v, _ in lo]), np.array([v for v, _ in hi]),
                    [p for _, p in lo] if with_plans else [], [p for _, p in hi] if with_plans else [])
