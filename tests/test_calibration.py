# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Temperature scaling and the calibration figures (no TensorFlow)."""

import numpy as np
import pytest

from numpy.testing import assert_allclose

from astroclusterclf.calibration import (PROBABILITY_FLOOR, apply_temperature,
                                         calibrate_probabilities,
                                         expected_calibration_error, fit_calibration,
                                         fit_temperature, floor_probabilities,
                                         negative_log_likelihood, reliability_bins)
from astroclusterclf.exceptions import ParameterError


def _overconfident(rng, n, true_t):
    """Logits whose labels are drawn from softmax(logits / true_t)."""
    logits = rng.normal(size=(n, 3)) * 3
    p = apply_temperature(logits, true_t)
    labels = np.array([rng.choice(3, p=row) for row in p])
    return logits, labels


@pytest.mark.parametrize('true_t', [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_truth(true_t):
    logits, labels = _overconfident(np.random.default_rng(1), 4000, true_t)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)


def test_calibration_lowers_ece_and_nll_and_keeps_the_order():
    rng = np.random.default_rng(2)
    logits, labels = _overconfident(rng, 3000, 3.0)
    t = fit_temperature(logits[:1500], labels[:1500])
    raw = apply_temperature(logits[1500:], 1.0)
    calibrated = apply_temperature(logits[1500:], t)
    truth = labels[1500:]
    assert expected_calibration_error(calibrated, truth) < 0.5 * expected_calibration_error(
        raw, truth)
    assert negative_log_likelihood(calibrated, truth) < negative_log_likelihood(raw, truth)
    np.testing.assert_array_equal(raw.argmax(axis=1), calibrated.argmax(axis=1))


def test_calibrate_probabilities_equals_scaling_the_logits():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(calibrate_probabilities(apply_temperature(logits, 1), 2.0),
                               apply_temperature(logits, 2.0))
    p = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(calibrate_probabilities(p, 3.0), p)   # zeros stay zero
    assert calibrate_probabilities(np.zeros((0, 2)), 2.0).shape == (0, 2)


def test_degenerate_inputs():
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, int)) == 1.0
    assert fit_temperature(np.ones((5, 2)), np.zeros(5, int)) == 1.0   # one class
    assert np.isnan(expected_calibration_error(np.zeros((0, 2)), []))
    assert np.isnan(negative_log_likelihood(np.zeros((0, 2)), []))
    with pytest.raises(ParameterError, match='temperature must be positive'):
        apply_temperature(np.zeros((1, 2)), 0)


def test_reliability_bins():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.1, 0.9]])
    bins = reliability_bins(probs, [0, 1, 0, 1], n_bins=10)
    # Bins are (lo, hi]: 0.95 in the last, 0.9 in (0.8, 0.9].
    assert bins['count'].sum() == 4
    assert bins['count'][9] == 2 and bins['accuracy'][9] == 0.5
    assert bins['count'][8] == 1 and bins['accuracy'][8] == 1.0
    assert bins['count'][5] == 1 and bins['accuracy'][5] == 1.0
    assert np.isnan(bins['accuracy'][0])
    # ECE: |0.95 - 0.5| * 2/4 + |0.9 - 1| * 1/4 + |0.55 - 1| * 1/4
    assert expected_calibration_error(probs, [0, 1, 0, 1]) == pytest.approx(
        (0.45 * 2 + 0.1 + 0.45) / 4)


# -- the fallback that cannot collapse ---------------------------------------

def _scaled(n, scale, seed=0):
    rng = np.random.default_rng(seed)
    margin = rng.normal(size=n) * 2
    truth = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)
    logits = np.stack([-scale * margin / 2, scale * margin / 2], axis=1)
    return apply_temperature(logits, 1.0), truth


def test_fit_calibration_softens_an_overconfident_head():
    probs, truth = _scaled(400, scale=4.0)
    t, info = fit_calibration(probs, truth)
    assert info['method'] == 'temperature' and 2.5 < t < 5.5
    assert info['warning'] is None and info['n'] == 400
    assert info['n_errors'] == int(np.sum(probs.argmax(axis=1) != truth))


def test_fit_calibration_separable_set_keeps_the_head():
    # Every held-out prediction right: the likelihood alone would send T to
    # its lower bound and every later prediction to certainty.
    y = np.repeat([0, 1], 40)
    probs = np.where(np.eye(2)[y] > 0, 0.97, 0.03)
    assert fit_temperature(np.log(probs), y) < 0.2      # what used to happen
    t, info = fit_calibration(probs, y)
    assert t == 1.0 and info['method'] == 'none'
    assert info['reason'] == 'held-out predictions separable'
    assert 'only 80 held-out predictions' in info['warning']


def test_fit_calibration_small_set_warns():
    probs, truth = _scaled(12, scale=4.0)
    t, info = fit_calibration(probs, truth)
    assert t == 1.0 and info['method'] == 'none'
    assert 'fewer than 20' in info['reason'] and 'uncertain' in info['warning']


def test_fit_calibration_never_sharpens_and_never_sits_on_a_bound():
    probs, truth = _scaled(400, scale=0.3)        # under-confident
    t, info = fit_calibration(probs, truth)
    assert t == 1.0 and 'never sharpens' in info['reason']
    for scale in (0.5, 2.0, 8.0, 50.0):
        probs, truth = _scaled(300, scale=scale, seed=int(scale))
        t, info = fit_calibration(probs, truth)
        assert 1e-3 * 1.01 < t < 1e3 / 1.01


def test_prior_keeps_a_separable_fit_finite():
    y = np.repeat([0, 1], 40)
    logits = np.where(np.eye(2)[y] > 0, 3.0, -3.0)
    t = fit_temperature(logits, y, prior_width=0.5)
    assert 0.05 < t < 1


def test_floor_probabilities():
    p = floor_probabilities(np.array([[1.0, 0.0], [0.5, 0.5], [np.nan, np.nan]]))
    assert p[0].tolist() == [1 - PROBABILITY_FLOOR, PROBABILITY_FLOOR]
    assert_allclose(p[1], [0.5, 0.5])
    assert np.isnan(p[2]).all()
    three = floor_probabilities(np.array([[1.0, 0.0, 0.0]]))
    assert_allclose(three.sum(), 1) and three.min() == PROBABILITY_FLOOR
