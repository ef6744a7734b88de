# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
"Unlike anything I was trained on": an out-of-distribution score.

A softmax head always names one of its classes, often with high
confidence, even for pure noise or a spectrograph frame.  The
out-of-distribution (OOD) score measures instead how far an image's
backbone features lie from the features of the training images.

The method is the principal-subspace residual of Wang et al. (2022, "ViM:
Out-Of-Distribution with Virtual-logit Matching", CVPR; the residual part
of their score): the training feature vectors, scaled to unit length, span
a low-dimensional principal subspace (``k`` axes of a PCA); a new image's
unit feature vector is split into its projection on that subspace and the
residual, and the score is the squared length of the residual, divided by
its mean over the training images (so training images score about 1).

Why this method rather than the Mahalanobis distance to the class means
(Lee et al. 2018), which it was compared with: on simulated star clusters
against noise frames, blank sky, everyday photographs, spectrograph frames
and smooth galaxies, the residual put every non-cluster input at least
2.8 times above the 99 % quantile of held-out cluster images, and clusters
simulated under other observing conditions at most 1.8 times above it;
the Mahalanobis distance inside the subspace left noise and galaxies at
only 1.2-1.9 times, among the shifted clusters.  A k-nearest-neighbour
distance separated as well but needs every training vector (and grows
with the training set).  The description is compact: the mean and ``k``
axes (320 kB for ``k = 64`` and 1280-d features), stored in the model
file; scoring an image costs one ``k x d`` product, microseconds against
the milliseconds of the forward pass.  Fitting costs one SVD of the
training features (a fraction of a second for a few thousand vectors).

The threshold above which an image counts as "unlike the training
images" is chosen on held-out in-distribution images.
`~astroclusterclf.retrain` sets it at a stated false-alarm rate: the
95 % quantile (by default) of out-of-fold scores of the training images
(see `astroclusterclf.retrain.fit_trust`);
`FeatureDensity.choose_threshold` takes any quantile and a margin.

