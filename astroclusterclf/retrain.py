# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Retrain a classification head on cached backbone features.

This is TensorFlow's old ``retrain.py`` for TensorFlow 2 / Keras 3 and
FITS images: point `retrain` at a folder whose sub-folders are the
classes; every image is normalized (`astroclusterclf.preprocessing`),
embedded by pretrained backbones (`astroclusterclf.backbones`) into cached
bottleneck vectors (`astroclusterclf.bottlenecks`), and a head is fitted
on those vectors.  The result is one self-contained ``.keras`` model file
(backbone(s) + head + metadata) and an honest report: the
cross-validated figures of every candidate, the final accuracy on a
held-out test set, a confusion matrix, the misclassified test files, and
how the confidence was calibrated.

The run is a composition of stages, each a function of this module that
can be run and tested alone, with the options in one `RetrainConfig`:

1. list and split (`~astroclusterclf.datasets.create_image_lists`);
2. `embed_images`: every view of the candidates, and the
   out-of-distribution view, through the cache;
3. `fit_head`: compare the candidates by cross-validated log-loss
   (`astroclusterclf.selection`, `astroclusterclf.heads`) and build the
   model of the winner (`build_model`), or train the old SGD head;
   optionally fine-tune;
4. `fit_trust`: the temperature (also on degraded copies of the images,
   `drift_probabilities`) and the out-of-distribution description with
   its threshold at a stated false-alarm rate;
5. `evaluate` on the test images;
6. `make_classifier` and `write_outputs`.

Differences from the old tool:

- the default head is an L2-regularized logistic regression whose
  regularization, and the features it sees, are chosen by
  cross-validation (``head='sgd'`` is the old softmax head trained by
  SGD, its loss weighted by inverse class frequency);
- augmentation uses the 8 rotations/flips of the dihedral group (valid
  for sky images), kept in one fold by the cross-validation; the test set
  is never augmented;
