# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
astroclusterclf: classify astronomical images (FITS, PNG, JPEG) by transfer
learning from ImageNet backbones that work offline.

The pipeline is read → normalize → embed → head → annotate; the public
API of each stage is re-exported here.
"""

try:
    from importlib.metadata import PackageNotFoundError, version
    __version__ = version(__name__)
except PackageNotFoundError:  # pragma: no cover - not installed
    __version__ = 'unknown'

from .exceptions import *  # noqa: F401,F403,E402
from .exceptions import __all__ as _exceptions_all  # noqa: E402

__all__ = ['__version__'] + list(_exceptions_all)

# Public API of each stage (read -> normalize -> embed -> head -> annotate).
# -- io / preprocessing
from .io import ImageData, read_image  # noqa: E402
from .preprocessing import NormalizationSettings, fits_to_rgb, normalize  # noqa: E402
__all__ += ['read_image', 'ImageData', 'fits_to_rgb', 'NormalizationSettings',
            'normalize']
# -- simulate
from .simulate import (CLASS_NAMES, make_dataset, make_mosaic,  # noqa: E402
                       simulate_cluster)
__all__ += ['CLASS_NAMES', 'simulate_cluster', 'make_dataset', 'make_mosaic']
# -- backbones
from .backbones import available as available_backbones  # noqa: E402
from .backbones import get_backbone  # noqa: E402
__all__ += ['available_backbones', 'get_backbone']
# -- retrain / classifier
from .classifier import ClusterClassifier  # noqa: E402
from .retrain import RetrainResult, retrain  # noqa: E402
__all__ += ['retrain', 'RetrainResult', 'ClusterClassifier']
# -- annotate
from .annotate import annotate_fits, annotate_header, annotate_table  # noqa: E402
from .cutouts import CutoutFlag, make_cutouts  # noqa: E402
__all__ += ['annotate_header', 'annotate_fits', 'annotate_table', 'CutoutFlag',
            'make_cutouts']
