"""THEORY §1 and §5: schedules, teacher operators, geometry, closed forms."""

import numpy as np
import pytest

from opmerge_core.basics.validation import check_count, check_lam, check_S, check_T
from opmerge_core.theory import operators, plans
from opmerge_core.theory.schedules import SCHEDULES, edm_sigmas, schedule
from opmerge_core.theory.setting import Model, Setting

LAMS = np.array([0.05, 0.3, 1.0, 2.5, 17.0])


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [1, 2, 7, 64])
def test_every_schedule_is_clean_at_zero_and_monotone(name, T):
    alpha, sigma = schedule(name, T)
    assert alpha.shape == sigma.shape == (T + 1,)
    assert alpha[0] == 1.0 and sigma[0] == 0.0
    assert np.all(np.diff(alpha) < 0) and np.all(np.diff(sigma) > 0)   # noise grows with t


def test_schedule_definitions():
    T = 10
    alpha, sigma = schedule("trig", T)
    t = np.arange(T + 1)
    assert np.allclose(alpha, np.cos(np.pi * t / (2 * T))) and alpha[-1] == 0.0
    assert np.allclose(sigma, np.sin(np.pi * t / (2 * T)))
    alpha, sigma = schedule("rf", T)
    assert np.allclose(alpha, 1 - t / T) and np.allclose(sigma, t / T)
    for name in ("trig", "cosine", "linear", "edm"):  # variance preserving
        alpha, sigma = schedule(name, T)
        assert np.allclose(alpha**2 + sigma**2, 1.0)
    ve = edm_sigmas(T)
    assert ve[0] == 0 and np.isclose(ve[1], 0.002) and np.isclose(ve[-1], 80.0)
    alpha, sigma = schedule("edm", T)
    assert np.allclose(sigma / alpha, ve)
    # DDPM: the 1000-step schedule sub-sampled: T = 1000 reproduces ∏(1 − β)
    alpha, _ = schedule("linear", 1000)
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    assert np.allclose(alpha[1:] ** 2, abar)
    alpha10, _ = schedule("linear", 10)
    assert np.allclose(alpha10, alpha[::100])
    alpha, sigma = schedule("cosine", T)
    f = np.cos((t / T + 0.008) / 1.008 * np.pi / 2) ** 2
    assert np.allclose(alpha[:-1] ** 2, (f / f[0])[:-1]) and alpha[-1] == 0


@pytest.mark.parametrize("name", SCHEDULES)
def test_geometry_equals_formula(name):
    alpha, sigma = schedule(name, 16)
    g = operators.geometry(alpha, sigma, LAMS)
    A = operators.A_star(alpha, sigma, LAMS)
    assert np.allclose(g.A_star, A, rtol=1e-12)
    # ⟨v_{t−1}, v_t⟩ / ‖v_t‖²
    dot = np.sum(g.v[:-1] * g.v[1:], axis=-1) / np.sum(g.v[1:] ** 2, axis=-1)
    assert np.allclose(dot, A, rtol=1e-12)
    assert np.allclose(g.r, np.linalg.norm(g.v, axis=-1))
    # the teacher composite shrinks: P = (r_0/r_T) ∏ cos Δθ ≤ r_0/r_T
    P = operators.teacher_composite(alpha, sigma, LAMS)
    assert np.allclose(P, g.r[0] / g.r[-1] * np.prod(g.projection, axis=0))
    assert np.all(P <= operators.exact_flow_map(alpha, sigma, LAMS) + 1e-15)


def test_boundary_identities():
    alpha, sigma = schedule("trig", 12)
    A = operators.A_star(alpha, sigma, LAMS)
    assert np.allclose(A[-1], sigma[-2])                                  # A*_T = σ_{T−1}
    assert np.allclose(operators.coarse_jump(alpha, sigma, LAMS, 12, 0), 0.0)   # DDIM T → 0
    # any coarse jump is ≤ the product of the finer steps
    for s, e in [(12, 0), (12, 5), (7, 2), (3, 1)]:
        fine = np.prod(A[e:s], axis=0)
        assert np.all(operators.coarse_jump(alpha, sigma, LAMS, s, e) <= fine + 1e-12)