- the preprocessing travels inside the model file.
"""

import contextlib
import importlib.util
import logging
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.table import Table
from astropy.utils.decorators import deprecated_renamed_argument
from astropy.utils.exceptions import AstropyDeprecationWarning

from . import backbones
from ._atomic import atomic_write, check_writable, os_error_message
from ._augment import N_VARIANTS
from .classifier import ClusterClassifier
from .datasets import SPLITS, create_image_lists
from .calibration import (calibrate_probabilities, expected_calibration_error,
                          fit_calibration, floor_probabilities,
                          negative_log_likelihood)
from .exceptions import (AstroClusterClfError, DatasetError, OutputError,
                         ParameterError)
from .io import image_geometry, read_image
from .heads import cross_validate_head, fit_logistic_head
from .drift import degrade
from .ood import DEFAULT_MARGIN, FeatureDensity
from .finetune import fine_tune as fine_tune_model
from ._forward import forward_function, forward_in_batches
from ._parallel import prefetch_map
from .plotting import plot_reliability_diagram
from .preprocessing import NormalizationSettings, fits_to_rgb, normalize
from .selection import Candidate, compare, default_candidates, embed_views

__all__ = ['retrain', 'RetrainResult', 'RetrainConfig', 'EvalStep', 'Embedding',
           'FittedHead', 'embed_images', 'fit_head', 'build_model', 'fit_trust',
           'evaluate', 'make_classifier', 'write_outputs']

log = logging.getLogger(__name__)

#: The out-of-distribution score of every model describes its training
#: images in one fixed, general view: the ImageNet EfficientNet-Lite0
#: features at the backbone's native 224 px of the frames normalized with
#: the default interval and stretch (zscale + asinh; the model's bands and
#: colour mode are kept).  It is independent of the model's own backbone,
#: input size and normalization, which are chosen for accuracy: features
#: adapted to one domain (astro_lite0) map everything near that domain,
#: and a percentile interval or a small input hides the difference between
#: a galaxy and a cluster from ImageNet features (see docs/trust.rst).
OOD_BACKBONE = 'efficientnet_lite0'
OOD_INPUT_SIZE = 224


def ood_view_settings(settings):
    """The normalization of the out-of-distribution view for a model
    normalized with ``settings`` (see `OOD_BACKBONE`)."""
    return NormalizationSettings(color=settings.color, bands=settings.bands)


class EvalStep(NamedTuple):
    """Figures of one evaluation step (passed to ``callback``).

    Attributes
    ----------
    step : int
        Training step (of the SGD head, or of the head and then the
        fine-tuning steps, counted on).
    train_accuracy : float
        Accuracy on the step's training batch (NaN for the evaluation
        that starts the fine-tuning).
    cross_entropy : float
        Its cross entropy.
    validation_accuracy : float
        Accuracy on the validation images (NaN without any).
    validation_cross_entropy : float
        Their cross entropy.
    n_validation : int
        Number of validation images.
    stage : str
        ``'head'`` (the SGD head) or ``'fine_tune'``.
    """

    step: int
    train_accuracy: float
    cross_entropy: float
    validation_accuracy: float
    validation_cross_entropy: float
    n_validation: int
    stage: str = 'head'


@dataclass
class RetrainResult:
    """Report of a `retrain` run.

    Attributes
    ----------
    labels : list of str
        Class labels (model output order).
    history : `~astropy.table.Table`
        One row per evaluation step: ``step``, ``train_accuracy``,
        ``cross_entropy``, ``validation_accuracy``,
        ``validation_cross_entropy``, ``stage`` ('head' or 'fine_tune').
    validation_accuracy : float
        Validation accuracy at the last step (NaN without a validation set).
    test_accuracy : float
        Final accuracy on the test set (NaN without a test set).
    confusion_matrix : `~numpy.ndarray`
        ``(n_classes, n_classes)`` counts on the test set; rows are the
        true classes, columns the predicted ones, in `labels` order.
    misclassified : `~astropy.table.Table`
        Test files predicted wrongly: ``path``, ``true_label``,
        ``predicted_label``, ``probability``.
    skipped : list of (path, str)
        Files that could not be read, with the reason.
    counts : dict
        ``{split: {label: number of images}}`` actually used.
    n_bottlenecks_computed, n_bottlenecks_cached : int
        Feature vectors computed by the backbone / loaded from the cache.
    output, labels_output : `~pathlib.Path` or None
        The model file and the label file written (`None` when not asked
        for).
    classifier : `~astroclusterclf.ClusterClassifier`
        The retrained classifier.
    timings : dict
        Seconds spent in ``bottlenecks``, ``training``, ``calibration``,
        ``saving``.
    calibration : dict
        How far to trust the model: ``temperature`` (see
        `astroclusterclf.calibration`), what it was fitted on (``source``,
        ``n``), the expected calibration error and negative log-likelihood
        on the test set before and after calibration (``test_ece_before``,
        ``test_ece_after``, ``test_nll_before``, ``test_nll_after``), the
        out-of-distribution ``ood_threshold`` and the number of test
        images above it (``test_flagged_ood``).
    reliability_plot : `~pathlib.Path` or None
        The reliability diagram written (with matplotlib installed).
    selection : `~astropy.table.Table` or None
        With ``architecture='auto'``: the cross-validated log-loss and
        accuracy of each candidate view or blend, and which was chosen
        (see `astroclusterclf.selection.Selection`).
    fine_tuning : dict or None
        With ``fine_tune=True``: which model was kept (``'kept'``:
        ``'fine-tuned'`` or ``'head-only'``), the validation loss of each
        (``val_loss_head``, ``val_loss_fine_tuned``) and the step of the
        best fine-tuned weights (``best_step``).
    head : str
        The head fitted (``'logistic'`` or ``'sgd'``).
    candidates : `~astropy.table.Table` or None
        The cross-validated figures of every candidate compared (the
        named architecture alone when it was given).
    """

    labels: list
    history: object
    validation_accuracy: float
    test_accuracy: float
    confusion_matrix: np.ndarray
    misclassified: object
    skipped: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    n_bottlenecks_computed: int = 0
    n_bottlenecks_cached: int = 0
    output: Path = None
    labels_output: Path = None
    classifier: object = None
    timings: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    reliability_plot: Path = None
    selection: object = None
    fine_tuning: dict = None
    head: str = 'logistic'
    candidates: object = None

    @property
    def output_graph(self):
        """Deprecated name of `output`."""
        warnings.warn('RetrainResult.output_graph is deprecated; use .output',
                      AstropyDeprecationWarning, stacklevel=2)
        return self.output

    @property
    def output_labels(self):
        """Deprecated name of `labels_output`."""
        warnings.warn('RetrainResult.output_labels is deprecated; use '
                      '.labels_output', AstropyDeprecationWarning, stacklevel=2)
        return self.labels_output

    @property
    def n_skipped(self):
        """Number of files skipped because they could not be read."""
        return len(self.skipped)

    def confusion_table(self):
        """Return the confusion matrix as an `~astropy.table.Table` (one
        row per true class, one column per predicted class).

        Returns
        -------
        table : `~astropy.table.Table`
            A ``true \\ predicted`` column of labels, then one column of
            test-set counts per predicted label.
        """
        t = Table()
        t['true \\ predicted'] = self.labels
        for j, label in enumerate(self.labels):
            t[label] = self.confusion_matrix[:, j]
        return t

    def report(self):
        """Return the final report as text (what the CLI prints).

        Returns
        -------
        report : str
            Several lines: the candidates compared and the one chosen, the
            fine-tuning, the accuracies, the calibration and the skipped
            files, as far as the run has them.
        """
        lines = []
        n_test = int(self.confusion_matrix.sum())
        t = self.candidates if self.candidates is not None else self.selection
        c = self.calibration or {}
        if t is not None:
            chosen = t['candidate'][t['chosen']][0]
            if t.meta.get('note') or not t.meta.get('n_folds'):
                lines.append(f'Features and head: {chosen} '
                             f'({t.meta.get("note") or "too few images to cross-validate"})')
            else:
                what = ('Features chosen' if len(t) > 1 else 'Head regularization chosen')
                lines.append(f'{what} by {t.meta["n_folds"]}-fold cross-validation '
                             '(log-loss of the logistic recipe) on '
                             f'{t.meta["n_images"]} images:')
                final = f'final {self.head} head, on the held-out test images'
                width = max(len(final), *(len(str(name)) for name in t['candidate']))
                lines.append(f'   {"candidate":<{width}s} {"log-loss":>8s} {"accuracy":>8s}')
                for row in t:
                    mark = '*' if row['chosen'] else ' '
                    lines.append(f' {mark} {row["candidate"]:<{width}s} '
                                 f'{row["cv_log_loss"]:8.4f} {row["cv_accuracy"]:8.3f}')
                if n_test:
                    lines.append(f'   {final:<{width}s} '
                                 f'{c.get("test_log_loss", float("nan")):8.4f} '
                                 f'{self.test_accuracy:8.3f}')
        if self.fine_tuning is not None:
            f = self.fine_tuning
            lines.append(f'Fine-tuning: kept the {f["kept"]} model (validation loss '
                         f'head-only {f["val_loss_head"]:.4f}, fine-tuned '
                         f'{f["val_loss_fine_tuned"]:.4f})')
        lines.append(f'Final test accuracy = {100 * self.test_accuracy:.1f}% '
                     f'(N={n_test})')
        lines.append('Confusion matrix (rows: true class, columns: '
                     'predicted class):')
        lines.extend(self.confusion_table().pformat(max_lines=-1,
                                                    max_width=-1))
        if len(self.misclassified):
            lines.append(f'Misclassified test images '
                         f'({len(self.misclassified)}):')
            for row in self.misclassified:
                lines.append(f'  {row["path"]}  true={str(row["true_label"])!r} '
                             f'predicted={str(row["predicted_label"])!r} '
                             f'({row["probability"]:.5f})')
        else:
            lines.append('Misclassified test images: none')
        if c:
            if c.get('method', 'temperature') == 'temperature':
                lines.append(f'Calibration: temperature {c["temperature"]:.3f}, fitted on '
                             f'{c["source"]} (N={c["n"]}; {c.get("reason")})')
            else:
                lines.append(f'Calibration: no temperature ({c.get("reason")}); the '
                             'regularized head\'s own probabilities, checked on '
                             f'{c["source"]} (N={c["n"]})')
            if c.get('warning'):
                lines.append(f'WARNING: {c["warning"]}')
            lines.append(f'Test expected calibration error (10 bins) '
                         f'{c["test_ece_before"]:.3f} -> {c["test_ece_after"]:.3f}, '
                         f'negative log-likelihood {c["test_nll_before"]:.3f} -> '
                         f'{c["test_nll_after"]:.3f} (before -> after calibration)')
            rate = c.get('ood_false_alarm_rate')
            rate_text = '' if rate is None else f' (false-alarm rate {rate:.0%})'
            lines.append(f'Out-of-distribution threshold {c["ood_threshold"]:.3g}'
                         f'{rate_text}: {c["test_flagged_ood"]} of {n_test} test images '
                         'above it')
        if self.skipped:
            lines.append(f'Skipped unreadable files ({len(self.skipped)}):')
            lines.extend(f'  {path}: {reason}'
                         for path, reason in self.skipped)
        return '\n'.join(lines)


def _has_matplotlib():
    return importlib.util.find_spec('matplotlib') is not None


def _check_outputs(output, labels_output, summaries_dir, plot):
    """Check every output location before any work (training can take
    minutes to hours): folders are created, files must be writable."""
    files = [Path(f) for f in (output, labels_output, plot) if f is not None]
    real = [os.path.realpath(f) for f in files]
    if len(set(real)) < len(real):
        raise OutputError(f'{files[0]}: two outputs (model, label file, reliability '
                          'diagram) would be the same file')
    for path in files:
        _make_folder(path.parent)
        check_writable(path)
    if summaries_dir is not None:
        folder = Path(summaries_dir)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f'{folder}: the summaries folder is a file')
        for sub in ('train', 'validation'):
            _make_folder(folder / sub)
            check_writable(folder / sub / 'events.probe')


def _make_folder(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f'{folder}: cannot create the folder '
                          f'({os_error_message(exc)})') from None


def _class_weights(y, n_classes):
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)),
                       0.0)
    return weights


def _build_head(feature_length, n_classes, *, hidden_units, seed):
    import keras

    inputs = keras.Input((feature_length,), name='bottleneck')
    x = inputs
    if hidden_units:
        x = keras.layers.Dense(
            hidden_units, activation='relu', name='hidden',
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    # As the old tool: a small truncated-normal start for the final layer.
    outputs = keras.layers.Dense(
        n_classes, activation='softmax', name='probabilities',
        kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=0.001, seed=seed + 1))(x)
    return keras.Model(inputs, outputs, name='head')


def _scalar(tag, value, step):
    """Write a TensorBoard scalar with TensorFlow core only.

    This is what ``tf.summary.scalar`` does, without needing the
    ``tensorboard`` package at training time (it is only needed to view
    the files).
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = 'scalars'
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                     metadata=metadata)


