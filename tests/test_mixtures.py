"""Gaussian mixtures: exact denoiser vs closed forms and quadrature, sampling, EM, sliced W2."""

import math

import numpy as np
import pytest
import torch

from opmerge_core.sfd import mixtures as MX
from opmerge_core.sfd import solvers


def test_one_component_is_the_gaussian_denoiser():
    lam = np.array([0.5, 2.0, 0.1])
    g = MX.GaussianMixture([1.0], np.zeros((1, 3)), lam[None])
    x = np.random.default_rng(0).standard_normal((7, 3)) * 5
    for t in (0.006, 0.7, 80.0):
        np.testing.assert_allclose(g.denoise(x, t), solvers.gaussian_denoiser(lam)(x, t), rtol=1e-12)
    shifted = MX.GaussianMixture([1.0], [[1.0, -2.0, 0.0]], lam[None])   # mean μ: μ + λ/(λ+t²)(x − μ)
    mu = shifted.means[0]
    np.testing.assert_allclose(shifted.denoise(x, 3.0), mu + lam / (lam + 9) * (x - mu), rtol=1e-12)


def test_denoiser_matches_bayes_quadrature_1d():
    g = MX.GaussianMixture([0.2, 0.5, 0.3], [[-2.0], [0.5], [3.0]], [0.1, 0.4, 0.05])
    x0 = np.linspace(-8, 10, 200001)
    prior = np.exp(g.log_density(x0[:, None]))
    for t in (0.3, 1.5):
        for x in (-1.0, 0.7, 2.4):
            w = prior * np.exp(-0.5 * ((x - x0) / t) ** 2)
            want = (x0 * w).sum() / w.sum()
            assert g.denoise(np.array([[x]]), t)[0, 0] == pytest.approx(want, abs=1e-6)


def test_torch_matches_numpy_and_noised_density_integrates():
    g = MX.preset("ring8")
    x = g.sample(50, 1, t=0.5)
    np.testing.assert_allclose(g.denoise(torch.tensor(x), 0.5).numpy(), g.denoise(x, 0.5), rtol=1e-10)
    xs = np.linspace(-6, 6, 301)
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    mass = np.exp(g.log_density(grid, t=0.5)).sum() * (xs[1] - xs[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", list(MX.PRESETS))
def test_presets_sample_with_the_right_moments(name):
    g = MX.preset(name)
    x = g.sample(200_000, 0)
    assert g.dim == 2 and name in MX.PRESET_LABELS
    np.testing.assert_allclose(x.mean(0), g.mean(), atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), g.covariance(), atol=0.03)


def test_em_recovers_separated_mixture():
    truth = MX.GaussianMixture([0.3, 0.7], [[-3.0, 0.0], [3.0, 1.0]], [[0.5, 0.2], [0.3, 1.0]])
    fit = MX.fit_gmm(truth.sample(20_000, 3), K=2, iters=200)
    order = np.argsort(fit.means[:, 0])
    np.testing.assert_allclose(fit.weights[order], truth.weights, atol=0.02)
    np.testing.assert_allclose(fit.means[order], truth.means, atol=0.05)
    np.testing.assert_allclose(fit.variances[order], truth.variances, rtol=0.08)


def test_gmm_round_trip(tmp_path):
    g = MX.preset("two-blobs")
    MX.save_gmm(g, tmp_path / "g.npz")
    h = MX.load_gmm(tmp_path / "g.npz")
    np.testing.assert_array_equal(h.means, g.means)
    np.testing.assert_array_equal(h.variances, g.variances)


def test_sliced_w2():
    g = MX.preset("two-blobs")
    a, b = g.sample(4000, 1), g.sample(4000, 2)
    assert MX.sliced_w2(a, a) == 0.0
    assert MX.sliced_w2(a, b) < 0.05                        # same distribution: Monte-Carlo noise only
    assert MX.sliced_w2(a, MX.preset("ring8").sample(3000, 1)) > 0.3
    c = np.array([0.8, 0.0])                                # a shift by c: |c| √(mean cos²) → |c|/√2
    assert MX.sliced_w2(a, a + c, n_slices=4000) == pytest.approx(0.8 / math.sqrt(2), rel=0.03)


def test_bad_input():
    with pytest.raises(ValueError):
        MX.GaussianMixture([1.0, 1.0], [[0.0, 0.0]], [1.0])
    with pytest.raises(ValueError):
        MX.GaussianMixture([1.0], [[0.0]], [-1.0])
    with pytest.raises(ValueError, match="unknown mixture preset"):
        MX.preset("spiral")
    with pytest.raises(ValueError):
        MX.fit_gmm(np.zeros((10, 2)), K=11)
    with pytest.raises(ValueError):
        MX.sliced_w2(np.zeros((5, 2)), np.zeros((5, 3)))


def test_merge_error_zero_for_gaussian_and_growing_for_mixtures():
    gauss = MX.merge_errors(MX.preset("gaussian"), T=8, ms=(1, 2, 8), n=500)
    assert all(r["affine"] < 1e-10 for r in gauss)              # a linear teacher merges exactly
    assert gauss[0]["jump"] == 0.0 and gauss[1]["jump"] < gauss[2]["jump"]
    ring = MX.merge_errors(MX.preset("ring8"), T=8, ms=(1, 2, 4, 8), n=500)
    affine = [r["affine"] for r in ring]
    assert affine[0] > 1e-3 and all(a < b for a, b in zip(affine, affine[1:]))
    with pytest.raises(ValueError, match="divide"):
        MX.merge_errors(MX.preset("ring8"), T=8, ms=(3,))
