# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Retrain a classification head on cached backbone features.

This is TensorFlow's old ``retrain.py`` for TensorFlow 2 / Keras 3 and
FITS images: point `retrain` at a folder whose sub-folders are the
classes; every image is normalized (`astroclusterclf.preprocessing`),
embedded by a pretrained backbone (`astroclusterclf.backbones`) into a
cached bottleneck vector (`astroclusterclf.bottlenecks`), and a softmax
head is trained on those vectors.  The result is one self-contained
``.keras`` model file (backbone + head + metadata) and an honest report:
validation accuracy during training, final accuracy on a held-out test
set, a confusion matrix and the misclassified test files.

Differences from the old tool:

- augmentation uses the 8 rotations/flips of the dihedral group (valid
  for sky images) and still uses the cache, one entry per variant; the
  validation and test sets are never augmented;
- the loss is weighted by inverse class frequency, so an imbalanced
  folder does not bias the head;
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
from .augment import N_VARIANTS
from .bottlenecks import BottleneckCache
from .classifier import ClusterClassifier
from .datasets import SPLITS, create_image_lists
from .calibration import (calibrate_probabilities, expected_calibration_error,
                          fit_temperature, negative_log_likelihood)
from .exceptions import (AstroClusterClfError, DatasetError, OutputError,
                         ParameterError)
from .io import image_geometry
from .ood import DEFAULT_MARGIN, DEFAULT_QUANTILE, FeatureDensity
from .finetune import fine_tune as fine_tune_model
from .forward import forward_function
from .parallel import prefetch_map
from .plotting import plot_reliability_diagram
from .preprocessing import NormalizationSettings, fits_to_rgb
from .selection import default_candidates, select

