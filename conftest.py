# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Pytest configuration shared by tests/, the package doctests and docs/."""

import os
from importlib import metadata

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
if 'PYTEST_XDIST_WORKER' in os.environ:
    # Under pytest-xdist (the README's ``-n 2``) each process gets one
    # thread, so the processes do not fight over the cores: the full
    # suite took 266 s instead of 313 s on 2 cores.
    for name in ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS',
                 'OMP_NUM_THREADS'):
        os.environ.setdefault(name, '1')

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
    })
    from astroclusterclf import __version__
    TESTED_VERSIONS['astroclusterclf'] = __version__


def pytest_report_header(config):
    # TensorFlow's version from its metadata: importing it (10 s) for the
    # header would hold up every run, the quick tier's included.
    return ', '.join(f'{name}: {_version(dist)}' for name, dist in
                     (('TensorFlow', 'tensorflow'), ('Keras', 'keras')))


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return 'not installed'


#: Doctests that build Keras models (they import TensorFlow): slow tier.
SLOW_DOCTESTS = {'astroclusterclf.classifier.ClusterClassifier',
                 'astroclusterclf.retrain.retrain'}


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        if item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
