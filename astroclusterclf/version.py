# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The package version, in a leaf module so that no module needs to import
the package root (``from .version import __version__``)."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ['__version__']

try:
    __version__ = version('astroclusterclf')
except PackageNotFoundError:  # pragma: no cover - not installed
    __version__ = 'unknown'
