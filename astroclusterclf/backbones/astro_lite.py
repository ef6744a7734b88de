# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``astro_lite0``: EfficientNet-Lite0 fine-tuned on domain-randomized
simulated star-cluster frames.

The weights ship inside the package (``astroclusterclf/data/``) as float16
arrays keyed by layer name, with their SHA-256 pinned here and checked at
every load.  ``scripts/build_astro_lite0.py`` rebuilds them (the seeded
recipe of the model card, :doc:`/astro_lite0`) from a terminal, in
resumable steps; the rebuild simulates and trains, which belong to later
stages than this one, so it lives there and not here:

1. simulate the training frames with
   ``simulate_cluster(..., randomize=True)`` (one or three bands, several
   frame sizes), normalize them with the package's own `normalize` under
   a randomly chosen interval and stretch, and store them as 8-bit RGB in
   chunk files (a rerun skips the chunks already written);
2. fine-tune all layers of the ImageNet EfficientNet-Lite0 at 128 pixels
   (Adam, cosine-decayed learning rate, a dropout-0.2 softmax head over the
   two classes, random rotations and flips), saving a checkpoint after
   every epoch (a rerun resumes from the last one);
3. write the backbone without its head as float16 arrays.
"""

import logging
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..exceptions import UnsupportedInputError, WeightsIntegrityError, WeightsNotFoundError
from .._hashing import file_sha256
from . import _weights, efficientnet_lite
from .registry import BackboneSpec, register

__all__ = []  # internal: used through astroclusterclf.backbones

log = logging.getLogger(__name__)

#: The architecture the astro weights fit.
VARIANT = 'efficientnet_lite0'
#: Input size the weights were trained at.
INPUT_SIZE = 128
#: The shipped weights file, in ``astroclusterclf/data``.
FILENAME = 'astro_lite0.npz'
#: Its SHA-256 (set when the file is rebuilt).
SHA256 = '8c447be43c6bf91acf9bca1aa2ab18d72ddd11664e6ca967d342de04418d925d'

_DATA_DIR = Path(__file__).resolve().parent.parent / 'data'


def weights_path():
    """Path of the shipped astro weights file."""
    return _DATA_DIR / FILENAME


def _state_arrays(model):
    arrays = {}
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            arrays[f'{layer.name}/{i}'] = w
    return arrays


def save_weights(model, path):
    """Write ``model``'s weights as float16 arrays keyed ``'layer/i'``,
    atomically; return the file's SHA-256."""
    arrays = {k: np.asarray(v, np.float16) for k, v in _state_arrays(model).items()}

    def write(tmp):
        with open(tmp, 'wb') as f:
            np.savez_compressed(f, **arrays)

    atomic_write(Path(path), write, make_parents=True)
    return file_sha256(path)


def read_weights(path, *, sha256):
    """The arrays of a `save_weights` file, keyed by ``layer/index``,
    after checking that it exists and has the SHA-256 ``sha256`` (None:
    no check).  Runs before any network is built, so a bad file is
    reported without importing TensorFlow.

    Raises
    ------
    WeightsNotFoundError
        The file is missing.
    WeightsIntegrityError
        The checksum differs or the file is not an ``.npz`` archive.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f'{path}: the astro_lite0 weights file is missing (reinstall '
            'astroclusterclf, or rebuild it with scripts/build_astro_lite0.py)')
    if sha256 is not None and file_sha256(path) != sha256:
        raise WeightsIntegrityError(
            f'{path}: SHA-256 mismatch (expected {sha256}); the file is '
            'corrupt or not the one this version ships')
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise WeightsIntegrityError(f'{path}: unreadable weights file '
                                    f'({exc})') from exc


def assign_weights(model, arrays, path):
    """Set the layers of ``model`` (an EfficientNet-Lite0 of any input
    size) from the ``arrays`` of `read_weights` of ``path``; every layer
    and every array must be matched.

    Raises
    ------
    WeightsIntegrityError
        The arrays do not fit the layers (the message names ``path``).
    """
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        values = []
        for i, w in enumerate(layer.weights):
            key = f'{layer.name}/{i}'
            if key not in arrays or tuple(arrays[key].shape) != tuple(w.shape):
                raise WeightsIntegrityError(
                    f'{path}: no array of shape {tuple(w.shape)} for '
                    f'{key!r}')
            values.append(arrays[key].astype(np.float32))
            used.add(key)
        layer.set_weights(values)
    unused = sorted(set(arrays) - used)
    if unused:
        raise WeightsIntegrityError(
            f'{path}: {len(unused)} arrays fit no layer, e.g. {unused[:3]}')


def backbone(*, input_size=None):
    """The astro_lite0 feature extractor with the shipped weights (the
    file is checked before the network is built)."""
    path = weights_path()
    arrays = read_weights(path, sha256=SHA256)
    model = efficientnet_lite.build_efficientnet_lite(
        VARIANT, input_size=input_size or INPUT_SIZE, name='astro_lite0')
    assign_weights(model, arrays, path)
    return model


# -- registration ----------------------------------------------------------------

def _build(spec, weights, input_size):
    if isinstance(weights, str) and weights == 'imagenet':
        return backbone(input_size=input_size)
    if str(weights).endswith('.pth'):
        raise UnsupportedInputError(
            f'{spec.name}: .pth checkpoints are ImageNet weights; use '
            'the efficientnet_lite0 backbone for them')
    model = efficientnet_lite.build_efficientnet_lite(VARIANT, input_size=input_size,
                                                      name=spec.name)
    if weights is not None:
        _weights.load_weights_file(model, weights)
    return model


def _imagenet_id(spec):
    return f'astro:{SHA256[:16]}'


register(BackboneSpec(
    name='astro_lite0', family='astro_lite', input_size=INPUT_SIZE,
    feature_length=1280, preprocessing='(255 x - 127) / 128',
    weights_source=('shipped in astroclusterclf/data/' + FILENAME
                    + ': EfficientNet-Lite0 fine-tuned on simulated frames '
                    '(scripts/build_astro_lite0.py, see the model card)'),
    license=('BSD-3-Clause (astroclusterclf), derived from the Apache-2.0 '
             'EfficientNet-Lite0 ImageNet weights'),
    build=_build, imagenet_id=_imagenet_id, accepts_pth=True))
