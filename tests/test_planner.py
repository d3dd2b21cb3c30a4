"""THEORY §4–§5: the exact DP against brute force, the optimum, the phase transition."""

import itertools
import json

import numpy as np
import pytest

from opmerge_core.theory import dp, planner, plans, sweep, thresholds, value_sets
from opmerge_core.theory.schedules import SCHEDULES
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.shared_plan import shared_plan
from opmerge_core.theory.shrinkage import INITS

LAMS = np.array([0.1, 0.35, 0.8, 1.0, 1.15, 1.4, 2.0, 3.1, 5.0])
_ALL = {T: list(plans.enumerate_plans(T)) for T in range(1, 8)}


def _brute(setting: Setting, lams: np.ndarray) -> np.ndarray:
    return np.array([p.evaluate(setting, lams) for p in _ALL[setting.T]])   # (n_plans, L)


def _check_extremes(setting: Setting) -> np.ndarray:
    """DP extremes equal the brute-force min/max over all plans, and the rebuilt plans attain them."""
    values = _brute(setting, LAMS)
    ex = dp.extremes(setting, LAMS)
    assert np.allclose(ex.lo, values.min(0), rtol=1e-11, atol=1e-14)
    assert np.allclose(ex.hi, values.max(0), rtol=1e-11, atol=1e-14)
    for j, lam in enumerate(LAMS):
        assert np.isclose(ex.lo_plans[j].evaluate(setting, [lam])[0], ex.lo[j], rtol=1e-11)
        assert np.isclose(ex.hi_plans[j].evaluate(setting, [lam])[0], ex.hi[j], rtol=1e-11)
    return values


@pytest.mark.parametrize(("schedule", "init"), list(itertools.product(SCHEDULES, INITS)))
def test_dp_equals_brute_force(schedule, init):
    for T, S in [(2, 1.0), (3, 0.2), (4, 3.0), (5, 1.0), (6, 0.5), (7, 1.0), (7, 6.4)]:
        setting = Setting(T=T, S=S, schedule=schedule, init=init)
        values = _check_extremes(setting)
        # the optimum is the closest achievable value to the surrogate, exactly, for small T
        target = setting.target(LAMS)
        best = planner.optimal(setting, LAMS)
        closest = np.abs(values - target).min(0)
        for j, b in enumerate(best):
            assert b.exact
            assert np.isclose(abs(b.value - target[j]), closest[j], rtol=1e-9, atol=1e-13)
            assert np.isclose(b.plan.evaluate(setting, [LAMS[j]])[0], b.value, rtol=1e-11)