class _Evaluator:
    """Accuracy and cross entropy of a model on arrays, with logging to
    TensorBoard and the callback."""

    def __init__(self, summaries_dir, callback, history):
        import tensorflow as tf

        self.callback = callback
        self.history = history
        self.writers = None
        self.summaries_dir = summaries_dir
        if summaries_dir is not None:
            summaries_dir = Path(summaries_dir)
            self._before = set(summaries_dir.rglob('*'))
            with self._summary_errors():
                self.writers = {
                    name: tf.summary.create_file_writer(
                        str(summaries_dir / name))
                    for name in ('train', 'validation')}

    @contextlib.contextmanager
    def _summary_errors(self):
        """Turn a failure to write the summaries (disk full, permissions)
        into one `OutputError`, removing the event files of this run."""
        try:
            yield
        except Exception as exc:  # TensorFlow raises its own error types
            self.writers = None
            for path in set(Path(self.summaries_dir).rglob('*')) - self._before:
                if path.is_file():
                    path.unlink()
            message = getattr(exc, 'message', None) or str(exc)
            raise OutputError(f'{self.summaries_dir}: cannot write the TensorBoard '
                              f'summaries ({message.strip().splitlines()[0]})') from None

    @staticmethod
    def scores(probs, y):
        if len(y) == 0:
            return float('nan'), float('nan')
        probs = np.asarray(probs, dtype=np.float64)
        accuracy = float(np.mean(np.argmax(probs, axis=1) == y))
        p = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
        return accuracy, float(-np.mean(np.log(p)))

    def log(self, step, train, validation, n_validation, stage):
        entry = EvalStep(step, train[0], train[1], validation[0],
                         validation[1], n_validation, stage)
        self.history.append(entry)
        if self.writers is not None:
            for name, (acc, ce) in (('train', train),
                                    ('validation', validation)):
                if np.isnan(acc):
                    continue
                with self._summary_errors(), self.writers[name].as_default():
                    _scalar('accuracy', acc, step)
                    _scalar('cross_entropy', ce, step)
        log.info('step %d: train accuracy %.1f%%, cross entropy %.6f, '
                 'validation accuracy %.1f%% (N=%d)', step, 100 * train[0],
                 train[1], 100 * validation[0], n_validation)
        if self.callback is not None:
            self.callback(entry)

    def close(self):
        if self.writers is not None:
            with self._summary_errors():
                for w in self.writers.values():
                    w.flush()
                    w.close()


def _softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _head_forward(params, x):
    """Activations of the head's layers (ReLU hidden layers, softmax out)."""
    activations = [x]
    for kernel, bias in params[:-1]:
        activations.append(np.maximum(activations[-1] @ kernel + bias, 0))
    kernel, bias = params[-1]
    return activations, _softmax(activations[-1] @ kernel + bias)


def _train_head(head, x_train, y_train, x_val, y_val, *, steps, batch_size,
                learning_rate, eval_interval, rng, evaluator):
    """Train ``head`` with minibatch SGD on random batches; evaluate
    periodically.

    The head is a softmax regression (or one hidden ReLU layer) on fixed
    features, for which plain SGD at the old tool's defaults (lr 0.01,
    batch 100, 4000 steps) converges reliably.  The steps are a few small
    matrix products, so they run in NumPy (float32): a TensorFlow step
    costs ~10x more in per-op overhead than the arithmetic.  The
    class-weighted cross entropy and its gradient are written out; the
    trained weights are copied back into the Keras layers.  Returns the
    initial weights (for refits of the same head, see `_fit_trust`).
    """
    import keras

    dense = [layer for layer in head.layers
             if isinstance(layer, keras.layers.Dense)]
    initial = [[np.asarray(v, np.float32) for v in layer.get_weights()]
               for layer in dense]
    x_val = np.asarray(x_val, np.float32).reshape(-1, x_train.shape[1])

    def on_eval(step, params, probs, y):
        train = evaluator.scores(probs, y)
        validation = evaluator.scores(_head_forward(params, x_val)[1], y_val)
        evaluator.log(step, train, validation, len(y_val), 'head')

    params = _sgd([[w.copy() for w in layer] for layer in initial], x_train, y_train,
                  steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                  rng=rng, eval_interval=eval_interval, on_eval=on_eval)
    for layer, weights in zip(dense, params):
        layer.set_weights(weights)
    return initial


def _sgd(params, x_train, y_train, *, steps, batch_size, learning_rate, rng,
         eval_interval=None, on_eval=None):
    """Minibatch SGD of the head's ``params`` ([[kernel, bias], ...], updated
    in place and returned) on the class-weighted cross entropy."""
    n_classes = params[-1][0].shape[1]
    x_train = np.ascontiguousarray(x_train, np.float32)
    y_train = np.asarray(y_train)
    sample_weight = _class_weights(y_train, n_classes)[y_train].astype(
        np.float32)
    lr = np.float32(learning_rate)
    batch_size = min(batch_size, len(x_train)) if batch_size > 0 else \
        len(x_train)
    eval_interval = max(int(eval_interval or steps or 1), 1)
    rows = np.arange(batch_size)
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(x_train), size=batch_size)
        y = y_train[idx]
        w = sample_weight[idx]
        activations, probs = _head_forward(params, x_train[idx])
        # d(sum(w * ce) / sum(w)) / d(logits) = w (p - onehot) / sum(w)
        grad = probs.copy()
        grad[rows, y] -= 1
        grad *= (w / w.sum())[:, None]
        for i in range(len(params) - 1, -1, -1):
            kernel, bias = params[i]
            grad_kernel = activations[i].T @ grad
            grad_bias = grad.sum(axis=0)
            if i:
                grad = (grad @ kernel.T) * (activations[i] > 0)
            kernel -= lr * grad_kernel
            bias -= lr * grad_bias
        if on_eval is not None and (step % eval_interval == 0 or step == steps):
            on_eval(step, params, probs, y)
    return params


def _frames(paths):
    """What the training frames are like: their sizes in pixels and, for
    those with a celestial WCS, their pixel scales (median and range)."""
    shapes, scales = [], []
    for path in paths:
        try:
            shape, scale = image_geometry(path)
        except AstroClusterClfError:
            continue
        shapes.append(shape)
        if scale is not None:
            scales.append(scale)
    if not shapes:
        return None
    shapes = np.array(shapes)
    frames = {'n': len(shapes),
              'shape': {'median': [float(v) for v in np.median(shapes, axis=0)],
                        'min': [int(v) for v in shapes.min(axis=0)],
                        'max': [int(v) for v in shapes.max(axis=0)]},
              'pixel_scale': None}
    if scales:
        frames['pixel_scale'] = {'n': len(scales), 'median': float(np.median(scales)),
                                 'min': float(np.min(scales)),
                                 'max': float(np.max(scales))}
    return frames


def _load_images(paths, settings):
    images = []
    for path, rgb, error in prefetch_map(
            lambda p: fits_to_rgb(p, settings=settings), paths):
        if error is not None:
            raise error
        images.append(rgb)
    return np.stack(images) if images else None


#: Default fraction of held-out training-like images that the
#: out-of-distribution threshold flags (its false-alarm rate).
OOD_FALSE_ALARM_RATE = 0.05

#: Principal axes of the out-of-distribution description (at most; see
#: `~astroclusterclf.ood.FeatureDensity.fit`).
OOD_AXES = 64

#: The heads `retrain` can fit.
HEADS = ('logistic', 'sgd')


