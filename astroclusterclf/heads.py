# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The default head: an L2-regularized multinomial logistic regression on
standardized bottlenecks, its regularization chosen by cross-validated
log-loss.

One recipe serves both the choice of the backbone and normalization
(`astroclusterclf.selection`) and the head that `~astroclusterclf.retrain`
writes into the model: the head shipped is the one whose cross-validated
figures chose it.

- The features of each training image come with its dihedral variants
  (``(N, n_variants, d)``); the folds keep all the variants of an image
  together (scikit-learn's `~sklearn.model_selection.StratifiedGroupKFold`
  with the image as the group), so a held-out image is never seen rotated
  in training.
- The held-out predictions are made on the unaugmented variant only, as
  a new image would be seen.
- The inverse regularization ``C`` is chosen among `DEFAULT_CS` by the
  mean held-out log-loss (the figure that calibration cares about), and
  the head is refitted on all images with that ``C``.
- The held-out ("out-of-fold") probabilities of the chosen ``C`` are
  returned: `astroclusterclf.calibration` fits its temperature on them
  and the out-of-distribution threshold is set from the same folds.

A fitted `LogisticHead` is one affine map; `LogisticHead.dense_weights`
folds the standardization into it, so the Keras model holds one
``Dense(softmax)`` layer, as with the old SGD head.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf.heads import cross_validate_head
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1], 30)
>>> x = rng.normal(size=(60, 2, 8)) + 1.5 * y[:, None, None]
>>> cv = cross_validate_head(x, y, seed=0)
>>> cv.oof_probabilities.shape, bool(cv.accuracy > 0.8)
((60, 2), True)
>>> head = cv.head
>>> p = head.predict_proba(x[:, 0])
>>> bool(np.allclose(p.sum(axis=1), 1))
True
"""

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold

from .exceptions import ParameterError

__all__ = ['LogisticHead', 'HeadCV', 'DEFAULT_CS', 'grouped_folds',
           'fit_logistic_head', 'cross_validate_head']

#: Inverse L2 regularization strengths compared (on standardized features;
#: small values shrink strongly, as suits a few hundred images of
#: thousand-dimensional features).
DEFAULT_CS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0)

#: Folds of the cross-validation (fewer when a class has fewer images).
N_FOLDS = 5

_MAX_ITER = 500


@dataclass(frozen=True)
class LogisticHead:
    """A fitted multinomial logistic head.

    Attributes
    ----------
    mean, scale : `~numpy.ndarray`
        ``(d,)`` standardization of the features.
    coef : `~numpy.ndarray`
        ``(d, n_classes)`` weights on standardized features.
    intercept : `~numpy.ndarray`
        ``(n_classes,)``.
    C : float
        The inverse regularization strength it was fitted with.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    C: float

    def logits(self, features):
        """Logits of ``(N, d)`` features.

        Parameters
        ----------
        features : array-like
            ``(N, d)`` feature vectors.

        Returns
        -------
        logits : `~numpy.ndarray`
            ``(N, n_classes)`` float64.
        """
        x = (np.asarray(features, np.float64) - self.mean) / self.scale
        return x @ self.coef + self.intercept

    def predict_proba(self, features):
        """Class probabilities of ``(N, d)`` features.

        Parameters
        ----------
        features : array-like
            ``(N, d)`` feature vectors.

        Returns
        -------
        probabilities : `~numpy.ndarray`
            ``(N, n_classes)``, rows summing to 1.
        """
        return _softmax(self.logits(features))

    def dense_weights(self):
        """``(kernel, bias)`` of a ``Dense(softmax)`` layer on the raw
        features that gives the same probabilities.

        Returns
        -------
        kernel : `~numpy.ndarray`
            ``(d, n_classes)`` float32.
        bias : `~numpy.ndarray`
            ``(n_classes,)`` float32.
        """
        kernel = self.coef / self.scale[:, None]
        bias = self.intercept - (self.mean / self.scale) @ self.coef
        return kernel.astype(np.float32), bias.astype(np.float32)


@dataclass(frozen=True)
class HeadCV:
    """The result of `cross_validate_head`.

    Attributes
    ----------
    head : `LogisticHead`
        Refitted on all images with the chosen ``C``.
    C : float
        The chosen inverse regularization.
    log_loss : float
        Mean held-out log-loss at ``C``.
    accuracy : float
        Held-out accuracy at ``C``.
    oof_probabilities : `~numpy.ndarray`
        ``(N, n_classes)`` held-out probabilities of each image
        (unaugmented) at ``C``.
    folds : `~numpy.ndarray`
        ``(N,)`` fold of each image.
    scores : dict
        ``{C: held-out log-loss}`` for every ``C`` compared.
    """

    head: LogisticHead
    C: float
    log_loss: float
    accuracy: float
    oof_probabilities: np.ndarray
    folds: np.ndarray
    scores: dict


