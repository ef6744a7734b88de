# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Temperature scaling and the calibration figures (no TensorFlow)."""

import numpy as np
import pytest

from astroclusterclf.calibration import (apply_temperature, calibrate_probabilities,
                                         expected_calibration_error, fit_temperature,
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
