# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Content-addressed cache of backbone features ("bottlenecks").

A bottleneck is the feature vector a backbone computes for one image.
Retraining a head only needs these vectors, so they are computed once,
in batches, and stored on disk under a key made of

- the SHA-256 of the image file's bytes (renaming or moving a file keeps
  its entry; changing a single byte makes a new one),
- the normalization settings (`NormalizationSettings.cache_key`),
- the backbone name and weights hash (`astroclusterclf.backbones.weights_id`),
- the augmentation variant (one of the 8 rotations/flips of the dihedral
  group, see `dihedral`).

Entries are written to a temporary file and renamed into place, so two
runs sharing a cache, or a run killed midway, never leave a partial
entry; an entry that does not load as the expected vector is recomputed.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf.bottlenecks import dihedral
>>> image = np.arange(4.).reshape(2, 2, 1)
>>> [dihedral(image, k)[..., 0].tolist() for k in (0, 1, 4)]
[[[0.0, 1.0], [2.0, 3.0]], [[1.0, 3.0], [0.0, 2.0]], [[1.0, 0.0], [3.0, 2.0]]]
"""

import collections
import concurrent.futures
import hashlib
import json
import logging
import os
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .exceptions import AstroClusterClfError, SkippedFileWarning

__all__ = ['N_VARIANTS', 'dihedral', 'file_sha256', 'prefetch_map',
           'cached_backbone', 'forward_function', 'BottleneckResult',
           'BottleneckCache', 'default_bottleneck_dir']

log = logging.getLogger(__name__)

#: Number of augmentation variants: the 8 elements of the dihedral group.
N_VARIANTS = 8


def dihedral(image, variant):
    """Return one of the 8 rotations/flips of an image.

    Parameters
    ----------
    image : `~numpy.ndarray`
        Array whose first two axes are (y, x), e.g. ``(H, W, 3)``.
    variant : int
        0-3: rotation by ``90 * variant`` degrees counter-clockwise;
        4-7: the same rotations of the left-right mirrored image.

    Returns
    -------
    out : `~numpy.ndarray`
        A view of ``image`` (no copy: callers copy it once into their
        batch).
    """
    variant = int(variant)
    if not 0 <= variant < N_VARIANTS:
        raise ValueError(f'variant must be in 0..7, got {variant}')
    if variant == 0:
        return image
    out = image[:, ::-1] if variant >= 4 else image
    return np.rot90(out, variant % 4, axes=(0, 1))


def file_sha256(path, *, chunk_size=1 << 20):
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def prefetch_map(func, items, *, workers=None, lookahead=None):
    """Apply ``func`` to ``items`` in a thread pool, yielding in order.

    At most ``lookahead`` calls are in flight, so memory stays bounded
    while the caller (e.g. a forward pass, which releases the GIL) works
    on earlier results.

    Yields
    ------
    item, result, error
        ``error`` is the exception ``func(item)`` raised (then ``result``
        is `None`); exceptions are not raised here so the caller decides.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    lookahead = lookahead or 4 * workers
    items = iter(items)
    pending = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        def fill():
            while len(pending) < lookahead:
                try:
                    item = next(items)
                except StopIteration:
                    return
                pending.append((item, pool.submit(func, item)))
        fill()
        try:
            while pending:
                item, future = pending.popleft()
                fill()
                try:
                    yield item, future.result(), None
                except Exception as exc:  # handed to the caller
                    yield item, None, exc
        finally:
            for _, future in pending:
                future.cancel()


_BACKBONES = {}
_BACKBONES_LOCK = threading.Lock()


def cached_backbone(architecture, weights='imagenet', input_size=None):
    """Return a frozen backbone model, built once per process.

    The instance is shared: do not train it (fine-tuning builds its own
    with `astroclusterclf.backbones.get_backbone`).
    """
    from . import backbones

    key = (architecture, str(weights), input_size)
    with _BACKBONES_LOCK:
        if key not in _BACKBONES:
            _BACKBONES[key] = backbones.get_backbone(
                architecture, weights=weights, trainable=False,
                input_size=input_size)
        return _BACKBONES[key]


_FORWARD = weakref.WeakKeyDictionary()


def forward_function(model):
    """Return a `tf.function` computing ``model(x, training=False)`` for
    any batch size, traced once per model (and forgotten with it)."""
    import tensorflow as tf

    try:
        return _FORWARD[model]
    except KeyError:
        pass
    shape = tuple(model.inputs[0].shape[1:])
    ref = weakref.ref(model)   # the function must not keep the model alive

    @tf.function(input_signature=[tf.TensorSpec((None,) + shape,
                                                tf.float32)],
                 reduce_retracing=True)
    def forward(x):
        return ref()(x, training=False)
    _FORWARD[model] = forward
    return forward


def default_bottleneck_dir():
    """Return ``<cache dir>/bottlenecks`` (see `astroclusterclf.config`)."""
    from .config import cache_dir

    return cache_dir() / 'bottlenecks'


