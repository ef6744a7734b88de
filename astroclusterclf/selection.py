# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Choose the views and the head for a training set
(``retrain(architecture='auto')``, the default).

A *view* (`Candidate`) is one backbone with one normalization.  A
*blend* (`Blend`) is several views with a head over them: one logistic
head over the concatenated features of views (for example the zscale and
the percentile views of one backbone), or the average of the
probabilities of such heads on different backbones.  A single view is a
blend of one.

Every candidate is scored by the recipe its head is then fitted with
(`astroclusterclf.heads`): an L2-regularized multinomial logistic head on
standardized features, its regularization chosen by grouped, stratified
cross-validation (all dihedral variants of an image in one fold), and the
candidates are ranked by that same held-out log-loss.  The chosen
candidate's heads, refitted on all images, are the heads
`~astroclusterclf.retrain` writes into the model, and its held-out
probabilities are what the calibration is fitted on.  The folds depend
only on the seed and the labels, so the choice is deterministic.

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
efficientnet_lite0 zscale + percentile 99.5
astro_lite0 zscale + percentile 99.5
mean of efficientnet_lite0 and astro_lite0, zscale + percentile 99.5
>>> import numpy as np
>>> from astroclusterclf.selection import cross_validate
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1], 20)
>>> x = rng.normal(size=(40, 5)) + 3 * y[:, None]
>>> accuracy, loss = cross_validate(x, y, seed=0)
>>> float(accuracy), bool(loss < 0.2)
(1.0, True)
"""

import inspect
import logging
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.table import Table
from sklearn.metrics import log_loss

from .bottlenecks import BottleneckCache
from .exceptions import ParameterError, SkippedFileWarning
from .heads import DEFAULT_CS, N_FOLDS, cross_validate_head, fit_logistic_head
from .preprocessing import NormalizationSettings

__all__ = ['Candidate', 'Blend', 'Selection', 'default_candidates',
           'cross_validate', 'compare', 'embed_views', 'select']

log = logging.getLogger(__name__)

#: The backbones ``architecture='auto'`` compares.
AUTO_BACKBONES = ('efficientnet_lite0', 'astro_lite0')
#: Fewest images of a class for a comparison of candidates.
MIN_PER_CLASS = 4
#: The normalization intervals it compares (when no settings are given).
AUTO_SETTINGS = (NormalizationSettings(),
                 NormalizationSettings(interval='percentile', percentile=99.5))
#: The inverse regularization of a head fitted without cross-validation
#: (fewer than two images in a class).
FALLBACK_C = 0.01


def _interval_name(s):
    return f'percentile {s.percentile:g}' if s.interval == 'percentile' else s.interval


class Candidate(NamedTuple):
    """One view: a backbone with one normalization.

    Attributes
    ----------
    architecture : str
        Backbone name (see `astroclusterclf.backbones.available_backbones`).
    settings : `~astroclusterclf.NormalizationSettings`
        The normalization of the images fed to it.
    input_size : int or None
        Backbone input size in pixels (`None`: the backbone's own).
    """

    architecture: str
    settings: NormalizationSettings
    input_size: int | None = None

    @property
    def name(self):
        return f'{self.architecture} {_interval_name(self.settings)}'

    @property
    def views(self):
        """The views of this candidate: itself."""
        return (self,)

    @property
    def groups(self):
        """One head over view 0."""
        return ((0,),)


class Blend(NamedTuple):
    """Several views with the heads over them.

    Attributes
    ----------
    views : tuple of `Candidate`
        The views, in the order of the model's inputs.
    groups : tuple of tuple of int
        One logistic head per group, over the concatenated features of
        the views it names; the probabilities of the groups' heads are
        averaged.
    """

    views: tuple
    groups: tuple

    @property
    def name(self):
        def group_name(group):
            members = [self.views[i] for i in group]
            if len({v.architecture for v in members}) == 1:
                return (f'{members[0].architecture} '
                        + ' + '.join(_interval_name(v.settings) for v in members))
            return ' + '.join(v.name for v in members)
        names = [group_name(g) for g in self.groups]
        if len(names) == 1:
            return names[0]
        archs = [self.views[g[0]].architecture for g in self.groups]
        intervals = {' + '.join(_interval_name(self.views[i].settings) for i in g)
                     for g in self.groups}
        if len(intervals) == 1 and all(
                len({self.views[i].architecture for i in g}) == 1 for g in self.groups):
            return f'mean of {" and ".join(archs)}, {intervals.pop()}'
        return 'mean of ' + ' and '.join(f'({n})' for n in names)

    @property
    def architecture(self):
        """The backbone of the first view."""
        return self.views[0].architecture

    @property
    def settings(self):
        """The normalization of the first view."""
        return self.views[0].settings

    @property
    def input_size(self):
        """The input size of the first view."""
        return self.views[0].input_size


class Selection(NamedTuple):
    """The result of `compare` and `select`.

    Attributes
    ----------
    chosen : `Candidate` or `Blend`
        The winner.
    table : `~astropy.table.Table`
        One row per candidate: ``candidate``, ``architecture``,
        ``interval``, ``cv_log_loss`` (held-out log-loss, which ranks
        them), ``cv_accuracy``, ``C`` (the regularization of each head),
        ``chosen``; ``meta`` holds the number of folds and images.
    heads : list of `~astroclusterclf.heads.LogisticHead`
        The chosen candidate's heads (one per group), refitted on all
        images.
    oof_probabilities : `~numpy.ndarray` or None
        ``(N, n_classes)`` held-out probabilities of the chosen candidate
        (`None` without cross-validation).
    folds : `~numpy.ndarray` or None
        ``(N,)`` fold of each image.
    """

    chosen: object
    table: Table
    heads: list = None
    oof_probabilities: np.ndarray = None
    folds: np.ndarray = None


def default_candidates(settings=None, input_size=None):
    """The candidates of ``architecture='auto'``.

    Without ``settings``: each backbone of `AUTO_BACKBONES` with each
    interval of `AUTO_SETTINGS`, each backbone with both intervals
    concatenated, and the average of the two backbones' concatenated
    heads.  With ``settings``: each backbone, and their average.

    Parameters
    ----------
    settings : `~astroclusterclf.NormalizationSettings` or dict, optional
        A normalization given by the user: then only the backbones vary.
    input_size : int, optional
        An input size given by the user, for every backbone.

    Returns
    -------
    candidates : list of `Candidate` and `Blend`
    """
    if settings is None:
        settings_list = AUTO_SETTINGS
    elif isinstance(settings, dict):
        settings_list = (NormalizationSettings.from_dict(settings),)
    else:
        settings_list = (settings,)
    singles = [Candidate(arch, s, input_size)
               for arch in AUTO_BACKBONES for s in settings_list]
    n = len(settings_list)
    candidates = list(singles)
    if n > 1:
        candidates += [Blend(tuple(singles[i * n:(i + 1) * n]), (tuple(range(n)),))
                       for i in range(len(AUTO_BACKBONES))]
    candidates.append(Blend(tuple(singles),
                            tuple(tuple(range(i * n, (i + 1) * n))
                                  for i in range(len(AUTO_BACKBONES)))))
    return candidates


def _views_of(candidates):
    views = []
    for candidate in candidates:
        for view in candidate.views:
            if view not in views:
                views.append(view)
    return views


def _group_features(features, candidate, group):
    return np.concatenate([features[candidate.views[i]] for i in group], axis=-1)


def cross_validate(features, y, *, n_folds=N_FOLDS, seed=0, Cs=DEFAULT_CS):
    """Cross-validated accuracy and log-loss of the logistic head.

    Parameters
    ----------
    features : `~numpy.ndarray`
        ``(n, d)`` feature vectors, or ``(n, n_variants, d)`` with the
        variants of an image kept in one fold.
    y : `~numpy.ndarray`
        ``(n,)`` labels (any integers).
    n_folds : int, optional
        Folds (fewer when a class has fewer images; at least 2).
    seed : int, optional
        Seeds the stratified fold assignment.
    Cs : sequence of float, optional
        Regularizations compared (see `astroclusterclf.heads`).

    Returns
    -------
    accuracy : float
        Held-out accuracy at the chosen regularization.
    log_loss : float
        Held-out mean log-loss at the chosen regularization (lower is
        better).

    Raises
    ------
    ParameterError
        Fewer than two classes or fewer than two images in a class.
    """
    y = np.asarray(y)
    labels, y = np.unique(y, return_inverse=True)
    if len(labels) < 2:
        raise ParameterError('cross-validation needs two classes with at '
                             'least two images each')
    cv = cross_validate_head(features, y, n_folds=n_folds, seed=seed, Cs=Cs,
                             refit=False)
    return cv.accuracy, cv.log_loss


def compare(features, y, candidates, *, n_folds=N_FOLDS, seed=0, Cs=DEFAULT_CS):
    """Rank candidates by the cross-validated log-loss of their heads.

    Parameters
    ----------
    features : dict
        ``{view: (N, n_variants, d) array}`` for every view of the
        candidates (variant 0 unaugmented).
    y : array-like
        ``(N,)`` class indices (0 to n_classes - 1).
    candidates : list of `Candidate` and `Blend`
        In order of preference (the first wins a tie, and is taken
        untested when a class has fewer than `MIN_PER_CLASS` images).
    n_folds, seed : int, optional
        As for `cross_validate`.
    Cs : sequence of float, optional
        Regularizations compared for each head.

    Returns
    -------
    selection : `Selection`
    """
    y = np.asarray(y, dtype=np.int64)
    n_classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=n_classes)
    names = ('candidate', 'architecture', 'interval', 'cv_log_loss',
             'cv_accuracy', 'C')
    dtype = (str, str, str, float, float, str)

    def describe(c, loss, accuracy, C):
        return (c.name, '+'.join(dict.fromkeys(v.architecture for v in c.views)),
                '+'.join(dict.fromkeys(v.settings.interval for v in c.views)),
                loss, accuracy, C)

    if counts.min() < MIN_PER_CLASS or len(candidates) == 1:
        chosen = candidates[0]
        oof = folds = None
        if counts.min() >= 2:
            cvs = [cross_validate_head(_group_features(features, chosen, g), y,
                                       n_folds=n_folds, seed=seed, Cs=Cs,
                                       n_classes=n_classes)
                   for g in chosen.groups]
            heads = [cv.head for cv in cvs]
            oof = np.mean([cv.oof_probabilities for cv in cvs], axis=0)
            folds = cvs[0].folds
            row = describe(chosen, float(log_loss(y, oof, labels=range(n_classes))),
                           float(np.mean(oof.argmax(axis=1) == y)),
                           ','.join(f'{cv.C:g}' for cv in cvs))
        else:
            heads = [fit_logistic_head(_group_features(features, chosen, g), y,
                                       C=FALLBACK_C, n_classes=n_classes)
                     for g in chosen.groups]
            row = describe(chosen, np.nan, np.nan, f'{FALLBACK_C:g}')
        rows = [row] + [describe(c, np.nan, np.nan, '') for c in candidates[1:]]
        table = Table(rows=rows, names=names, dtype=dtype)
        table['chosen'] = np.arange(len(rows)) == 0
        table.meta.update({'n_folds': 0 if folds is None else int(folds.max() + 1),
                           'n_images': len(y), 'seed': int(seed)})
        if len(candidates) > 1:
            table.meta['note'] = (f'fewer than {MIN_PER_CLASS} images in a class: '
                                  'the first candidate, untested')
        return Selection(chosen, table, heads, oof, folds)

    rows, results = [], []
    cache = {}
    for candidate in candidates:
        cvs = []
        for group in candidate.groups:
            key = tuple(candidate.views[i] for i in group)
            if key not in cache:
                cache[key] = cross_validate_head(
                    _group_features(features, candidate, group), y, n_folds=n_folds,
                    seed=seed, Cs=Cs, n_classes=n_classes, refit=False)
            cvs.append(cache[key])
        oof = np.mean([cv.oof_probabilities for cv in cvs], axis=0)
        loss = float(log_loss(y, np.clip(oof, 1e-15, 1), labels=range(n_classes)))
        accuracy = float(np.mean(oof.argmax(axis=1) == y))
        rows.append(describe(candidate, loss, accuracy,
                             ','.join(f'{cv.C:g}' for cv in cvs)))
        results.append((cvs, oof))
        log.info('candidate %s: cross-validated log-loss %.4f, accuracy %.3f',
                 candidate.name, loss, accuracy)
    best = min(range(len(rows)), key=lambda i: (rows[i][3], i))
    chosen = candidates[best]
    cvs, oof = results[best]
    heads = [fit_logistic_head(_group_features(features, chosen, g), y, C=cv.C,
                               n_classes=n_classes)
             for g, cv in zip(chosen.groups, cvs)]
    table = Table(rows=rows, names=names, dtype=dtype)
    table['chosen'] = np.arange(len(rows)) == best
    table['cv_log_loss'].description = 'cross-validated log-loss of the logistic head(s)'
    table['cv_accuracy'].description = 'cross-validated accuracy of the logistic head(s)'
    table['C'].description = 'inverse L2 regularization of each head'
    table.meta.update({'n_folds': int(cvs[0].folds.max() + 1), 'n_images': len(y),
                       'seed': int(seed)})
    return Selection(chosen, table, heads, oof, cvs[0].folds)


def _named(progress, name):
    """``progress`` with the view's name as a third argument, where it
    takes one."""
    if progress is None:
        return None
    try:
        inspect.signature(progress).bind(0, 0, name)
    except (TypeError, ValueError):
        return progress

    def named(done, total):
        progress(done, total, name)
    return named


def embed_views(paths, views, *, variants=(0,), bottleneck_dir=None, batch_size=32,
                progress=None, warn=True):
    """Features of images in several views, through the bottleneck cache.

    Parameters
    ----------
    paths : sequence of path-like
        The images.
    views : sequence of `Candidate`
        The views.
    variants : tuple of int or list of tuple of int, optional
        Dihedral variants wanted (see
        `~astroclusterclf.bottlenecks.BottleneckCache.get_features`).
    bottleneck_dir : path-like, optional
        The feature cache.
    batch_size : int, optional
        Images per backbone forward pass.
    progress : callable, optional
        ``progress(done, total)`` while features are computed; a function
        that takes a third argument gets the name of the view too.
    warn : bool, optional
        Warn (`~astroclusterclf.SkippedFileWarning`) once for each
        unreadable file (default), or not at all (the caller already did).

    Returns
    -------
    features : dict
        ``{view: {path: (n_variants, d) array}}``; a file unreadable in
        any view is absent from all.
    results : dict
        ``{view: BottleneckResult}`` (counts and skipped files).
    """
    results = {}
    for k, view in enumerate(views):
        cache = BottleneckCache(bottleneck_dir, architecture=view.architecture,
                                settings=view.settings, input_size=view.input_size)
        with warnings.catch_warnings():
            if k or not warn:
                # A file unreadable in one view is unreadable in all: one
                # warning per file.
                warnings.simplefilter('ignore', SkippedFileWarning)
            results[view] = cache.get_features(list(paths), variants=variants,
                                               batch_size=batch_size,
                                               progress=_named(progress, view.name))
    readable = set.intersection(*(set(r.features) for r in results.values()))
    features = {view: {p: f for p, f in r.features.items() if p in readable}
                for view, r in results.items()}
    return features, results


def select(paths, y, *, candidates=None, bottleneck_dir=None, seed=0,
           n_folds=N_FOLDS, batch_size=32, progress=None, variants=(0,)):
    """Embed images in every view of the candidates and `compare` them.

    Parameters
    ----------
    paths : sequence of path-like
        The training (and validation) images; never the test images.
    y : sequence of int
        Their labels.
    candidates : list of `Candidate` and `Blend`, optional
        Default: `default_candidates`.
    bottleneck_dir : path-like, optional
        The feature cache (shared with `~astroclusterclf.retrain`).
    seed, n_folds : int, optional
        As for `cross_validate`.
    batch_size : int, optional
        Images per backbone forward pass.
    progress : callable, optional
        ``progress(done, total)`` while features are computed.
    variants : tuple of int, optional
        Dihedral variants of each image in the folds (default: none).

    Returns
    -------
    selection : `Selection`
        ``table.meta`` also holds ``n_computed`` and ``n_cached``.
    """
    candidates = list(candidates or default_candidates())
    y = np.asarray(y)
    labels, y_index = np.unique(y, return_inverse=True)
    if len(labels) < 2 or np.bincount(y_index).min() < MIN_PER_CLASS:
        # Too few images to compare anything: the first candidate.
        table = Table(rows=[(c.name, c.architecture, c.settings.interval,
                             np.nan, np.nan, '') for c in candidates],
                      names=('candidate', 'architecture', 'interval', 'cv_log_loss',
                             'cv_accuracy', 'C'),
                      dtype=(str, str, str, float, float, str))
        table['chosen'] = np.arange(len(candidates)) == 0
        table.meta.update({'n_folds': 0, 'n_images': len(y), 'seed': int(seed),
                           'n_computed': 0, 'n_cached': 0,
                           'note': f'fewer than {MIN_PER_CLASS} images in a '
                                   'class: the first candidate, untested'})
        return Selection(candidates[0], table)
    paths = [Path(p) for p in paths]
    features, results = embed_views(paths, _views_of(candidates), variants=variants,
                                    bottleneck_dir=bottleneck_dir,
                                    batch_size=batch_size, progress=progress)
    keep = [i for i, p in enumerate(paths) if p in next(iter(features.values()))]
    stacked = {view: np.stack([f[paths[i]] for i in keep]) for view, f in features.items()}
    selection = compare(stacked, y_index[keep], candidates, n_folds=n_folds, seed=seed)
    selection.table.meta['n_computed'] = sum(r.n_computed for r in results.values())
    selection.table.meta['n_cached'] = sum(r.n_cached for r in results.values())
    return selection