What it cannot do: it tells "unlike the training set", not "wrong".  An
image of a kind absent from training that happens to share its features
(for example a compact galaxy nearly identical to an unresolved
globular cluster) is not flagged; and a training set that already
contains odd frames teaches the score that such frames are normal.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf.ood import FeatureDensity
>>> rng = np.random.default_rng(0)
>>> basis = rng.normal(size=(5, 50))
>>> train = rng.normal(size=(400, 5)) @ basis + 0.05 * rng.normal(size=(400, 50))
>>> density = FeatureDensity.fit(train, n_components=5)
>>> held_out = rng.normal(size=(100, 5)) @ basis + 0.05 * rng.normal(size=(100, 50))
>>> density = density.choose_threshold(held_out)
>>> inside = density.score(rng.normal(size=(100, 5)) @ basis)
>>> outside = density.score(rng.normal(size=(100, 50)))
>>> bool(np.all(inside < density.threshold)), bool(np.all(outside > density.threshold))
(True, True)
"""

import io
from dataclasses import dataclass, replace

import numpy as np

from .exceptions import ModelFileError, ParameterError

__all__ = ['FeatureDensity', 'DEFAULT_QUANTILE', 'DEFAULT_MARGIN']

#: Quantile of the held-out in-distribution scores the threshold starts from.
DEFAULT_QUANTILE = 0.95

#: Factor on that quantile: room for the spread between surveys of the
#: same kind of objects (clusters under other observing conditions scored
#: up to 1.8 times the quantile in the measurements above).
DEFAULT_MARGIN = 2.0

_FIELDS = ('mean', 'components', 'scale', 'threshold')


def _unit(x):
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _orthonormal(q):
    """Orthonormal columns spanning ``q`` (Cholesky QR, in matrix products:
    LAPACK's QR and SVD are slow on some builds)."""
    gram = q.T @ q
    gram += np.eye(len(gram)) * 1e-12 * max(np.trace(gram), 1e-300)
    return np.linalg.solve(np.linalg.cholesky(gram), q.T).T


def _principal_axes(centred, k, *, oversample=16, power=6):
    """The ``k`` leading right singular vectors of ``centred``, by the
    randomized range finder of Halko, Martinsson & Tropp (2011) with power
    iterations (seeded: the same result every run); small problems by the
    eigenvectors of the Gram matrix.  Only matrix products and small
    eigenproblems are used."""
    m = k + oversample
    if m >= min(centred.shape):
        # Rows of the smaller Gram matrix's eigenvectors.
        if centred.shape[0] < centred.shape[1]:
            values, vectors = np.linalg.eigh(centred @ centred.T)
            order = np.argsort(values)[::-1][:k]
            axes = vectors[:, order].T @ centred
            return axes / np.linalg.norm(axes, axis=1, keepdims=True).clip(1e-300)
        values, vectors = np.linalg.eigh(centred.T @ centred)
        return vectors[:, np.argsort(values)[::-1][:k]].T
    rng = np.random.default_rng(0)
    q = _orthonormal(centred @ rng.normal(size=(centred.shape[1], m)))
    for _ in range(power):
        q = _orthonormal(centred @ (centred.T @ q))
    small = q.T @ centred                                   # (m, d)
    values, vectors = np.linalg.eigh(small @ small.T)       # (m, m)
    order = np.argsort(values)[::-1][:k]
    axes = vectors[:, order].T @ small
    return axes / np.linalg.norm(axes, axis=1, keepdims=True).clip(1e-300)


@dataclass(frozen=True)
class FeatureDensity:
    """A compact description of the training features, and the OOD score
    of new features against it.

    Attributes
    ----------
    mean : `~numpy.ndarray`
        ``(d,)`` mean of the unit-length training feature vectors.
    components : `~numpy.ndarray`
        ``(k, d)`` principal axes (orthonormal rows).
    scale : float
        Mean squared residual over the training set (the score's unit).
    threshold : float
        Scores above it are "unlike the training images" (NaN until
        `choose_threshold`).
    """

    mean: np.ndarray
    components: np.ndarray
    scale: float
    threshold: float = float('nan')

    @classmethod
    def fit(cls, features, *, n_components=64):
        """Describe training features.

        Parameters
        ----------
        features : array-like
            ``(N, d)`` training feature vectors (augmented variants
            included).
        n_components : int, optional
            Principal axes kept (at most ``N / 8`` and ``d - 1``).

        Returns
        -------
        density : `FeatureDensity`
            The description, with no threshold yet (NaN; see
            `choose_threshold`).
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 3 or x.shape[1] < 2:
            raise ParameterError(f'FeatureDensity.fit needs (N, d) features with N >= 3 '
                                 f'and d >= 2, got shape {x.shape}')
        x = _unit(x)
        mean = x.mean(axis=0)
        # At most one axis per 8 vectors: with few training vectors the
        # principal subspace would otherwise pass through every one of them,
        # and held-out images of the same kind would look like outliers.
        k = int(max(1, min(n_components, len(x) // 8, x.shape[1] - 1)))
        density = cls(mean, _principal_axes(x - mean, k), 1.0)
        scale = float(np.mean(density._residual2(x)))
        return replace(density, scale=max(scale, 1e-12))

    def _residual2(self, unit_features):
        centred = unit_features - self.mean
        residual = centred - (centred @ self.components.T) @ self.components
        return np.einsum('nd,nd->n', residual, residual)

    def score(self, features):
        """The OOD score of feature vectors (about 1 for training images).

        Parameters
        ----------
        features : array-like
            ``(N, d)`` feature vectors (a single ``(d,)`` vector is one row).

        Returns
        -------
        score : `~numpy.ndarray`
            ``(N,)`` float64, the squared residual in units of its mean
            over the training images.
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != self.mean.shape[0]:
            raise ParameterError(f'features of length {x.shape[1]}; the description '
                                 f'holds length {self.mean.shape[0]}')
        return self._residual2(_unit(x)) / self.scale

    def choose_threshold(self, held_out, *, quantile=DEFAULT_QUANTILE,
                         margin=DEFAULT_MARGIN):
        """Return a copy with the threshold set from held-out features.

        The threshold is ``margin`` times the ``quantile`` of the scores of
        held-out in-distribution images (images of the training classes
        that the description was not fitted on).

        Parameters
        ----------
        held_out : array-like
            ``(N, d)`` feature vectors of held-out images (at least one).
        quantile : float, optional
            Quantile of their scores (default `DEFAULT_QUANTILE`).
        margin : float, optional
            Factor applied to that quantile (default `DEFAULT_MARGIN`).

        Returns
        -------
        density : `FeatureDensity`
            A copy of this description with ``threshold`` set.
        """
        scores = self.score(held_out)
        if not len(scores):
            raise ParameterError('choose_threshold needs at least one held-out vector')
        return replace(self, threshold=float(margin * np.quantile(scores, quantile)))

    # -- storage -----------------------------------------------------------

    def to_bytes(self):
        """Serialize as a NumPy ``.npz`` archive (float32 arrays).

        Returns
        -------
        data : bytes
            The archive, with arrays ``mean``, ``components``, ``scale``
            and ``threshold``.
        """
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(getattr(self, name), np.float32)
                            for name in _FIELDS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data, *, name='<bytes>'):
        """Read what `to_bytes` wrote; `ModelFileError` if it does not fit.

        Parameters
        ----------
        data : bytes
            The ``.npz`` archive.
        name : str, optional
            Where it comes from, for the error message.

        Returns
        -------
        density : `FeatureDensity`
            The description (arrays as float64).
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {field: np.asarray(archive[field], np.float64) for field in _FIELDS}
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise ModelFileError(f'{name}: corrupt out-of-distribution description '
                                 f'({exc})') from None
        mean, components = arrays['mean'], arrays['components']
        if (mean.ndim != 1 or components.ndim != 2 or components.shape[1] != mean.shape[0]
                or arrays['scale'].shape != () or arrays['threshold'].shape != ()
                or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(components))
                        and arrays['scale'] > 0)):
            raise ModelFileError(f'{name}: inconsistent out-of-distribution description')
        return cls(mean, components, float(arrays['scale']), float(arrays['threshold']))
