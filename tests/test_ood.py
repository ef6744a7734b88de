# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The out-of-distribution description and score (no TensorFlow)."""

import numpy as np
import pytest

from astroclusterclf.exceptions import ModelFileError, ParameterError
from astroclusterclf.ood import DEFAULT_MARGIN, FeatureDensity


@pytest.fixture
def features():
    """Training, held-out and outlying feature vectors: the first two lie
    near a 6-dimensional subspace of a 200-dimensional space."""
    rng = np.random.default_rng(0)
    basis = rng.random((6, 200))

    def near(n):
        return rng.random((n, 6)) @ basis + 0.01 * rng.random((n, 200))
    return near(500), near(100), rng.random((50, 200))


def test_scores_training_images_about_one(features):
    train, held_out, outliers = features
    density = FeatureDensity.fit(train, n_components=6)
    assert np.mean(density.score(train)) == pytest.approx(1.0)
    assert np.median(density.score(held_out)) < 2
    assert np.min(density.score(outliers)) > 50


def test_threshold_separates(features):
    train, held_out, outliers = features
    density = FeatureDensity.fit(train, n_components=6).choose_threshold(held_out)
    assert density.threshold == pytest.approx(
        DEFAULT_MARGIN * np.quantile(density.score(held_out), 0.95))
    assert np.mean(density.score(held_out) > density.threshold) <= 0.02
    assert np.all(density.score(outliers) > density.threshold)


def test_scale_invariance(features):
    """Feature vectors are compared by direction: a brighter copy of an
    image is not an outlier."""
    train, held_out, _ = features
    density = FeatureDensity.fit(train, n_components=6)
    np.testing.assert_allclose(density.score(held_out * 7), density.score(held_out))


def test_round_trip_and_size(features):
    train, held_out, _ = features
    density = FeatureDensity.fit(train, n_components=6).choose_threshold(held_out)
    data = density.to_bytes()
    again = FeatureDensity.from_bytes(data)
    np.testing.assert_allclose(again.score(held_out), density.score(held_out), rtol=1e-4)
    assert again.threshold == pytest.approx(density.threshold)
    # k x d float32 plus the mean: compact
    assert len(data) < (6 + 1) * 200 * 4 + 2000


def test_large_problem_uses_the_randomized_axes():
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(80, 1280))
    train = np.abs(rng.normal(size=(900, 80)) @ basis)
    density = FeatureDensity.fit(train, n_components=64)
    axes = density.components
    np.testing.assert_allclose(axes @ axes.T, np.eye(64), atol=1e-8)
    assert density.score(train[:50]).mean() < 2


def test_bad_input_and_corrupt_bytes(features):
    train = features[0]
    with pytest.raises(ParameterError, match='N >= 3'):
        FeatureDensity.fit(train[:2])
    density = FeatureDensity.fit(train, n_components=6)
    with pytest.raises(ParameterError, match='features of length 3'):
        density.score(np.ones((1, 3)))
    with pytest.raises(ModelFileError, match='corrupt out-of-distribution'):
        FeatureDensity.from_bytes(b'not an npz', name='m.keras')
    bad = FeatureDensity(density.mean, density.components[:, :10], density.scale)
    with pytest.raises(ModelFileError, match='inconsistent'):
        FeatureDensity.from_bytes(bad.to_bytes())
