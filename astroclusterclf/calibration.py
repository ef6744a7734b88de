# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Calibrated probabilities: temperature scaling and its figures of merit.

A softmax head trained to low cross entropy on a few hundred images is
over-confident on new data: among predictions made at confidence 0.95,
fewer than 95 % are right.  Temperature scaling (Guo et al. 2017, "On
Calibration of Modern Neural Networks", ICML) divides the logits by one
number :math:`T > 0`, fitted to minimise the negative log-likelihood of
held-out predictions.  It changes no prediction (the order of the classes
is kept), only how confident they are, and with one parameter it cannot
over-fit a small validation set the way a per-bin method would.

`retrain` fits :math:`T` on the validation split, or, when that is too
small, on out-of-fold predictions over the training bottlenecks, and
stores it in the model file; `~astroclusterclf.ClusterClassifier.predict`
applies it.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf.calibration import (apply_temperature,
...     expected_calibration_error, fit_temperature)
>>> rng = np.random.default_rng(0)
>>> logits = rng.normal(size=(400, 2)) * 4          # an over-confident model
>>> truth = (rng.random(400) < 1 / (1 + np.exp(-(logits[:, 1] - logits[:, 0]) / 4))
...          ).astype(int)
>>> t = fit_temperature(logits, truth)
>>> 3 < t < 5
True
>>> before = expected_calibration_error(apply_temperature(logits, 1.0), truth)
>>> after = expected_calibration_error(apply_temperature(logits, t), truth)
>>> bool(after < before)
True
"""

import numpy as np

from .exceptions import ParameterError

__all__ = ['fit_temperature', 'fit_calibration', 'apply_temperature',
           'calibrate_probabilities', 'floor_probabilities',
           'expected_calibration_error', 'negative_log_likelihood',
           'reliability_bins', 'PROBABILITY_FLOOR', 'MIN_CALIBRATION',
           'SMALL_CALIBRATION']

#: The search range of the temperature; a fit that ends on a bound is not
#: used (see `fit_calibration`).
_T_RANGE = (1e-3, 1e3)

#: Width (standard deviation) of the Gaussian prior on log T: a
#: temperature away from 1 (the cross-validated head as it is) must be
#: paid for by the held-out data (the penalty ``(log T)**2 / (2 width**2)``
#: is added to the summed held-out log-loss).
PRIOR_WIDTH = 0.5

#: No class gets a probability below this (and none reaches 1): a few
#: hundred training images cannot support odds beyond 10,000 to 1.
PROBABILITY_FLOOR = 1e-4

#: Fewest held-out predictions to fit a temperature on at all.
MIN_CALIBRATION = 20

#: Below this many held-out predictions the report warns that the
#: calibration is uncertain.
SMALL_CALIBRATION = 100


def _log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def apply_temperature(logits, temperature):
    """Return ``softmax(logits / temperature)`` row by row.

    Parameters
    ----------
    logits : array-like
        ``(N, n_classes)`` logits (or log-probabilities: they differ by a
        constant per row, which the softmax ignores).
    temperature : float
        :math:`T > 0`; 1 leaves the probabilities as they are.

    Returns
    -------
    probabilities : `~numpy.ndarray`
        ``(N, n_classes)``, float64, rows summing to 1.
    """
    if not temperature > 0:
        raise ParameterError(f'temperature must be positive, got {temperature}')
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def calibrate_probabilities(probabilities, temperature):
    """Apply a temperature to probabilities (as a model outputs them).

    ``softmax(log(p) / T)`` equals ``softmax(z / T)`` for the logits ``z``
    that gave ``p``, so a model that outputs probabilities is calibrated
    without changing it.  Zero probabilities stay zero.

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` probabilities, rows summing to 1.
    temperature : float
        :math:`T > 0`; 1 leaves the probabilities as they are.

    Returns
    -------
    probabilities : `~numpy.ndarray`
        ``(N, n_classes)``, float64: the calibrated probabilities (the
        input as float64 when ``temperature`` is 1 or it is empty).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1 or probabilities.size == 0:
        return probabilities
    with np.errstate(divide='ignore'):
        logp = np.log(np.clip(probabilities, 0, None))
    logp = np.where(np.isfinite(logp), logp, -1e300)
    return apply_temperature(logp, temperature)


def negative_log_likelihood(probabilities, labels):
    """Mean negative log-likelihood of the true classes (NaN when empty).

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` predicted probabilities.
    labels : array-like of int
        ``(N,)`` indices of the true classes.

    Returns
    -------
    nll : float
        Mean of ``-log p(true class)``, each probability clipped to at
        least 1e-12; NaN when there are no labels.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return float('nan')
    p = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def floor_probabilities(probabilities, floor=PROBABILITY_FLOOR):
    """Raise every probability to at least ``floor`` (rows renormalized),
    so that none is written as exactly 0 or 1.

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` probabilities (NaN rows stay NaN).
    floor : float, optional
        The smallest probability of a class.

    Returns
    -------
    probabilities : `~numpy.ndarray`
        ``(N, n_classes)`` float64.

    Examples
    --------
    >>> from astroclusterclf.calibration import floor_probabilities
    >>> floor_probabilities([[1.0, 0.0]]).round(6).tolist()
    [[0.9999, 0.0001]]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size == 0:
        return p
    k = p.shape[-1]
    # p' = floor + (1 - k floor) p: the order is kept, rows still sum to 1.
    return floor + (1 - k * floor) * p


def fit_temperature(logits, labels, *, prior_width=None):
    """Fit the temperature that minimises the held-out NLL.

    The NLL is convex in :math:`1/T`; it is minimised over
    :math:`\\log T` in [log 0.001, log 1000] by golden-section search to
    a relative precision of 1e-4.  With ``prior_width`` the minimum is
    that of the NLL plus a Gaussian prior on :math:`\\log T` centred on 0
    (a maximum a posteriori temperature), which stays finite on a
    separable set, where the NLL alone decreases without bound as
    :math:`T \\to 0`.

    Parameters
    ----------
    logits : array-like
        ``(N, n_classes)`` held-out logits (or log-probabilities).
    labels : array-like
        ``(N,)`` true class indices.
    prior_width : float, optional
        Standard deviation of the prior on :math:`\\log T` (default: no
        prior).

    Returns
    -------
    temperature : float
        1.0 when there is nothing to fit on (no rows, or one class only).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    logits = logits - logits.max(axis=1, keepdims=True)
    rows = np.arange(len(labels))

    penalty = 0.0 if prior_width is None else 0.5 / (len(labels) * prior_width ** 2)

    def nll(log_t):
        scaled = logits / np.exp(log_t)
        return float(np.mean(np.log(np.exp(scaled).sum(axis=1)) - scaled[rows, labels])
                     + penalty * log_t ** 2)

    lo, hi = np.log(_T_RANGE[0]), np.log(_T_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def fit_calibration(probabilities, labels, *, prior_width=PRIOR_WIDTH):
    """Calibrate held-out probabilities, with a fallback that cannot
    collapse.

    - Fewer than `MIN_CALIBRATION` held-out predictions, or one class
      only: no temperature (1.0); the head's own regularization, chosen
      by cross-validated log-loss, is what calibrates it.
    - Held-out predictions that are all right (a separable set): no
      temperature either; on such a set the likelihood keeps rising as
      the temperature falls, and a fitted one would make every future
      prediction certain.
    - Otherwise the maximum a posteriori temperature with a Gaussian prior
      of width ``prior_width`` on :math:`\\log T`; a fit that ends on a
      bound of the search range is not used (1.0).
    - A temperature only ever softens (:math:`T \\ge 1`): the held-out
      folds come from the training survey, and images from another survey
      are never easier than those, so a fit that would sharpen the
      probabilities (:math:`T < 1`) keeps the head's own.

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` held-out (out-of-fold) probabilities.
    labels : array-like
        ``(N,)`` true classes.
    prior_width : float, optional
        Width of the prior on :math:`\\log T`.

    Returns
    -------
    temperature : float
    info : dict
        ``method`` (``'temperature'`` or ``'none'``), ``reason``, ``n``
        (held-out predictions), ``n_errors`` and ``warning`` (text, or
        `None`) saying when the set is too small to trust.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf.calibration import fit_calibration
    >>> p = np.array([[0.9, 0.1]] * 30 + [[0.1, 0.9]] * 30)
    >>> t, info = fit_calibration(p, np.repeat([0, 1], 30))
    >>> t, info['method'], info['reason']
    (1.0, 'none', 'held-out predictions separable')
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    n_errors = int(np.sum(probabilities.argmax(axis=1) != labels)) if n else 0
    info = {'method': 'none', 'reason': None, 'n': n, 'n_errors': n_errors,
            'warning': None}
    if n < SMALL_CALIBRATION:
        info['warning'] = (f'only {n} held-out predictions to calibrate on (fewer than '
                           f'{SMALL_CALIBRATION}): the confidences are uncertain')
    if n < MIN_CALIBRATION or len(np.unique(labels)) < 2:
        info['reason'] = f'fewer than {MIN_CALIBRATION} held-out predictions'
        return 1.0, info
    if n_errors == 0:
        info['reason'] = 'held-out predictions separable'
        return 1.0, info
    with np.errstate(divide='ignore'):
        logits = np.log(np.clip(probabilities, 1e-300, None))
    t = fit_temperature(logits, labels, prior_width=prior_width)
    if not (_T_RANGE[0] * 1.01 < t < _T_RANGE[1] / 1.01):
        info['reason'] = 'the fitted temperature reached a bound of its range'
        return 1.0, info
    if t < 1:
        info['reason'] = (f'held-out predictions not over-confident (fitted T = {t:.3g}; '
                          'a temperature never sharpens)')
        return 1.0, info
    info['method'] = 'temperature'
    info['reason'] = f'maximum a posteriori, prior width {prior_width:g} on log T'
    return t, info


def reliability_bins(probabilities, labels, *, n_bins=10):
    """Confidence against accuracy in equal-width confidence bins.

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` predicted probabilities; the confidence of a
        prediction is its largest probability.
    labels : array-like of int
        ``(N,)`` indices of the true classes.
    n_bins : int, optional
        Number of bins over [0, 1] (default 10).

    Returns
    -------
    bins : dict
        ``edges`` (n_bins + 1), and per bin ``count``, ``confidence`` (mean
        confidence of the predicted class) and ``accuracy`` (fraction
        right); NaN for empty bins.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    edges = np.linspace(0, 1, n_bins + 1)
    count = np.zeros(n_bins, int)
    confidence = np.full(n_bins, np.nan)
    accuracy = np.full(n_bins, np.nan)
    if len(labels):
        conf = probabilities.max(axis=1)
        right = probabilities.argmax(axis=1) == labels
        which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
        for i in range(n_bins):
            inside = which == i
            count[i] = int(inside.sum())
            if count[i]:
                confidence[i] = conf[inside].mean()
                accuracy[i] = right[inside].mean()
    return {'edges': edges, 'count': count, 'confidence': confidence,
            'accuracy': accuracy}


def expected_calibration_error(probabilities, labels, *, n_bins=10):
    """Expected calibration error (ECE): the count-weighted mean gap
    between confidence and accuracy over equal-width bins (Naeini et al.
    2015; Guo et al. 2017).  NaN when empty.

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` predicted probabilities.
    labels : array-like of int
        ``(N,)`` indices of the true classes.
    n_bins : int, optional
        Number of equal-width confidence bins (default 10; see
        `reliability_bins`).

    Returns
    -------
    ece : float
        Between 0 (calibrated) and 1; NaN when there are no labels.
    """
    bins = reliability_bins(probabilities, labels, n_bins=n_bins)
    total = bins['count'].sum()
    if total == 0:
        return float('nan')
    gaps = np.abs(np.nan_to_num(bins['confidence'] - bins['accuracy']))
    return float((bins['count'] * gaps).sum() / total)