def _softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check(features, y):
    x = np.asarray(features, np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 3 or len(x) != len(y):
        raise ParameterError(f'features must be (N, n_variants, d) with N = '
                             f'{len(y)} labels, got shape {x.shape}')
    if len(np.unique(y)) < 2:
        raise ParameterError('a head needs images of at least two classes')
    return x, y


def grouped_folds(y, n_variants=1, *, n_folds=N_FOLDS, seed=0):
    """Stratified folds of images whose variants stay together.

    Parameters
    ----------
    y : array-like
        ``(N,)`` class of each image.
    n_variants : int, optional
        Feature vectors per image (its dihedral variants).
    n_folds : int, optional
        Folds wanted (fewer when a class has fewer images; at least 2).
    seed : int, optional
        Seeds the shuffling of the folds.

    Returns
    -------
    folds : `~numpy.ndarray`
        ``(N,)`` fold index of each image; every variant of an image is
        in that fold.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf.heads import grouped_folds
    >>> folds = grouped_folds([0, 0, 0, 1, 1, 1], n_variants=8, n_folds=3, seed=0)
    >>> sorted(folds[:3].tolist()), sorted(folds[3:].tolist())   # one image per class per fold
    ([0, 1, 2], [0, 1, 2])
    """
    y = np.asarray(y, dtype=np.int64)
    n_folds = int(max(2, min(n_folds, np.bincount(y)[np.unique(y)].min())))
    groups = np.repeat(np.arange(len(y)), n_variants)
    y_rows = np.repeat(y, n_variants)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True,
                                    random_state=int(seed))
    row_fold = np.empty(len(y_rows), dtype=int)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(y_rows)), y_rows, groups)):
        row_fold[held] = k
    folds = row_fold.reshape(len(y), n_variants)
    if np.any(folds != folds[:, :1]):   # scikit-learn's promise, checked
        raise RuntimeError('StratifiedGroupKFold split the variants of an image')
    return folds[:, 0]


def _fit(x_rows, y_rows, C, n_classes, estimator=None):
    """Fit scikit-learn's multinomial logistic regression on standardized
    rows; returns ``(LogisticHead, estimator)``."""
    mean = x_rows.mean(axis=0)
    scale = x_rows.std(axis=0)
    scale = np.where(scale > 1e-8 * max(float(scale.max()), 1e-300), scale, 1.0)
    a = (x_rows - mean) / scale
    if estimator is None:
        estimator = LogisticRegression(C=C, max_iter=_MAX_ITER, tol=1e-4,
                                       warm_start=True)
    estimator.set_params(C=C)
    with warnings.catch_warnings():
        # Strongly regularized fits converge in a few iterations; the weakly
        # regularized ones may stop at max_iter, near enough for a choice
        # made on held-out log-loss.
        warnings.simplefilter('ignore', ConvergenceWarning)
        estimator.fit(a, y_rows)
    coef = estimator.coef_.T
    intercept = estimator.intercept_
    present = estimator.classes_
    if coef.shape[1] == 1:       # binary: scikit-learn keeps one column
        coef = np.hstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    full_coef = np.zeros((coef.shape[0], n_classes))
    full_intercept = np.full(n_classes, -1e4)    # an absent class: never
    full_coef[:, present] = coef
    full_intercept[present] = intercept
    return LogisticHead(mean, scale, full_coef, full_intercept, float(C)), estimator


def fit_logistic_head(features, y, *, C=0.01, n_classes=None):
    """Fit a logistic head with a given regularization.

    Parameters
    ----------
    features : array-like
        ``(N, n_variants, d)`` (or ``(N, d)``) features of the images.
    y : array-like
        ``(N,)`` classes.
    C : float, optional
        Inverse L2 regularization strength on standardized features.
    n_classes : int, optional
        Number of classes (default: ``max(y) + 1``).

    Returns
    -------
    head : `LogisticHead`
    """
    x, y = _check(features, y)
    n_classes = int(n_classes or y.max() + 1)
    return _fit(x.reshape(-1, x.shape[-1]), np.repeat(y, x.shape[1]), C, n_classes)[0]


def cross_validate_head(features, y, *, Cs=DEFAULT_CS, n_folds=N_FOLDS, seed=0,
                        n_classes=None, refit=True):
    """Choose ``C`` by grouped, stratified cross-validated log-loss and
    refit.

    Parameters
    ----------
    features : array-like
        ``(N, n_variants, d)`` (or ``(N, d)``) features; variant 0 is the
        unaugmented image.
    y : array-like
        ``(N,)`` classes.
    Cs : sequence of float, optional
        Inverse regularization strengths to compare.
    n_folds : int, optional
        Folds (see `grouped_folds`).
    seed : int, optional
        Seeds the folds.
    n_classes : int, optional
        Number of classes (default: ``max(y) + 1``).
    refit : bool, optional
        Refit on all images with the chosen ``C`` (else ``head`` is
        `None`).

    Returns
    -------
    result : `HeadCV`

    Raises
    ------
    ParameterError
        Fewer than two classes, or a class with fewer than two images.
    """
    x, y = _check(features, y)
    n_classes = int(n_classes or y.max() + 1)
    counts = np.bincount(y)
    if counts[counts > 0].min() < 2:
        raise ParameterError('cross-validation needs at least two images of '
                             'each class')
    n_var = x.shape[1]
    folds = grouped_folds(y, n_var, n_folds=n_folds, seed=seed)
    Cs = sorted(float(c) for c in Cs)
    oof = {c: np.zeros((len(y), n_classes)) for c in Cs}
    for k in np.unique(folds):
        inside, held = folds != k, folds == k
        rows = x[inside].reshape(-1, x.shape[-1])
        y_rows = np.repeat(y[inside], n_var)
        estimator = None
        for c in Cs:      # weakest C first: each fit starts from the last
            head, estimator = _fit(rows, y_rows, c, n_classes, estimator)
            oof[c][held] = head.predict_proba(x[held, 0])
    scores = {c: float(log_loss(y, np.clip(oof[c], 1e-15, 1), labels=range(n_classes)))
              for c in Cs}
    best = min(Cs, key=lambda c: (scores[c], -c))
    accuracy = float(np.mean(oof[best].argmax(axis=1) == y))
    head = fit_logistic_head(x, y, C=best, n_classes=n_classes) if refit else None
    return HeadCV(head, best, scores[best], accuracy, oof[best], folds, scores)
