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
"""

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS, FITSFixedWarning

from .exceptions import (AstroClusterClfError, HDUNotFoundError,
                         ImageReadError, InvalidImageError, NoImageDataError,
                         UnsupportedInputError)

__all__ = ['SUPPORTED_EXTENSIONS', 'FITS_EXTENSIONS', 'PIL_EXTENSIONS',
           'ImageData', 'read_image', 'is_image_file']

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
        return _read_path(source, hdu=hdu, with_wcs=with_wcs)
    if isinstance(source, fits.HDUList):
        name = source.filename() or '<HDUList>'
        return _from_hdulist(source, hdu=hdu, name=name, with_wcs=with_wcs)
    if isinstance(source, (fits.PrimaryHDU, fits.ImageHDU)):
        name = _hdu_description(source)
        if source.data is None:
            raise NoImageDataError(f'{name}: the HDU holds no image data '
                                   '(header only)')
        return _from_hdu(source, name=name, with_wcs=with_wcs)
    if isinstance(source, NDData):
        return _from_nddata(source)
    if isinstance(source, tuple):
        return _from_tuple(source)
    if isinstance(source, np.ndarray):
        name = '<ndarray>'
        return ImageData(_as_float_image(source, name), None, None, name)
    raise UnsupportedInputError(
        f'cannot read an image from an object of type '
        f'{type(source).__name__!r}: expected a file path, an HDUList, an '
        'image HDU, an (array, Header|WCS) tuple, an NDData or a 2-D/3-D '
        'numpy array')


# -- sources -----------------------------------------------------------------

def _read_path(source, *, hdu, with_wcs):
    name = os.fspath(source)
    path = Path(source).expanduser()
    if not path.exists():
        raise ImageReadError(f'{name}: file not found')
    if not path.is_file():
        raise ImageReadError(f'{name}: not a regular file')
    ext = _extension(path)
    if ext is None:
        raise ImageReadError(
            f'{name}: unsupported file extension {"".join(path.suffixes)!r}; '
            f'supported: {", ".join(SUPPORTED_EXTENSIONS)}')
    if path.stat().st_size == 0:
        raise ImageReadError(f'{name}: empty file (0 bytes)')
    if ext in FITS_EXTENSIONS:
        return _read_fits_file(path, hdu=hdu, name=name, with_wcs=with_wcs)
    return _read_picture(path, name=name)


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
                image = _from_hdulist(hdul, hdu=hdu, name=name,
                                      with_wcs=with_wcs)
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
    """Whether ``hdu`` is an image HDU with non-empty data (header test)."""
    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)):
        return False
    header = hdu.header
    naxis = header.get('NAXIS', 0)
    return naxis > 0 and all(header.get(f'NAXIS{i}', 0) > 0
                             for i in range(1, naxis + 1))


def _hdu_description(hdu, index=None):
    kind = type(hdu).__name__
    extname = hdu.header.get('EXTNAME') if hdu.header is not None else None
    parts = [kind] + ([f'#{index}'] if index is not None else [])
    if extname:
        parts.append(f'EXTNAME={extname!r}')
    return f'<{" ".join(parts)}>'


def _from_hdulist(hdul, *, hdu, name, with_wcs=True):
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if _is_image_hdu(candidate):
                log.debug('%s: reading HDU #%d', name, index)
                return _from_hdu(candidate, name=name, with_wcs=with_wcs)
        found = ', '.join(_hdu_description(h, i) for i, h in enumerate(hdul))
        raise NoImageDataError(f'{name}: no HDU holds image data (HDUs: '
                               f'{found or "none"})')

    available = ', '.join(
        f'{i}' + (f' ({h.name})' if h.name else '') for i, h in enumerate(hdul))
    if isinstance(hdu, (bool, np.bool_)) or not isinstance(
            hdu, (int, np.integer, str, tuple)):
        raise UnsupportedInputError(
            f'{name}: hdu= must be an index, an EXTNAME or an (EXTNAME, '
            f'EXTVER) tuple, not {type(hdu).__name__}')
    try:
        selected = hdul[hdu]
    except (KeyError, IndexError):
        raise HDUNotFoundError(f'{name}: no HDU {hdu!r} (available: '
                               f'{available})') from None
    if not _is_image_hdu(selected):
        raise NoImageDataError(f'{name}: HDU {hdu!r} '
                               f'({type(selected).__name__}) holds no image '
                               'data')
    return _from_hdu(selected, name=name, with_wcs=with_wcs)


def _from_hdu(hdu, *, name, with_wcs=True):
    raw = hdu.data
    data = _as_float_image(raw, name)
    header = hdu.header.copy()
    blank = header.get('BLANK')
    if blank is not None and raw.dtype.kind in 'iu':
        # astropy only replaces BLANK with NaN when it scales the data.
        data[(raw == blank).reshape(data.shape)] = np.nan
    wcs = _wcs_from_header(header, data.ndim) if with_wcs else None
    return ImageData(data, header, wcs, name)


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
        name = '<(array, Header)>'
        data = _as_float_image(array, name)
        header = meta.copy()
        return ImageData(data, header, _wcs_from_header(header, data.ndim),
                         name)
    if isinstance(meta, WCS):
        name = '<(array, WCS)>'
        data = _as_float_image(array, name)
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter('ignore', FITSFixedWarning)
            header = meta.to_header(relax=True)
        return ImageData(data, header, meta.deepcopy(), name)
    if meta is None:
        name = '<(array, None)>'
        return ImageData(_as_float_image(array, name), None, None, name)
    raise UnsupportedInputError(
        'the second element of an (array, Header|WCS) tuple must be an '
        f'astropy Header or WCS, not {type(meta).__name__!r}')


def _from_nddata(source):
    name = f'<{type(source).__name__}>'
    data = _as_float_image(source.data, name)
    if source.mask is not None:
        mask = np.broadcast_to(np.asarray(source.mask, dtype=bool),
                               np.shape(source.data)).reshape(data.shape)
        data[mask] = np.nan
    meta = source.meta
    header = None
    if isinstance(meta, fits.Header):
        header = meta.copy()
    elif isinstance(meta, dict) and isinstance(meta.get('header'), fits.Header):
        header = meta['header'].copy()
    wcs = source.wcs
    if wcs is not None and not isinstance(wcs, WCS):
        wcs = getattr(wcs, 'low_level_wcs', None)
    if isinstance(wcs, WCS):
        wcs = wcs.deepcopy()
    elif header is not None:
        wcs = _wcs_from_header(header, data.ndim)
    else:
        wcs = None
    return ImageData(data, header, wcs, name)


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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            array = _picture_to_array(im, name)
    except UnidentifiedImageError as exc:
        raise ImageReadError(f'{name}: not a valid PNG/JPEG/TIFF image '
                             f'({exc})') from exc
    except (OSError, ValueError, SyntaxError) as exc:
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
