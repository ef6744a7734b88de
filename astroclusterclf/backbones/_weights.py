# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Weight-file helpers shared by the backbone families: load a user's
weights file into a model, copy weights between models by layer name, and
the checksummed, atomically written cache of converted models.
"""

import json
import logging
import os
from pathlib import Path

from .._atomic import atomic_write
from ..config import cache_dir
from ..exceptions import WeightsIntegrityError, WeightsNotFoundError
from .._hashing import file_sha256

__all__ = []

log = logging.getLogger(__name__)

#: Bumped whenever a conversion changes, so old cache entries are rebuilt.
CONVERTER_VERSION = 1


def copy_weights_by_name(source, target, *, name):
    """Copy the weights of every layer of ``target`` from the layer of the
    same name in ``source``; return how many layers were copied.

    Raises `~astroclusterclf.WeightsIntegrityError` if a layer with weights
    is missing from ``source`` or its weight shapes differ.
    """
    by_name = {layer.name: layer for layer in source.layers}
    wanted = [layer for layer in target.layers if layer.weights]
    missing = [layer.name for layer in wanted if layer.name not in by_name]
    if missing:
        raise WeightsIntegrityError(
            f'{name}: {len(missing)} of {len(wanted)} layers of '
            f'{target.name} have no weights there, e.g. {missing[:3]}')
    copied = 0
    for layer in wanted:
        src = by_name[layer.name]
        values = src.get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [tuple(v.shape) for v in values] != shapes:
            raise WeightsIntegrityError(
                f'{name}: layer {layer.name!r} has weights of shapes '
                f'{[tuple(v.shape) for v in values]}, expected {shapes}')
        layer.set_weights(values)
        copied += 1
    return copied


def load_weights_file(model, path):
    """Load ``path`` (a ``.keras`` model, a ``.weights.h5`` file or a
    legacy Keras ``.h5`` weights file) into ``model`` in place."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f'{path}: weights file not found')
    try:
        if path.name.endswith('.keras'):
            source = keras.saving.load_model(path, compile=False)
            copy_weights_by_name(source, model, name=str(path))
        elif path.name.endswith('.h5') or path.name.endswith('.hdf5'):
            model.load_weights(path)
        else:
            raise WeightsIntegrityError(
                f'{path}: unsupported weights file type (use a .keras, '
                '.weights.h5 or .h5 file)')
    except WeightsIntegrityError:
        raise
    except Exception as exc:
        raise WeightsIntegrityError(
            f'{path}: cannot load these weights into {model.name} '
            f'({type(exc).__name__}: {exc})') from exc


def cache_path(name, source_sha256):
    """Path of the converted model for backbone ``name`` whose source
    checkpoint has SHA-256 ``source_sha256``."""
    return cache_dir() / 'backbones' / f'{name}-{source_sha256[:16]}.keras'


def _sidecar(path):
    return path.with_name(path.name + '.json')


def save_cached_model(model, path, *, source_sha256):
    """Save ``model`` to ``path`` atomically, with a JSON sidecar holding
    the file's SHA-256 (written last, so a partial entry never verifies)."""
    import keras

    path = Path(path)
    meta = {'source_sha256': source_sha256,
            'converter_version': CONVERTER_VERSION,
            'keras_version': keras.__version__}

    def write(tmp):
        keras.saving.save_model(model, tmp)
        meta['sha256'] = file_sha256(tmp)

    atomic_write(path, write, make_parents=True)
    atomic_write(_sidecar(path),
                 lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    log.info('cached converted backbone in %s', path)


def load_cached_model(path, *, source_sha256):
    """Return the cached model at ``path``, or `None` if there is no entry
    or it is corrupt, partial or stale (then it is logged and removed)."""
    import keras

    path = Path(path)
    if not path.exists():
        return None
    problem = None
    try:
        with open(_sidecar(path)) as f:
            meta = json.load(f)
        if meta.get('converter_version') != CONVERTER_VERSION:
            problem = 'written by another converter version'
        elif meta.get('source_sha256') != source_sha256:
            problem = 'made from another checkpoint'
        elif meta.get('sha256') != file_sha256(path):
            problem = 'checksum mismatch (corrupt or partial file)'
    except (OSError, ValueError, AttributeError) as exc:
        problem = f'unreadable checksum sidecar ({exc})'
    model = None
    if problem is None:
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # keras raises many kinds
            problem = f'cannot be loaded ({type(exc).__name__}: {exc})'
    if problem is not None:
        log.warning('ignoring cache entry %s: %s; rebuilding it', path,
                    problem)
        for stale in (path, _sidecar(path)):
            try:
                os.remove(stale)
            except OSError:
                pass
        return None
    return model