@dataclass
class BottleneckResult:
    """Features of a list of files.

    Attributes
    ----------
    features : dict
        ``{path: ndarray (n_variants, feature_length) float32}``, with the
        variants in the order they were asked for; skipped files are
        absent.
    digests : dict
        ``{path: SHA-256 hex digest of the file}``.
    skipped : list of (path, str)
        Files that could not be read, with the reason.
    n_computed, n_cached : int
        Feature vectors computed by the backbone and loaded from disk.
    """

    features: dict = field(default_factory=dict)
    digests: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    n_computed: int = 0
    n_cached: int = 0


class BottleneckCache:
    """Feature cache for one backbone and one normalization setting.

    Parameters
    ----------
    directory : str or `~pathlib.Path`, optional
        Cache root (default: `default_bottleneck_dir`).  Entries live in
        a sub-folder named after the backbone weights and settings.
    architecture : str, optional
        Backbone name (see `astroclusterclf.backbones.available`).
    weights : str, optional
        Backbone weights.
    settings : `~astroclusterclf.preprocessing.NormalizationSettings`, optional
        Normalization; its ``size`` is set to the backbone input size.
    input_size : int, optional
        Backbone input size (default: the backbone's own).
    """

    def __init__(self, directory=None, *, architecture='efficientnet_lite0',
                 weights='imagenet', settings=None, input_size=None):
        from . import backbones
        from .preprocessing import NormalizationSettings

        spec = backbones.get_spec(architecture)
        if settings is None:
            settings = NormalizationSettings()
        elif isinstance(settings, dict):
            settings = NormalizationSettings.from_dict(settings)
        size = int(input_size or spec.input_size)
        self.input_size = size
        self._default_size = spec.input_size
        self.architecture = spec.name
        self.weights = weights
        self.feature_length = spec.feature_length
        self.settings = settings.replace(size=(size, size))
        self.weights_id = backbones.weights_id(spec.name, weights)
        self.directory = Path(directory or default_bottleneck_dir())
        key = json.dumps({'weights_id': self.weights_id,
                          'settings': self.settings.cache_key()},
                         sort_keys=True)
        self.key = hashlib.sha256(key.encode()).hexdigest()[:16]
        safe = ''.join(c if c.isalnum() or c in '-_' else '_'
                       for c in self.architecture)
        self.root = self.directory / f'{safe}-{self.key}'
        self._key_written = False

    def __repr__(self):
        return (f'<BottleneckCache {self.architecture} key={self.key} '
                f'at {self.root}>')

    # -- storage -----------------------------------------------------------

    def entry_path(self, digest):
        """Path of the entry of one file (by content digest): a ``.npy``
        array of shape ``(N_VARIANTS, feature_length)`` holding the
        features of each rotation/flip, NaN rows for those not computed.

        One file per image, not per variant: creating a small file costs
        about as much as a forward pass of one image on some disks.
        """
        return self.root / digest[:2] / f'{digest}.npy'

    def load_entry(self, digest, *, quiet=False):
        """Return the entry of a file digest (see `entry_path`), or `None`
        if missing or corrupt (logged, unless ``quiet``)."""
        path = self.entry_path(digest)
        try:
            with open(path, 'rb') as f:
                entry = np.load(f, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            if not quiet:
                log.warning('corrupt bottleneck %s (%s): recomputing', path,
                            exc)
            return None
        finite = np.isfinite(entry)
        # Each row is either computed (all finite) or not (all NaN).
        if (entry.shape != (N_VARIANTS, self.feature_length)
                or entry.dtype != np.float32
                or not np.all(finite.all(axis=1) | np.isnan(entry).all(axis=1))):
            if not quiet:
                log.warning('corrupt bottleneck %s (shape %s, dtype %s): '
                            'recomputing', path, entry.shape, entry.dtype)
            return None
        return entry

    def load(self, digest, variant):
        """Return the cached vector of one variant, or `None` if missing or
        corrupt."""
        entry = self.load_entry(digest)
        if entry is None or np.isnan(entry[variant, 0]):
            return None
        return entry[variant]

    def store(self, digest, entry):
        """Write the entry of a file digest atomically (temporary file +
        `os.replace`), keeping rows that another run stored meanwhile."""
        entry = np.asarray(entry, dtype=np.float32)
        if not self._key_written:
            info = {'architecture': self.architecture,
                    'weights_id': self.weights_id,
                    'settings': self.settings.to_dict()}
            text = json.dumps(info, indent=1, sort_keys=True, default=str)
            atomic_write(self.root / 'key.json',
                         lambda tmp: Path(tmp).write_text(text),
                         make_parents=True)
            self._key_written = True
        existing = self.load_entry(digest, quiet=True)
        if existing is not None:
            todo = np.isnan(entry[:, 0])
            entry = entry.copy()
            entry[todo] = existing[todo]
        atomic_write(self.entry_path(digest),
                     lambda tmp: np.save(tmp, entry, allow_pickle=False),
                     make_parents=True)

    def _empty_entry(self):
        return np.full((N_VARIANTS, self.feature_length), np.nan, np.float32)

    # -- computing ---------------------------------------------------------

    def get_features(self, paths, *, variants=(0,), batch_size=32,
                     progress=None, workers=None):
        """Return the features of files, computing only what is missing.

        Parameters
        ----------
        paths : list of str or `~pathlib.Path`
            Image files.
        variants : tuple of int or list of tuple of int, optional
            Dihedral variants (0-7) wanted for every file, or one tuple
            per file.
        batch_size : int, optional
            Images per forward pass.
        progress : callable, optional
            Called as ``progress(done, total)`` with the number of
            feature vectors computed so far (only when something needs
            computing).
        workers : int, optional
            Threads reading and normalizing files while the backbone runs.

        Returns
        -------
        result : `BottleneckResult`

        Warns
        -----
        SkippedFileWarning
            For each file that cannot be read (named, with the reason).
        """
        from .preprocessing import fits_to_rgb

        paths = [Path(p) for p in paths]
        if variants and isinstance(variants[0], (int, np.integer)):
            variants = [tuple(variants)] * len(paths)
        if len(variants) != len(paths):
            raise ValueError('variants must be one tuple or one per path')
        result = BottleneckResult()
        missing = {}   # path -> [variant, ...]
        wanted = {}
        entries = {}   # path -> its cache entry, completed as we go
        for path, path_variants in zip(paths, variants):
            if path in result.features or path in wanted:
                continue
            try:
                digest = file_sha256(path)
            except OSError as exc:
                self._skip(result, path, exc.strerror or str(exc))
                continue
            result.digests[path] = digest
            wanted[path] = tuple(path_variants)
            entry = self.load_entry(digest)
            entries[path] = self._empty_entry() if entry is None else entry
            vectors = {}
            for v in path_variants:
                if np.isnan(entries[path][v, 0]):
                    missing.setdefault(path, []).append(v)
                else:
                    vectors[v] = entries[path][v]
                    result.n_cached += 1
            result.features[path] = vectors
        total = sum(len(v) for v in missing.values())
        remaining = {path: len(v) for path, v in missing.items()}
        if total:
            log.info('computing %d bottlenecks of %d files with %s',
                     total, len(missing), self.architecture)
            forward = forward_function(cached_backbone(
                self.architecture, self.weights,
                None if self.input_size == self._default_size
                else self.input_size))
            settings = self.settings

            size = self.input_size

            def prepare(path):
                # Reading and normalizing happen here, in a worker thread,
                # overlapped with the forward pass.
                return fits_to_rgb(path, settings=settings)

            buffer = np.empty((batch_size, size, size, 3), np.float32)
            batch = []   # (path, variant) of the rows filled in buffer
            # Cache entries are written by a thread of their own, so the
            # file-system calls overlap the next forward pass.
            writer = concurrent.futures.ThreadPoolExecutor(1)
            writes = []
            if progress is not None:
                progress(0, total)

            def flush():
                features = np.asarray(forward(buffer[:len(batch)]),
                                      dtype=np.float32)
                for (path, v), vector in zip(batch, features):
                    entries[path][v] = vector
                    result.features[path][v] = vector
                    remaining[path] -= 1
                    if not remaining[path]:  # all its variants: write
                        writes.append(writer.submit(
                            self.store, result.digests[path],
                            entries[path].copy()))
                result.n_computed += len(batch)
                batch.clear()
                if progress is not None:
                    progress(result.n_computed, total)

            for path, rgb, error in prefetch_map(prepare, missing,
                                                 workers=workers,
                                                 lookahead=2 * batch_size):
                if error is not None:
                    # Any reader failure skips the file (a damaged file may
                    # raise more than our own errors); a warning turned
                    # into an error by the user's filters still raises.
                    if isinstance(error, Warning):
                        raise error
                    if not isinstance(error, (AstroClusterClfError,
                                              OSError)):
                        log.debug('reading %s failed', path, exc_info=error)
                        error = f'{type(error).__name__}: {error}'

                    self._skip(result, path, str(error))
                    del result.features[path]
                    total -= len(missing[path])
                    continue
                for v in missing[path]:
                    # The rotations/flips are views: one copy per variant.
                    buffer[len(batch)] = dihedral(rgb, v)
                    batch.append((path, v))
                    if len(batch) >= batch_size:
                        flush()
            if batch:
                flush()
            writer.shutdown(wait=True)
            for write in writes:
                write.result()  # raise the first failed write, if any
        for path, vectors in list(result.features.items()):
            result.features[path] = np.stack([vectors[v]
                                              for v in wanted[path]])
        # Warn only now that no reader thread runs: warnings.catch_warnings
        # (used while reading FITS files) is process-wide and would
        # swallow a warning issued meanwhile from another thread.
        for path, reason in result.skipped:
            warnings.warn(f'{path}: skipped, cannot be read ({reason})',
                          SkippedFileWarning)
        return result

    @staticmethod
    def _skip(result, path, reason):
        prefix = f'{path}: '
        if reason.startswith(prefix):  # the readers name the file already
            reason = reason[len(prefix):]
        result.skipped.append((path, reason))
        result.digests.pop(path, None)
