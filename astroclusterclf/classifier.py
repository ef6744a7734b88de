# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The object users hold: a retrained model with its labels and the
preprocessing it was trained with.

A model file is ONE Keras ``.keras`` file (a zip archive) holding the
backbone and the head (input: RGB in [0, 1] at the backbone's size;
output: class probabilities) plus a JSON member, ``astroclusterclf.json``,
with the labels, the normalization settings, the backbone name and
weights id, the package version and the creation date.  Keras ignores
the extra member, so ``keras.saving.load_model`` opens the file on its
own; `ClusterClassifier.load` also restores the metadata, so inference
always uses the normalization the model was trained with.

Examples
--------
Classify a FITS file with a model written by `astroclusterclf.retrain`::

    >>> from astroclusterclf import ClusterClassifier
    >>> clf = ClusterClassifier.load('model.keras')  # doctest: +SKIP
    >>> clf.classify('m13.fits')  # doctest: +SKIP
    ('globular cluster', 0.99...)

`ClusterClassifier` has a complete, executed example on a tiny model.
"""

import datetime
import enum
import hashlib
import json
import logging
import os
import tempfile
from typing import NamedTuple
from pathlib import Path

import numpy as np

from astropy.io import fits
from astropy.wcs import WCS

from . import backbones
from ._augment import N_VARIANTS, dihedral
from .calibration import calibrate_probabilities, floor_probabilities
from .exceptions import AstroClusterClfError, ModelFileError, ParameterError
from ._forward import forward_function
from ._hashing import file_sha256
from .modelfile import (FORMAT_VERSION, METADATA_MEMBER, OOD_MEMBER,  # noqa: F401
                        read_model_file, write_model_file)
from .io import read_image
from .ood import FeatureDensity
from ._parallel import prefetch_map
from .preprocessing import NormalizationSettings, normalize
from .version import __version__

__all__ = ['ClusterClassifier', 'Assessment', 'PredictionFlag', 'degenerate_flag',
           'read_labels']

log = logging.getLogger(__name__)


def _is_single_source(sources):
    """Whether ``sources`` is one image source rather than a list."""
    if isinstance(sources, (str, os.PathLike, np.ndarray, fits.HDUList)):
        return True
    if isinstance(sources, tuple):
        # (array, Header | WCS) is one source; any other tuple is many.
        return (len(sources) == 2
                and isinstance(sources[1], (fits.Header, WCS)))
    if isinstance(sources, (list, set, frozenset)):
        return False
    # HDUs, NDData, ... are single; generators and iterators are many.
    return not hasattr(sources, '__next__')


#: Images smaller than this (pixels, either side) are flagged as degenerate.
MIN_IMAGE_SIZE = 16

# Calls on at most this many images (times test-time variants) run the
# model eagerly; larger ones through its compiled forward pass.
_EAGER_MAX_IMAGES = 4


class PredictionFlag(enum.IntFlag):
    """Bits saying how far to trust a prediction (0: no reason for doubt).

    They share one bit mask with `~astroclusterclf.CutoutFlag` (bits 1 to
    8) in the ``pred_flag`` column of annotated tables and in the
    ``CLSFLAG`` card of annotated FITS headers.
    """

    UNLIKE_TRAINING = 16
    """The out-of-distribution score is above the model's threshold: the
    image is unlike the training images."""
    DEGENERATE = 32
    """The image is constant, smaller than 16 pixels on a side, or has
    more than half of its pixels masked or non-finite."""


class Assessment(NamedTuple):
    """The result of `ClusterClassifier.assess`.

    Attributes
    ----------
    probabilities : `~numpy.ndarray`
        ``(N, n_classes)`` calibrated probabilities (NaN rows for skipped
        sources).
    ood_score : `~numpy.ndarray`
        ``(N,)`` out-of-distribution scores: about 1 for images like the
        training images, flagged above
        `ClusterClassifier.ood_threshold`; NaN for models without a
        description of their training features.
    flag : `~numpy.ndarray` of int16
        ``(N,)`` `PredictionFlag` bits (0: no reason for doubt).
    errors : list of (int, Exception)
        ``[(index, exception), ...]`` of the sources that could not be
        read (with ``on_error='skip'``).
    """

    probabilities: np.ndarray
    """``(N, n_classes)`` calibrated probabilities (NaN rows for skipped
    sources)."""
    ood_score: np.ndarray
    """``(N,)`` out-of-distribution scores: about 1 for images like the
    training images; above `ClusterClassifier.ood_threshold` the image is
    flagged `PredictionFlag.UNLIKE_TRAINING`.  NaN when the model has no
    description of its training features (files of older versions)."""
    flag: np.ndarray
    """``(N,)`` `PredictionFlag` bits (int16)."""
    errors: list
    """``[(index, exception), ...]`` of the sources that could not be read
    (with ``on_error='skip'``)."""


def degenerate_flag(data):
    """`PredictionFlag.DEGENERATE` for an image no classifier should be
    trusted on, else 0: constant (all finite pixels equal), smaller than
    `MIN_IMAGE_SIZE` pixels on a side, or more than half masked.

    Parameters
    ----------
    data : array-like
        A 2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)`` image; NaN (or
        other non-finite) pixels count as masked.

    Returns
    -------
    flag : `PredictionFlag`
        ``PredictionFlag.DEGENERATE`` or ``PredictionFlag(0)``.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf.classifier import degenerate_flag
    >>> int(degenerate_flag(np.ones((64, 64)))), int(degenerate_flag(np.ones((8, 8))))
    (32, 32)
    >>> int(degenerate_flag(np.random.default_rng(0).random((64, 64))))
    0
    """
    data = np.asarray(data)
    if min(data.shape[-2:]) < MIN_IMAGE_SIZE:
        return PredictionFlag.DEGENERATE
    finite = np.isfinite(data)
    n_finite = int(finite.sum())
    if n_finite * 2 < data.size:
        return PredictionFlag.DEGENERATE
    values = data[finite] if n_finite < data.size else data.ravel()
    if values.size == 0 or values.min() == values.max():
        return PredictionFlag.DEGENERATE
    return PredictionFlag(0)


def read_labels(path):
    """Read a label file (one label per line, as `retrain` writes).

    Blank lines at the end are ignored; spaces inside labels are kept.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The label file (UTF-8).

    Returns
    -------
    labels : list of str
        The labels, in file order (line endings stripped).

    Raises
    ------
    ModelFileError
        If the file is missing or holds no label.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f'{path}: cannot read the label file '
                             f'({getattr(exc, "strerror", None) or exc})'
                             ) from None
    labels = text.rstrip('\n').split('\n') if text.strip() else []
    labels = [label.rstrip('\r') for label in labels]
    if not labels:
        raise ModelFileError(f'{path}: label file holds no label')
    return labels


