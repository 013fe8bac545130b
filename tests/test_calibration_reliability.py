"""Cross-checks of the calibration metrics against independent implementations.

torchmetrics (binned ECE, MCE), scikit-learn (Brier, NLL), relplot and a brute-force integral (smooth ECE).
"""
import numpy as np
import pytest
import torch
from attnprune_nb.calibration import (expected_calibration_error, maximum_calibration_error, brier_score,
                                      negative_log_likelihood, smooth_ece, aurc, paired_bootstrap,
                                      fit_temperature, check_probs)
from attnprune_nb.core import AttnPruneError


def random_probs(seed, n=300, c=3, scale=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * scale
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return p, rng.integers(0, c, n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("c", [2, 4])
def test_ece_matches_torchmetrics(seed, c):
    from torchmetrics.functional.classification import multiclass_calibration_error
    p, y = random_probs(seed, c=c)
    assert (p.max(1) < 1).all()
    def ref(norm):
        return multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=c, n_bins=15,
                                            norm=norm).item()
    assert expected_calibration_error(p, y) == pytest.approx(ref("l1"), abs=1e-6)
    assert maximum_calibration_error(p, y) == pytest.approx(ref("max"), abs=1e-6)


def test_confidence_one_falls_in_last_bin():
    p = np.array([[1.0, 0.0], [0.97, 0.03], [0.55, 0.45]])
    y = np.array([1, 0, 0])
    # bins: 0.55 -> bin 8 (alone, right), 1.0 and 0.97 -> bin 14 (one right, one wrong)
    expected = (1 * abs(1 - 0.55) + 2 * abs(0.5 - (1.0 + 0.97) / 2)) / 3
    assert expected_calibration_error(p, y) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(3))
def test_brier_and_nll_match_sklearn(seed):
    from sklearn.metrics import brier_score_loss, log_loss
    p, y = random_probs(seed, c=4)
    assert brier_score(p, y) == pytest.approx(brier_score_loss(y, p, labels=[0, 1, 2, 3]), abs=1e-9)
    assert negative_log_likelihood(p, y) == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]), abs=1e-9)
    p2, y2 = random_probs(seed, c=2)
    # binary: scikit-learn reports half of the two-class sum (its positive-class Brier score)
    assert brier_score(p2, y2) == pytest.approx(2 * brier_score_loss(y2, p2[:, 1]), abs=1e-9)


def sign_changing(seed, n=500):
    "Confidences in [0.5, 1] whose accuracy is above them in some places and below in others."
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.5, 1, n)
    right = rng.random(n) < np.clip(f - 0.1 + 0.15 * np.sin(4 * np.pi * f), 0, 1)
    return np.stack([f, 1 - f], 1), np.where(right, 0, 1)


@pytest.mark.parametrize("seed", range(2))
def test_smooth_ece_agrees_with_relplot(seed):
    # relplot cuts its reflected kernel at |t - f| <= 0.5 and evaluates on a 200-point mesh, so it is itself a
    # few 1e-4 off the defining integral (more at large bandwidths, where its cut loses mass): the exact
    # reference is the brute-force integral below; relplot is an independent implementation of the definition.
    relplot = pytest.importorskip("relplot")
    p, y = random_probs(seed, n=500, c=2, scale=1.0 + seed)
    f, correct = p.max(1), (p.argmax(1) == y).astype(float)
    assert smooth_ece(p, y) == pytest.approx(relplot.smECE(f, correct), abs=7e-4)
    p, y = sign_changing(seed)
    assert smooth_ece(p, y) == pytest.approx(relplot.smECE(p.max(1), (y == 0).astype(float)), abs=5e-4)


def brute_force_smooth_ece_at(f, r, sigma):
    "The defining integral: residuals smoothed by the Gaussian summed over its reflections, no grid for f."
    t = np.linspace(0, 1, 20001)
    images = int(np.ceil(5 * sigma)) + 1  # images further than 10 sigma add nothing in float64
    k = sum(np.exp(-(t[:, None] - s * f[None] - 2 * j) ** 2 / (2 * sigma ** 2))
            for j in range(-images, images + 1) for s in (1, -1))
    return np.trapezoid(np.abs((k / (np.sqrt(2 * np.pi) * sigma)) @ r) / len(f), t)


@pytest.mark.parametrize("seed,sigma", [(2, 0.1), (3, 0.05), (0, 0.3), (1, 0.5), (0, 1.0)])
def test_smooth_ece_at_matches_brute_force_integral(seed, sigma):
    from attnprune_nb.calibration import smooth_ece_at
    for p, y in (random_probs(seed, n=200, c=2, scale=1.0 + seed), sign_changing(seed, n=200)):
        f, correct = p.max(1), (p.argmax(1) == y).astype(float)
        want = brute_force_smooth_ece_at(f, correct - f, sigma)
        assert smooth_ece_at(f, correct, sigma) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.0])
def test_smooth_ece_kernel_keeps_all_its_mass(sigma):
    # With every residual of one sign, smoothing moves mass but loses none: the value is |mean residual| at
    # any bandwidth. A kernel cut at |t - f| <= 1 fails this (0.652 instead of 0.770 at sigma 0.7).
    from attnprune_nb.calibration import smooth_ece_at
    f = np.random.default_rng(0).uniform(0.5, 1, 300)
    assert smooth_ece_at(f, np.zeros(300), sigma) == pytest.approx(f.mean(), abs=1e-9)
    assert smooth_ece_at(f, np.ones(300), sigma) == pytest.approx(1 - f.mean(), abs=1e-9)


def test_smooth_ece_of_a_sure_half_wrong_model():
    # always 0.99 sure, right half the time: the residual has one sign, so smECE = |0.5 - 0.99| exactly at the
    # fixed point sigma = 0.49 (the truncated kernel gave 0.473)
    p = np.array([[0.99, 0.01]] * 400)
    assert smooth_ece(p, np.array([0, 1] * 200)) == pytest.approx(0.49, abs=1e-4)


def test_aurc_random_ranking_matches_expectation():
    # all confidences tied: every coverage has expected risk = error rate
    p = np.full((10, 2), 0.5)
    y = np.array([0] * 7 + [1] * 3)
    p[:, 0] += 1e-12
    p = p / p.sum(1, keepdims=True)
    assert aurc(p, y) == pytest.approx(0.3)


def test_paired_bootstrap_uses_same_indices():
    p, y = random_probs(0)
    shifted = p.copy()
    r = paired_bootstrap("nll", p, shifted, y, n_resamples=100)
    assert r["low"] == r["high"] == 0.0  # same model: every paired resample differs by exactly 0


def test_temperature_fitted_on_heldout_recovers_scale():
    p, y = random_probs(1, n=3000, c=3, scale=1.0)
    # draw labels from p so that p is calibrated, then sharpen
    rng = np.random.default_rng(2)
    y = np.array([rng.choice(3, p=row) for row in p])
    T = fit_temperature(np.log(p[:1500]) * 2.5, y[:1500])
    assert T == pytest.approx(2.5, rel=0.1)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(AttnPruneError, match="sum to 1"):
        check_probs(np.array([[0.2, 0.2]]), np.array([0]))
    with pytest.raises(AttnPruneError, match="out of range"):
        expected_calibration_error(np.array([[0.5, 0.5]]), np.array([5]))
