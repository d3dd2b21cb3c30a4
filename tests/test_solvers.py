"""Solvers against closed forms on Gaussian data N(0, λ) (SFD.md "Teacher solvers"; THEORY §1)."""

import json
import math

import numpy as np
import pytest
import torch

from opmerge_core.cli import main
from opmerge_core.sfd import solvers as S


def factor(solver, lam, n, afs=False, **kw):
    """The solver's linear map t_max → t_min with the exact denoiser (final state / initial state)."""
    g = S.time_grid(n)
    x = S.solve(S.gaussian_denoiser(lam), np.array([g[0]]), g, solver, afs=afs, **kw)
    return float(x[0] / g[0])


def exact(lam):
    return float(S.gaussian_exact_factor(lam, S.DEFAULT_T_MAX, S.DEFAULT_T_MIN))


# ------------------------------------------------------------------------------------------ grids

def test_worked_grid_values():
    np.testing.assert_allclose(S.time_grid(4), [80, 10.93, 0.6699, 0.006], rtol=5e-4)
    np.testing.assert_allclose(S.time_grid(5), [80, 19.00, 3.107, 0.2683, 0.006], rtol=5e-4)
    g = S.time_grid(7, t_min=0.002, rho=3)
    assert g[0] == 80 and g[-1] == 0.002 and (np.diff(g) < 0).all()


@pytest.mark.parametrize("M", [0, 1, 2, 3, 5, 8])
def test_teacher_grid_contains_student_times_bit_for_bit(M):
    for n in range(2, 30):
        fine, coarse = S.teacher_grid(n, M), S.time_grid(n)
        assert fine.size == (M + 1) * (n - 1) + 1
        assert np.array_equal(fine[:: M + 1], coarse)   # exact equality, not a tolerance


def test_grid_bad_input():
    for bad in [dict(n=1), dict(n=10**6), dict(n=4, t_min=80), dict(n=4, t_min=-1), dict(n=2.5)]:
        with pytest.raises(ValueError):
            S.time_grid(**bad)
    with pytest.raises(ValueError):
        S.teacher_grid(4, M=-1)
    with pytest.raises(ValueError):
        S.check_grid([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown solver"):
        S.solve(S.gaussian_denoiser(1.0), np.ones(1), S.time_grid(3), "rk45")


# ------------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("lam", [0.1, 0.5, 1.0, 4.0])
def test_euler_is_product_of_step_factors(lam):
    g = S.time_grid(6)
    want = np.prod([S.gaussian_euler_factor(lam, g[i], g[i + 1]) for i in range(5)])
    assert factor("euler", lam, 6) == pytest.approx(want, rel=1e-12)
    assert factor("dpmpp1", lam, 6) == pytest.approx(want, rel=1e-12)   # DPM-Solver++ 1 = DDIM


@pytest.mark.parametrize("lam", [0.3, 2.0])
def test_heun_step_closed_form(lam):
    g = S.time_grid(5)
    want = 1.0
    for t, s in zip(g[:-1], g[1:]):
        a = S.gaussian_euler_factor(lam, t, s)
        d1, d2 = t / (lam + t * t), s / (lam + s * s) * a
        want *= 1 + (s - t) / 2 * (d1 + d2)
    assert factor("heun", lam, 5) == pytest.approx(want, rel=1e-12)


def test_heun_skips_correction_into_zero():
    lam, grid = 0.7, np.array([80.0, 2.0, 0.0])
    counter = S.CountingDenoiser(S.gaussian_denoiser(lam))
    x = S.solve(counter, np.ones(1), grid, "heun")
    assert counter.nfe == 3 == S.nfe("heun", grid)
    # the last step is a plain Euler step into 0, i.e. the denoiser output at t = 2
    x_at_2 = S.solve(S.gaussian_denoiser(lam), np.ones(1), grid[:2], "heun")
    assert x[0] == pytest.approx(lam / (lam + 4) * x_at_2[0], rel=1e-12)


def test_exact_flow_map_closed_form():
    lam, t, s = 0.5, 80.0, 0.006
    ref = S.solve(S.gaussian_denoiser(lam), np.ones(1), S.time_grid(3001, t_min=s), "heun")[0]
    assert ref == pytest.approx(math.sqrt((lam + s * s) / (lam + t * t)), rel=1e-5)


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2), ("dpmpp2", 2), ("dpmpp3m", 2)])
def test_global_convergence_order(solver, order):
    """Halving the step size divides the error by ≈ 2^order. DPM-Solver++(3M) is globally 2nd order
    on the whole grid because of its 1st-order warm-up step (its local order is checked below)."""
    lam = 0.5
    err = [abs(factor(solver, lam, n) / exact(lam) - 1) for n in (161, 321, 641)]
    ratios = [err[0] / err[1], err[1] / err[2]]
    assert all(0.8 * 2**order < r < 1.25 * 2**order for r in ratios), ratios
    assert err[2] < err[1] < err[0]


