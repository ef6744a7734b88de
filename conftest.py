# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Pytest configuration shared by tests/, the package doctests and docs/."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

try:
    from pytest_astropy_header.display import (PYTEST_HEADER_MODULES,
                                               TESTED_VERSIONS)
except ImportError:  # pragma: no cover
    PYTEST_HEADER_MODULES = {}
    TESTED_VERSIONS = {}


def pytest_configure(config):
    config.option.astropy_header = True
    PYTEST_HEADER_MODULES.clear()
    PYTEST_HEADER_MODULES.update({
        'Numpy': 'numpy', 'Astropy': 'astropy', 'Pillow': 'PIL',
        'TensorFlow': 'tensorflow', 'Keras': 'keras',
    })
    from astroclusterclf import __version__
    TESTED_VERSIONS['astroclusterclf'] = __version__


#: Doctests that build Keras models (they import TensorFlow): slow tier.
SLOW_DOCTESTS = {'astroclusterclf.classifier.ClusterClassifier',
                 'astroclusterclf.retrain.retrain'}


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        if item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