__all__ = ['retrain', 'RetrainResult', 'EvalStep']

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
    """Figures of one evaluation step (passed to ``callback``)."""

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
        With ``architecture='auto'``: the cross-validated accuracy of each
        candidate backbone and normalization, and which was chosen (see
        `astroclusterclf.selection.Selection`).
    fine_tuning : dict or None
        With ``fine_tune=True``: which model was kept (``'kept'``:
        ``'fine-tuned'`` or ``'head-only'``), the validation loss of each
        (``val_loss_head``, ``val_loss_fine_tuned``) and the step of the
        best fine-tuned weights (``best_step``).
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
        row per true class, one column per predicted class)."""
        t = Table()
        t['true \\ predicted'] = self.labels
        for j, label in enumerate(self.labels):
            t[label] = self.confusion_matrix[:, j]
        return t

    def report(self):
        """Return the final report as text (what the CLI prints)."""
        lines = []
        n_test = int(self.confusion_matrix.sum())
        if self.selection is not None:
            t = self.selection
            if t.meta.get('note'):
                lines.append(f'Backbone and normalization: {t["candidate"][t["chosen"]][0]} '
                             f'({t.meta["note"]})')
            else:
                lines.append(f'Backbone and normalization chosen by {t.meta["n_folds"]}-fold '
                             f'cross-validation on {t.meta["n_images"]} training and '
                             'validation images:')
            for row in ([] if t.meta.get('note') else t):
                mark = '*' if row['chosen'] else ' '
                lines.append(f' {mark} {row["candidate"]:<34s} accuracy '
                             f'{row["cv_accuracy"]:.3f}  error {row["cv_error"]:.4f}')
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
        c = self.calibration
        if c:
            lines.append(f'Calibration: temperature {c["temperature"]:.3f}, fitted on '
                         f'{c["source"]} (N={c["n"]})')
            lines.append(f'Test expected calibration error (10 bins) '
                         f'{c["test_ece_before"]:.3f} -> {c["test_ece_after"]:.3f}, '
                         f'negative log-likelihood {c["test_nll_before"]:.3f} -> '
                         f'{c["test_nll_after"]:.3f} (before -> after calibration)')
            lines.append(f'Out-of-distribution threshold {c["ood_threshold"]:.3g}: '
                         f'{c["test_flagged_ood"]} of {n_test} test images above it')
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


#: Held-out images needed to calibrate on the validation split alone;
#: with fewer, out-of-fold predictions over the training images are used.
MIN_HELD_OUT = 50

#: Folds of the out-of-fold predictions.
N_FOLDS = 5


def _fit_trust(head_probs, initial, x_train, y_train, x_val, y_val, *, steps,
               batch_size, learning_rate, seed, d_train=None, d_val=None):
    """Fit the calibration temperature and the out-of-distribution
    description with its threshold, on held-out predictions.

    ``x_train`` is ``(N, n_variants, d)``, ``x_val`` ``(M, d)``;
    ``head_probs(features)`` gives the trained head's probabilities and
    ``initial`` its initial weights (for the out-of-fold refits).
    ``d_train``, ``d_val`` are the features the out-of-distribution
    description is fitted on (default: ``x_train``, ``x_val``).
    Returns ``(temperature, density, info)``.
    """
    d_train = x_train if d_train is None else d_train
    d_val = x_val if d_val is None else d_val
    density = FeatureDensity.fit(d_train.reshape(-1, d_train.shape[-1]))
    if len(y_val) >= MIN_HELD_OUT:
        held_probs = head_probs(x_val)
        held_y = y_val
        held_scores = density.score(d_val)
        source = 'validation split'
    else:
        # Out-of-fold: each training image is predicted (and scored) by a
        # head (and a description) fitted without it; folds stratified by
        # class, with all variants of an image in the same fold.
        n_folds = min(N_FOLDS, int(np.bincount(y_train).min()))
        if n_folds < 2:
            info = {'source': 'none (too few images)', 'n': 0}
            return 1.0, replace(density, threshold=float(
                DEFAULT_MARGIN * np.quantile(density.score(d_train[:, 0]), 0.99))), info
        rng = np.random.default_rng(seed + 7)
        fold = np.empty(len(y_train), int)
        for c in np.unique(y_train):
            members = rng.permutation(np.flatnonzero(y_train == c))
            fold[members] = np.arange(len(members)) % n_folds
        held_probs = np.zeros((len(y_train), initial[-1][0].shape[1]))
        held_scores = np.zeros(len(y_train))
        n_var = x_train.shape[1]
        for k in range(n_folds):
            inside, outside = fold != k, fold == k
            params = _sgd([[w.copy() for w in layer] for layer in initial],
                          x_train[inside].reshape(-1, x_train.shape[-1]),
                          np.repeat(y_train[inside], n_var), steps=steps,
                          batch_size=batch_size, learning_rate=learning_rate,
                          rng=np.random.default_rng(seed + 11 + k))
            held_probs[outside] = _head_forward(params, x_train[outside, 0])[1]
            fold_density = FeatureDensity.fit(
                d_train[inside].reshape(-1, d_train.shape[-1]))
            held_scores[outside] = fold_density.score(d_train[outside, 0])
        held_y = y_train
        source = f'out-of-fold predictions ({n_folds} folds) over the training images'
    with np.errstate(divide='ignore'):
        logits = np.log(np.clip(held_probs, 1e-300, None))
    temperature = fit_temperature(logits, held_y)
    threshold = float(DEFAULT_MARGIN * np.quantile(held_scores, DEFAULT_QUANTILE))
    info = {'source': source, 'n': int(len(held_y))}
    return temperature, replace(density, threshold=threshold), info


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


@deprecated_renamed_argument(
    ['output_graph', 'output_labels', 'how_many_training_steps', 'train_batch_size',
     'preprocessing', 'random_seed', 'eval_step_interval'],
    ['output', 'labels_output', 'steps', 'batch_size', 'settings', 'seed',
     'eval_interval'],
    ['0.1'] * 7)
def retrain(image_dir, *, output=None, labels_output=None,
            architecture='auto', weights='imagenet', input_size=None,
            settings=None, steps=4000, batch_size=100, learning_rate=0.01,
            validation_percentage=10, testing_percentage=10, augment=True,
            hidden_units=0, fine_tune=False, fine_tune_steps=200,
            fine_tune_fraction=1.0, fine_tune_learning_rate=1e-4,
            bottleneck_dir=None, summaries_dir=None, seed=0, eval_interval=10,
            embed_batch_size=32, callback=None, progress=None,
            reliability_plot='auto'):
    """Retrain a classifier on a folder of class sub-folders.

    Parameters
    ----------
    image_dir : str or `~pathlib.Path`
        Folder whose sub-folders are the classes (names may contain
        spaces) holding FITS, PNG, JPEG or TIFF images.
    output : str or `~pathlib.Path`, optional
        Write the model here: one ``.keras`` file (backbone + head +
        metadata).  By default nothing is written; the model is
        ``result.classifier`` (save it later with
        `~astroclusterclf.ClusterClassifier.save`).
    labels_output : str or `~pathlib.Path`, optional
        Text file to write with one label per line.
    architecture : str, optional
        Backbone (see `astroclusterclf.available_backbones`), or
        ``'auto'`` (default): compare the ImageNet ``efficientnet_lite0``
        and the astronomy-adapted ``astro_lite0`` backbones, each with the
        zscale and the 99.5 % percentile interval (only the given
        ``settings`` when there are some), by cross-validated accuracy on
        the training and validation images, and use the best (see
        `astroclusterclf.selection`; the figures are in
        ``result.selection``).
    weights : str, optional
        Backbone weights (``'imagenet'``: each backbone's pretrained
        ones; another value needs a named ``architecture``).
    input_size : int, optional
        Backbone input size in pixels (default: the backbone's own; a
        smaller size is faster and less accurate).
    settings : `~astroclusterclf.NormalizationSettings` or dict, optional
        Normalization (default settings); its size is set to the
        backbone's input size and it is stored in the model file.
    steps : int, optional
        Training steps of the head.
    batch_size : int, optional
        Random training vectors per step of the head (``<= 0``: all).
    learning_rate : float, optional
        Learning rate of the head's plain SGD (as the old tool).
    validation_percentage, testing_percentage : float, optional
        Percentages of each class for the validation and test sets
        (hash-stable, see `astroclusterclf.datasets`).
    augment : bool, optional
        Train on the 8 rotations/flips of each training image (cached
        like any bottleneck).  The validation and test sets are never
        augmented.
    hidden_units : int, optional
        Add a hidden ReLU layer of this size to the head (0: none).
    fine_tune : bool, optional
        After the head, train the backbone with the head on the images
        (see `astroclusterclf.finetune`): layer-wise learning rates,
        BatchNorm frozen, rotations/flips plus photometric augmentation,
        early stopping on the validation loss.  The fine-tuned weights are
        kept only if they lower the validation loss of the head-only
        model; ``result.fine_tuning`` says which was kept.
    fine_tune_steps : int, optional
        At most this many steps of 16 images (default 200).
    fine_tune_fraction : float, optional
        Fraction of the backbone's weighted layers, from the top, that
        are trained (default 1.0: all but BatchNorm).
    fine_tune_learning_rate : float, optional
        Adam learning rate of the head and the top layers (default 1e-4;
        each lower quarter of the backbone learns 0.3 times as fast as
        the one above).
    bottleneck_dir : str or `~pathlib.Path`, optional
        Feature cache (default ``<cache dir>/bottlenecks``, see
        `astroclusterclf.config.cache_dir`).
    summaries_dir : str or `~pathlib.Path`, optional
        Write TensorBoard scalars to ``summaries_dir/train`` and
        ``summaries_dir/validation``.
    seed : int, optional
        Seed of the head's initial weights and of batch sampling.
    eval_interval : int, optional
        Evaluate (and log) every this many steps.
    embed_batch_size : int, optional
        Images per backbone forward pass while computing bottlenecks.
    callback : callable, optional
        Called with an `EvalStep` at every evaluation.
    progress : callable, optional
        Called as ``progress(done, total)`` while bottlenecks are computed.
    reliability_plot : str, `~pathlib.Path`, None or ``'auto'``, optional
        Where to draw the reliability diagram of the test set (see
        `~astroclusterclf.plotting.plot_reliability_diagram`).  ``'auto'``
        (default): beside ``output`` as ``<stem>.reliability.png`` when
        matplotlib is installed and there is a test set; `None`: none.

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
    ...     result = retrain(tmp, steps=50, input_size=32, augment=False,
    ...                      testing_percentage=0, validation_percentage=0,
    ...                      bottleneck_dir=f'{tmp}/cache')
    >>> result.labels, result.output
    (['globular cluster', 'open cluster'], None)
    """
    t0 = time.perf_counter()
    timings = {}
    auto = isinstance(architecture, str) and architecture == 'auto'
    if auto and weights != 'imagenet':
        raise ParameterError("architecture='auto' compares pretrained "
                             'backbones; name the architecture to use other '
                             f'weights ({weights!r})')
    if not auto:
        backbones.get_spec(architecture)  # an unknown name fails early
    if reliability_plot == 'auto':
        reliability_plot = (Path(output).with_suffix('.reliability.png')
                            if output is not None and _has_matplotlib() else None)
    _check_outputs(output, labels_output, summaries_dir, reliability_plot)
    lists = create_image_lists(image_dir,
                               testing_percentage=testing_percentage,
                               validation_percentage=validation_percentage)
    labels = lists.labels
    n_classes = len(labels)
    selection = None
    if auto:
        fit_rows = [row for split in ('training', 'validation')
                    for row in lists.files(split)]
        selection = select([p for p, _ in fit_rows],
                           [y for _, y in fit_rows],
                           candidates=default_candidates(settings, input_size),
                           bottleneck_dir=bottleneck_dir, seed=seed,
                           batch_size=embed_batch_size, progress=progress)
        architecture = selection.chosen.architecture
        settings = selection.chosen.settings
        log.info('architecture auto: chose %s', selection.chosen.name)
    timings['selection'] = time.perf_counter() - t0
    spec = backbones.get_spec(architecture)
    cache = BottleneckCache(bottleneck_dir, architecture=spec.name,
                            weights=weights, settings=settings,
                            input_size=input_size)
    settings = cache.settings
    size = cache.input_size
    import keras   # after the checks above: a mistake costs no TensorFlow import
    size_arg = None if size == spec.input_size else size

    # -- bottlenecks (training set with all variants when augmenting)
    train_variants = tuple(range(N_VARIANTS)) if augment else (0,)
    requests = []
    for split in SPLITS:
        variants = train_variants if split == 'training' else (0,)
        requests += [(path, variants, split, y)
                     for path, y in lists.files(split)]
    features = cache.get_features([r[0] for r in requests],
                                  variants=[r[1] for r in requests],
                                  batch_size=embed_batch_size, progress=progress)
    n_computed, n_cached = features.n_computed, features.n_cached
    # The out-of-distribution description is fitted in its own fixed view
    # (see OOD_BACKBONE); when it is the model's own, the cache answers.
    ood_cache = BottleneckCache(bottleneck_dir, architecture=OOD_BACKBONE,
                                settings=ood_view_settings(settings),
                                input_size=OOD_INPUT_SIZE)
    if ood_cache.root == cache.root:
        ood_features = features
    else:
        ood_features = ood_cache.get_features(
            [r[0] for r in requests], variants=[r[1] for r in requests],
            batch_size=embed_batch_size, progress=progress)
        n_computed += ood_features.n_computed
        n_cached += ood_features.n_cached
    if selection is not None:
        n_computed += selection.table.meta['n_computed']
        n_cached += selection.table.meta['n_cached']
    timings['bottlenecks'] = time.perf_counter() - t0

    data = {}
    ood_data = {}
    counts = {}
    for split in SPLITS:
        rows = [(path, y) for path, _, s, y in requests
                if s == split and path in features.features]
        paths = [p for p, _ in rows]
        y = np.array([y for _, y in rows], dtype=np.int64)
        counts[split] = {label: int(np.sum(y == i))
                         for i, label in enumerate(labels)}
        if rows:
            x = np.stack([features.features[p] for p in paths])
        else:
            x = np.zeros((0, len(train_variants if split == 'training'
                                 else (0,)), spec.feature_length),
                         np.float32)
        data[split] = (paths, x, y)
        ood_data[split] = (np.stack([ood_features.features[p] for p in paths])
                           if rows else np.zeros(x.shape[:2] + (ood_cache.feature_length,),
                                                 np.float32))
    empty = [label for label, n in counts['training'].items() if n == 0]
    if empty:
        raise DatasetError(
            f'{image_dir}: no readable training image in class(es) '
            + ', '.join(repr(e) for e in empty))

    # -- head on bottlenecks
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    _, x_train, y_train = data['training']
    n_var = x_train.shape[1]
    x_train_flat = x_train.reshape(-1, spec.feature_length)
    y_train_flat = np.repeat(y_train, n_var)
    _, x_val, y_val = data['validation']
    x_val = x_val[:, 0]
    head = _build_head(spec.feature_length, n_classes,
                       hidden_units=hidden_units, seed=int(seed))
    history = []
    fine_tuning = None
    evaluator = _Evaluator(summaries_dir, callback, history)
    try:
        initial = _train_head(head, x_train_flat, y_train_flat, x_val, y_val,
                              steps=int(steps), batch_size=int(batch_size),
                              learning_rate=learning_rate,
                              eval_interval=eval_interval, rng=rng,
                              evaluator=evaluator)

        # -- the full model: backbone + head
        if fine_tune:
            backbone = backbones.get_backbone(spec.name, weights=weights,
                                              trainable=True,
                                              input_size=size_arg)
        else:
            backbone = backbones.shared_backbone(spec.name, weights, size_arg)
        inputs = keras.Input((size, size, 3),
                             name='image')
        model = keras.Model(inputs, head(backbone(inputs)),
                            name=f'astroclusterclf_{spec.name}')

        test_paths, x_test, y_test = data['testing']
        if fine_tune:
            train_paths = data['training'][0]
            x_images = _load_images(train_paths, settings)
            val_images = _load_images(data['validation'][0], settings)
            if val_images is None:
                val_images = np.zeros((0,) + model.inputs[0].shape[1:],
                                      np.float32)
            fine_tuning = fine_tune_model(
                model, backbone, head, x_images, y_train, val_images, y_val,
                steps=int(fine_tune_steps),
                batch_size=min(int(batch_size), 16),
                learning_rate=float(fine_tune_learning_rate),
                eval_interval=max(1, min(int(eval_interval),
                                         int(fine_tune_steps))),
                rng=rng, evaluator=evaluator, first_step=int(steps),
                fraction=fine_tune_fraction,
                class_weight=_class_weights(y_train, n_classes))
            backbone.trainable = False
            model.trainable = False
    finally:
        evaluator.close()
    timings['training'] = time.perf_counter() - t1

    # -- trust: calibration, and the description of the training features
    t_trust = time.perf_counter()
    if fine_tune:
        # The backbone changed: the cached bottlenecks are not its features.
        embed = forward_function(backbone)

        def features_of(images):
            if images is None or not len(images):
                return np.zeros((0, spec.feature_length))
            return np.concatenate([np.asarray(embed(images[i:i + embed_batch_size]))
                                   for i in range(0, len(images), embed_batch_size)])
        f_train = features_of(x_images)[:, None, :]
        f_val = features_of(val_images)
        f_test = features_of(_load_images(test_paths, settings))
    else:
        f_train, f_val, f_test = x_train, x_val, x_test[:, 0]

    def head_probs(features):
        if not len(features):
            return np.zeros((0, n_classes))
        return np.asarray(head(np.asarray(features, np.float32), training=False),
                          np.float64)

    d_train, d_val, d_test = (ood_data['training'], ood_data['validation'][:, 0],
                              ood_data['testing'][:, 0])
    temperature, density, trust = _fit_trust(
        head_probs, initial, f_train, y_train, f_val, y_val, steps=int(steps),
        batch_size=int(batch_size), learning_rate=learning_rate, seed=int(seed),
        d_train=d_train, d_val=d_val)
    frames = _frames([path for split in SPLITS for path in data[split][0]])
    timings['calibration'] = time.perf_counter() - t_trust

    # -- final evaluation on the test set
    raw_test_probs = head_probs(f_test)
    test_probs = calibrate_probabilities(raw_test_probs, temperature)
    test_ood = density.score(d_test) if len(d_test) else np.zeros(0)
    calibration = dict(
        trust, temperature=temperature,
        test_ece_before=expected_calibration_error(raw_test_probs, y_test),
        test_ece_after=expected_calibration_error(test_probs, y_test),
        test_nll_before=negative_log_likelihood(raw_test_probs, y_test),
        test_nll_after=negative_log_likelihood(test_probs, y_test),
        ood_threshold=density.threshold,
        test_flagged_ood=int(np.sum(test_ood > density.threshold)))
    clf = ClusterClassifier(
        model, labels, settings=settings, backbone=spec.name,
        metadata={'backbone_weights': cache.weights_id,
                  'ood_view': {'backbone_weights': ood_cache.weights_id,
                               'input_size': OOD_INPUT_SIZE,
                               'settings': ood_cache.settings.to_dict()},
                  'fine_tuned': bool(fine_tuning is not None
                                     and fine_tuning['kept'] == 'fine-tuned'),
                  'fine_tuning': fine_tuning,
                  'training_steps': int(steps),
                  'temperature': float(temperature),
                  'calibration': {key: (value if not isinstance(value, float)
                                        or np.isfinite(value) else None)
                                  for key, value in calibration.items()},
                  'training_frames': frames,
                  'selection': (None if selection is None else
                                [dict(zip(selection.table.colnames,
                                          [v.item() if hasattr(v, 'item') else v
                                           for v in row]))
                                 for row in selection.table])},
        ood=density)
    test_accuracy = _Evaluator.scores(test_probs, y_test)[0]
    predicted = (np.argmax(test_probs, axis=1) if len(test_probs)
                 else np.zeros(0, int))
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y_test, predicted), 1)
    wrong = np.flatnonzero(predicted != y_test)
    misclassified = Table(
        [[str(test_paths[i]) for i in wrong],
         [labels[y_test[i]] for i in wrong],
         [labels[predicted[i]] for i in wrong],
         np.array([test_probs[i, predicted[i]] for i in wrong], float)],
        names=('path', 'true_label', 'predicted_label', 'probability'),
        dtype=(str, str, str, float))
    history_table = Table(rows=history or None, names=EvalStep._fields,
                          dtype=(int, float, float, float, float, int, str))
    log.info('final test accuracy %.1f%% (N=%d)', 100 * test_accuracy,
             len(y_test))

    # -- outputs
    t2 = time.perf_counter()
    if output is not None:
        clf.save(output)
    if labels_output is not None:
        text = ''.join(f'{label}\n' for label in labels)
        atomic_write(labels_output,
                     lambda tmp: Path(tmp).write_text(text, encoding='utf-8'),
                     make_parents=True)
    if reliability_plot is not None and len(y_test):
        plot_reliability_diagram(raw_test_probs, y_test, reliability_plot,
                                 calibrated=test_probs)
    else:
        reliability_plot = None
    timings['saving'] = time.perf_counter() - t2
    timings['total'] = time.perf_counter() - t0
    validation_accuracy = (history[-1].validation_accuracy if history
                           else float('nan'))
    return RetrainResult(
        labels=labels, history=history_table,
        validation_accuracy=validation_accuracy, test_accuracy=test_accuracy,
        confusion_matrix=confusion, misclassified=misclassified,
        skipped=features.skipped, counts=counts,
        n_bottlenecks_computed=n_computed,
        n_bottlenecks_cached=n_cached,
        output=Path(output) if output is not None else None,
        labels_output=Path(labels_output) if labels_output is not None else None,
        classifier=clf, timings=timings, calibration=calibration,
        reliability_plot=Path(reliability_plot) if reliability_plot is not None else None,
        selection=None if selection is None else selection.table,
        fine_tuning=fine_tuning)