@pytest.mark.parametrize("order", [1, 2, 3])
def test_dpmpp_local_order(order):
    """One multistep update from exact history: local error ∝ h^{order+1}."""
    lam, errs = 0.5, []
    for h in (0.1, 0.05, 0.025):
        g = np.array([np.exp(2 * h), np.exp(h), 1.0, np.exp(-h)])
        xs = [S.gaussian_exact_factor(lam, g[0], gi) for gi in g]
        ms = [lam / (lam + gi**2) * xi for gi, xi in zip(g, xs)]
        errs.append(abs(S._dpmpp_step(xs[2], ms[2], [ms[1], ms[0]], g, 2, order) - xs[3]))
    ratio = errs[1] / errs[2]
    assert 0.8 * 2 ** (order + 1) < ratio < 1.1 * 2 ** (order + 1), ratio


def test_dpmpp3m_overshoots_at_12_steps():
    """SFD.md: DPM-Solver++(3M) overshoots the exact map by up to ~20% at 12 steps."""
    for rule, top in [("sfd", 1.169), ("dpm-solver", 1.231)]:   # max over λ of factor / exact
        over = [factor("dpmpp3m", lam, 13, lower_order_final=rule) / exact(lam)
                for lam in np.geomspace(1e-4, 100, 60)]
        assert max(over) == pytest.approx(top, abs=2e-3), rule


def test_sfd_final_order_rule_by_hand_on_13_timestamps(monkeypatch):
    """SFD's dpm_pp_sampler at N = 13 timestamps (12 steps), step i: order i + 1 while i + 1 < 3, else
    min(3, 13 − (i + 1)): i = 0 → 1, i = 1 → 2, i = 2..9 → 3, i = 10 → min(3, 2) = 2, i = 11 → 1.
    DPM-Solver's rule lowers nothing at 12 (≥ 10) steps; both agree on the warm-up."""
    by_hand = {"sfd": [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 2, 1], "dpm-solver": [1, 2] + [3] * 10}
    seen: list[int] = []
    step = S._dpmpp_step
    monkeypatch.setattr(S, "_dpmpp_step", lambda x, m0, h, g, i, order: seen.append(order) or step(
        x, m0, h, g, i, order))
    for rule, want in by_hand.items():
        assert S.dpmpp_orders(3, 13, rule) == want
        seen.clear()
        factor("dpmpp3m", 0.25, 13, lower_order_final=rule)
        assert seen == want, rule
    assert S.dpmpp_orders(3, 4, "sfd") == S.dpmpp_orders(3, 4, "dpm-solver") == [1, 2, 1]
    assert S.dpmpp_orders(2, 13, "sfd")[-2:] == [2, 1] and S.dpmpp_orders(3, 13, "none") == [1, 2] + [3] * 10
    # the consequence at λ = 0.25: SFD's teacher overshoots the exact map by 16.6%, DPM-Solver's by 5.4%
    assert factor("dpmpp3m", 0.25, 13) / exact(0.25) == pytest.approx(1.16573, abs=1e-4)
    assert factor("dpmpp3m", 0.25, 13, lower_order_final="dpm-solver") / exact(0.25) == pytest.approx(
        1.05427, abs=1e-4)
    with pytest.raises(ValueError, match="lower-order-final"):
        S.dpmpp_orders(3, 13, "always")


def test_lower_order_final_changes_short_runs_only():
    for n, changed in [(4, True), (11, False)]:
        a = factor("dpmpp3m", 0.5, n, lower_order_final="dpm-solver")
        b = factor("dpmpp3m", 0.5, n, lower_order_final="none")
        assert (a != b) == changed
    assert factor("dpmpp3m", 0.5, 11) != factor("dpmpp3m", 0.5, 11, lower_order_final="none")


def test_dynamic_thresholding_numpy_and_torch_agree():
    x0 = np.linspace(-5, 5, 2000).reshape(2, 1000)
    y = S.dynamic_threshold(x0)
    s = np.quantile(np.abs(x0[0]), 0.995)
    assert y.max() == pytest.approx(1.0) and y[0, 0] == pytest.approx(-1.0)
    np.testing.assert_allclose(y[0, 500], x0[0, 500] / s)
    np.testing.assert_allclose(S.dynamic_threshold(torch.tensor(x0)).numpy(), y, rtol=1e-12)
    small = np.full((1, 10), 0.3)   # the floor 1 keeps data inside [-1, 1] untouched
    np.testing.assert_array_equal(S.dynamic_threshold(small), small)
    assert factor("dpmpp3m", 100.0, 6, thresholding=True) != factor("dpmpp3m", 100.0, 6)


