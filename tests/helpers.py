# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Small helpers shared by the test modules."""

import contextlib
import hashlib
import importlib.resources
import warnings
from pathlib import Path

__all__ = ['LABELS', 'digest', 'unchanged', 'recording', 'm13_path']

#: The labels of the simulated data sets (sorted class folder names).
LABELS = ['globular cluster', 'open cluster']


def digest(path):
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def unchanged(path):
    """Assert that the bytes of ``path`` are the same after the block."""
    before = digest(path)
    yield
    assert digest(path) == before, f'{path} was modified'


@contextlib.contextmanager
def recording(category):
    """Record warnings of ``category`` (like pytest.warns, without
    re-emitting third-party deprecation warnings as errors)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always', category)
        yield record
    assert any(issubclass(w.category, category) for w in record)


def m13_path():
    """astropy's real FITS image of the globular cluster M13 (SkyView),
    or `None` where astropy is installed without its test data."""
    path = (importlib.resources.files('astropy')
            / 'io/fits/hdu/compressed/tests/data/m13.fits')
    return Path(str(path)) if path.is_file() else None
