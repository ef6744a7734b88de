# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
MobileNet v1, MobileNet v2 and Inception v3 from `keras.applications`,
with ImageNet weights taken from Keras' own cache and never downloaded
behind the user's back on an offline machine.

Keras keeps downloaded weights in ``$KERAS_HOME/models`` (default
``~/.keras/models``) under fixed file names, e.g.
``mobilenet_5_0_224_tf_no_top.h5``.  This module looks for that file
first; only when it is absent, and astropy's
``astropy.utils.data.conf.allow_internet`` is true, does it ask Keras to
download it.  If that fails too, `~astroclusterclf.WeightsNotFoundError`
says which file to put where.

The models take RGB in [0, 1] and rescale it to [-1, 1] in their first
layer (``Rescaling(2, offset=-1)``), the ``'tf'`` preprocessing these
weights were trained with.
"""

import logging
import os
from pathlib import Path

from ..exceptions import UnknownBackboneError, WeightsNotFoundError
from .._hashing import file_sha256
from . import _weights
from .registry import BackboneSpec, register

__all__ = []  # internal: used through astroclusterclf.backbones

log = logging.getLogger(__name__)

_BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/'


def weights_filename(family, *, alpha=None, size=None, include_top=False):
    """The file name under which `keras.applications` caches the ImageNet
    weights of one model.

    Examples
    --------
    >>> weights_filename('mobilenet', alpha=0.5, size=224)
    'mobilenet_5_0_224_tf_no_top.h5'
    >>> weights_filename('mobilenet_v2', alpha=0.35, size=96, include_top=True)
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5'
    >>> weights_filename('inception_v3')
    'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    if family == 'mobilenet':
        alpha_text = {1.0: '1_0', 0.75: '7_5', 0.5: '5_0', 0.25: '2_5'}[alpha]
        top = '' if include_top else '_no_top'
        return f'mobilenet_{alpha_text}_{size}_tf{top}.h5'
    if family == 'mobilenet_v2':
        top = '' if include_top else '_no_top'
        return ('mobilenet_v2_weights_tf_dim_ordering_tf_kernels_'
                f'{float(alpha)}_{size}{top}.h5')
    if family == 'inception_v3':
        top = '' if include_top else '_notop'
        return f'inception_v3_weights_tf_dim_ordering_tf_kernels{top}.h5'
    raise UnknownBackboneError(f'unknown keras.applications family {family!r}')


def weights_url(family, filename):
    """Where Keras downloads ``filename`` from."""
    folder = {'mobilenet': 'mobilenet/', 'mobilenet_v2': 'mobilenet_v2/',
              'inception_v3': 'inception_v3/'}[family]
    return _BASE_URL + folder + filename


def keras_models_dirs():
    """The folders Keras' weights cache may be in, most specific first:
    ``$KERAS_HOME/models`` if ``KERAS_HOME`` is set, otherwise
    ``~/.keras/models`` and Keras' fallback ``/tmp/.keras/models``."""
    home = os.environ.get('KERAS_HOME')
    if home:
        return [Path(home).expanduser() / 'models']
    return [Path('~/.keras/models').expanduser(),
            Path(os.environ.get('TMPDIR', '/tmp')) / '.keras' / 'models']


def find_weights(family, *, alpha=None, size=None, include_top=False):
    """Return the path of the cached Keras weights file, or `None`."""
    filename = weights_filename(family, alpha=alpha, size=size,
                                include_top=include_top)
    for folder in keras_models_dirs():
        path = folder / filename
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def _download(family, filename):
    from astropy.utils.data import conf as data_conf
    if not data_conf.allow_internet:
        return None
    import keras
    folder = keras_models_dirs()[0]
    try:
        return Path(keras.utils.get_file(
            filename, weights_url(family, filename),
            cache_dir=str(folder.parent), cache_subdir='models'))
    except Exception as exc:  # no network, proxy, HTTP error, ...
        log.warning('downloading %s failed: %s', filename, exc)
        return None