@dataclass(frozen=True)
class RetrainConfig:
    """What a `retrain` run does: its parameters, checked, in one object.

    The fields are the keyword arguments of `retrain` (see there); the
    stage functions of this module each take the config and the results
    of the stages before them.

    Attributes
    ----------
    architecture : str
        Backbone name, or ``'auto'``: the views and blends of
        `~astroclusterclf.selection.default_candidates`, compared by
        cross-validation.
    weights : str or path-like
        Backbone weights (``'imagenet'``: each backbone's pretrained ones).
    input_size : int or None
        Backbone input size in pixels (`None`: the backbone's own).
    settings : `~astroclusterclf.NormalizationSettings` or None
        Normalization (a dict is converted; `None`: those the selection
        compares, or the defaults for a named architecture).
    head : {'logistic', 'sgd'}
        The head fitted (given as `None`: ``'sgd'`` with ``hidden_units``,
        else ``'logistic'``).
    steps : int
        Training steps of the SGD head.
    batch_size : int
        Random training vectors per SGD step (``<= 0``: all).
    learning_rate : float
        Learning rate of the SGD head.
    validation_percentage : float
        Percentage of each class in the validation set.
    testing_percentage : float
        Percentage of each class in the test set.
    augment : bool
        Train on the 8 rotations/flips of each training image.
    hidden_units : int
        Size of a hidden ReLU layer of the SGD head (0: none).
    fine_tune : bool
        Train the backbone with the head after the head alone.
    fine_tune_steps : int
        Most fine-tuning steps.
    fine_tune_fraction : float
        Fraction of the backbone's weighted layers fine-tuned.
    fine_tune_learning_rate : float
        Adam learning rate of the fine-tuning.
    bottleneck_dir : str, path-like or None
        Feature cache (`None`: ``<cache dir>/bottlenecks``).
    summaries_dir : str, path-like or None
        Folder for TensorBoard scalars (`None`: none written).
    seed : int
        Seed of the folds, the SGD head and batch sampling.
    eval_interval : int
        Evaluate every this many SGD steps.
    embed_batch_size : int
        Images per backbone forward pass while computing bottlenecks.
    ood_false_alarm_rate : float
        Fraction of held-out training-like images above the
        out-of-distribution threshold (strictly between 0 and 0.5).
    drift_calibration : bool
        Fit the temperature on degraded copies of the images too (see
        `astroclusterclf.drift`).
    """

    architecture: str = 'auto'
    weights: object = 'imagenet'
    input_size: int = None
    settings: object = None
    head: str = None
    steps: int = 4000
    batch_size: int = 100
    learning_rate: float = 0.01
    validation_percentage: float = 10
    testing_percentage: float = 10
    augment: bool = True
    hidden_units: int = 0
    fine_tune: bool = False
    fine_tune_steps: int = 200
    fine_tune_fraction: float = 1.0
    fine_tune_learning_rate: float = 1e-4
    bottleneck_dir: object = None
    summaries_dir: object = None
    seed: int = 0
    eval_interval: int = 10
    embed_batch_size: int = 32
    ood_false_alarm_rate: float = OOD_FALSE_ALARM_RATE
    drift_calibration: bool = True

    def __post_init__(self):
        head = self.head
        if head is None:
            head = 'sgd' if self.hidden_units else 'logistic'
        if head not in HEADS:
            raise ParameterError(f"head must be one of {', '.join(map(repr, HEADS))}, "
                                 f'got {head!r}')
        if head == 'logistic' and self.hidden_units:
            raise ParameterError("hidden_units needs head='sgd' (the logistic head "
                                 'has no hidden layer)')
        if not 0 < float(self.ood_false_alarm_rate) < 0.5:
            raise ParameterError('ood_false_alarm_rate must be between 0 and 0.5, '
                                 f'got {self.ood_false_alarm_rate!r}')
        object.__setattr__(self, 'head', head)
        if isinstance(self.settings, dict):
            object.__setattr__(self, 'settings',
                               NormalizationSettings.from_dict(self.settings))

    @property
    def auto(self):
        """Whether the views are chosen by cross-validation."""
        return isinstance(self.architecture, str) and self.architecture == 'auto'

    @property
    def pools_validation(self):
        """Whether the validation images join the training images (the
        logistic head cross-validates on both; the SGD head and
        fine-tuning monitor the validation split)."""
        return self.head == 'logistic' and not self.fine_tune

    def candidates(self):
        """The views and blends to compare (one for a named architecture).

        Returns
        -------
        candidates : list
            `~astroclusterclf.selection.Candidate` and
            `~astroclusterclf.selection.Blend` objects.  With
            ``architecture='auto'``: those of
            `~astroclusterclf.selection.default_candidates` (single views
            only for the SGD head or fine-tuning); else the one view of
            ``architecture``, ``settings`` and ``input_size``.
        """
        if self.auto:
            candidates = default_candidates(self.settings, self.input_size)
            if self.head != 'logistic' or self.fine_tune:
                # Only a single view can be fine-tuned or given an SGD head.
                candidates = [c for c in candidates if len(c.views) == 1]
            return candidates
        return [Candidate(self.architecture, self.settings or NormalizationSettings(),
                          self.input_size)]


@dataclass
class Embedding:
    """The features of a run (the result of `embed_images`).

    Attributes
    ----------
    labels : list of str
    views : list of `~astroclusterclf.selection.Candidate`
        Every view of the candidates.
    pool_paths, pool_y : list, `~numpy.ndarray`
        The images the head is fitted on (training, and validation when
        pooled) and their classes.
    pool : dict
        ``{view: (N, n_variants, d)}`` their features.
    val_paths, val_y, val : list, `~numpy.ndarray`, dict
        The validation images kept apart (SGD head, fine-tuning), features
        ``{view: (M, d)}``.
    test_paths, test_y, test : list, `~numpy.ndarray`, dict
        The test images and ``{view: (K, d)}``.
    ood_pool, ood_test : `~numpy.ndarray`
        The same images in the out-of-distribution view (see
        `OOD_BACKBONE`).
    ood_weights_id : str
    ood_settings : `~astroclusterclf.NormalizationSettings`
    counts : dict
        ``{split: {label: n}}`` of readable images.
    skipped : list of (path, reason)
    n_computed, n_cached : int
    """

    labels: list
    views: list
    pool_paths: list
    pool_y: np.ndarray
    pool: dict
    val_paths: list
    val_y: np.ndarray
    val: dict
    test_paths: list
    test_y: np.ndarray
    test: dict
    ood_pool: np.ndarray
    ood_test: np.ndarray
    ood_weights_id: str
    ood_settings: object
    counts: dict
    skipped: list
    n_computed: int
    n_cached: int


@dataclass
class FittedHead:
    """The head stage's result (`fit_head`).

    Attributes
    ----------
    candidate : `~astroclusterclf.selection.Candidate` or `~astroclusterclf.selection.Blend`
    model : `keras.Model`
        Backbone(s) + head: what the model file holds.
    predict : callable
        ``predict({view: (N, d) features})`` -> probabilities, in NumPy.
    oof_probabilities : `~numpy.ndarray` or None
        Held-out probabilities of the pool images.
    folds : `~numpy.ndarray` or None
        Their folds.
    selection : `~astroclusterclf.selection.Selection`
    history : list of `EvalStep`
    fine_tuning : dict or None
    drift_probabilities : `~numpy.ndarray` or None
        Held-out probabilities of a degraded copy of each pool image (see
        `astroclusterclf.drift`), by the same folds.
    """

    candidate: object
    model: object
    predict: object
    oof_probabilities: object
    folds: object
    selection: object
    history: list
    fine_tuning: dict = None
    drift_probabilities: object = None


def _stack(features, paths, length, n_variants=None):
    if paths:
        x = np.stack([features[p] for p in paths])
        return x if n_variants else x[:, 0]
    return np.zeros((0, n_variants, length) if n_variants else (0, length), np.float32)