class ClusterClassifier:
    """A retrained image classifier with its labels and preprocessing.

    Usually obtained from `ClusterClassifier.load` or as
    ``retrain(...).classifier``.

    Parameters
    ----------
    model : `keras.Model`
        Input ``(batch, S, S, 3)`` float32 RGB in [0, 1]; output
        ``(batch, n_classes)`` probabilities.
    labels : list of str
        Class labels in output order.
    settings : `~astroclusterclf.preprocessing.NormalizationSettings` or dict
        Normalization applied to every input; its ``size`` is set to the
        model's input size.
    backbone : str
        Name of the backbone the model is built on.
    metadata : dict, optional
        Further metadata (``backbone_weights``, ``package_version``,
        ``created``, ``temperature``, ``training_frames``, ...), stored in
        the model file.
    ood : `~astroclusterclf.ood.FeatureDensity`, optional
        Description of the training features, for the out-of-distribution
        score (stored in the model file).

    Examples
    --------
    A tiny model (a real retrained one is ``retrain(...).classifier`` or
    `ClusterClassifier.load`): the mean brightness of the normalized image
    decides between two classes.

    >>> import numpy as np
    >>> import keras
    >>> from astroclusterclf import ClusterClassifier
    >>> inputs = keras.Input((32, 32, 3))
    >>> mean = keras.layers.GlobalAveragePooling2D()(inputs)
    >>> head = keras.layers.Dense(2, activation='softmax')
    >>> model = keras.Model(inputs, head(mean))
    >>> head.set_weights([np.array([[4., -4.]] * 3), np.array([-2., 2.])])
    >>> clf = ClusterClassifier(model, ['bright', 'faint'])
    >>> clf
    <ClusterClassifier unknown labels=['bright', 'faint']>
    >>> clf.settings.size
    (32, 32)

    Any image source works: here a 2-D array, normalized as the settings
    say (zscale interval, asinh stretch) and resized to 32 x 32.

    >>> yy, xx = np.mgrid[:64, :64]
    >>> star = 1000 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 50) + 10
    >>> label, p = clf.classify(star)
    >>> label, round(p, 2)
    ('bright', 0.82)
    >>> clf.predict([star, star + 5]).shape
    (2, 2)

    Saved models carry their labels and normalization:

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     clf.save(pathlib.Path(tmp) / 'tiny.keras')
    ...     again = ClusterClassifier.load(pathlib.Path(tmp) / 'tiny.keras')
    ...     print(again.labels, again.classify(star)[0])
    ['bright', 'faint'] bright
    """

    def __init__(self, model, labels, *, settings=None, backbone='unknown',
                 metadata=None, ood=None):
        if settings is None:
            settings = NormalizationSettings()
        elif isinstance(settings, dict):
            settings = NormalizationSettings.from_dict(settings)
        for model_input in model.inputs:
            shape = tuple(model_input.shape[1:])
            if len(shape) != 3 or shape[2] != 3 or shape[0] is None:
                raise ModelFileError(
                    f'model {model.name!r}: input must be (S, S, 3) RGB, '
                    f'got {shape}')
        shape = tuple(model.inputs[0].shape[1:])
        n_out = model.outputs[0].shape[-1]
        labels = [str(label) for label in labels]
        if n_out != len(labels):
            raise ModelFileError(
                f'model {model.name!r} has {n_out} outputs but '
                f'{len(labels)} labels were given')
        self.model = model
        self.labels = labels
        self.settings = settings.replace(size=(shape[0], shape[1]))
        self.backbone = backbone
        self.input_size = int(shape[0])
        self.metadata = dict(metadata or {})
        self.metadata.update({
            'format': 'astroclusterclf', 'format_version': FORMAT_VERSION,
            'labels': self.labels,
            'preprocessing': self.settings.to_dict(),
            'backbone': backbone, 'input_size': self.input_size})
        self.metadata.setdefault('package_version', __version__)
        self.metadata.setdefault(
            'created',
            datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'))
        self.view_settings = self._view_settings(model)
        self.ood = ood
        if ood is not None:
            self.metadata['ood_threshold'] = float(ood.threshold)
        self.path = None
        self._file_sha256 = None
        self._split = None

    def _view_settings(self, model):
        """The normalization of each model input: `settings` for the first;
        the others from the metadata entry ``views`` (models that blend
        several views, see `astroclusterclf.selection.Blend`)."""
        views = self.metadata.get('views')
        if len(model.inputs) == 1:
            return [self.settings]
        if not isinstance(views, list) or len(views) != len(model.inputs):
            raise ModelFileError(
                f'model {model.name!r} has {len(model.inputs)} inputs but its metadata '
                f'describes {len(views) if isinstance(views, list) else 0} views')
        out = [self.settings]
        for view, model_input in zip(views[1:], model.inputs[1:]):
            try:
                settings = NormalizationSettings.from_dict(view['preprocessing'])
            except (KeyError, TypeError, AstroClusterClfError) as exc:
                raise ModelFileError(f'model {model.name!r}: metadata entry \'views\' '
                                     f'is invalid ({exc})') from None
            shape = tuple(model_input.shape[1:3])
            out.append(settings.replace(size=(int(shape[0]), int(shape[1]))))
        return out

    @property
    def ood_false_alarm_rate(self):
        """The fraction of held-out training-like images the out-of-distribution
        threshold flags (NaN for files written before it was stored)."""
        return float(self.metadata.get('ood_false_alarm_rate', float('nan')))

    @property
    def temperature(self):
        """The calibration temperature applied to the model's
        probabilities (Guo et al. 2017; see `astroclusterclf.calibration`):
        fitted by `~astroclusterclf.retrain`, 1.0 for uncalibrated models
        (files of older versions)."""
        return float(self.metadata.get('temperature', 1.0))

    @property
    def ood_threshold(self):
        """OOD scores above this mean "unlike the training images" (NaN for
        models without a description of their training features)."""
        return float(self.ood.threshold) if self.ood is not None else float('nan')

    @property
    def training_frames(self):
        """What the training images were like: ``{'n': ..., 'shape':
        {'median', 'min', 'max'}, 'pixel_scale': {...} or None}``, shapes in
        pixels ``[ny, nx]`` and pixel scales in arcsec per pixel (from the
        images with a celestial WCS); `None` for older model files."""
        return self.metadata.get('training_frames')

    def __repr__(self):
        where = f' from {self.path}' if self.path else ''
        return (f'<ClusterClassifier {self.backbone} '
                f'labels={self.labels}{where}>')

    # -- files -------------------------------------------------------------

    @classmethod
    def load(cls, path, *, labels=None):
        """Load a model file written by `save` (or `retrain`).

        Parameters
        ----------
        path : str or `~pathlib.Path`
            The ``.keras`` file.
        labels : str, `~pathlib.Path` or list of str, optional
            Labels to show instead of the stored ones (a label file as
            written by `retrain`, or a list); their number must match.

        Returns
        -------
        classifier : `ClusterClassifier`

        Raises
        ------
        ModelFileError
            The file is missing, not a ``.keras`` zip, not written by
            astroclusterclf, or corrupt.
        """
        path = Path(path)
        metadata, ood_bytes = read_model_file(path)
        ood = (FeatureDensity.from_bytes(ood_bytes, name=f'{path}: {OOD_MEMBER}')
               if ood_bytes is not None else None)
        import keras   # after the checks of the metadata: they need no TensorFlow

        # Keras wants the .keras suffix; a renamed file is read via a link.
        try:
            if path.suffix == '.keras':
                model = keras.saving.load_model(path, compile=False, safe_mode=True)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    link = Path(tmp) / 'model.keras'
                    os.symlink(path.resolve(), link)
                    model = keras.saving.load_model(link, compile=False, safe_mode=True)
        except Exception as exc:  # keras raises many types here
            raise ModelFileError(
                f'{path}: cannot load the Keras model '
                f'({type(exc).__name__}: {exc})') from None
        if labels is not None:
            if isinstance(labels, (str, os.PathLike)):
                labels = read_labels(labels)
            if len(labels) != len(metadata['labels']):
                raise ModelFileError(
                    f'{path}: the model has {len(metadata["labels"])} '
                    f'classes but {len(labels)} labels were given')
            metadata = dict(metadata, labels=list(labels))
        try:
            clf = cls(model, metadata['labels'],
                      settings=metadata.get('preprocessing'),
                      backbone=metadata.get('backbone', 'unknown'),
                      metadata=metadata, ood=ood)
        except AstroClusterClfError as exc:
            raise ModelFileError(f'{path}: {exc}') from None
        clf.path = path
        return clf

    def save(self, path):
        """Write the model and its metadata to ONE ``.keras`` file.

        The file is written next to ``path`` under a temporary name and
        renamed into place, so ``path`` is never left half-written.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Output file; should end with ``.keras``.
        """
        path = Path(path)

        def save_keras(tmp):
            # Keras stages assets in folders of the system temp directory
            # and leaves them behind when a save fails: point it to a
            # private folder that is always removed.
            with tempfile.TemporaryDirectory(prefix='acc-keras-save-') as scratch:
                saved, tempfile.tempdir = tempfile.tempdir, scratch
                try:
                    self.model.save(tmp)
                finally:
                    tempfile.tempdir = saved

        write_model_file(path, save_keras, self.metadata,
                         None if self.ood is None else self.ood.to_bytes())
        self.path = path
        self._file_sha256 = None
        log.info('wrote model %s', path)

    @property
    def model_id(self):
        """``'<file stem>:<sha256[:12]>'`` of the model file (for FITS
        cards); ``'unsaved:<hash of the weights>'`` before `save`."""
        if self.path is not None and Path(self.path).is_file():
            if self._file_sha256 is None:
                self._file_sha256 = file_sha256(self.path)
            return f'{Path(self.path).stem}:{self._file_sha256[:12]}'
        h = hashlib.sha256(json.dumps(self.labels).encode())
        for w in self.model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        return f'unsaved:{h.hexdigest()[:12]}'

    # -- prediction ----------------------------------------------------------

    def predict(self, sources, *, hdu=None, bands=None, batch_size=32, tta=False):
        """Return calibrated class probabilities of one or many images.

        Files are read and normalized in a thread pool while earlier
        batches go through the model.  The probabilities are calibrated
        with the model's temperature (see `temperature`); `assess` also
        gives the out-of-distribution score and flags.

        Parameters
        ----------
        sources : source or list of sources
            Anything `astroclusterclf.io.read_image` accepts (a path, an
            HDU or HDU list, an ``(array, Header|WCS)`` tuple, NDData, a
            2-D/3-D array), or a list of them.
        hdu : int or str, optional
            HDU to read from FITS files and HDU lists.
        bands : tuple of int, optional
            The 1 or 3 bands of cubes to use, in R, G, B order (default:
            the model's settings).
        batch_size : int, optional
            Images per forward pass.
        tta : bool, optional
            Average the probabilities over the 8 rotations/flips.

        Returns
        -------
        probabilities : `~numpy.ndarray`
            ``(N, n_classes)`` (N = 1 for a single source), columns in
            the order of `labels`.
        """
        return self.assess(sources, hdu=hdu, bands=bands, batch_size=batch_size,
                           tta=tta).probabilities

    def assess(self, sources, *, hdu=None, bands=None, batch_size=32, tta=False,
               on_error='raise'):
        """Classify images and say how far to trust each prediction.

        Parameters
        ----------
        sources, bands, batch_size, tta
            As for `predict`.
        hdu : int, str, or list of them, optional
            As for `predict`, or one per source.
        on_error : {'raise', 'skip'}, optional
            What a source that cannot be read does: raise its error, or
            give a row of NaN probabilities, its error kept in
            ``errors``.

        Returns
        -------
        assessment : `Assessment`
            Calibrated ``probabilities``, the out-of-distribution
            ``ood_score`` (NaN for models without a stored description of
            their training features), the `PredictionFlag` bits ``flag``
            and the ``errors`` of skipped sources.
        """
        if on_error not in ('raise', 'skip'):
            raise ParameterError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        items = [sources] if _is_single_source(sources) else list(sources)
        variants = range(N_VARIANTS) if tta else (0,)
        split = self._features_model()
        view = self._ood_view()
        # Tracing a compiled forward pass costs a second or two, once per
        # model, which is more than an eager call on one or a few images;
        # but an eager call takes about 75 MB per image at 224 px (2.4 GB
        # of peak memory for 20 images, against 1.2 GB compiled for any
        # number in batches of 32), so only a few images go eagerly.
        forward = (forward_function(split) if len(items) * len(variants) > _EAGER_MAX_IMAGES
                   else (lambda x: split(x, training=False)))
        view_settings = [s if bands is None else s.replace(bands=bands)
                         for s in self.view_settings]
        ood_settings = None
        if view is not None:
            ood_settings = view[1] if bands is None else view[1].replace(bands=bands)
        n, n_classes = len(items), len(self.labels)
        probabilities = np.full((n, n_classes), np.nan)
        ood = np.full(n, np.nan)
        flags = np.zeros(n, np.int16)
        errors = []
        batches = [[] for _ in view_settings]
        batch = batches[0]
        ood_batch, rows = [], []

        if isinstance(hdu, list) and len(hdu) != n:
            raise ParameterError(f'{len(hdu)} HDUs given for {n} sources')

        def prepare(index):
            image = read_image(items[index], hdu=hdu[index] if isinstance(hdu, list)
                               else hdu)
            done = {}
            rgbs = []
            for s in view_settings:      # views may share a normalization
                if s not in done:
                    # One warning per image, however many views it goes through.
                    done[s] = normalize(image.data, settings=s, name=image.name,
                                        warn=not done)
                rgbs.append(done[s])
            if ood_settings is None:
                ood_rgb = None
            elif ood_settings in view_settings:
                ood_rgb = rgbs[view_settings.index(ood_settings)]
            else:
                ood_rgb = normalize(image.data, settings=ood_settings, name=image.name,
                                    warn=False)
            return degenerate_flag(image.data), rgbs, ood_rgb

        def flush():
            inputs = [np.stack(b) for b in batches]
            if view is not None:
                inputs.append(np.stack(ood_batch))
            inputs = inputs[0] if len(inputs) == 1 else inputs
            outputs = forward(inputs)
            features, probs = (np.asarray(outputs[0], np.float64),
                               np.asarray(outputs[1], np.float64))
            scores = (self.ood.score(features) if self.ood is not None
                      else np.full(len(batch), np.nan))
            for row in sorted(set(rows)):
                mine = [i for i, r in enumerate(rows) if r == row]
                probabilities[row] = probs[mine].mean(axis=0)
                ood[row] = scores[mine].mean()
            for b in batches:
                b.clear()
            ood_batch.clear()
            rows.clear()

        for index, prepared, error in prefetch_map(prepare, range(n),
                                                   lookahead=2 * batch_size):
            if error is not None:
                if on_error == 'raise' or not isinstance(error, AstroClusterClfError):
                    raise error
                errors.append((index, error))
                continue
            flags[index], rgbs, ood_rgb = prepared
            for v in variants:
                for b, rgb in zip(batches, rgbs):
                    b.append(dihedral(rgb, v))
                if ood_rgb is not None:
                    ood_batch.append(dihedral(ood_rgb, v))
                rows.append(index)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        probabilities = floor_probabilities(
            calibrate_probabilities(probabilities, self.temperature))
        if self.ood is not None:
            flags[ood > self.ood.threshold] |= PredictionFlag.UNLIKE_TRAINING
        return Assessment(probabilities, ood, flags, errors)

    def _features_model(self):
        """A model computing ``[features, probabilities]``: the features
        the out-of-distribution description was fitted on and the head's
        output.  With a separate OOD view (see `_ood_view`) its inputs
        are ``[image, ood_view_image]``; otherwise the features are the
        model's own bottleneck, or, for models that are not backbone +
        head, the probabilities themselves (no OOD score)."""
        if self._split is None:
            import keras

            nested = [layer for layer in self.model.layers if isinstance(layer, keras.Model)]
            inputs = [keras.Input(tuple(i.shape[1:])) for i in self.model.inputs]
            view = self._ood_view()
            if view is not None:
                ood_inputs = keras.Input((view[1].size[0], view[1].size[1], 3))
                outputs = self.model(inputs if len(inputs) > 1 else inputs[0])
                self._split = keras.Model(inputs + [ood_inputs],
                                          [view[0](ood_inputs), outputs])
                return self._split
            if len(inputs) > 1:
                outputs = self.model(inputs)
                self._split = keras.Model(inputs, [outputs, outputs])
                return self._split
            inputs = inputs[0]
            if len(nested) == 2:
                features = nested[0](inputs)
                self._split = keras.Model(inputs, [features, nested[1](features)])
            else:
                outputs = self.model(inputs)
                self._split = keras.Model(inputs, [outputs, outputs])
        return self._split

    def _ood_view(self):
        """``(backbone, settings)`` of the view the out-of-distribution
        description was fitted in (see `astroclusterclf.retrain`), or
        `None` when it is the model's own bottleneck (or there is none)."""
        view = self.metadata.get('ood_view')
        if self.ood is None:
            return None
        name = self.path or self.model.name
        if view is None:
            # Models of 0.1.0.dev: an ImageNet backbone at the model's input.
            weights_id = self.metadata.get('ood_backbone')
            if weights_id is None:
                return None
            view = {'backbone_weights': weights_id, 'input_size': self.input_size,
                    'settings': self.settings.to_dict()}
        try:
            weights_id = str(view['backbone_weights'])
            size = int(view['input_size'])
            settings = NormalizationSettings.from_dict(view['settings']).replace(
                size=(size, size))
        except (KeyError, TypeError, ValueError, AstroClusterClfError) as exc:
            raise ModelFileError(f'{name}: metadata entry \'ood_view\' is invalid '
                                 f'({exc})') from exc
        if (weights_id == self.metadata.get('backbone_weights')
                and len(self.model.inputs) == 1
                and settings == self.settings
                and not self.metadata.get('fine_tuned', False)):
            return None
        arch = weights_id.split(':')[0]
        try:
            current = backbones.weights_id(arch)   # an unknown backbone fails here
        except AstroClusterClfError as exc:
            raise ModelFileError(f'{name}: the backbone of its out-of-distribution '
                                 f'score is unavailable ({exc})') from exc
        if current != weights_id:
            raise ModelFileError(
                f'{name}: its out-of-distribution score was fitted on {weights_id}, '
                f'but the installed weights are {current}')
        backbone = backbones.shared_backbone(arch, 'imagenet', size)
        return backbone, settings

    def rank(self, probabilities, k=None):
        """Return ``[(label, probability), ...]`` best first.

        Parameters
        ----------
        probabilities : array-like
            One row of `predict`.
        k : int, optional
            Keep the ``k`` best (default: all).

        Returns
        -------
        ranked : list of (str, float)
            ``(label, probability)`` pairs, by decreasing probability (ties
            in the order of `labels`).
        """
        probabilities = np.asarray(probabilities, dtype=float).ravel()
        order = np.argsort(-probabilities, kind='stable')
        if k is not None:
            order = order[:max(int(k), 0)]
        return [(self.labels[i], float(probabilities[i])) for i in order]

    def classify(self, source, *, hdu=None, bands=None, tta=False):
        """Return ``(label, probability)`` of the best class of one image
        (options as for `predict`).

        Parameters
        ----------
        source : source
            One image, anything `astroclusterclf.io.read_image` accepts.
        hdu : int or str, optional
            HDU to read from a FITS file or HDU list.
        bands : tuple of int, optional
            The 1 or 3 bands of a cube to use, in R, G, B order (default:
            the model's settings).
        tta : bool, optional
            Average the probabilities over the 8 rotations/flips.

        Returns
        -------
        label : str
            The most probable class.
        probability : float
            Its calibrated probability.
        """
        return self.rank(self.predict(source, hdu=hdu, bands=bands, tta=tta)[0], 1)[0]

    def top_k(self, source, k=5, *, hdu=None, bands=None, tta=False):
        """Return the ``k`` best ``(label, probability)`` of one image.

        Parameters
        ----------
        source : source
            One image, anything `astroclusterclf.io.read_image` accepts.
        k : int, optional
            Number of classes to return (default 5; fewer when the model
            has fewer).
        hdu : int or str, optional
            HDU to read from a FITS file or HDU list.
        bands : tuple of int, optional
            The 1 or 3 bands of a cube to use, in R, G, B order (default:
            the model's settings).
        tta : bool, optional
            Average the probabilities over the 8 rotations/flips.

        Returns
        -------
        ranked : list of (str, float)
            ``(label, probability)`` pairs, best first (see `rank`).
        """
        return self.rank(self.predict(source, hdu=hdu, bands=bands, tta=tta)[0], k)