def imagenet_weights_path(spec, *, include_top=False):
    """The ImageNet weights file of ``spec`` (found or downloaded).

    Raises
    ------
    WeightsNotFoundError
        If the file is not in Keras' cache and cannot be downloaded.
    """
    kw = dict(alpha=spec.alpha, size=spec.input_size,
              include_top=include_top)
    path = find_weights(spec.family, **kw)
    if path is None:
        path = _download(spec.family, weights_filename(spec.family, **kw))
    if path is None:
        filename = weights_filename(spec.family, **kw)
        folder = keras_models_dirs()[0]
        raise WeightsNotFoundError(
            f'{spec.name}: ImageNet weights file {filename!r} is not in '
            f'{folder} and cannot be downloaded. Copy it there from a '
            f'machine with internet access ({weights_url(spec.family, filename)}'
            '), or pass weights=PATH, or use the backbone '
            "'efficientnet_lite0', which works offline.")
    return path


def build_keras_app(spec, *, input_size=None, include_top=False):
    """Build the `keras.applications` model of ``spec`` with random
    weights, preceded by its ``'preprocess'`` rescaling layer."""
    import keras

    size = input_size or spec.input_size
    inputs = keras.Input((size, size, 3), name='image')
    x = keras.layers.Rescaling(2.0, offset=-1.0, name='preprocess')(inputs)
    kw = dict(input_tensor=x, weights=None, include_top=include_top,
              pooling=None if include_top else 'avg')
    if spec.family == 'mobilenet':
        model = keras.applications.MobileNet(alpha=spec.alpha, **kw)
    elif spec.family == 'mobilenet_v2':
        model = keras.applications.MobileNetV2(alpha=spec.alpha, **kw)
    else:
        model = keras.applications.InceptionV3(**kw)
    name = spec.name + ('_imagenet' if include_top else '')
    return keras.Model(model.inputs, model.outputs[0], name=name)


def backbone(spec, *, weights='imagenet', input_size=None):
    """The pooled-feature model of ``spec`` with the given weights."""
    model = build_keras_app(spec, input_size=input_size)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == 'imagenet':
        weights = imagenet_weights_path(spec)
    _weights.load_weights_file(model, weights)
    return model


def classifier(spec):
    """The 1000-way ImageNet classifier of ``spec``."""
    model = build_keras_app(spec, include_top=True)
    _weights.load_weights_file(model, imagenet_weights_path(
        spec, include_top=True))
    return model


# -- registration ----------------------------------------------------------------

_LICENSE = 'Apache-2.0 (Keras applications weights)'
_SOURCE = 'Keras weights cache ($KERAS_HOME/models)'


def _make_divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def _build(spec, weights, input_size):
    return backbone(spec, weights=weights, input_size=input_size)


def _imagenet_id(spec):
    return f'imagenet:{file_sha256(imagenet_weights_path(spec))[:16]}'


_HOOKS = dict(build=_build, imagenet_id=_imagenet_id, classifier=classifier)

for _alpha in ('0.25', '0.50', '0.75', '1.0'):
    for _size in (128, 160, 192, 224):
        register(BackboneSpec(
            name=f'mobilenet_{_alpha}_{_size}', family='mobilenet',
            input_size=_size, feature_length=int(1024 * float(_alpha)),
            preprocessing='2 x - 1', weights_source=_SOURCE, license=_LICENSE,
            alpha=float(_alpha), **_HOOKS))

# Keras has MobileNet v2 ImageNet weights for these (alpha, size) pairs.
for _alpha in ('0.35', '0.50', '0.75', '1.0', '1.3', '1.4'):
    for _size in (96, 128, 160, 192, 224):
        if float(_alpha) > 1.0 and _size != 224:
            continue
        register(BackboneSpec(
            name=f'mobilenet_v2_{_alpha}_{_size}', family='mobilenet_v2',
            input_size=_size,
            feature_length=(_make_divisible(1280 * float(_alpha))
                            if float(_alpha) > 1.0 else 1280),
            preprocessing='2 x - 1', weights_source=_SOURCE, license=_LICENSE,
            alpha=float(_alpha), **_HOOKS))

register(BackboneSpec(
    name='inception_v3', family='inception_v3', input_size=299,
    feature_length=2048, preprocessing='2 x - 1', weights_source=_SOURCE,
    license=_LICENSE, min_input_size=75, **_HOOKS))
