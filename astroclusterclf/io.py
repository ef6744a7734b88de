# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Read images from any supported source into ``(data, header, wcs)``.

This is the first stage of the pipeline (read → normalize → embed → head →
annotate).  `read_image` accepts the same kinds of input as reproject's
``parse_input_data``: a path to a FITS, PNG, JPEG or TIFF file, an
`~astropy.io.fits.HDUList`, an image HDU (including
`~astropy.io.fits.CompImageHDU`), an ``(array, Header | WCS)`` tuple, an
`~astropy.nddata.NDData` (including `~astropy.nddata.CCDData`), or a plain
2-D or 3-D `~numpy.ndarray`.

"Which HDU holds the image?" has one answer, `resolve_image`, used by
every stage that takes an image (reading, catalog cutouts, FITS
annotation): the HDU given with ``hdu=`` (index, EXTNAME or
``(EXTNAME, EXTVER)``), else the first image HDU (primary, image or
tile-compressed) whose header declares at least two axes, all of non-zero
length.
"""

import bz2
import gzip
import logging
import os
import zlib
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales
from PIL import Image, UnidentifiedImageError

from .config import max_image_bytes
from .exceptions import (AstroClusterClfError, HDUNotFoundError,
                         ImageReadError, ImageTooLargeError, InvalidImageError,
                         NoImageDataError, UnsupportedInputError)

__all__ = ['read_image', 'ImageData', 'resolve_image', 'ImageSource',
           'image_hdus', 'image_geometry', 'pixel_scale', 'is_image_file', 'SUPPORTED_EXTENSIONS']

log = logging.getLogger(__name__)

FITS_EXTENSIONS = ('.fits', '.fit', '.fts', '.fits.gz', '.fit.gz', '.fts.gz',
                   '.fits.fz')
"""File name endings read as FITS (case-insensitive)."""

PIL_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')
"""File name endings read with Pillow (case-insensitive)."""

SUPPORTED_EXTENSIONS = FITS_EXTENSIONS + PIL_EXTENSIONS
"""All file name endings `read_image` accepts (case-insensitive)."""

# Serializes io's use of warnings.catch_warnings (process-wide state).
_WARNINGS_LOCK = threading.RLock()

# HDU classes that can hold an image (CompImageHDU is a BinTableHDU in
# astropy 6 and an ImageHDU from astropy 7 on: named explicitly).
_IMAGE_HDU_TYPES = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)

# Header keywords whose presence means the header describes a WCS.
_WCS_KEYWORDS = ('CTYPE1', 'CRVAL1', 'CRPIX1', 'CD1_1', 'PC1_1', 'CDELT1')


class ImageData(NamedTuple):
    """The result of `read_image`.

    Attributes
    ----------
    data : `~numpy.ndarray`
        A new float32 or float64 array (never a view of a file or of the
        input), 2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)`` with the bands
        along the first axis.  FITS scaling (BSCALE/BZERO) is applied and
        masked or BLANK pixels are NaN.
    header : `~astropy.io.fits.Header` or `None`
        A copy of the FITS header, or `None` for sources without one.
    wcs : `~astropy.wcs.WCS` or `None`
        The (celestial, for cubes) WCS, or `None` when there is none.
    name : str
        The path as given, or a short description of the input such as
        ``'<HDUList>'`` or ``'<ndarray>'``; used in messages.
    """

    data: np.ndarray
    header: fits.Header | None
    wcs: WCS | None
    name: str


def _extension(path):
    """The supported extension ``path`` ends with (lower case), or `None`."""
    lower = str(path).lower()
    # Longest first, so that '.fits.gz' wins over a shorter match.
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext):
            return ext
    return None


def is_image_file(path):
    """Whether ``path`` has a file name ending `read_image` can read.

    The test is by extension only (case-insensitive); the file is not
    opened and need not exist.

    Parameters
    ----------
    path : str or `os.PathLike`
        The file name.

    Returns
    -------
    bool

    Examples
    --------
    >>> from astroclusterclf.io import is_image_file
    >>> is_image_file('m13.FITS'), is_image_file('m13.fits.fz')
    (True, True)
    >>> is_image_file('catalog.ecsv'), is_image_file('notes.txt')
    (False, False)
    """
    return _extension(path) is not None


def pixel_scale(wcs):
    """The pixel scale of a celestial WCS in arcsec per pixel (the mean of
    the two axes), or `None` without a celestial WCS.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS` or None
        The WCS (its celestial part is used).

    Returns
    -------
    scale : float or None
        Arcsec per pixel; `None` without a celestial WCS, or when the
        scale is not a positive finite number (a degenerate matrix).

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> from astroclusterclf.io import pixel_scale
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-0.25 / 3600, 0.25 / 3600]
    >>> round(pixel_scale(wcs), 6)
    0.25
    """
    if wcs is None or not wcs.has_celestial:
        return None
    try:
        scales = proj_plane_pixel_scales(wcs.celestial)
    except Exception:  # a degenerate matrix
        return None
    value = float(np.mean(scales)) * 3600.0
    return value if np.isfinite(value) and value > 0 else None


def image_hdus(path):
    """Indices of every image HDU of a FITS file (by the rule of
    `resolve_image`: image HDUs declaring at least two axes), e.g. the
    ``SCI`` extensions of HST/JWST-style files.

    Parameters
    ----------
    path : str or `os.PathLike`
        A FITS file (``.fits``, ``.fit``, ``.fts``, compressed or not).

    Returns
    -------
    indices : list of int
        The indices of its image HDUs, in file order (at least one).

    Raises
    ------
    ImageReadError
        The file is missing, not FITS, or too large (see `resolve_image`).
    NoImageDataError
        No HDU holds an image.
    """
    name = _check_path(path)
    if _extension(path) not in FITS_EXTENSIONS:
        raise ImageReadError(f'{name}: not a FITS file')
    try:
        with fits.open(Path(path).expanduser(), mode='readonly', lazy_load_hdus=True) as hdul:
            indices = [i for i, hdu in enumerate(hdul) if _is_image_hdu(hdu)]
    except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise ImageReadError(f'{name}: not a valid FITS file ({exc})') from None
    if not indices:
        raise NoImageDataError(f'{name}: no HDU holds a 2-D or 3-D image')
    return indices


def image_geometry(source, *, hdu=None):
    """The size of an image in pixels and its pixel scale, from its
    header alone (no pixel is read).

    Parameters
    ----------
    source, hdu
        As for `resolve_image`.

    Returns
    -------
    shape : tuple of int
        ``(ny, nx)`` of the image (the last two axes).
    scale : float or `None`
        Pixel scale in arcsec per pixel, `None` without a celestial WCS.
    """
    with resolve_image(source, hdu=hdu) as resolved:
        shape = tuple(int(n) for n in resolved.shape[-2:])
        return shape, pixel_scale(resolved.wcs)


def read_image(source, *, hdu=None):
    """Read an image and its header and WCS from any supported source.

    Parameters
    ----------
    source : str, `os.PathLike`, HDUList, HDU, tuple, NDData or `~numpy.ndarray`
        One of:

        * a path to a file ending in one of `SUPPORTED_EXTENSIONS`
          (``.fits``, ``.fit``, ``.fts``, their ``.gz`` forms, tile
          compressed ``.fits.fz``, ``.png``, ``.jpg``, ``.jpeg``, ``.tif``,
          ``.tiff``; case-insensitive).  FITS files are opened read-only,
          memory-mapped where possible, and closed before returning;
        * an `~astropy.io.fits.HDUList` (not closed by this function);
        * a `~astropy.io.fits.PrimaryHDU`, `~astropy.io.fits.ImageHDU` or
          `~astropy.io.fits.CompImageHDU`;
        * a tuple ``(array, header)`` where ``header`` is a
          `~astropy.io.fits.Header`, a `~astropy.wcs.WCS` or `None`;
        * an `~astropy.nddata.NDData` (e.g. `~astropy.nddata.CCDData`);
          masked pixels become NaN;
        * a 2-D or 3-D `~numpy.ndarray` (a masked array's masked pixels
          become NaN).
    hdu : int, str or tuple, optional
        For FITS files and HDU lists: the HDU to read, as an index, an
        EXTNAME or an ``(EXTNAME, EXTVER)`` tuple.  By default the first
        HDU that holds image data is read.  Ignored for other sources.

    Returns
    -------
    image : `ImageData`
        Named tuple ``(data, header, wcs, name)``.  ``data`` is a new
        float32 (float64 for 32- and 64-bit integer or float64 input) array,
        2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)``: FITS cubes keep their
        first (NAXIS3) axis as bands, leading length-1 axes are dropped
        (so a one-band cube is 2-D), and RGB pictures become ``(3, ny, nx)`` in R, G, B
        order (alpha dropped).  Rows of PNG/JPEG/TIFF pictures are in file
        order (first row = top of the picture); Pillow keeps 8 bits per
        channel of 16-bit colour pictures (16-bit greyscale is exact).

    Raises
    ------
    ImageReadError
        The file is missing, empty, truncated, not a valid FITS/picture
        file, or has an unsupported extension.
    NoImageDataError
        A FITS file or HDU list without image data (header only), or an
        ``hdu=`` that holds no image.
    HDUNotFoundError
        ``hdu=`` names an index or EXTNAME that does not exist.
    InvalidImageError
        Data that are not 2-D or 3-D, empty, or not real numbers.
    UnsupportedInputError
        ``source`` is of a type that cannot be read.

    Notes
    -----
    FITS scaling keywords (BSCALE/BZERO) are applied by astropy; integer
    pixels equal to BLANK are set to NaN.  The returned array never shares
    memory with a file or with ``source``.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from astroclusterclf import read_image
    >>> hdul = fits.HDUList([fits.PrimaryHDU(),
    ...                      fits.ImageHDU(np.ones((2, 8, 8), dtype='int16'),
    ...                                    name='SCI')])
    >>> image = read_image(hdul)
    >>> image.data.shape, image.data.dtype, image.name
    ((2, 8, 8), dtype('float32'), '<HDUList>')
    >>> read_image(hdul, hdu='SCI').header['EXTNAME']
    'SCI'
    """
    return _read(source, hdu=hdu)


def _read(source, *, hdu=None, with_wcs=True):
    """`read_image`; ``with_wcs=False`` skips building the WCS of FITS
    sources (``wcs`` is then `None`), which costs more than reading a small
    image and is not needed for normalization."""
    if isinstance(source, (str, os.PathLike)):
        name = _check_path(source)
        if _extension(source) in FITS_EXTENSIONS:
            return _read_fits_file(Path(source).expanduser(), hdu=hdu, name=name,
                                   with_wcs=with_wcs)
    with resolve_image(source, hdu=hdu) as resolved:
        return resolved.read(with_wcs=with_wcs)


class ImageSource:
    """An image input resolved to its pixels, header and HDU.

    Returned by `resolve_image`; use it as a context manager, which closes
    a file that `resolve_image` opened.

    Parameters
    ----------
    name : str
        The path as given, or a short description of the input.
    hdu : HDU, optional
        The selected image HDU of a FITS input (its pixels are read from
        it, through its ``section`` where possible).
    index : int, optional
        Its index in the HDU list (0 for a bare HDU).
    header : `~astropy.io.fits.Header`, optional
        The header of the image.
    array : array-like, optional
        The pixels of an input without HDUs (not copied).
    mask : array-like of bool, optional
        Masked pixels of ``array`` (they become NaN when read); broadcast
        to its shape.
    wcs : `~astropy.wcs.WCS`, optional
        The WCS, when the input gives one (else it is made from
        ``header`` when asked for).
    hdulist : `~astropy.io.fits.HDUList`, optional
        A file opened for this image, closed by `close`.

    Attributes
    ----------
    name : str
        The path as given, or a short description such as
        ``'<HDUList>'``; used in messages.
    hdu : HDU or `None`
        The selected image HDU of FITS inputs.
    index : int or `None`
        Its index in the HDU list (0 for a bare HDU; `None` for inputs
        without HDUs).
    header : `~astropy.io.fits.Header` or `None`
        The header of the image (not a copy).
    shape : tuple of int
        Shape of the pixel array, as stored.
    """

    def __init__(self, name, *, hdu=None, index=None, header=None, array=None,
                 mask=None, wcs=None, hdulist=None):
        self.name = name
        self.hdu = hdu
        self.index = index
        self.header = header
        self._array = array
        self._mask = mask
        self._wcs = wcs
        self._hdulist = hdulist
        self.shape = tuple(hdu.shape) if hdu is not None else np.shape(array)

    def __repr__(self):
        where = '' if self.index is None else f' HDU {self.index}'
        return f'<ImageSource {self.name}{where} shape={self.shape}>'

    @property
    def pixels(self):
        """The pixels as stored, sliceable without reading the rest: the
        HDU's ``section`` for FITS inputs (only the requested pixels are
        read from the file), else the array."""
        if self.hdu is not None:
            return self.hdu.section
        return self._array

    @property
    def wcs(self):
        """The (celestial, for cubes) `~astropy.wcs.WCS`, or `None`."""
        if self._wcs is None and self.header is not None:
            self._wcs = _wcs_from_header(self.header, len(self.shape))
        return self._wcs

    def read(self, *, with_wcs=True):
        """Read the whole image into an `ImageData` (a new float array;
        BLANK and masked pixels become NaN).

        Parameters
        ----------
        with_wcs : bool, optional
            Make the WCS from the header (a WCS given with the input is
            always kept, as a copy).

        Returns
        -------
        image : `ImageData`
            The pixels as float, a copy of the header and the WCS (or
            `None`), and the name.
        """
        if self.hdu is not None:
            check_declared_size(self.hdu.header, self.name)
            raw = self.hdu.data
            data = _as_float_image(raw, self.name)
            header = self.header.copy()
            blank = header.get('BLANK')
            if blank is not None and raw.dtype.kind in 'iu':
                # astropy only replaces BLANK with NaN when it scales the data.
                data[(raw == blank).reshape(data.shape)] = np.nan
        else:
            data = _as_float_image(self._array, self.name)
            header = None if self.header is None else self.header.copy()
            if self._mask is not None:
                mask = np.broadcast_to(np.asarray(self._mask, dtype=bool),
                                       np.shape(self._array)).reshape(data.shape)
                data[mask] = np.nan
        wcs = None
        if self._wcs is not None:
            wcs = self._wcs.deepcopy()
        elif with_wcs and header is not None:
            wcs = _wcs_from_header(header, data.ndim)
        return ImageData(data, header, wcs, self.name)

    def close(self):
        """Close the file `resolve_image` opened, if any."""
        if self._hdulist is not None:
            self._hdulist.close()
            self._hdulist = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def resolve_image(source, *, hdu=None, memmap=None):
    """Resolve any image input to its pixels, header and HDU.

    This is the one place that decides which HDU of a FITS input holds the
    image; `read_image`, the catalog cutouts and the FITS annotation all
    use it.

    Parameters
    ----------
    source : str, `os.PathLike`, HDUList, HDU, tuple, NDData or `~numpy.ndarray`
        What `read_image` accepts.  An ``(array, wcs)`` tuple may hold an
        `~astropy.wcs.WCS` or any APE 14 WCS with a ``low_level_wcs``
        that is one.
    hdu : int, str or tuple, optional
        The HDU of a FITS file or HDU list (index, EXTNAME or
        ``(EXTNAME, EXTVER)``).  By default the first image HDU
        (`~astropy.io.fits.PrimaryHDU`, `~astropy.io.fits.ImageHDU` or
        `~astropy.io.fits.CompImageHDU`) whose header declares at least
        two axes, all of non-zero length.  Ignored for other sources.
    memmap : bool or None, optional
        Passed to `astropy.io.fits.open` for paths (`None`: where astropy
        can; `False` to read through sections only).

    Returns
    -------
    resolved : `ImageSource`
        A context manager; it closes a file opened here.

    Raises
    ------
    ImageReadError
        The file is missing, not a regular file, empty, of an unsupported
        type, or not valid FITS.
    HDUNotFoundError
        ``hdu=`` names an HDU that does not exist.
    NoImageDataError
        No HDU (or not the HDU given) holds a 2-D or 3-D image.
    UnsupportedInputError
        ``source`` (or ``hdu``) is of a type that cannot be used.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from astroclusterclf.io import resolve_image
    >>> hdul = fits.HDUList([fits.PrimaryHDU(np.zeros(5)),
    ...                      fits.ImageHDU(np.zeros((4, 6)), name='SCI')])
    >>> with resolve_image(hdul) as image:
    ...     print(image.index, image.shape, image.header['EXTNAME'])
    1 (4, 6) SCI
    """
    if isinstance(source, (str, os.PathLike)):
        name = _check_path(source)
        path = Path(source).expanduser()
        if _extension(path) not in FITS_EXTENSIONS:
            picture = _read_picture(path, name=name)
            return ImageSource(name, array=picture.data)
        try:
            hdulist = fits.open(path, mode='readonly', memmap=memmap,
                                lazy_load_hdus=True)
        except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
            raise ImageReadError(f'{name}: not a valid FITS file ({exc})') from None
        try:
            index, selected = _select_hdu(hdulist, hdu, name)
        except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
            hdulist.close()
            if isinstance(exc, AstroClusterClfError):
                raise
            raise ImageReadError(f'{name}: not a valid FITS file, or truncated or '
                                 f'corrupt ({exc})') from None
        except BaseException:
            hdulist.close()
            raise
        return ImageSource(name, hdu=selected, index=index,
                           header=selected.header, hdulist=hdulist)
    if isinstance(source, fits.HDUList):
        name = source.filename() or '<HDUList>'
        index, selected = _select_hdu(source, hdu, name)
        return ImageSource(name, hdu=selected, index=index, header=selected.header)
    if isinstance(source, _IMAGE_HDU_TYPES):
        name = _hdu_description(source)
        if not _is_image_hdu(source):
            raise NoImageDataError(f'{name}: the HDU holds no 2-D or 3-D image '
                                   f'(NAXIS={source.header.get("NAXIS", 0)})')
        return ImageSource(name, hdu=source, index=0, header=source.header)
    if isinstance(source, NDData):
        return _from_nddata(source)
    if isinstance(source, tuple):
        return _from_tuple(source)
    if isinstance(source, np.ndarray):
        return ImageSource('<ndarray>', array=source)
    raise UnsupportedInputError(
        f'cannot read an image from an object of type '
        f'{type(source).__name__!r}: expected a file path, an HDUList, an '
        'image HDU, an (array, Header|WCS) tuple, an NDData or a 2-D/3-D '
        'numpy array')


# -- sources -----------------------------------------------------------------

def _check_path(source):
    """Validate a path to an image file; return its name for messages."""
    name = os.fspath(source)
    path = Path(source).expanduser()
    if not path.exists():
        raise ImageReadError(f'{name}: file not found')
    if path.is_dir():
        raise ImageReadError(f'{name}: is a folder, not an image file')
    if not path.is_file():
        raise ImageReadError(f'{name}: not a regular file')
    if _extension(path) is None:
        raise ImageReadError(
            f'{name}: unsupported file extension {"".join(path.suffixes)!r}; '
            f'supported: {", ".join(SUPPORTED_EXTENSIONS)}')
    if path.stat().st_size == 0:
        raise ImageReadError(f'{name}: empty file (0 bytes)')
    if _extension(path) in FITS_EXTENSIONS:
        _check_compressed_size(path, name)
    return name


def _limit_text(limit):
    return (f'{limit / 2**20:.0f} MiB; raise astroclusterclf.conf.max_image_mib '
            'to allow more')


def check_declared_size(header, name, *, limit=None):
    """Raise `ImageTooLargeError` if the image a FITS header declares
    (its axes times bytes per pixel) is larger than the size guard
    (`astroclusterclf.config.max_image_bytes`); checked before any pixel
    is read."""
    limit = max_image_bytes() if limit is None else limit
    naxis = header.get('NAXIS', 0)
    shape = [header.get(f'NAXIS{i}', 0) for i in range(1, naxis + 1)]
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ImageReadError(f'{name}: invalid NAXISn in the header ({shape})')
    nbytes = abs(int(header.get('BITPIX', 8))) // 8 * int(np.prod(shape, dtype=object))
    if nbytes > limit:
        raise ImageTooLargeError(
            f'{name}: the header declares a {" x ".join(map(str, shape[::-1]))} image '
            f'of {nbytes / 2**20:.0f} MiB, more than the limit of {_limit_text(limit)}')


def _check_compressed_size(path, name, *, limit=None):
    """Raise `ImageTooLargeError` if a gzip- or bzip2-compressed file (as
    astropy recognises them: by their first bytes) decompresses to more
    than the size guard.  The stream is decompressed in small chunks and
    counted, never held in memory."""
    with open(path, 'rb') as f:
        magic = f.read(3)
    if magic[:2] == b'\x1f\x8b':
        opener = gzip.open
    elif magic == b'BZh':
        opener = bz2.open
    else:
        return
    limit = max_image_bytes() if limit is None else limit
    total = 0
    try:
        with opener(path, 'rb') as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    raise ImageTooLargeError(
                        f'{name}: decompresses to more than {_limit_text(limit)}')
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, AstroClusterClfError):
            raise
        raise ImageReadError(f'{name}: not a valid compressed file, or truncated '
                             f'({exc})') from None


def _is_truncation(warning):
    return 'truncated' in str(warning.message).lower()


def _is_corruption(warning):
    """astropy's signs of a damaged HDU (e.g. a header cut short)."""
    message = str(warning.message)
    return ('Error validating header' in message
            or 'Missing padding to end of the FITS block' in message)


def _damage(name, caught, exc=None):
    """An ImageReadError for a truncated/corrupt file, or None."""
    if any(_is_truncation(w) for w in caught):
        return ImageReadError(f'{name}: the FITS file is truncated')
    corrupt = [w for w in caught if _is_corruption(w)]
    detail = ' '.join(str(corrupt[0].message).split()) if corrupt else ''
    if exc is not None:
        detail = f'{exc}; {detail}' if detail else str(exc)
        return ImageReadError(f'{name}: not a valid FITS file, or truncated '
                              f'or corrupt ({detail})')
    if corrupt:
        return ImageReadError(f'{name}: the FITS file is truncated or '
                              f'corrupt ({detail})')
    return None


def _read_fits_file(path, *, hdu, name, with_wcs):
    """Open a FITS file read-only, extract one image and close the file."""
    image = error = None
    # astropy reports truncated files with warnings, which are recorded here
    # and turned into errors.  catch_warnings changes process-wide state and
    # files are often read in worker threads, hence the lock.
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            # memmap=None: memory-map where astropy can (not for .gz files
            # or scaled data, which it reads into memory instead).
            with fits.open(path, mode='readonly', memmap=None,
                           lazy_load_hdus=True) as hdul:
                index, selected = _select_hdu(hdul, hdu, name)
                image = ImageSource(name, hdu=selected, index=index,
                                    header=selected.header).read(with_wcs=with_wcs)
        except (AstroClusterClfError, OSError, ValueError, TypeError,
                IndexError, EOFError) as exc:
            error = exc

    failed = error is not None
    for w in caught:
        # Pass on the warnings that are not part of the diagnosis below:
        # astropy's notes on non-standard cards, trailing bytes after a
        # successful read, or warnings of other threads recorded meanwhile.
        if not (_is_truncation(w) or (failed and _is_corruption(w))):
            warnings.warn_explicit(w.message, w.category, w.filename,
                                   w.lineno, source=w.source)
    if isinstance(error, AstroClusterClfError):
        # e.g. "no image data" only because the image HDU was cut off.
        damage = _damage(name, caught)
        if damage is not None:
            raise damage from None
        raise error
    if failed:
        raise _damage(name, caught, error) from error
    if any(_is_truncation(w) for w in caught):
        # astropy could read the data although the file is shorter than its
        # header promises (e.g. the final padding is missing): treat it as
        # corrupt rather than trust a partial read.
        raise ImageReadError(f'{name}: the FITS file is truncated')
    return image


def _is_image_hdu(hdu):
    """Whether ``hdu`` is an image HDU whose header declares at least two
    axes, all of non-zero length (a header-only test: no data are read)."""
    if not isinstance(hdu, _IMAGE_HDU_TYPES):
        return False
    header = hdu.header
    naxis = header.get('NAXIS', 0)
    return naxis >= 2 and all(header.get(f'NAXIS{i}', 0) > 0
                              for i in range(1, naxis + 1))


def _hdu_description(hdu, index=None):
    kind = type(hdu).__name__
    extname = hdu.header.get('EXTNAME') if hdu.header is not None else None
    parts = [kind] + ([f'#{index}'] if index is not None else [])
    if extname:
        parts.append(f'EXTNAME={extname!r}')
    return f'<{" ".join(parts)}>'


def _select_hdu(hdul, hdu, name):
    """``(index, HDU)`` of the image to read from an HDU list: the one rule
    (see the module docstring)."""
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if _is_image_hdu(candidate):
                log.debug('%s: reading HDU #%d', name, index)
                return index, candidate
        found = ', '.join(_hdu_description(h, i) for i, h in enumerate(hdul))
        raise NoImageDataError(f'{name}: no HDU holds a 2-D or 3-D image (HDUs: '
                               f'{found or "none"})')
    if isinstance(hdu, (bool, np.bool_)) or not isinstance(
            hdu, (int, np.integer, str, tuple)):
        raise UnsupportedInputError(
            f'{name}: hdu= must be an index, an EXTNAME or an (EXTNAME, '
            f'EXTVER) tuple, not {type(hdu).__name__}')
    n = len(hdul)
    try:
        if isinstance(hdu, (int, np.integer)):
            index = int(hdu) + (n if hdu < 0 else 0)
            if not 0 <= index < n:
                raise IndexError(hdu)
        else:
            index = hdul.index_of(hdu)
        selected = hdul[index]
    except (KeyError, IndexError):
        available = ', '.join(
            f'{i}' + (f' ({h.name})' if h.name else '') for i, h in enumerate(hdul))
        raise HDUNotFoundError(f'{name}: no HDU {hdu!r} (available: '
                               f'{available})') from None
    if not _is_image_hdu(selected):
        raise NoImageDataError(
            f'{name}: HDU {hdu!r} ({type(selected).__name__}) holds no 2-D or 3-D '
            f'image (NAXIS={selected.header.get("NAXIS", 0)})')
    return index, selected


def _from_tuple(source):
    if len(source) != 2:
        raise UnsupportedInputError(
            f'cannot read an image from a tuple of length {len(source)}: '
            'expected (array, Header|WCS)')
    array, meta = source
    if not isinstance(array, np.ndarray):
        raise UnsupportedInputError(
            'the first element of an (array, Header|WCS) tuple must be a '
            f'numpy array, not {type(array).__name__!r}')
    if isinstance(meta, fits.Header):
        return ImageSource('<(array, Header)>', array=array, header=meta)
    wcs = _as_fits_wcs(meta)
    if wcs is not None:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter('ignore', FITSFixedWarning)
            header = wcs.to_header(relax=True)
        return ImageSource('<(array, WCS)>', array=array, header=header, wcs=wcs)
    if meta is None:
        return ImageSource('<(array, None)>', array=array)
    raise UnsupportedInputError(
        'the second element of an (array, Header|WCS) tuple must be an '
        f'astropy Header or WCS, not {type(meta).__name__!r}')


def _as_fits_wcs(wcs):
    """A FITS `~astropy.wcs.WCS` from a WCS or an APE 14 WCS wrapping one
    (e.g. a sliced or high-level WCS), else `None`."""
    for _ in range(3):
        if isinstance(wcs, WCS):
            return wcs
        wcs = getattr(wcs, 'low_level_wcs', None)
        if wcs is None:
            return None
    return None


def _from_nddata(source):
    name = f'<{type(source).__name__}>'
    meta = source.meta
    header = None
    if isinstance(meta, fits.Header):
        header = meta
    elif isinstance(meta, dict) and isinstance(meta.get('header'), fits.Header):
        header = meta['header']
    return ImageSource(name, array=np.asanyarray(source.data), header=header,
                       mask=source.mask, wcs=_as_fits_wcs(source.wcs))


# -- helpers -----------------------------------------------------------------

def _as_float_image(array, name):
    """Validate ``array`` and return a new, native-endian float copy."""
    array = np.asanyarray(array)
    if isinstance(array, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(array)
        array = array.filled(0)
    else:
        mask = None
    if array.dtype.kind not in 'biuf':
        raise InvalidImageError(f'{name}: image data of type {array.dtype} '
                                'are not real numbers')
    # Drop leading length-1 axes of e.g. (1, 1, ny, nx) radio images.
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
        mask = None if mask is None else mask[0]
    if array.ndim not in (2, 3):
        raise InvalidImageError(
            f'{name}: image data must be 2-D (ny, nx) or 3-D (nbands, ny, '
            f'nx), got {array.ndim}-D data of shape {array.shape}')
    if array.size == 0:
        raise InvalidImageError(f'{name}: image data are empty (shape '
                                f'{array.shape})')
    wide = array.itemsize >= 8 or (array.dtype.kind in 'iu'
                                   and array.itemsize >= 4)
    dtype = np.float64 if wide else np.float32
    data = np.array(array, dtype=dtype, order='C', copy=True)
    if mask is not None:
        data[mask] = np.nan
    return data


def _wcs_from_header(header, ndim):
    """The WCS described by ``header`` (celestial part for cubes), or None."""
    if not any(key in header for key in _WCS_KEYWORDS):
        return None
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter('ignore', FITSFixedWarning)
            wcs = WCS(header)
            if ndim == 3 and wcs.naxis > 2:
                wcs = wcs.celestial if wcs.has_celestial else wcs.sub(2)
    except Exception as exc:  # astropy.wcs raises many kinds of errors
        log.warning('ignoring an invalid WCS: %s', exc)
        return None
    return wcs


def _read_picture(path, *, name):
    """Read a PNG/JPEG/TIFF file with Pillow into a float32 array."""
    limit = max_image_bytes()
    try:
        # Pillow's own bomb check is replaced by the package's size guard,
        # applied from the declared size before any pixel is decoded.
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as im:
                nbytes = im.size[0] * im.size[1] * len(im.getbands()) * 4
                if nbytes > limit:
                    raise ImageTooLargeError(
                        f'{name}: a {im.size[0]} x {im.size[1]} picture needs '
                        f'{nbytes / 2**20:.0f} MiB, more than the limit of '
                        f'{_limit_text(limit)}')
                im.load()
                array = _picture_to_array(im, name)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f'{name}: {exc}') from None
    except UnidentifiedImageError as exc:
        raise ImageReadError(f'{name}: not a valid PNG/JPEG/TIFF image '
                             f'({exc})') from exc
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, AstroClusterClfError):
            raise
        raise ImageReadError(f'{name}: cannot read the image (truncated or '
                             f'corrupt: {exc})') from exc
    return ImageData(array, None, None, name)


def _picture_to_array(im, name):
    mode = im.mode
    if getattr(im, 'n_frames', 1) > 1:
        log.info('%s: %d frames; reading the first', name, im.n_frames)
    if mode == 'P' or mode == 'PA':
        im = im.convert('RGBA' if ('transparency' in im.info or mode == 'PA')
                        else 'RGB')
    elif mode in ('LA', 'La'):
        im = im.getchannel('L')
    elif mode not in ('1', 'L', 'I', 'F', 'RGB', 'RGBA', 'RGBa', 'RGBX') and \
            not mode.startswith('I;16'):
        im = im.convert('RGB')  # CMYK, YCbCr, LAB, HSV, ...
    array = np.asarray(im)
    if mode == 'P' and array.ndim == 3 and (
            np.array_equal(array[..., 0], array[..., 1])
            and np.array_equal(array[..., 0], array[..., 2])):
        array = array[..., 0]  # a greyscale palette is one band
    if array.ndim == 3:
        # (ny, nx, channels) -> (3, ny, nx), alpha (or padding) dropped.
        array = np.moveaxis(array[..., :3], -1, 0)
    return _as_float_image(array, name).astype(np.float32, copy=False)