def embed_images(config, lists, *, progress=None):
    """Embed the images of every view (and of the out-of-distribution view)
    through the bottleneck cache.

    Parameters
    ----------
    config : `RetrainConfig`
    lists : `~astroclusterclf.datasets.ImageLists`
        The split (`~astroclusterclf.datasets.create_image_lists`).
    progress : callable, optional
        ``progress(done, total)`` while features are computed.

    Returns
    -------
    embedding : `Embedding`

    Raises
    ------
    DatasetError
        A class without any readable training image.
    """
    views = []
    for candidate in config.candidates():
        views += [v for v in candidate.views if v not in views]
    variants = tuple(range(N_VARIANTS)) if config.augment else (0,)
    pool_splits = ('training', 'validation') if config.pools_validation else ('training',)
    requests = [(Path(p), variants if s in pool_splits else (0,), s, y)
                for s in SPLITS for p, y in lists.files(s)]
    paths = [r[0] for r in requests]
    kwargs = dict(variants=[r[1] for r in requests], bottleneck_dir=config.bottleneck_dir,
                  batch_size=config.embed_batch_size, progress=progress)
    features, results = embed_views(paths, views, **kwargs)
    ood_view = Candidate(OOD_BACKBONE, ood_view_settings(_sized(views[0])),
                         OOD_INPUT_SIZE)
    same = [v for v in views if v.architecture == OOD_BACKBONE
            and _sized(v) == _sized(ood_view)]
    if same:        # one of the model's own views: nothing more to compute
        ood_features, ood_results = features[same[0]], {}
    else:
        ood, ood_results = embed_views(paths, [ood_view], warn=False, **kwargs)
        ood_features = ood[ood_view]
    readable = set(next(iter(features.values()))) & set(ood_features)
    by_split = {s: [(p, y) for p, _, s2, y in requests if s2 == s and p in readable]
                for s in SPLITS}
    pool_rows = [row for s in pool_splits for row in by_split[s]]
    pool_paths = [p for p, _ in pool_rows]
    val_rows = [] if config.pools_validation else by_split['validation']
    val_paths = [p for p, _ in val_rows]
    test_paths = [p for p, _ in by_split['testing']]
    n_var = len(variants)
    lengths = {v: _feature_length(features[v]) for v in views}
    ood_length = _feature_length(ood_features)
    counts = {s: {label: sum(1 for _, y in by_split[s] if y == i)
                  for i, label in enumerate(lists.labels)} for s in SPLITS}
    empty = [label for label in lists.labels
             if counts['training'][label] == 0]
    if empty:
        raise DatasetError(f'{lists.image_dir}: no readable training image in class(es) '
                           + ', '.join(repr(e) for e in empty))
    all_results = list(results.values()) + list(ood_results.values())
    return Embedding(
        labels=list(lists.labels), views=views, pool_paths=pool_paths,
        pool_y=np.array([y for _, y in pool_rows], np.int64),
        pool={v: _stack(features[v], pool_paths, lengths[v], n_var) for v in views},
        val_paths=val_paths, val_y=np.array([y for _, y in val_rows], np.int64),
        val={v: _stack(features[v], val_paths, lengths[v]) for v in views},
        test_paths=test_paths, test_y=np.array([y for _, y in by_split['testing']], np.int64),
        test={v: _stack(features[v], test_paths, lengths[v]) for v in views},
        ood_pool=_stack(ood_features, pool_paths, ood_length, n_var),
        ood_test=_stack(ood_features, test_paths, ood_length),
        ood_weights_id=backbones.weights_id(OOD_BACKBONE),
        ood_settings=ood_view.settings.replace(size=(OOD_INPUT_SIZE, OOD_INPUT_SIZE)),
        counts=counts,
        skipped=list({p: r for res in all_results for p, r in res.skipped}.items()),
        n_computed=sum(r.n_computed for r in all_results),
        n_cached=sum(r.n_cached for r in all_results))


def _sized(view):
    """The normalization of a view at its backbone's input size."""
    spec = backbones.get_spec(view.architecture)
    size = view.input_size or spec.input_size
    return view.settings.replace(size=(size, size))


def _feature_length(features):
    """The feature length of a ``{path: (n_variants, d)}`` dict (0 if empty)."""
    for value in features.values():
        return value.shape[-1]
    return 0


def _view_backbone(view, weights, *, trainable=False):
    if trainable:
        return backbones.get_backbone(view.architecture, weights=weights, trainable=True,
                                      input_size=view.input_size)
    return backbones.shared_backbone(view.architecture, weights, view.input_size)


def _dense_head(kernel, bias, *, name='head'):
    """A one-layer Keras head with given weights."""
    import keras

    inputs = keras.Input((kernel.shape[0],), name='bottleneck')
    dense = keras.layers.Dense(kernel.shape[1], activation='softmax',
                               name='probabilities')
    model = keras.Model(inputs, dense(inputs), name=name)
    dense.set_weights([kernel, bias])
    return model


def build_model(candidate, heads, *, weights='imagenet'):
    """The Keras model of a candidate with its fitted logistic heads.

    Parameters
    ----------
    candidate : `~astroclusterclf.selection.Candidate` or `~astroclusterclf.selection.Blend`
        Its views are the model's inputs, in order.
    heads : list of `~astroclusterclf.heads.LogisticHead`
        One per group of the candidate.
    weights : str, optional
        Backbone weights.

    Returns
    -------
    model : `keras.Model`
        ``head(backbone(image))`` for one view (as the model files of
        earlier versions); for several, one input per view and the
        average of the groups' heads.
    """
    import keras

    views = candidate.views
    sizes = [_sized(v).size[0] for v in views]
    names = ['image'] + [f'image_{i}' for i in range(1, len(views))]
    inputs = [keras.Input((s, s, 3), name=n) for s, n in zip(sizes, names)]
    features = [_view_backbone(v, weights)(x) for v, x in zip(views, inputs)]
    outputs = []
    for k, (group, head) in enumerate(zip(candidate.groups, heads)):
        x = (features[group[0]] if len(group) == 1 else
             keras.layers.Concatenate(name=f'features_{k}')([features[i] for i in group]))
        outputs.append(_dense_head(*head.dense_weights(),
                                   name='head' if len(heads) == 1 else f'head_{k}')(x))
    output = (outputs[0] if len(outputs) == 1
              else keras.layers.Average(name='mean_probabilities')(outputs))
    arch = '_'.join(dict.fromkeys(v.architecture for v in views))
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, output,
                       name=f'astroclusterclf_{arch}')


def _blend_predict(candidate, heads):
    def predict(features):
        probs = [head.predict_proba(np.concatenate(
                 [features[candidate.views[i]] for i in group], axis=-1))
                 for group, head in zip(candidate.groups, heads)]
        return np.mean(probs, axis=0)
    return predict


def _sgd_oof(head, initial, x, y, folds, config):
    """Held-out probabilities of the SGD head over the grouped folds."""
    oof = np.zeros((len(y), initial[-1][0].shape[1]))
    n_var = x.shape[1]
    for k in np.unique(folds):
        inside, held = folds != k, folds == k
        params = _sgd([[w.copy() for w in layer] for layer in initial],
                      x[inside].reshape(-1, x.shape[-1]), np.repeat(y[inside], n_var),
                      steps=int(config.steps), batch_size=int(config.batch_size),
                      learning_rate=config.learning_rate,
                      rng=np.random.default_rng(int(config.seed) + 11 + int(k)))
        oof[held] = _head_forward(params, x[held, 0])[1]
    return oof


def fit_head(config, embedding, *, callback=None):
    """Choose the candidate and fit its head (the select and fit stages).

    The logistic head is the one the selection cross-validated, refitted
    on the pool; the SGD head (``head='sgd'``) is trained as the old tool
    did on the view the selection chose.  With ``fine_tune`` the backbone
    is then fine-tuned (`astroclusterclf.finetune`).

    Parameters
    ----------
    config : `RetrainConfig`
    embedding : `Embedding`
    callback : callable, optional
        Called with an `EvalStep` at every evaluation (SGD, fine-tuning).

    Returns
    -------
    fitted : `FittedHead`
    """
    import keras

    candidates = config.candidates()
    y = embedding.pool_y
    n_classes = len(embedding.labels)
    selection = compare(embedding.pool, y, candidates, seed=int(config.seed))
    chosen = selection.chosen
    log.info('head: %s on %s', config.head, chosen.name)
    history = []
    evaluator = _Evaluator(config.summaries_dir, callback, history)
    try:
        if config.head == 'logistic':
            heads = selection.heads
            oof = selection.oof_probabilities
            predict = _blend_predict(chosen, heads)
            model = build_model(chosen, heads, weights=config.weights)
            folds = selection.folds
        else:
            view = chosen.views[0]
            x = embedding.pool[view]
            head = _build_head(x.shape[-1], n_classes, hidden_units=config.hidden_units,
                               seed=int(config.seed))
            initial = _train_head(head, x.reshape(-1, x.shape[-1]),
                                  np.repeat(y, x.shape[1]), embedding.val[view],
                                  embedding.val_y, steps=int(config.steps),
                                  batch_size=int(config.batch_size),
                                  learning_rate=config.learning_rate,
                                  eval_interval=config.eval_interval,
                                  rng=np.random.default_rng(config.seed), evaluator=evaluator)
            folds = selection.folds
            oof = None if folds is None else _sgd_oof(head, initial, x, y, folds, config)

            def predict(features, head=head, view=view):
                if not len(features[view]):
                    return np.zeros((0, n_classes))
                return np.asarray(head(np.asarray(features[view], np.float32),
                                       training=False), np.float64)
            inputs = keras.Input(_sized(view).size + (3,), name='image')
            model = keras.Model(inputs, head(_view_backbone(view, config.weights)(inputs)),
                                name=f'astroclusterclf_{view.architecture}')
        fitted = FittedHead(chosen, model, predict, oof, folds, selection, history)
        if config.fine_tune:
            _fine_tune(config, embedding, fitted, evaluator)
        elif (config.head == 'logistic' and config.drift_calibration
              and folds is not None):
            fitted.drift_probabilities = drift_probabilities(config, embedding, chosen,
                                                             selection.heads, folds)
    finally:
        evaluator.close()
    return fitted


