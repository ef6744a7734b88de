# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Choose the backbone and the normalization for a training set
(``retrain(architecture='auto')``, the default).

Each candidate is a backbone with a normalization.  For each, the
training and validation images are embedded once (unaugmented, through
the bottleneck cache, so a rerun costs nothing) and a ridge classifier on
the standardized features is scored by stratified k-fold
cross-validation.  The candidate with the highest cross-validated
accuracy wins; ties go to the lower held-out squared error of the ridge
scores, then to the earlier candidate.  The folds depend only on the seed
and the labels, so the choice is deterministic for a seed.

The test images are never seen.

Examples
--------
>>> from astroclusterclf.selection import default_candidates
>>> for c in default_candidates():
...     print(c.name)
efficientnet_lite0 zscale
efficientnet_lite0 percentile 99.5
astro_lite0 zscale
astro_lite0 percentile 99.5
>>> import numpy as np
>>> from astroclusterclf.selection import cross_validate
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1], 20)
>>> x = rng.normal(size=(40, 5)) + 3 * y[:, None]
>>> accuracy, error = cross_validate(x, y, seed=0)
>>> float(accuracy)
1.0
"""

import logging
from typing import NamedTuple

import numpy as np
from astropy.table import Table

from .bottlenecks import BottleneckCache
from .exceptions import ParameterError
from .preprocessing import NormalizationSettings

__all__ = ['Candidate', 'Selection', 'default_candidates', 'cross_validate',
           'select']

log = logging.getLogger(__name__)

#: The backbones ``architecture='auto'`` compares.
AUTO_BACKBONES = ('efficientnet_lite0', 'astro_lite0')
#: Fewest training and validation images of a class for a comparison.
MIN_PER_CLASS = 4
#: The normalization intervals it compares (when no settings are given).
AUTO_SETTINGS = (NormalizationSettings(),
                 NormalizationSettings(interval='percentile', percentile=99.5))


class Candidate(NamedTuple):
    """One backbone with one normalization."""

    architecture: str
    settings: NormalizationSettings
    input_size: int | None = None

    @property
    def name(self):
        s = self.settings
        interval = (f'percentile {s.percentile:g}' if s.interval == 'percentile'
                    else s.interval)
        return f'{self.architecture} {interval}'


class Selection(NamedTuple):
    """The result of `select`.

    Attributes
    ----------
    chosen : `Candidate`
        The winner.
    table : `~astropy.table.Table`
        One row per candidate: ``candidate``, ``architecture``,
        ``interval``, ``cv_accuracy``, ``cv_error`` (held-out mean squared
        error of the ridge scores), ``chosen``; ``meta`` holds the number
        of folds and images, and of feature vectors computed and read from
        the cache.
    """

    chosen: Candidate
    table: Table


def default_candidates(settings=None, input_size=None):
    """The candidates of ``architecture='auto'``.

    Parameters
    ----------
    settings : `~astroclusterclf.NormalizationSettings`, optional
        A normalization given by the user: then only the backbones vary.
    input_size : int, optional
        An input size given by the user, for every backbone.

    Returns
    -------
    candidates : list of `Candidate`
    """
    if settings is None:
        settings_list = AUTO_SETTINGS
    elif isinstance(settings, dict):
        settings_list = (NormalizationSettings.from_dict(settings),)
    else:
        settings_list = (settings,)
    return [Candidate(arch, s, input_size)
            for arch in AUTO_BACKBONES for s in settings_list]


def _folds(y, n_folds, seed):
    """Stratified fold index of each sample."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % n_folds
    return fold


def _ridge_fit_predict(x_train, y_train, x_test, n_classes, alpha):
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0) + 1e-6
    a = (x_train - mean) / std
    b = (x_test - mean) / std
    targets = np.eye(n_classes)[y_train] - 1.0 / n_classes
    # Dual form: n_train is much smaller than the feature length.
    gram = a @ a.T
    coef = np.linalg.solve(gram + alpha * np.eye(len(a)), targets)
    return (b @ a.T) @ coef


