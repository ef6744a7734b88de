# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
astroclusterclf: classify astronomical images (FITS, PNG, JPEG) by transfer
learning from ImageNet backbones that work offline.

The pipeline is read → normalize → embed → head → annotate; the public
API of each stage is re-exported here, in the order the tutorial meets
it (see :doc:`/architecture` for the module of each name).
"""

from .annotate import annotate_fits, annotate_header, annotate_table
from .backbones import available_backbones, get_backbone
from .classifier import ClusterClassifier
from .cutouts import CutoutFlag, make_cutouts
from .exceptions import *  # noqa: F401,F403
from .exceptions import __all__ as _exceptions_all
from .io import ImageData, read_image
from .preprocessing import NormalizationSettings, fits_to_rgb, normalize
from .retrain import RetrainResult, retrain
from .simulate import CLASS_NAMES, make_dataset, make_mosaic, simulate_cluster
from .version import __version__

__all__ = [
    '__version__',
    # simulate: the demo data
    'CLASS_NAMES', 'make_dataset', 'simulate_cluster', 'make_mosaic',
    # read -> normalize
    'read_image', 'ImageData', 'fits_to_rgb', 'NormalizationSettings', 'normalize',
    # embed
    'available_backbones', 'get_backbone',
    # head
    'retrain', 'RetrainResult', 'ClusterClassifier',
    # annotate
    'annotate_header', 'annotate_fits', 'annotate_table', 'make_cutouts', 'CutoutFlag',
]
__all__ += _exceptions_all