@pytest.mark.parametrize("T", [4, 8, 33])
@pytest.mark.parametrize("S", [0.3, 1.0, 6.4])
def test_closed_forms_at_lambda_one(T, S):
    st = Setting(T=T, S=S)
    c = np.cos(np.pi / (2 * T))
    rho = 1 - np.exp(-S)
    assert np.allclose(st.A_star([1.0]), c)
    assert np.isclose(st.P([1.0])[0], c**T)
    assert np.isclose(plans.boot(T).evaluate(st, [1.0])[0], c * (1 - rho + rho * c) ** (T - 1))
    assert np.isclose(plans.vanilla(T).evaluate(st, [1.0])[0], c * (1 - rho + rho * c ** (T - 1)))


REFERENCE = {  # THEORY §5, T = 8, trig VP, S = 1
    0.5: (0.599652, 0.739863, 0.721739, 0.903965, 0.799407, 0.721739, "boot"),
    1.0: (0.856232, 0.902053, 0.900375, 0.950542, 0.919674, 0.900375, "boot"),
    3.0: (1.446996, 1.275487, 1.258014, 1.129491, 1.232687, 1.275487, "vanilla"),
}


@pytest.mark.parametrize("lam", sorted(REFERENCE))
def test_reference_table(lam):
    from opmerge_core.theory import planner

    st = Setting(T=8)
    P, van, boot, temp, prog, dp, regime = REFERENCE[lam]
    assert abs(st.P([lam])[0] - P) < 1e-6
    for name, ref in [("vanilla", van), ("boot", boot), ("temporal", temp), ("progressive", prog)]:
        assert abs(plans.strategy(name, 8).evaluate(st, [lam])[0] - ref) < 1e-6, name
    best = planner.optimal(st, lam)[0]
    assert abs(best.value - dp) < 1e-6 and best.regime == regime


def test_setting_rejects_bad_input():
    for kwargs, msg in [({"T": 0}, "T must be"), ({"T": 5000}, "T must be"), ({"T": "x"}, "T must"),
                        ({"T": 4, "S": -1}, "S (shrinkage)"), ({"T": 4, "S": float("nan")}, "finite"),
                        ({"T": 4, "schedule": "foo"}, "unknown schedule"),
                        ({"T": 4, "init": "x"}, "unknown init"),
                        ({"T": 4, "surrogate": "x"}, "unknown surrogate")]:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            Setting(**kwargs)
    st = Setting(T=4)
    for lam in [-1, 0, float("inf"), float("nan"), "abc", []]:
        with pytest.raises(ValueError, match="lam"):
            st.P(lam)


def test_model_is_the_setting_without_T():
    model = Model(S=2.0, schedule="cosine", init="zero", surrogate="exact", uniform_K=3)
    setting = model.at(16)
    assert setting == Setting(16, S=2.0, schedule="cosine", init="zero", surrogate="exact", uniform_K=3)
    assert setting.model == model and type(setting.model) is Model and model.model is model
    assert setting.as_dict() == {"T": 16, **model.as_dict()}
    assert hash(Model().at(8)) == hash(Setting(8)) and Model().at(8) != Model()
    for kwargs, msg in [({"S": -1}, "S (shrinkage)"), ({"schedule": "foo"}, "unknown schedule"),
                        ({"uniform_K": 0}, "K (uniform block size)")]:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            Model(**kwargs)


def test_checks_take_tighter_bounds():
    assert check_T("8", lo=2, hi=16) == 8
    with pytest.raises(ValueError, match=r"T must be an integer in \[2, 16\], got 1"):
        check_T(1, lo=2, hi=16)
    assert check_lam("0.5", lo=0.05, hi=50)[0] == 0.5
    with pytest.raises(ValueError, match=r"lam must be >= 0\.05, got 0\.01"):
        check_lam(0.01, lo=0.05)
    with pytest.raises(ValueError, match="lam must be <= 50, got 60"):
        check_lam([1.0, 60.0], hi=50)
    assert check_S("0.05", lo=0.05) == 0.05
    with pytest.raises(ValueError, match=r"S \(shrinkage\) must be >= 0.05, got 0"):
        check_S(0, lo=0.05)
    with pytest.raises(ValueError, match="steps must be a positive integer, got -3"):
        check_count(-3, "steps", hi=10)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 10\], got 11"):
        check_count(11, "steps", hi=10)