def cross_validate(features, y, *, n_folds=5, seed=0, alpha=None):
    """Cross-validated accuracy of a ridge classifier.

    Parameters
    ----------
    features : `~numpy.ndarray`
        ``(n, d)`` feature vectors.
    y : `~numpy.ndarray`
        ``(n,)`` integer labels.
    n_folds : int, optional
        Folds (fewer when a class has fewer images; at least 2).
    seed : int, optional
        Seeds the stratified fold assignment.
    alpha : float, optional
        Ridge penalty on standardized features (default: the feature
        length ``d``, which shrinks strongly, as suits ``n << d``).

    Returns
    -------
    accuracy : float
        Fraction of images whose held-out ridge score is highest for their
        class.
    error : float
        Held-out mean squared error of the ridge scores against the
        centred one-hot targets (lower is better; breaks ties).

    Raises
    ------
    ParameterError
        Fewer than two classes or fewer than two images in a class.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(y)
    labels, y = np.unique(y, return_inverse=True)
    counts = np.bincount(y)
    if len(labels) < 2 or counts.min() < 2:
        raise ParameterError('cross-validation needs two classes with at '
                             'least two images each')
    n_folds = int(max(2, min(n_folds, counts.min())))
    alpha = float(x.shape[1] if alpha is None else alpha)
    fold = _folds(y, n_folds, seed)
    scores = np.zeros((len(y), len(labels)))
    for k in range(n_folds):
        test = fold == k
        scores[test] = _ridge_fit_predict(x[~test], y[~test], x[test],
                                          len(labels), alpha)
    targets = np.eye(len(labels))[y] - 1.0 / len(labels)
    accuracy = float(np.mean(scores.argmax(axis=1) == y))
    error = float(np.mean((scores - targets) ** 2))
    return accuracy, error


def select(paths, y, *, candidates=None, bottleneck_dir=None, seed=0,
           n_folds=5, batch_size=32, progress=None):
    """Choose the candidate with the best cross-validated accuracy.

    Parameters
    ----------
    paths : sequence of path-like
        The training (and validation) images; never the test images.
    y : sequence of int
        Their labels.
    candidates : list of `Candidate`, optional
        Default: `default_candidates`.
    bottleneck_dir : path-like, optional
        The feature cache (shared with `~astroclusterclf.retrain`).
    seed, n_folds : int, optional
        As for `cross_validate`.
    batch_size : int, optional
        Images per backbone forward pass.
    progress : callable, optional
        ``progress(done, total)`` while features are computed.

    Returns
    -------
    selection : `Selection`
    """
    candidates = list(candidates or default_candidates())
    y = np.asarray(y)
    rows = []
    names = ('candidate', 'architecture', 'interval', 'cv_accuracy', 'cv_error')
    dtype = (str, str, str, float, float)
    if len(np.unique(y)) < 2 or np.bincount(np.unique(
            y, return_inverse=True)[1]).min() < MIN_PER_CLASS:
        # Too few images to compare anything: the first candidate.
        log.info('too few images per class to cross-validate; using %s',
                 candidates[0].name)
        table = Table(rows=[(c.name, c.architecture, c.settings.interval,
                             np.nan, np.nan) for c in candidates],
                      names=names, dtype=dtype)
        table['chosen'] = np.arange(len(candidates)) == 0
        table.meta.update({'n_folds': 0, 'n_images': len(y), 'seed': int(seed),
                           'n_computed': 0, 'n_cached': 0,
                           'note': f'fewer than {MIN_PER_CLASS} images in a '
                                   'class: the first candidate, untested'})
        return Selection(candidates[0], table)
    n_computed = n_cached = 0
    for candidate in candidates:
        cache = BottleneckCache(bottleneck_dir,
                                architecture=candidate.architecture,
                                settings=candidate.settings,
                                input_size=candidate.input_size)
        result = cache.get_features(list(paths), variants=[(0,)] * len(paths),
                                    batch_size=batch_size, progress=progress)
        n_computed += result.n_computed
        n_cached += result.n_cached
        keep = [i for i, p in enumerate(paths) if p in result.features]
        x = np.stack([result.features[paths[i]][0] for i in keep])
        accuracy, error = cross_validate(x, y[keep], n_folds=n_folds,
                                         seed=seed)
        rows.append((candidate.name, candidate.architecture,
                     candidate.settings.interval, accuracy, error))
        log.info('candidate %s: cross-validated accuracy %.3f (error %.4f)',
                 candidate.name, accuracy, error)
    best = min(range(len(rows)), key=lambda i: (-rows[i][3], rows[i][4], i))
    table = Table(rows=rows, names=names, dtype=dtype)
    table['chosen'] = np.arange(len(rows)) == best
    table['cv_accuracy'].description = 'cross-validated ridge accuracy'
    table['cv_error'].description = ('held-out mean squared error of the '
                                     'ridge scores')
    table.meta.update({'n_folds': int(max(2, min(n_folds, np.bincount(
        np.unique(y, return_inverse=True)[1]).min()))), 'n_images': len(y),
        'seed': int(seed), 'n_computed': n_computed, 'n_cached': n_cached})
    return Selection(candidates[best], table)