def _fine_tune(config, embedding, fitted, evaluator):
    """Fine-tune the single view of ``fitted`` in place (see `fit_head`)."""
    import keras

    view = fitted.candidate.views[0]
    settings = _sized(view)
    head = [layer for layer in fitted.model.layers if isinstance(layer, keras.Model)][-1]
    backbone = _view_backbone(view, config.weights, trainable=True)
    inputs = keras.Input(settings.size + (3,), name='image')
    model = keras.Model(inputs, head(backbone(inputs)),
                        name=f'astroclusterclf_{view.architecture}')
    x_images = _load_images(embedding.pool_paths, settings)
    val_images = _load_images(embedding.val_paths, settings)
    if val_images is None:
        val_images = np.zeros((0,) + settings.size + (3,), np.float32)
    y = embedding.pool_y
    n_classes = len(embedding.labels)
    info = fine_tune_model(
        model, backbone, head, x_images, y, val_images, embedding.val_y,
        steps=int(config.fine_tune_steps), batch_size=min(int(config.batch_size), 16),
        learning_rate=float(config.fine_tune_learning_rate),
        eval_interval=max(1, min(int(config.eval_interval), int(config.fine_tune_steps))),
        rng=np.random.default_rng(config.seed), evaluator=evaluator,
        first_step=int(config.steps) if config.head == 'sgd' else 0,
        fraction=config.fine_tune_fraction, class_weight=_class_weights(y, n_classes))
    backbone.trainable = False
    model.trainable = False
    fitted.fine_tuning = info
    if info['kept'] != 'fine-tuned':
        return
    fitted.model = model
    # The backbone changed: the cached bottlenecks are not its features.
    embed = forward_function(backbone)

    def features_of(images):
        if images is None or not len(images):
            return np.zeros((0, view_length))
        return forward_in_batches(embed, images, config.embed_batch_size)
    view_length = embedding.pool[view].shape[-1]
    f_pool = features_of(x_images)
    embedding.pool = {view: f_pool[:, None, :]}
    embedding.val = {view: features_of(val_images)}
    embedding.test = {view: features_of(_load_images(embedding.test_paths, settings))}

    def predict(features):
        if not len(features[view]):
            return np.zeros((0, n_classes))
        return np.asarray(head(np.asarray(features[view], np.float32), training=False),
                          np.float64)
    fitted.predict = predict
    if fitted.folds is not None:
        # Held-out figures of the same kind of head on the new features.
        if config.head == 'logistic':
            cv = cross_validate_head(f_pool, y, Cs=[fitted.selection.heads[0].C],
                                     seed=int(config.seed), n_classes=n_classes,
                                     refit=False)
            fitted.oof_probabilities, fitted.folds = cv.oof_probabilities, cv.folds
        else:
            dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
            initial = [[np.asarray(v, np.float32) for v in layer.get_weights()]
                       for layer in dense]
            fitted.oof_probabilities = _sgd_oof(head, initial, f_pool[:, None, :], y,
                                                fitted.folds, config)


def _embed_arrays(images, view, config):
    """Features of in-memory images in one view (no cache)."""
    settings = _sized(view)
    # The degraded copies keep the holes of the files, which warned already.
    return forward_in_batches(
        forward_function(_view_backbone(view, config.weights)), images,
        int(config.embed_batch_size),
        prepare=lambda image: normalize(image, settings=settings, warn=False))


def drift_probabilities(config, embedding, candidate, heads, folds):
    """Held-out probabilities of degraded copies of the pool images.

    Each pool image gets one copy (`astroclusterclf.drift.degrade`,
    seeded by the run's seed and the image's index), embedded in the
    candidate's views and predicted by heads of the same recipe and
    regularization fitted on the other folds.

    Parameters
    ----------
    config : `RetrainConfig`
    embedding : `Embedding`
    candidate : `~astroclusterclf.selection.Candidate` or `~astroclusterclf.selection.Blend`
    heads : list of `~astroclusterclf.heads.LogisticHead`
        The chosen heads (their regularization is reused).
    folds : `~numpy.ndarray`
        Fold of each pool image.

    Returns
    -------
    probabilities : `~numpy.ndarray`
        ``(N, n_classes)``.
    """
    y = embedding.pool_y
    n_classes = len(embedding.labels)
    images = [degrade(read_image(path).data,
                      np.random.default_rng([int(config.seed), 17, i]))
              for i, path in enumerate(embedding.pool_paths)]
    drifted = {view: _embed_arrays(images, view, config) for view in candidate.views}
    probs = np.zeros((len(y), n_classes))
    for k in np.unique(folds):
        inside, held = folds != k, folds == k
        fold_probs = []
        for group, head in zip(candidate.groups, heads):
            x = np.concatenate([embedding.pool[candidate.views[i]] for i in group], axis=-1)
            fold_head = fit_logistic_head(x[inside], y[inside], C=head.C,
                                          n_classes=n_classes)
            fold_probs.append(fold_head.predict_proba(np.concatenate(
                [drifted[candidate.views[i]][held] for i in group], axis=-1)))
        probs[held] = np.mean(fold_probs, axis=0)
    return probs


