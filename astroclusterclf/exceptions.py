# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Exceptions and warnings raised by astroclusterclf.

Every error caused by bad user input derives from `AstroClusterClfError`,
so ``except AstroClusterClfError`` catches all of them; each specific class
also derives from the builtin that fits (`ValueError`, `TypeError`,
`OSError`, `KeyError`) so generic handlers keep working.  Every message
names the file (or object) and the problem.

Warnings derive from `AstroClusterClfWarning`, itself an
`~astropy.utils.exceptions.AstropyUserWarning`.
"""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    'AstroClusterClfError',
    'ParameterError',
    'ImageReadError',
    'ImageTooLargeError',
    'UnsupportedInputError',
    'NoImageDataError',
    'HDUNotFoundError',
    'InvalidImageError',
    'BandSelectionError',
    'NormalizationError',
    'MissingWCSError',
    'BackboneError',
    'UnknownBackboneError',
    'WeightsNotFoundError',
    'WeightsIntegrityError',
    'DatasetError',
    'ModelFileError',
    'CatalogError',
    'AnnotationError',
    'SimulationError',
    'OutputError',
    'AstroClusterClfWarning',
    'NonFinitePixelWarning',
    'SkippedFileWarning',
    'SmallClassWarning',
    'FieldOfViewWarning',
]


class AstroClusterClfError(Exception):
    """Base class for all errors raised by astroclusterclf on bad input."""


class ParameterError(AstroClusterClfError, ValueError):
    """An argument whose value is out of its allowed range (a negative
    size, a fraction above 1, an unknown option value, ...)."""


# -- reading and normalizing images ------------------------------------------

class ImageReadError(AstroClusterClfError, OSError):
    """A file cannot be read as an image: missing, empty, truncated,
    corrupt, or of an unsupported format."""


class ImageTooLargeError(ImageReadError):
    """An image larger than the size guard
    (``astroclusterclf.conf.max_image_mib``): as its header declares it,
    decompressed, or as a cutout; refused before memory is allocated."""


class UnsupportedInputError(AstroClusterClfError, TypeError):
    """An input of a type that cannot be used: an object that cannot be
    turned into an image, weights given as something other than a path,
    or a weights format the backbone does not read."""


class NoImageDataError(AstroClusterClfError, ValueError):
    """A FITS file or HDU list holds no image data (e.g. header only)."""


class HDUNotFoundError(AstroClusterClfError, KeyError):
    """The HDU requested with ``hdu=`` (index or EXTNAME) does not exist."""

    def __str__(self):
        # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else ''


class InvalidImageError(AstroClusterClfError, ValueError):
    """Image data with a wrong dimensionality or no finite pixel."""


class BandSelectionError(AstroClusterClfError, ValueError):
    """More than three bands and no (or an invalid) ``bands=`` selection."""


class NormalizationError(AstroClusterClfError, ValueError):
    """Invalid normalization settings (unknown interval, stretch, ...)."""


class MissingWCSError(AstroClusterClfError, ValueError):
    """An image without the celestial WCS needed to place sky positions
    (catalog cutouts)."""


# -- backbones ---------------------------------------------------------------

class BackboneError(AstroClusterClfError):
    """Base class for backbone errors."""


class UnknownBackboneError(BackboneError, KeyError):
    """A backbone name that is not in the registry."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


class WeightsNotFoundError(BackboneError, OSError):
    """Pretrained weights are neither installed nor cached and cannot be
    downloaded."""


class WeightsIntegrityError(BackboneError, OSError):
    """A weights file whose checksum or content is wrong."""


# -- training data, models, catalogs ----------------------------------------

class DatasetError(AstroClusterClfError, ValueError):
    """A training folder that cannot be used (fewer than two classes, an
    empty class, ...)."""


class ModelFileError(AstroClusterClfError, OSError):
    """A model file that is missing, corrupt or not written by
    astroclusterclf."""


class CatalogError(AstroClusterClfError, ValueError):
    """A catalog table without the needed columns or with bad values."""


class AnnotationError(AstroClusterClfError, ValueError):
    """A FITS file or table that cannot be annotated."""


class OutputError(AstroClusterClfError, OSError):
    """An output file or folder that cannot be written: its folder is
    missing, it exists (without ``overwrite``), it is the input file, it is
    a folder, or the format cannot be told from its name."""


class SimulationError(AstroClusterClfError, ValueError):
    """Invalid arguments to the star-cluster simulator (unknown cluster
    kind, non-positive count, unknown parameter, ...)."""


# -- warnings ----------------------------------------------------------------

class AstroClusterClfWarning(AstropyUserWarning):
    """Base class for warnings issued by astroclusterclf."""


class NonFinitePixelWarning(AstroClusterClfWarning):
    """An image contains NaN or infinite pixels; they were masked and
    filled."""


class SkippedFileWarning(AstroClusterClfWarning):
    """A file in a class folder could not be read and was skipped."""


class SmallClassWarning(AstroClusterClfWarning):
    """A class has too few images for a reliable train/validation/test
    split."""


class FieldOfViewWarning(AstroClusterClfWarning):
    """The survey's pixel scale, or a cutout size, is far outside what the
    model's training frames showed."""
