# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.finetune (``retrain(fine_tune=True)``)."""

import numpy as np
import pytest

from astroclusterclf import backbones
from astroclusterclf.finetune import _blur, _rescale, fine_tune, photometric
from astroclusterclf.retrain import _build_head, _Evaluator

SIZE = 32


def test_photometric_changes_but_keeps_range():
    rng = np.random.default_rng(0)
    batch = rng.uniform(0.3, 0.6, (8, SIZE, SIZE, 3)).astype(np.float32)
    out = photometric(batch, rng)
    assert out.shape == batch.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    assert not np.allclose(out, batch)
    assert np.array_equal(photometric(batch, np.random.default_rng(5)),
                          photometric(batch, np.random.default_rng(5)))


def test_blur_and_rescale_preserve_flux_and_shape():
    image = np.zeros((31, 31, 3), np.float32)
    image[15, 15] = 1.0
    blurred = _blur(image, 1.0)
    assert blurred.shape == image.shape
    assert blurred[..., 0].sum() == pytest.approx(1.0, rel=1e-5)
    assert blurred[15, 15, 0] < 0.2
    for zoom in (0.9, 1.1):
        assert _rescale(image, zoom).shape == image.shape


@pytest.fixture
def parts():
    import keras
    backbone = backbones.get_backbone('efficientnet_lite0', trainable=True,
                                      input_size=SIZE)
    head = _build_head(1280, 2, hidden_units=0, seed=0)
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, head(backbone(inputs)))
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 8)
    x = rng.uniform(0, 0.2, (16, SIZE, SIZE, 3)).astype(np.float32)
    x[y == 1, 12:20, 12:20] += 0.7       # a bright square: class 1
    return model, backbone, head, x, y


def _run(parts, **kwargs):
    model, backbone, head, x, y = parts
    options = dict(steps=6, batch_size=8, learning_rate=1e-4, eval_interval=2,
                   rng=np.random.default_rng(0),
                   evaluator=_Evaluator(None, None, []), first_step=0)
    options.update(kwargs)
    return fine_tune(model, backbone, head, x[::2], y[::2], x[1::2], y[1::2],
                     **options)


@pytest.mark.slow
def test_fine_tune_falls_back_when_it_does_not_help(parts):
    model, backbone, head, x, y = parts
    before = [w.numpy() for w in model.weights]
    # A learning rate far too high can only make the validation loss worse.
    info = _run(parts, learning_rate=5.0)
    assert info['kept'] == 'head-only'
    assert info['steps_run'] >= 2
    assert info['val_loss_fine_tuned'] >= info['val_loss_head']
    after = [w.numpy() for w in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow
def test_fine_tune_keeps_an_improvement(parts):
    # The head starts untrained (validation loss log 2): learning the
    # bright square lowers the validation loss, so the tuned weights stay.
    model = parts[0]
    before = [w.numpy() for w in model.weights]
    info = _run(parts, learning_rate=1e-3, steps=8)
    assert info['val_loss_head'] == pytest.approx(np.log(2), abs=0.01)
    assert info['kept'] == 'fine-tuned'
    assert info['val_loss_fine_tuned'] < info['val_loss_head']
    assert info['best_step'] > 0
    assert any(not np.array_equal(a, b.numpy())
               for a, b in zip(before, model.weights))


@pytest.mark.slow   # imports TensorFlow
def test_fine_tune_without_validation_keeps_head(parts):
    model, backbone, head, x, y = parts
    before = [w.numpy() for w in model.weights]
    info = fine_tune(model, backbone, head, x, y, x[:0], y[:0], steps=3,
                     batch_size=4, learning_rate=1e-3, eval_interval=1,
                     rng=np.random.default_rng(0),
                     evaluator=_Evaluator(None, None, []), first_step=0)
    assert info['kept'] == 'head-only' and info['steps_run'] == 0
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, model.weights))
