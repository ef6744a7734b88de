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
  group, see ``dihedral``).

Entries are written to a temporary file and renamed into place, so two
runs sharing a cache, or a run killed midway, never leave a partial
entry; an entry that does not load as the expected vector is recomputed.
"""

import concurrent.futures
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import backbones
from ._atomic import atomic_write
from ._augment import N_VARIANTS, dihedral
from .config import cache_dir
from .exceptions import (AstroClusterClfError, OutputError, ParameterError,
                         SkippedFileWarning)
from ._forward import forward_function
from ._hashing import file_sha256
from ._parallel import prefetch_map
from .preprocessing import NormalizationSettings, fits_to_rgb

__all__ = ['BottleneckCache', 'BottleneckResult', 'default_bottleneck_dir']

log = logging.getLogger(__name__)


def default_bottleneck_dir():
    """Return ``<cache dir>/bottlenecks`` (see `astroclusterclf.config`).

    Returns
    -------
    path : `~pathlib.Path`
        The default bottleneck folder, under `astroclusterclf.config.cache_dir`
        (it need not exist yet).
    """
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
        Backbone name (see `astroclusterclf.backbones.available_backbones`).
    weights : str, optional
        Backbone weights.
    settings : `~astroclusterclf.preprocessing.NormalizationSettings`, optional
        Normalization; its ``size`` is set to the backbone input size.
    input_size : int, optional
        Backbone input size (default: the backbone's own).
    """

    def __init__(self, directory=None, *, architecture='efficientnet_lite0',
                 weights='imagenet', settings=None, input_size=None):
        spec = backbones.get_spec(architecture)
        if settings is None:
            settings = NormalizationSettings()
        elif isinstance(settings, dict):
            settings = NormalizationSettings.from_dict(settings)
        size = int(input_size or spec.input_size)
        self.input_size = size
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
        self.read_only = False
        if self.directory.exists() and not self.directory.is_dir():
            raise OutputError(f'{self.directory}: the bottleneck cache must be a folder, '
                              'but this is a file')

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

        Parameters
        ----------
        digest : str
            SHA-256 hex digest of the image file's content.

        Returns
        -------
        path : `~pathlib.Path`
            ``<root>/<first two hex digits>/<digest>.npy`` (it need not
            exist).
        """
        return self.root / digest[:2] / f'{digest}.npy'

    def load_entry(self, digest, *, quiet=False):
        """Return the entry of a file digest (see `entry_path`), or `None`
        if missing or corrupt (logged, unless ``quiet``).

        Parameters
        ----------
        digest : str
            SHA-256 hex digest of the image file's content.
        quiet : bool, optional
            Do not log a warning for a corrupt entry.

        Returns
        -------
        entry : `~numpy.ndarray` or None
            ``(N_VARIANTS, feature_length)`` float32, NaN rows for the
            variants not computed; `None` when the file is missing,
            unreadable, or of the wrong shape, dtype or content.
        """
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
        corrupt.

        Parameters
        ----------
        digest : str
            SHA-256 hex digest of the image file's content.
        variant : int
            Dihedral variant (0-7, see ``dihedral``).

        Returns
        -------
        vector : `~numpy.ndarray` or None
            ``(feature_length,)`` float32 features, or `None` when the
            entry is missing or corrupt or that variant was not computed.
        """
        entry = self.load_entry(digest)
        if entry is None or np.isnan(entry[variant, 0]):
            return None
        return entry[variant]

    def store(self, digest, entry):
        """Write the entry of a file digest atomically (temporary file +
        `os.replace`), keeping rows that another run stored meanwhile.

        A cache that cannot be written (read-only, disk full) is not an
        error: the features are still returned, a warning is logged once,
        and `read_only` becomes True.

        Parameters
        ----------
        digest : str
            SHA-256 hex digest of the image file's content.
        entry : array-like
            ``(N_VARIANTS, feature_length)`` features (stored as float32),
            NaN rows for the variants not computed; those rows are filled
            from the entry already on disk, if any.
        """
        if self.read_only:
            return
        try:
            self._store(digest, entry)
        except OutputError as exc:
            self.read_only = True
            log.warning('cannot write to the bottleneck cache (%s); features are '
                        'computed but not stored', exc)

    def _store(self, digest, entry):
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
                     make_parents=True, sweep=False)

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
        paths = [Path(p) for p in paths]
        if variants and isinstance(variants[0], (int, np.integer)):
            variants = [tuple(variants)] * len(paths)
        if len(variants) != len(paths):
            raise ParameterError('variants must be one tuple or one per path, got '
                                 f'{len(variants)} for {len(paths)} paths')
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
            forward = forward_function(backbones.shared_backbone(
                self.architecture, self.weights, self.input_size))
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