@pytest.mark.parametrize("surrogate", ["teacher", "exact"])
def test_optimum_against_brute_force_surrogates(surrogate):
    setting = Setting(T=6, S=2.0, surrogate=surrogate)
    lams = np.geomspace(0.1, 5, 40)
    values = _brute(setting, lams)
    target = setting.target(lams)
    for j, b in enumerate(planner.optimal(setting, lams)):
        assert np.isclose(b.w2, setting.r_T([lams[j]])[0] * np.abs(values[:, j] - target[j]).min(),
                          rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("T", [8, 16, 64])
def test_published_claims(T):
    setting = Setting(T=T)
    boot_lams = [0.05, 0.2, 0.5, 0.9, 1.0]
    vanilla_lams = [3.0, 5.0, 20.0, 100.0]
    for b in planner.optimal(setting, boot_lams):
        assert b.regime == "boot" and b.plan == plans.boot(T) and b.exact
    for b in planner.optimal(setting, vanilla_lams):
        assert b.regime == "vanilla" and b.plan == plans.vanilla(T) and b.exact
    # the DP optimum is never beaten by a named strategy
    df = sweep.compare(setting, np.geomspace(0.05, 20, 60))
    for name in plans.STRATEGIES:
        assert (df[f"gap_{name}"] >= -1e-12).all()


def test_switch_is_a_narrow_band_near_one():
    for T in [8, 16, 32, 64, 128]:
        setting = Setting(T=T)
        lam_B = thresholds.lam_B(setting)
        assert 1.0 < lam_B < 1 + 2.5 / T                # λ_B(T) ≈ 1 + 1.6/T
        assert abs(lam_B - (1 + 1.6 / T)) < 0.5 / T
        assert planner.optimal(setting, lam_B * 0.999)[0].regime == "boot"
        assert planner.optimal(setting, lam_B * 1.01)[0].regime != "boot"
        lam_V = thresholds.lam_V(setting)
        assert np.isclose(lam_V, 1 + 1 / np.cos(np.pi / (2 * T)))   # A*_1 = 1 there
        assert np.isclose(setting.A_star([lam_V])[0, 0], 1.0)
        assert planner.optimal(setting, lam_V * 1.001)[0].regime == "vanilla"


def test_thresholds_do_not_depend_on_S():
    ref = sweep.thresholds([16, 64], Model(S=1.0))
    for S in [3.0, 6.4, 10.0]:
        other = sweep.thresholds([16, 64], Model(S=S))
        assert np.allclose(other.lam_V, ref.lam_V)
        assert np.allclose(other.lam_B, ref.lam_B, rtol=2e-3)


def test_zero_and_coarse_init_make_vanilla_win_everywhere():
    for init in ["zero", "coarse"]:
        setting = Setting(T=16, init=init)
        for b in planner.optimal(setting, [0.1, 0.5, 1.0, 3.0]):
            assert b.regime == "vanilla", (init, b.lam, b.plan.text)


def test_mixed_band_is_flagged_beyond_exact_size():
    setting = Setting(T=64)
    mixed = [b for b in planner.optimal(setting, np.linspace(1.0, 1.1, 200)) if b.regime == "mixed"]
    assert mixed, "the thin mixed band should appear just above λ_B"
    assert all(not b.exact for b in mixed)
    assert all(b.lo < b.P < b.hi for b in mixed)


def test_large_T_boot_chain():
    setting = Setting(T=1024)
    best = planner.optimal(setting, 0.5)[0]
    assert best.plan == plans.boot(1024) and best.regime == "boot"
    assert np.isclose(best.value, plans.boot(1024).evaluate(setting, [0.5])[0], rtol=1e-10)


def test_shared_plan_exact_against_brute_force():
    rng = np.random.default_rng(0)
    for T in range(2, 7):
        for _ in range(4):
            setting = Setting(T=T, S=float(rng.choice([0.5, 1.0, 3.0])),
                              init=str(rng.choice(INITS)))
            lams = np.exp(rng.uniform(np.log(0.1), np.log(5.0), size=3))
            shared = shared_plan(setting, lams, front_max=10_000)
            values = _brute(setting, lams)
            objective = np.sqrt(np.sum((setting.r_T(lams)[:, None]
                                        * (values.T - setting.target(lams)[:, None])) ** 2, 0))
            assert shared.exact
            assert np.isclose(shared.w2, objective.min(), rtol=1e-9, atol=1e-13)
            assert np.allclose(shared.plan.evaluate(setting, lams), shared.values)


def test_shared_beam_against_exact_pareto():
    """The beam DP (forced by front_max=0) against the exact Pareto DP where that is affordable: never
    better than the optimum, never worse than the named strategies, lower bound below both."""
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(12):
        T = int(rng.integers(3, 8))
        setting = Setting(T=T, S=float(rng.choice([0.5, 1.0, 3.0])), schedule=str(rng.choice(SCHEDULES)),
                          init=str(rng.choice(INITS)))
        lams = np.exp(rng.uniform(np.log(0.1), np.log(5.0), size=int(rng.integers(2, 6))))
        exact = shared_plan(setting, lams, front_max=100_000)
        beam = shared_plan(setting, lams, front_max=0)
        assert exact.exact and exact.method == "pareto"
        assert beam.method == "beam" and np.allclose(beam.plan.evaluate(setting, lams), beam.values)
        assert beam.w2 >= exact.w2 * (1 - 1e-12) - 1e-15
        assert beam.lower_bound == pytest.approx(exact.lower_bound, rel=1e-12)
        assert exact.lower_bound <= exact.w2 * (1 + 1e-12) + 1e-15
        assert beam.exact == (beam.w2 <= beam.lower_bound * (1 + 1e-12) + 1e-300)
        for plan in plans.named_plans(T).values():
            assert beam.w2 <= np.linalg.norm(setting.w2(plan.evaluate(setting, lams), lams)) + 1e-12
        ratios.append(beam.w2 / max(exact.w2, 1e-300))
    assert np.median(ratios) < 1 + 1e-9          # the beam usually finds the optimum itself


def test_shared_plan_large_is_bounded_and_beats_named_strategies():
    setting = Setting(T=16)
    lams = np.geomspace(0.01, 20, 64)
    shared = shared_plan(setting, lams)
    assert shared.method == "beam" and not shared.exact
    assert 0 < shared.lower_bound < shared.w2 and shared.gap == shared.w2 - shared.lower_bound
    per_direction = planner.optimal(setting, lams)     # the bound: every direction at its optimum
    bound = np.sqrt(sum(b.w2**2 for b in per_direction if b.exact and b.regime != "mixed"))
    assert shared.lower_bound == pytest.approx(bound, rel=1e-9)
    for plan in plans.named_plans(16).values():
        v = plan.evaluate(setting, lams)
        assert shared.w2 <= np.linalg.norm(setting.w2(v, lams)) + 1e-12
    # one coordinate: the shared plan is the per-coordinate optimum, proven
    single = shared_plan(setting, [0.5])
    assert single.exact and single.plan == plans.boot(16) and single.gap == 0


def test_sweep_dataframe_and_bounds():
    df = sweep.phase_sweep(np.geomspace(0.05, 20, 30), [4, 8])
    assert len(df) == 60 and set(df.regime) <= set(planner.REGIMES)
    assert json.loads(df.to_json(orient="records"))[0]["T"] == 4
    with pytest.raises(ValueError, match="at most"):
        sweep.phase_sweep(np.geomspace(0.05, 20, 4000), list(range(2, 60)))


@pytest.mark.parametrize("path", ["numpy", "small", "sweep", "blocked"])
def test_every_dp_path_agrees_with_brute_force(monkeypatch, path):
    """numpy (small T, batched over λ), the compiled small-T kernel, the compiled column sweep and
    the cache-blocked kernel."""
    monkeypatch.setattr(dp, "_use_numpy", lambda T, n: path == "numpy")
    if path in ("sweep", "blocked"):            # the large-T kernels, at small T
        monkeypatch.setattr(dp, "NUMPY_DP_T_MAX", 0)
    if path == "blocked":                       # blocks of 3 starts: rows folded and in-block
        monkeypatch.setattr(dp, "SWEEP_KERNEL_T_MAX", 0)
        monkeypatch.setattr(dp, "SWEEP_BLOCK", 3)
    for schedule, init in [("trig", "teacher"), ("edm", "coarse"), ("linear", "identity"),
                           ("rf", "zero")]:
        for T in (1, 2, 5, 7):
            _check_extremes(Setting(T=T, S=1.3, schedule=schedule, init=init))


def _random_settings(n: int, seed: int, T_max: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield (Setting(T=int(rng.integers(2, T_max + 1)), S=float(np.exp(rng.uniform(-2, 2.5))),
                       schedule=str(rng.choice(SCHEDULES)), init=str(rng.choice(INITS)),
                       surrogate=str(rng.choice(["teacher", "exact"]))),
               np.exp(rng.uniform(np.log(0.05), np.log(20.0), size=4)))


DP_PATHS = {"numpy": (True, 10**9, 10**9, 1), "small": (False, 10**9, 10**9, 1),
            "sweep": (False, 0, 10**9, 1), "blocked 32": (False, 0, 0, 32), "blocked 5": (False, 0, 0, 5)}


def _extremes_on_every_path(monkeypatch, setting: Setting, lams: np.ndarray,
                            paths: tuple[str, ...] = tuple(DP_PATHS)) -> list[dp.Extremes]:
    """``dp.extremes`` by the numpy DP, the compiled small-T kernel, the compiled column sweep and
    the blocked sweep (blocks of 32 and 5 starts), whatever T is."""
    out = []
    for numpy_path, small_max, sweep_max, block in (DP_PATHS[p] for p in paths):
        monkeypatch.setattr(dp, "_use_numpy", lambda T, n, v=numpy_path: v)
        monkeypatch.setattr(dp, "NUMPY_DP_T_MAX", small_max)
        monkeypatch.setattr(dp, "SWEEP_KERNEL_T_MAX", sweep_max)
        monkeypatch.setattr(dp, "SWEEP_BLOCK", block)
        out.append(dp.extremes(setting, lams))
    monkeypatch.undo()
    return out


def test_dp_paths_agree_at_larger_T(monkeypatch):
    for setting, lams in _random_settings(8, 3, 48):
        ref = dp.extremes(setting, lams)
        for ex in _extremes_on_every_path(monkeypatch, setting, lams):
            assert np.allclose(ex.lo, ref.lo, rtol=1e-12) and np.allclose(ex.hi, ref.hi, rtol=1e-12)
            for j, lam in enumerate(lams):
                assert np.isclose(ex.lo_plans[j].evaluate(setting, [lam])[0], ex.lo[j], rtol=1e-11)
                assert np.isclose(ex.hi_plans[j].evaluate(setting, [lam])[0], ex.hi[j], rtol=1e-11)


def test_small_T_dp_paths_are_bit_identical(monkeypatch):
    """Where both may run (T <= NUMPY_DP_T_MAX), the numpy DP and the compiled small-T kernel round
    every candidate the same way: equal extremes and plans whichever a process runs."""
    for setting, lams in _random_settings(12, 7, dp.NUMPY_DP_T_MAX):
        numpy_ex, kernel_ex = _extremes_on_every_path(monkeypatch, setting, lams, ("numpy", "small"))
        assert numpy_ex.lo.tolist() == kernel_ex.lo.tolist(), setting
        assert numpy_ex.hi.tolist() == kernel_ex.hi.tolist(), setting
        assert (numpy_ex.lo_plans, numpy_ex.hi_plans) == (kernel_ex.lo_plans, kernel_ex.hi_plans)


def test_kernels_coarse_jump_is_the_operators_one():
    """The kernels compile ``operators.coarse_jump`` itself: the same value, bit for bit."""
    from opmerge_core.theory import dp_kernels, operators

    for schedule in SCHEDULES:
        setting = Setting(T=9, schedule=schedule)
        for lam in (0.05, 1.0, 7.5):
            for s in range(1, 10):
                for e in range(s):
                    assert dp_kernels._coarse_jump(setting.alpha, setting.sigma, lam, s, e) == \
                        operators.coarse_jump(setting.alpha, setting.sigma, lam, s, e)


def test_certified_extremes_equal_dp_and_brute_force():
    """Teacher init: all A*_t <= 1 → BOOT is the min-plan, all A*_t >= 1 → vanilla the max-plan,
    without a DP (``dp.certified_extreme``), against the DP and brute force."""
    rng = np.random.default_rng(6)
    hits = {False: 0, True: 0}
    for _ in range(40):
        T = int(rng.integers(2, 40))
        setting = Setting(T=T, S=float(np.exp(rng.uniform(-2, 2.5))), schedule=str(rng.choice(SCHEDULES)))
        lam = float(np.exp(rng.uniform(np.log(0.05), np.log(20.0))))
        ex = dp.extremes(setting, lam)
        for is_max in (False, True):
            cert = dp.certified_extreme(setting, lam, is_max)
            if cert is None:
                continue
            hits[is_max] += 1
            dp_value = ex.hi[0] if is_max else ex.lo[0]
            assert cert[0] == pytest.approx(dp_value, rel=1e-12)
            assert cert[1] == (plans.vanilla(T) if is_max else plans.boot(T))
            if T <= 7:
                values = _brute(setting, np.array([lam]))[:, 0]
                assert cert[0] == pytest.approx(values.max() if is_max else values.min(), rel=1e-12)
    assert hits[False] >= 5 and hits[True] >= 5
    for T, lam, is_max in [(6, 5.0, True), (7, 0.7, False), (7, 3.0, True)]:   # A*_T < 1 always (trig)
        setting = Setting(T=T)
        values = _brute(setting, np.array([lam]))[:, 0]
        value, plan = dp.certified_extreme(setting, lam, is_max)
        assert value == pytest.approx(values.max() if is_max else values.min(), rel=1e-12)
        assert plan == (plans.vanilla(T) if is_max else plans.boot(T))
    assert dp.certified_extreme(Setting(T=8), 1.5, False) is None          # between: the DP
    assert dp.certified_extreme(Setting(T=8, init="identity"), 0.5, False) is None


def test_optimal_without_bounds_equals_full_dp():
    """bounds=False runs only the extremes the choice needs: same plan, value, regime, exactness."""
    settings = list(_random_settings(10, 4, 40))
    settings.append((Setting(T=96), np.array([0.5, 1.0, 1.02, 1.05, 1.5, 3.0])))
    for setting, lams in settings:
        lams = np.concatenate([lams, [1.0, 1 + 1.6 / setting.T]])
        full = planner.optimal(setting, lams)
        lazy = planner.optimal(setting, lams, bounds=False)
        for f, z in zip(full, lazy):
            assert (f.plan, f.regime, f.exact) == (z.plan, z.regime, z.exact)
            assert f.value == pytest.approx(z.value, rel=1e-12) and f.w2 == pytest.approx(z.w2, abs=1e-12)
            assert np.isnan(z.lo) or z.lo == pytest.approx(f.lo, rel=1e-12)
            assert np.isnan(z.hi) or z.hi == pytest.approx(f.hi, rel=1e-12)


def test_lam_B_is_a_certified_switch_point():
    """λ_B without bisection: BOOT optimal at λ_B, not at λ_B (1 + rtol), by the full DP; and the
    same switch as the bisection on the regime where that is monotone (trig)."""
    cases = [(s, 1e-6) for s, _ in _random_settings(8, 5, 40)] + [(Setting(T=96), 1e-6),
                                                                  (Setting(T=24, S=4.0), 1e-4)]
    for setting, rtol in cases:
        lam_B = thresholds.lam_B(setting, rtol=rtol)
        if not np.isfinite(lam_B):
            continue
        assert planner.optimal(setting, lam_B, exact_mixed=False)[0].regime == "boot"
        assert planner.optimal(setting, lam_B * (1 + rtol), exact_mixed=False)[0].regime != "boot"

def test_lam_B_crossings_agree_with_bisection(monkeypatch):
    """The crossing-placed probes (large T) and plain bisection find the same switch (trig)."""
    for T in (12, 40):
        setting = Setting(T=T)
        bisected = thresholds.lam_B(setting)
        monkeypatch.setattr(thresholds, "CROSSING_T_MIN", 0)
        assert thresholds.lam_B(setting) == pytest.approx(bisected, rel=2e-6)
        monkeypatch.undo()


def test_single_plan_T_is_named_by_side_of_target():
    setting = Setting(T=2)
    low, high = planner.optimal(setting, [0.3, 10.0])
    assert (low.regime, high.regime) == ("boot", "vanilla")
    assert low.plan == high.plan == plans.vanilla(2) == plans.boot(2)


def test_all_plan_values_equals_enumeration():
    for T in range(1, 8):
        setting = Setting(T=T, S=0.8, init="coarse" if T % 2 else "teacher")
        fast = np.sort(value_sets.all_plan_values(setting, 1.3))
        slow = np.sort([p.evaluate(setting, [1.3])[0] for p in plans.enumerate_plans(T)])
        assert fast.size == plans.little_schroeder(T) and np.allclose(fast, slow, rtol=1e-12)
    assert value_sets.all_plan_values(Setting(T=10), 0.5).size == plans.little_schroeder(10)


def test_threads_get_the_same_extremes():
    """Pages call the planner from threads: per-thread buffers, nogil kernels, same results."""
    from concurrent.futures import ThreadPoolExecutor

    setting = Setting(T=200)
    lams = [0.3, 1.01, 1.2, 1.7, 2.5, 6.0]
    serial = [dp.extremes(setting, lam) for lam in lams]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda lam: dp.extremes(setting, lam), lams))
    for a, b in zip(serial, threaded):
        assert (a.lo, a.hi) == (b.lo, b.hi) and a.lo_plans == b.lo_plans and a.hi_plans == b.hi_plans


def test_per_direction_regimes_and_w2_equal_the_dp_of_each_direction():
    """sweep.per_direction skips the DP outside (λ_B, λ_V) (THEORY §5): it must agree with it."""
    rng = np.random.default_rng(7)
    for T, S, schedule in ((12, 1.0, "trig"), (24, 3.0, "cosine"), (40, 0.5, "edm")):
        setting = Setting(T=T, S=S, schedule=schedule)
        lams = np.concatenate([rng.uniform(0.05, 5.0, 20), [1.0, 1.02, 1.3, 2.0]])
        regimes, w2 = sweep.per_direction(setting, lams)
        for x, regime in zip(lams, regimes):
            best = planner.optimal(setting, float(x))[0]
            assert regime == best.regime, (T, schedule, x)
            assert w2[float(x)] == pytest.approx(best.w2, rel=1e-12, abs=1e-15)
