# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.heads: the logistic head and its grouped
cross-validation."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from astroclusterclf.exceptions import ParameterError
from astroclusterclf.heads import (DEFAULT_CS, cross_validate_head, fit_logistic_head,
                                   grouped_folds)


def test_grouped_folds_are_stratified_and_deterministic():
    y = np.repeat([0, 1, 2], [10, 15, 20])
    folds = grouped_folds(y, n_variants=8, n_folds=5, seed=3)
    assert folds.shape == (45,)
    for k in range(5):
        assert np.bincount(y[folds == k], minlength=3).tolist() == [2, 3, 4]
    assert np.array_equal(folds, grouped_folds(y, n_variants=8, n_folds=5, seed=3))
    assert not np.array_equal(folds, grouped_folds(y, n_variants=8, n_folds=5, seed=4))
    # Fewer folds when a class is small.
    assert grouped_folds([0, 0, 1, 1, 1], n_folds=5).max() == 1


def test_variants_of_an_image_never_leak_across_folds():
    # Random labels; each image's 8 variants are near-copies of each other.
    # A head that saw a held-out image's variants in training would
    # recognize it (held-out accuracy near 1); with the variants kept in
    # one fold it can only guess.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    rng.shuffle(y)
    base = rng.normal(size=(80, 1, 200))
    x = base + 0.01 * rng.normal(size=(80, 8, 200))
    cv = cross_validate_head(x, y, seed=0, Cs=(1.0,))
    assert cv.accuracy < 0.7
    # The same data with the variants scattered as separate images leaks.
    scattered = x.reshape(640, 1, 200)
    leaked = cross_validate_head(scattered, np.repeat(y, 8), seed=0, Cs=(1.0,))
    assert leaked.accuracy > 0.9


def test_cross_validate_head_chooses_by_log_loss_and_refits():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 4, 50)) + 0.8 * y[:, None, None] * (np.arange(50) < 5)
    cv = cross_validate_head(x, y, seed=0)
    assert set(cv.scores) == set(DEFAULT_CS)
    assert cv.log_loss == min(cv.scores.values())
    assert cv.C == min(cv.scores, key=cv.scores.get)
    assert cv.oof_probabilities.shape == (60, 2)
    assert_allclose(cv.oof_probabilities.sum(axis=1), 1)
    assert cv.accuracy == np.mean(cv.oof_probabilities.argmax(axis=1) == y)
    # The refitted head is the recipe at the chosen C on all images.
    again = fit_logistic_head(x, y, C=cv.C)
    assert_allclose(cv.head.coef, again.coef)
    assert cv.head.C == cv.C


def test_dense_weights_reproduce_the_head():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 10)
    x = rng.normal(size=(30, 20)) * rng.uniform(0.1, 10, 20) + np.eye(3)[y] @ rng.normal(
        size=(3, 20))
    head = fit_logistic_head(x, y, C=0.1)
    kernel, bias = head.dense_weights()
    logits = x @ kernel + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert_allclose(p, head.predict_proba(x), rtol=1e-4, atol=1e-6)


def test_binary_and_absent_classes():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 2], 10)       # class 1 has no image
    head = fit_logistic_head(rng.normal(size=(20, 5)), y, C=1.0, n_classes=3)
    p = head.predict_proba(rng.normal(size=(4, 5)))
    assert p.shape == (4, 3) and np.all(p[:, 1] < 1e-6)


def test_errors():
    with pytest.raises(ParameterError, match='two classes'):
        cross_validate_head(np.zeros((4, 3)), np.zeros(4, int))
    with pytest.raises(ParameterError, match='two images of each class'):
        cross_validate_head(np.zeros((4, 3)), np.array([0, 0, 0, 1]))
    with pytest.raises(ParameterError, match='shape'):
        cross_validate_head(np.zeros((4,)), np.array([0, 0, 1, 1]))
