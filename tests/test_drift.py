# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Degraded copies for calibration under survey drift (no TensorFlow)."""

import numpy as np
import pytest

from astroclusterclf.drift import degrade
from astroclusterclf.exceptions import ParameterError


def _frame(seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.normal(200.0, 4.0, (64, 64))
    yy, xx = np.mgrid[:64, :64]
    frame += 2000 * np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / (2 * 2.0 ** 2))
    return frame


def test_level_zero_is_the_identity():
    frame = _frame()
    np.testing.assert_allclose(degrade(frame, np.random.default_rng(1), level=0), frame)


def test_degraded_copies_are_worse_and_reproducible():
    frame = _frame()
    copies = [degrade(frame, np.random.default_rng([3, i])) for i in range(20)]
    again = degrade(frame, np.random.default_rng([3, 0]))
    np.testing.assert_array_equal(copies[0], again)
    # Blurred or shrunk: the peak drops; noisier: the sky scatter grows;
    # the sky level stays.
    peaks = [c.max() for c in copies]
    assert np.median(peaks) < 0.8 * frame.max()
    sky = [np.std(c[:8, :8]) for c in copies]
    assert np.median(sky) > 1.2 * np.std(frame[:8, :8])
    assert abs(np.median([np.median(c) for c in copies]) - np.median(frame)) < 5


def test_bands_and_holes():
    frame = _frame()
    frame[10:14, 10:20] = np.nan
    cube = np.stack([frame, 2 * frame, 3 * frame])
    out = degrade(cube, np.random.default_rng(0))
    assert out.shape == cube.shape
    assert np.isnan(out[:, 10:14, 10:20]).all()
    assert np.isfinite(out[:, 30:34, 30:34]).all()


def test_errors():
    with pytest.raises(ParameterError, match='level'):
        degrade(_frame(), np.random.default_rng(0), level=2)
    with pytest.raises(ParameterError, match='2-D or 3-D'):
        degrade(np.zeros(5), np.random.default_rng(0))
