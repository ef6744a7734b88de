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
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from astropy.io import fits
from astropy.wcs import WCS

from ._atomic import atomic_write
from .augment import N_VARIANTS, dihedral
from .exceptions import ModelFileError
from .forward import forward_function
from .hashing import file_sha256
from .parallel import prefetch_map
from .preprocessing import NormalizationSettings, fits_to_rgb
from .version import __version__

__all__ = ['ClusterClassifier', 'read_labels']

log = logging.getLogger(__name__)

#: Name of the JSON member holding the metadata inside the ``.keras`` zip.
METADATA_MEMBER = 'astroclusterclf.json'

#: Version of the metadata layout.
FORMAT_VERSION = 1


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


def read_labels(path):
    """Read a label file (one label per line, as `retrain` writes).

    Blank lines at the end are ignored; spaces inside labels are kept.

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
        ``created``, ...), stored in the model file.

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
                 metadata=None):
        if settings is None:
            settings = NormalizationSettings()
        elif isinstance(settings, dict):
            settings = NormalizationSettings.from_dict(settings)
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3 or shape[2] != 3 or shape[0] is None:
            raise ModelFileError(
                f'model {model.name!r}: input must be (S, S, 3) RGB, '
                f'got {shape}')
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
        self.path = None
        self._file_sha256 = None

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
        import keras

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f'{path}: model file not found')
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                if METADATA_MEMBER not in names:
                    raise ModelFileError(
                        f'{path}: not an astroclusterclf model file (no '
                        f'{METADATA_MEMBER} member; use '
                        'keras.saving.load_model for plain Keras files)')
                metadata = json.loads(z.read(METADATA_MEMBER))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(
                f'{path}: not a Keras .keras model file ({exc})') from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(
                f'{path}: corrupt {METADATA_MEMBER} member ({exc})') from None
        if (not isinstance(metadata, dict)
                or metadata.get('format') != 'astroclusterclf'
                or 'labels' not in metadata):
            raise ModelFileError(
                f'{path}: {METADATA_MEMBER} is not astroclusterclf metadata')
        if metadata.get('format_version', 0) > FORMAT_VERSION:
            raise ModelFileError(
                f'{path}: model format version '
                f'{metadata["format_version"]} is newer than this '
                f'astroclusterclf supports ({FORMAT_VERSION}); upgrade')
        # Keras wants the .keras suffix; a renamed file is read via a link.
        try:
            if path.suffix == '.keras':
                model = keras.saving.load_model(path, compile=False)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    link = Path(tmp) / 'model.keras'
                    os.symlink(path.resolve(), link)
                    model = keras.saving.load_model(link, compile=False)
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
        clf = cls(model, metadata['labels'],
                  settings=metadata.get('preprocessing'),
                  backbone=metadata.get('backbone', 'unknown'),
                  metadata=metadata)
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
        text = json.dumps(self.metadata, indent=1, sort_keys=True)

        def write(tmp):
            self.model.save(tmp)
            with zipfile.ZipFile(tmp, 'a',
                                 compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr(METADATA_MEMBER, text)

        atomic_write(path, write, make_parents=True)
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

    def predict(self, sources, *, hdu=None, batch_size=32, tta=False):
        """Return class probabilities of one or many images.

        Files are read and normalized in a thread pool while earlier
        batches go through the model.

        Parameters
        ----------
        sources : source or list of sources
            Anything `astroclusterclf.io.read_image` accepts (a path, an
            HDU or HDU list, an ``(array, Header|WCS)`` tuple, NDData, a
            2-D/3-D array), or a list of them.
        hdu : int or str, optional
            HDU to read from FITS files and HDU lists.
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
        items = [sources] if _is_single_source(sources) else list(sources)
        variants = range(N_VARIANTS) if tta else (0,)
        forward = forward_function(self.model)
        settings = self.settings
        out, batch = [], []

        def prepare(source):
            return fits_to_rgb(source, hdu=hdu, settings=settings)

        def flush():
            out.append(np.asarray(forward(np.stack(batch)),
                                  dtype=np.float64))
            batch.clear()

        for _, rgb, error in prefetch_map(prepare, items,
                                          lookahead=2 * batch_size):
            if error is not None:
                raise error
            for v in variants:
                batch.append(dihedral(rgb, v))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        n_classes = len(self.labels)
        if not out:
            return np.zeros((0, n_classes))
        probs = np.concatenate(out).reshape(len(items), len(variants),
                                            n_classes)
        return probs.mean(axis=1)

    def rank(self, probabilities, k=None):
        """Return ``[(label, probability), ...]`` best first.

        Parameters
        ----------
        probabilities : array-like
            One row of `predict`.
        k : int, optional
            Keep the ``k`` best (default: all).
        """
        probabilities = np.asarray(probabilities, dtype=float).ravel()
        order = np.argsort(-probabilities, kind='stable')
        if k is not None:
            order = order[:max(int(k), 0)]
        return [(self.labels[i], float(probabilities[i])) for i in order]

    def classify(self, source, *, hdu=None, tta=False):
        """Return ``(label, probability)`` of the best class of one image."""
        return self.rank(self.predict(source, hdu=hdu, tta=tta)[0], 1)[0]

    def top_k(self, source, k=5, *, hdu=None):
        """Return the ``k`` best ``(label, probability)`` of one image."""
        return self.rank(self.predict(source, hdu=hdu)[0], k)