# ------------------------------------------------------------------------------------ AFS, NFE

def test_afs_direction_is_the_unit_variance_direction():
    """For λ = 1 the exact direction is t x/(1+t²); AFS uses x/√(1+t²): ratio √(1+t²)/t (1+O(1/t²))."""
    t, x = 80.0, np.array([3.0])
    d_afs = (x - S.afs_denoised(x, t)) / t
    d_exact = (x - S.gaussian_denoiser(1.0)(x, t)) / t
    assert d_afs[0] / d_exact[0] == pytest.approx(math.sqrt(1 + t * t) / t, rel=1e-12)
    assert abs(d_afs[0] / d_exact[0] - 1) < 1e-4
    g = S.time_grid(4)
    afs_step = 1 + (g[1] - g[0]) / math.sqrt(1 + g[0] ** 2)
    want = afs_step * np.prod([S.gaussian_euler_factor(1.0, g[i], g[i + 1]) for i in (1, 2)])
    assert factor("euler", 1.0, 4, afs=True) == pytest.approx(want, rel=1e-12)
    assert factor("euler", 1.0, 4, afs=True) == pytest.approx(factor("euler", 1.0, 4), rel=1e-3)


@pytest.mark.parametrize("solver", S.SOLVERS)
@pytest.mark.parametrize("afs", [False, True])
def test_nfe_counted(solver, afs):
    g = S.time_grid(5)
    counter = S.CountingDenoiser(S.gaussian_denoiser(1.0))
    seen = []
    x, traj = S.solve(counter, np.ones(3), g, solver, afs=afs, return_trajectory=True,
                      callback=lambda info: seen.append(info["s"]))
    assert counter.nfe == S.nfe(solver, g, afs) == (4 if solver != "heun" else 8) - afs
    assert traj.shape == (5, 3) and np.array_equal(traj[-1], x) and seen == list(g[1:])


def test_torch_and_numpy_agree():
    g = S.time_grid(6)
    D = S.gaussian_denoiser(0.5)
    xn = np.random.default_rng(0).standard_normal((4, 3)) * 80
    for solver in S.SOLVERS:
        a = S.solve(D, xn, g, solver)
        b = S.solve(D, torch.tensor(xn), g, solver)
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-12)


# ------------------------------------------------------------------------------------------- CLI

def test_cli_solve_json(capsys):
    code = main(["solve", "--solver", "euler", "--lam", "0.5", "--num-steps", "6", "--json"])
    obj = json.loads(capsys.readouterr().out)
    assert code == 0 and obj["nfe"] == 5
    # final state / ε with x = t_max ε: t_max times the map t_max → t_min, for the solver and exactly
    assert obj["factor"] == pytest.approx(80 * factor("euler", 0.5, 6), rel=1e-12)
    assert obj["exact"] == pytest.approx(80 * math.sqrt((0.5 + 0.006**2) / (0.5 + 80**2)), rel=1e-12)
    assert obj["exact_map"] == pytest.approx(obj["exact"] / 80, rel=1e-12)
    code = main(["solve", "--solver", "dpmpp3m", "--lam", "1", "--num-steps", "4", "--afs", "--json"])
    obj = json.loads(capsys.readouterr().out)
    assert code == 0 and obj["nfe"] == 2
    ratios = {}
    for rule in ("sfd", "dpm-solver"):
        code = main(["solve", "--lam", "0.25", "--num-steps", "13", "--lower-order-final", rule, "--json"])
        obj = json.loads(capsys.readouterr().out)
        assert code == 0 and obj["lower_order_final"] == rule
        ratios[rule] = obj["ratio"]
    assert ratios["sfd"] == pytest.approx(1.16573, abs=1e-4)
    assert ratios["dpm-solver"] == pytest.approx(1.05427, abs=1e-4)


@pytest.mark.parametrize("argv", [
    ["--num-steps", "1"], ["--num-steps", "100000"], ["--solver", "rk4"], ["--lam", "0"],
    ["--lam", "-1"], ["--t-min", "80"], ["--t-min", "5", "--t-max", "1"], ["--lower-order-final", "x"],
])
def test_cli_solve_bad_input(capsys, argv):
    code = main(["solve", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
