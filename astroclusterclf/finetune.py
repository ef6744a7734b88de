# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Fine-tuning of the backbone with the head, for small training sets
(``retrain(fine_tune=True)``).

What makes it safe with 60-100 images per class:

- **layer-wise learning rates**: the backbone's weighted layers are split
  into four groups from the input up; the head and the top group learn at
  the full rate, each group below at `LAYER_DECAY` times the one above
  (Adam, one optimizer per group); BatchNorm stays frozen in inference
  mode;
- **augmentation**: a random rotation/flip (the dihedral group) and a
  photometric change (`photometric`: Gaussian noise, a sky-level offset,
  a contrast change, a PSF-like blur, a small change of scale);
- **early stopping** on the validation loss, evaluated every
  ``eval_interval`` steps: the best weights are kept, and training stops
  after `PATIENCE` evaluations without improvement;
- **a fallback**: unless the best fine-tuned validation loss is lower than
  the head-only model's, the head-only weights are restored.  The result
  says which model was kept.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf.finetune import photometric
>>> rng = np.random.default_rng(0)
>>> batch = rng.uniform(0.2, 0.4, (2, 32, 32, 3)).astype(np.float32)
>>> out = photometric(batch, rng)
>>> out.shape, out.dtype, bool(out.min() >= 0 and out.max() <= 1)
((2, 32, 32, 3), dtype('float32'), True)
"""

import logging

import numpy as np

from ._augment import N_VARIANTS, dihedral
from ._forward import forward_function, forward_in_batches
from .preprocessing import resize

__all__ = ['photometric', 'fine_tune']

log = logging.getLogger(__name__)

#: Learning-rate factor from one group of backbone layers to the one below.
LAYER_DECAY = 0.3
#: Number of groups of backbone layers.
N_GROUPS = 4
#: Evaluations without a lower validation loss before stopping.
PATIENCE = 4


def _blur(image, sigma):
    """Separable Gaussian blur of an (H, W, C) image, edges reflected."""
    radius = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    w /= w.sum()
    out = image
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode='reflect')
        n = out.shape[axis]
        out = sum(wk * np.take(padded, np.arange(k, k + n), axis=axis)
                  for k, wk in enumerate(w))
    return out


def _rescale(image, zoom):
    """Zoom an (H, W, C) image about its centre, keeping its size."""
    h, w = image.shape[:2]
    nh, nw = max(2, int(round(h * zoom))), max(2, int(round(w * zoom)))
    scaled = resize(image, (nh, nw))
    if zoom >= 1:
        y0, x0 = (nh - h) // 2, (nw - w) // 2
        return scaled[y0:y0 + h, x0:x0 + w]
    py, px = h - nh, w - nw
    return np.pad(scaled, ((py // 2, py - py // 2), (px // 2, px - px // 2),
                           (0, 0)), mode='reflect')


def photometric(batch, rng):
    """Random photometric changes of a batch of normalized RGB images.

    Each image gets a sky-level offset (uniform, +-0.05), a contrast change
    about its mean (x 0.85-1.15) and Gaussian noise (sigma up to 0.03);
    30 % of them a blur (sigma 0.3-1.2 pixels) and 30 % a change of scale
    (x 0.9-1.1).  Values are clipped to [0, 1].

    Parameters
    ----------
    batch : `~numpy.ndarray`
        ``(B, H, W, 3)`` float32 in [0, 1].
    rng : `numpy.random.Generator`

    Returns
    -------
    out : `~numpy.ndarray`
        A new float32 array of the same shape.
    """
    out = np.empty_like(batch, dtype=np.float32)
    for i, image in enumerate(batch):
        x = image.astype(np.float32)
        if rng.random() < 0.3:
            x = _rescale(x, rng.uniform(0.9, 1.1))
        if rng.random() < 0.3:
            x = _blur(x, rng.uniform(0.3, 1.2))
        mean = float(x.mean())
        x = (x - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-0.05, 0.05)
        x = x + rng.normal(0.0, rng.uniform(0.0, 0.03), x.shape)
        out[i] = np.clip(x, 0.0, 1.0)
    return out


def _weighted_layers(model):
    def walk(layer):
        for sub in getattr(layer, 'layers', ()):
            if getattr(sub, 'layers', None):
                yield from walk(sub)
            else:
                yield sub
    return [layer for layer in walk(model) if layer.weights]


def _groups(backbone, head, fraction):
    """Trainable variable groups, top first: [head + top group, next, ...].

    The top ``fraction`` of the backbone's weighted layers are trainable,
    BatchNorm excepted."""
    import keras

    backbone.trainable = True
    layers = _weighted_layers(backbone)
    n_top = max(1, int(round(len(layers) * fraction)))
    trainable = []
    for i, layer in enumerate(layers):
        layer.trainable = (i >= len(layers) - n_top and not isinstance(
            layer, keras.layers.BatchNormalization))
        if layer.trainable:
            trainable.append(layer)
    chunks = np.array_split(np.arange(len(trainable)), N_GROUPS)
    groups = [[v for j in chunk for v in trainable[j].trainable_variables]
              for chunk in reversed(chunks)]
    groups[0] = list(head.trainable_variables) + groups[0]
    return [g for g in groups if g]


def fine_tune(model, backbone, head, x_images, y_train, x_val, y_val, *, steps,
              batch_size, learning_rate, eval_interval, rng, evaluator,
              first_step, fraction=1.0, class_weight=None):
    """Fine-tune ``model`` (``head(backbone(x))``) in place.

    Parameters
    ----------
    model, backbone, head : `keras.Model`
        The full model and its two parts (``backbone`` must be a trainable
        copy, not the shared frozen one).
    x_images, y_train : `~numpy.ndarray`
        Training images ``(N, S, S, 3)`` in [0, 1] and labels.
    x_val, y_val : `~numpy.ndarray`
        Validation images and labels: they decide early stopping and the
        fallback.  Without any, nothing is trained (there is no way to
        tell whether fine-tuning helps) and the head-only model is kept.
    steps, batch_size, learning_rate, eval_interval : int, int, float, int
        At most ``steps`` steps of ``batch_size`` images; the head and the
        top layers learn at ``learning_rate`` (Adam).
    rng : `numpy.random.Generator`
    evaluator : object
        Has ``scores(probs, y)`` and ``log(step, train, validation, n, stage)``.
    first_step : int
        Step number of the first fine-tuning step, for the history.
    fraction : float, optional
        Fraction of the backbone's weighted layers (from the top) to train.
    class_weight : `~numpy.ndarray`, optional
        Loss weight of each class.

    Returns
    -------
    info : dict
        ``kept`` ('fine-tuned' or 'head-only'), ``val_loss_head``,
        ``val_loss_fine_tuned``, ``best_step``, ``steps_run``.
    """
    import keras
    import tensorflow as tf

    n_classes = model.outputs[0].shape[-1]
    if class_weight is None:
        class_weight = np.ones(n_classes, np.float32)
    forward = forward_function(model)

    def val_scores():
        return evaluator.scores(forward_in_batches(forward, x_val, 32), y_val)

    info = {'kept': 'head-only', 'val_loss_head': float('nan'),
            'val_loss_fine_tuned': float('nan'), 'best_step': 0,
            'steps_run': 0}
    if not len(x_val):
        log.warning('fine-tuning skipped: no validation images to tell '
                    'whether it helps (kept the head-only model)')
        return info
    groups = _groups(backbone, head, fraction)
    optimizers = [keras.optimizers.Adam(learning_rate * LAYER_DECAY ** g)
                  for g in range(len(groups))]
    for optimizer, variables in zip(optimizers, groups):
        optimizer.build(variables)
    variables = [v for g in groups for v in g]
    bounds = np.cumsum([0] + [len(g) for g in groups])

    @tf.function(reduce_retracing=True)
    def step_fn(x, y, w):
        with tf.GradientTape() as tape:
            probs = model(x, training=False)  # BatchNorm: inference mode
            ce = keras.losses.sparse_categorical_crossentropy(y, probs)
            loss = tf.reduce_sum(w * ce) / tf.reduce_sum(w)
        grads = tape.gradient(loss, variables)
        for k, optimizer in enumerate(optimizers):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            optimizer.apply_gradients(zip(grads[lo:hi], variables[lo:hi]))
        accuracy = tf.reduce_mean(tf.cast(
            tf.equal(tf.cast(tf.argmax(probs, axis=1), tf.int32), y),
            tf.float32))
        return tf.reduce_mean(ce), accuracy

    snapshot = [keras.ops.convert_to_numpy(v) for v in variables]
    initial = list(snapshot)
    head_accuracy, best = val_scores()
    info['val_loss_head'] = best
    evaluator.log(first_step, (float('nan'), float('nan')),
                  (head_accuracy, best), len(y_val), 'fine_tune')
    stale = 0
    batch_size = max(1, min(batch_size, len(x_images)))
    best_step = 0
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(x_images), size=batch_size)
        variants = rng.integers(0, N_VARIANTS, size=batch_size)
        x = np.stack([dihedral(x_images[i], v) for i, v in zip(idx, variants)])
        x = photometric(x, rng)
        y = y_train[idx].astype(np.int32)
        loss, accuracy = step_fn(x, y, class_weight[y].astype(np.float32))
        info['steps_run'] = step
        if step % eval_interval == 0 or step == steps:
            scores = val_scores()
            evaluator.log(first_step + step, (float(accuracy), float(loss)),
                          scores, len(y_val), 'fine_tune')
            if scores[1] < best:
                best, best_step, stale = scores[1], step, 0
                snapshot = [keras.ops.convert_to_numpy(v) for v in variables]
            else:
                stale += 1
                if stale >= PATIENCE:
                    log.info('fine-tuning stopped early at step %d', step)
                    break
    if best_step:
        info.update(kept='fine-tuned', val_loss_fine_tuned=float(best),
                    best_step=best_step)
    else:
        info['val_loss_fine_tuned'] = float(scores[1]) if info['steps_run'] else best
    for v, value in zip(variables, snapshot if best_step else initial):
        v.assign(value)
    log.info('fine-tuning: kept the %s model (validation loss %.4f -> %.4f)',
             info['kept'], info['val_loss_head'], info['val_loss_fine_tuned'])
    return info