def fit_trust(config, embedding, fitted):
    """Calibrate the head and describe the training features (the trust
    stage).

    - The temperature is fitted on the held-out probabilities of the
      head (`~astroclusterclf.calibration.fit_calibration`, which falls
      back to no temperature on separable or small sets).
    - The out-of-distribution description (`~astroclusterclf.ood`) is
      fitted on the pool images in the `OOD_BACKBONE` view; its threshold
      is the ``1 - ood_false_alarm_rate`` quantile of the scores of the
      pool images, each scored by a description fitted without its fold.

    Parameters
    ----------
    config : `RetrainConfig`
    embedding : `Embedding`
    fitted : `FittedHead`

    Returns
    -------
    temperature : float
    density : `~astroclusterclf.ood.FeatureDensity`
        With its threshold.
    info : dict
        What the calibration was fitted on and how (``source``, ``n``,
        ``method``, ``reason``, ``warning``, ``n_errors``), and the
        threshold's ``ood_false_alarm_rate``.
    """
    y = embedding.pool_y
    d = embedding.ood_pool
    rate = float(config.ood_false_alarm_rate)
    if fitted.oof_probabilities is None:
        density = FeatureDensity.fit(d.reshape(-1, d.shape[-1]))
        temperature, info = fit_calibration(np.zeros((0, len(embedding.labels))), [])
        info['source'] = 'none (fewer than two images in a class)'
        scores = density.score(d[:, 0])
        threshold = float(DEFAULT_MARGIN * np.quantile(scores, 1 - rate))
        info['ood_threshold_source'] = (f'{DEFAULT_MARGIN:g} x the {1 - rate:.0%} '
                                        'quantile of the training images (no folds)')
    else:
        folds = fitted.folds
        # The fold descriptions and the final one keep the same number of
        # axes (what the smallest fold allows), so that their scores are in
        # the same units and the quantile carries over.
        smallest = min(int(np.sum(folds != k)) for k in np.unique(folds)) * d.shape[1]
        k_axes = int(max(1, min(OOD_AXES, smallest // 8, d.shape[-1] - 1)))
        density = FeatureDensity.fit(d.reshape(-1, d.shape[-1]), n_components=k_axes)
        source = (f'out-of-fold predictions ({int(folds.max()) + 1} folds) over '
                  f'{len(y)} training images')
        if fitted.drift_probabilities is None:
            temperature, info = fit_calibration(fitted.oof_probabilities, y)
        else:
            temperature, info = fit_calibration(
                np.concatenate([fitted.oof_probabilities, fitted.drift_probabilities]),
                np.concatenate([y, y]))
            source += ' and a degraded copy of each (see astroclusterclf.drift)'
            right = fitted.drift_probabilities.argmax(axis=1) == y
            info['drift_accuracy'] = float(np.mean(right))
        info['source'] = source
        held = np.zeros(len(y))
        for k in np.unique(folds):
            inside = folds != k
            fold_density = FeatureDensity.fit(d[inside].reshape(-1, d.shape[-1]),
                                              n_components=k_axes)
            held[folds == k] = fold_density.score(d[folds == k, 0])
        threshold = float(np.quantile(held, 1 - rate))
        info['ood_threshold_source'] = (f'{1 - rate:.0%} quantile of out-of-fold scores '
                                        f'of {len(y)} training images')
    info['ood_false_alarm_rate'] = rate
    return temperature, replace(density, threshold=threshold), info


def evaluate(embedding, fitted, temperature, density):
    """Figures of the final model on the test images (the evaluate stage).

    Parameters
    ----------
    embedding : `Embedding`
    fitted : `FittedHead`
    temperature : float
    density : `~astroclusterclf.ood.FeatureDensity`

    Returns
    -------
    figures : dict
        ``raw`` and ``calibrated`` probabilities, ``accuracy``,
        ``confusion``, ``misclassified`` (a Table), and ``calibration``
        figures (ECE and NLL before and after, the test images flagged).
    """
    labels = embedding.labels
    n_classes = len(labels)
    y = embedding.test_y
    raw = fitted.predict(embedding.test) if len(y) else np.zeros((0, n_classes))
    probs = floor_probabilities(calibrate_probabilities(raw, temperature))
    ood = density.score(embedding.ood_test) if len(y) else np.zeros(0)
    predicted = probs.argmax(axis=1) if len(y) else np.zeros(0, int)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    wrong = np.flatnonzero(predicted != y)
    misclassified = Table(
        [[str(embedding.test_paths[i]) for i in wrong], [labels[y[i]] for i in wrong],
         [labels[predicted[i]] for i in wrong],
         np.array([probs[i, predicted[i]] for i in wrong], float)],
        names=('path', 'true_label', 'predicted_label', 'probability'),
        dtype=(str, str, str, float))
    figures = dict(
        test_ece_before=expected_calibration_error(raw, y),
        test_ece_after=expected_calibration_error(probs, y),
        test_nll_before=negative_log_likelihood(raw, y),
        test_nll_after=negative_log_likelihood(probs, y),
        test_log_loss=negative_log_likelihood(probs, y),
        test_flagged_ood=int(np.sum(ood > density.threshold)))
    return dict(raw=raw, calibrated=probs, accuracy=_Evaluator.scores(probs, y)[0],
                confusion=confusion, misclassified=misclassified, calibration=figures)


def _json_safe(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if hasattr(value, 'item'):
        return value.item()
    return value


def make_classifier(config, embedding, fitted, temperature, density, calibration):
    """The `~astroclusterclf.ClusterClassifier` of a run, with its metadata.

    Parameters
    ----------
    config : `RetrainConfig`
    embedding : `Embedding`
    fitted : `FittedHead`
    temperature : float
    density : `~astroclusterclf.ood.FeatureDensity`
    calibration : dict
        The figures of `fit_trust` and `evaluate`.

    Returns
    -------
    classifier : `~astroclusterclf.ClusterClassifier`
    """
    views = fitted.candidate.views
    selection = fitted.selection
    metadata = {
        'head': config.head,
        'backbone_weights': backbones.weights_id(views[0].architecture, config.weights),
        'ood_view': {'backbone_weights': embedding.ood_weights_id,
                     'input_size': OOD_INPUT_SIZE,
                     'settings': embedding.ood_settings.to_dict()},
        'ood_false_alarm_rate': float(config.ood_false_alarm_rate),
        'fine_tuned': bool(fitted.fine_tuning is not None
                           and fitted.fine_tuning['kept'] == 'fine-tuned'),
        'fine_tuning': fitted.fine_tuning,
        'training_steps': int(config.steps),
        'temperature': float(temperature),
        'calibration': {key: _json_safe(value) for key, value in calibration.items()},
        'training_frames': _frames(embedding.pool_paths + embedding.val_paths
                                   + embedding.test_paths),
        'selection': [{name: _json_safe(row[name]) for name in selection.table.colnames}
                      for row in selection.table]}
    if len(views) > 1:
        metadata['views'] = [
            {'backbone': v.architecture,
             'backbone_weights': backbones.weights_id(v.architecture, config.weights),
             'preprocessing': _sized(v).to_dict()} for v in views]
        metadata['blend'] = {'name': fitted.candidate.name,
                             'groups': [list(g) for g in fitted.candidate.groups]}
    backbone = '+'.join(dict.fromkeys(v.architecture for v in views))
    return ClusterClassifier(fitted.model, embedding.labels,
                             settings=_sized(views[0]), backbone=backbone,
                             metadata=metadata, ood=density)


@deprecated_renamed_argument(
    ['output_graph', 'output_labels', 'how_many_training_steps', 'train_batch_size',
     'preprocessing', 'random_seed', 'eval_step_interval'],
    ['output', 'labels_output', 'steps', 'batch_size', 'settings', 'seed',
     'eval_interval'],
    ['0.1'] * 7)
def retrain(image_dir, *, output=None, labels_output=None,
            architecture='auto', weights='imagenet', input_size=None,
            settings=None, head=None, steps=4000, batch_size=100, learning_rate=0.01,
            validation_percentage=10, testing_percentage=10, augment=True,
            hidden_units=0, fine_tune=False, fine_tune_steps=200,
            fine_tune_fraction=1.0, fine_tune_learning_rate=1e-4,
            bottleneck_dir=None, summaries_dir=None, seed=0, eval_interval=10,
            embed_batch_size=32, ood_false_alarm_rate=OOD_FALSE_ALARM_RATE,
            drift_calibration=True, callback=None, progress=None,
            reliability_plot='auto'):
    """Retrain a classifier on a folder of class sub-folders.

    The run composes the stages of this module: `create_image_lists`
    (list and split), `embed_images`, `fit_head` (select and fit),
    `fit_trust` (calibrate and describe), `evaluate`, `make_classifier` and
    `write_outputs`.

    Parameters
    ----------
    image_dir : str or `~pathlib.Path`
        Folder whose sub-folders are the classes (names may contain
        spaces) holding FITS, PNG, JPEG or TIFF images.
    output : str or `~pathlib.Path`, optional
        Write the model here: one ``.keras`` file (backbone(s) + head +
        metadata).  By default nothing is written; the model is
        ``result.classifier``.
    labels_output : str or `~pathlib.Path`, optional
        Text file to write with one label per line.
    callback : callable, optional
        Called with an `EvalStep` at every evaluation (SGD head,
        fine-tuning).
    progress : callable, optional
        Called as ``progress(done, total)`` while bottlenecks are computed
        (with a third argument, the name of the view, where it takes one).
    reliability_plot : str, `~pathlib.Path`, None or ``'auto'``, optional
        Where to draw the reliability diagram of the test set (see
        `~astroclusterclf.plotting.plot_reliability_diagram`).  ``'auto'``
        (default): beside ``output`` as ``<stem>.reliability.png`` when
        matplotlib is installed and there is a test set; `None`: none.
    architecture : str, optional
        Backbone (see `astroclusterclf.available_backbones`), or
        ``'auto'`` (default): compare the views and blends of
        `astroclusterclf.selection.default_candidates` (the ImageNet
        ``efficientnet_lite0`` and the astronomy-adapted ``astro_lite0``
        backbones, the zscale and the 99.5 % percentile intervals, their
        concatenations and the average of the two backbones) by the
        cross-validated log-loss of their logistic heads, and use the best
        (the figures are in ``result.selection``).
    weights : str, optional
        Backbone weights (``'imagenet'``: each backbone's pretrained
        ones; another value needs a named ``architecture``).
    input_size : int, optional
        Backbone input size in pixels (default: the backbone's own).
    settings : `~astroclusterclf.NormalizationSettings` or dict, optional
        Normalization (default: those the selection compares); its size is
        set to the backbone's input size and it is stored in the model file.
    head : {'logistic', 'sgd'}, optional
        ``'logistic'`` (default): an L2-regularized multinomial logistic
        regression on standardized features, regularization chosen by
        cross-validated log-loss on the training and validation images
        (see `astroclusterclf.heads`); ``'sgd'``: the old tool's softmax
        head trained by SGD on the training images (default when
        ``hidden_units`` is set).
    steps, batch_size, learning_rate : int, int, float, optional
        Of the SGD head: training steps, random training vectors per step
        (``<= 0``: all), learning rate.
    validation_percentage, testing_percentage : float, optional
        Percentages of each class for the validation and test sets
        (hash-stable, see `astroclusterclf.datasets`).
    augment : bool, optional
        Train on the 8 rotations/flips of each training image (cached
        like any bottleneck; kept in one fold by the cross-validation).
        The test set is never augmented.
    hidden_units : int, optional
        Add a hidden ReLU layer of this size to the SGD head (0: none).
    fine_tune : bool, optional
        After the head, train the backbone with the head (see
        `astroclusterclf.finetune`); the fine-tuned weights are kept only
        if they lower the validation loss.  Single views only.
    fine_tune_steps, fine_tune_fraction, fine_tune_learning_rate : optional
        At most this many steps of 16 images (200); fraction of the
        backbone's weighted layers trained (1.0); Adam learning rate (1e-4).
    bottleneck_dir : str or `~pathlib.Path`, optional
        Feature cache (default ``<cache dir>/bottlenecks``).
    summaries_dir : str or `~pathlib.Path`, optional
        Write TensorBoard scalars (SGD head, fine-tuning) here.
    seed : int, optional
        Seed of the folds, the SGD head and batch sampling.
    eval_interval : int, optional
        Evaluate (and log) every this many SGD steps.
    embed_batch_size : int, optional
        Images per backbone forward pass while computing bottlenecks.
    ood_false_alarm_rate : float, optional
        Fraction of held-out training-like images above the
        out-of-distribution threshold (default 0.05).
    drift_calibration : bool, optional
        Fit the temperature on the held-out predictions of the images and
        of a degraded copy of each (worse seeing, shallower, smaller: see
        `astroclusterclf.drift`), so that the confidence holds on other
        surveys too (default; logistic head without fine-tuning).

    Returns
    -------
    result : `RetrainResult`
        The report; ``result.classifier`` is the retrained
        `~astroclusterclf.ClusterClassifier`.

    Raises
    ------
    DatasetError
        Fewer than two classes, an empty class (also after skipping
        unreadable files), or bad percentages.
    ParameterError
        An unknown option, backbone or head.

    Warns
    -----
    SkippedFileWarning
        For each unreadable file (it is skipped and counted).
    SmallClassWarning
        For classes with few images.
    astropy.utils.exceptions.AstropyDeprecationWarning
        For the old keyword names of TensorFlow's ``retrain.py``
        (``output_graph``, ``output_labels``, ``how_many_training_steps``,
        ``train_batch_size``, ``preprocessing``, ``random_seed``,
        ``eval_step_interval``), accepted for this release.

    Examples
    --------
    >>> import tempfile
    >>> from astroclusterclf import make_dataset, retrain
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = make_dataset(tmp, n_per_class=10, size=32, seed=1)
    ...     result = retrain(tmp, architecture='efficientnet_lite0', input_size=32,
    ...                      augment=False, testing_percentage=0,
    ...                      validation_percentage=0, bottleneck_dir=f'{tmp}/cache')
    >>> result.labels, result.output
    (['globular cluster', 'open cluster'], None)
    """
    t0 = time.perf_counter()
    arguments = locals()
    config = RetrainConfig(**{name: arguments[name]
                              for name in RetrainConfig.__dataclass_fields__})
    if config.auto and config.weights != 'imagenet':
        raise ParameterError("architecture='auto' compares pretrained "
                             'backbones; name the architecture to use other '
                             f'weights ({config.weights!r})')
    if not config.auto:
        backbones.get_spec(config.architecture)  # an unknown name fails early
    if reliability_plot == 'auto':
        reliability_plot = (Path(output).with_suffix('.reliability.png')
                            if output is not None and _has_matplotlib() else None)
    _check_outputs(output, labels_output, config.summaries_dir, reliability_plot)
    lists = create_image_lists(image_dir, testing_percentage=config.testing_percentage,
                               validation_percentage=config.validation_percentage)
    timings = {}
    embedding = embed_images(config, lists, progress=progress)
    timings['bottlenecks'] = time.perf_counter() - t0
    fitted = fit_head(config, embedding, callback=callback)
    timings['training'] = time.perf_counter() - t0 - timings['bottlenecks']
    temperature, density, trust = fit_trust(config, embedding, fitted)
    figures = evaluate(embedding, fitted, temperature, density)
    calibration = dict(trust, temperature=temperature, ood_threshold=density.threshold,
                       **figures['calibration'])
    clf = make_classifier(config, embedding, fitted, temperature, density, calibration)
    timings['calibration'] = time.perf_counter() - t0 - sum(timings.values())
    log.info('final test accuracy %.1f%% (N=%d)', 100 * figures['accuracy'],
             len(embedding.test_y))
    t2 = time.perf_counter()
    plot = write_outputs(clf, embedding, figures, output=output,
                         labels_output=labels_output, reliability_plot=reliability_plot)
    timings['saving'] = time.perf_counter() - t2
    timings['total'] = time.perf_counter() - t0
    history = fitted.history
    selection = fitted.selection.table
    validation_accuracy = (history[-1].validation_accuracy if history
                           else float(selection['cv_accuracy'][selection['chosen']][0]))
    return RetrainResult(
        labels=embedding.labels,
        history=Table(rows=history or None, names=EvalStep._fields,
                      dtype=(int, float, float, float, float, int, str)),
        validation_accuracy=validation_accuracy, test_accuracy=figures['accuracy'],
        confusion_matrix=figures['confusion'], misclassified=figures['misclassified'],
        skipped=embedding.skipped, counts=embedding.counts,
        n_bottlenecks_computed=embedding.n_computed,
        n_bottlenecks_cached=embedding.n_cached,
        output=Path(output) if output is not None else None,
        labels_output=Path(labels_output) if labels_output is not None else None,
        classifier=clf, timings=timings, calibration=calibration,
        reliability_plot=plot, selection=selection if config.auto else None,
        fine_tuning=fitted.fine_tuning, head=config.head,
        candidates=selection)


def write_outputs(clf, embedding, figures, *, output=None, labels_output=None,
                  reliability_plot=None):
    """Write the model file, the label file and the reliability diagram
    (the write stage; each atomically).

    Parameters
    ----------
    clf : `~astroclusterclf.ClusterClassifier`
    embedding : `Embedding`
    figures : dict
        The result of `evaluate`.
    output, labels_output, reliability_plot : path-like, optional
        Where to write each (`None`: not written).

    Returns
    -------
    reliability_plot : `~pathlib.Path` or None
        The diagram written (none without test images).
    """
    if output is not None:
        clf.save(output)
    if labels_output is not None:
        text = ''.join(f'{label}\n' for label in clf.labels)
        atomic_write(labels_output,
                     lambda tmp: Path(tmp).write_text(text, encoding='utf-8'),
                     make_parents=True)
    if reliability_plot is not None and len(embedding.test_y):
        plot_reliability_diagram(figures['raw'], embedding.test_y, reliability_plot,
                                 calibrated=figures['calibrated'])
        return Path(reliability_plot)
    return None
