# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Cut out catalog positions from a large survey image.

A survey mosaic can be much larger than memory.  A FITS file given by
path is opened without memory mapping and read through its HDU's
``section`` (see :ref:`astropy:data-sections`), so only the pixels of
each cutout are ever read; this works for plain, BSCALE/BZERO-scaled,
gzip- and tile-compressed images alike.  The geometry of each cutout
(its bounding box, its partial overlap with the image and its WCS)
comes from `~astropy.nddata.Cutout2D`.

Each cutout carries a `CutoutFlag`: 0 when all is well, otherwise the
bitwise OR of

* 1, ``OFF_IMAGE``: the position is off the image (or not projectable);
* 2, ``PARTIAL``: the cutout overlaps the image edge; the missing pixels
  are filled with ``fill_value`` (NaN);
* 4, ``BAD_PIXELS``: more than ``max_bad_fraction`` of the cutout's
  pixels are non-finite (the fill of a partial cutout included);
* 8, ``UNREADABLE``: the image file could not be read (used by
  `~astroclusterclf.annotate.annotate_table` for the rows of a
  ``path_column``).
"""

import enum
import logging
from typing import NamedTuple

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.table import Table
from astropy.wcs.utils import proj_plane_pixel_scales, skycoord_to_pixel

from .config import max_image_bytes
from .exceptions import (CatalogError, InvalidImageError, MissingWCSError,
                         ParameterError)
from .io import resolve_image

__all__ = ['CutoutFlag', 'CutoutResult', 'catalog_positions', 'POSITION_COLUMNS',
           'parse_size',
           'iter_cutouts', 'make_cutouts']

log = logging.getLogger(__name__)


class CutoutFlag(enum.IntFlag):
    """Bit flags describing a catalog cutout (0 means all is well)."""

    OFF_IMAGE = 1
    """The position is off the image, or cannot be projected on it."""
    PARTIAL = 2
    """The cutout overlaps the image edge; missing pixels were filled."""
    BAD_PIXELS = 4
    """Too many non-finite pixels (including the fill of a partial cutout)."""
    UNREADABLE = 8
    """The image file could not be read."""


class CutoutResult(NamedTuple):
    """One catalog position cut out of a large image.

    Attributes
    ----------
    cutout : `~astropy.nddata.Cutout2D` or None
        The cutout (`None` when off the image); its ``data`` is float,
        ``(ny, nx)`` or ``(nbands, ny, nx)``, with the missing pixels of a
        partial cutout set to ``fill_value``.
    flag : `CutoutFlag`
        Bits saying what went wrong (0 when all is well).
    bad_fraction : float
        Fraction of the cutout's pixels that are non-finite (1.0 when off
        the image).
    """

    cutout: Cutout2D | None
    """The cutout (``None`` when off the image).  Its ``data`` is float,
    shaped ``(ny, nx)`` or ``(nbands, ny, nx)``, with missing pixels of a
    partial cutout set to ``fill_value``; its ``wcs`` is the celestial WCS
    of the cutout."""
    flag: CutoutFlag
    """`CutoutFlag` bits (0 when all is well)."""
    bad_fraction: float
    """Fraction of the cutout's pixels that are non-finite (1.0 when off
    the image)."""


# -- catalog positions -------------------------------------------------------

#: Column pairs recognised as positions when none are named, in order.
POSITION_COLUMNS = (('ra', 'dec'), ('RA', 'DEC'), ('RAJ2000', 'DEJ2000'),
                    ('RA_ICRS', 'DE_ICRS'), ('ALPHA_J2000', 'DELTA_J2000'))


def _find_position_columns(table):
    """The position columns of a catalog: a `SkyCoord` column (e.g.
    photutils' ``sky_centroid``), else the first pair of
    `POSITION_COLUMNS` present (exact names, then ignoring case)."""
    sky = [name for name in table.colnames if isinstance(table[name], SkyCoord)]
    if len(sky) == 1:
        return sky[0], None
    if len(sky) > 1:
        raise CatalogError(f'catalog has several SkyCoord columns ({", ".join(sky)}); '
                           'name one with ra= (--ra-column)')
    lower = {name.lower(): name for name in table.colnames}
    for ra, dec in POSITION_COLUMNS:
        if ra in table.colnames and dec in table.colnames:
            return ra, dec
    for ra, dec in POSITION_COLUMNS:
        if ra.lower() in lower and dec.lower() in lower:
            return lower[ra.lower()], lower[dec.lower()]
    tried = ', '.join(f'{ra}/{dec}' for ra, dec in POSITION_COLUMNS)
    raise CatalogError(
        f'catalog has no position columns: tried a SkyCoord column and {tried}; '
        f'columns present: {", ".join(table.colnames) or "(none)"}; name them with '
        'ra=/dec= (--ra-column/--dec-column)')


def catalog_positions(table, *, ra=None, dec=None, frame='icrs'):
    """Sky positions of the rows of a catalog.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.
    ra, dec : str, optional
        Names of the right ascension and declination columns (columns
        without a unit are taken to be in degrees), or ``ra`` alone naming
        a `~astropy.coordinates.SkyCoord` column.  By default a SkyCoord
        column (such as photutils' ``sky_centroid``) or the first of the
        pairs in `POSITION_COLUMNS` (``ra``/``dec``, ``RA``/``DEC``,
        ``RAJ2000``/``DEJ2000``, ``RA_ICRS``/``DE_ICRS``,
        ``ALPHA_J2000``/``DELTA_J2000``; then the same ignoring case).
    frame : str, optional
        Coordinate frame of the ``ra``/``dec`` columns.

    Returns
    -------
    coords : `~astropy.coordinates.SkyCoord`
        One position per row.  Masked or non-finite values, and
        declinations outside -90..90 degrees, become NaN (and are flagged
        as off the image by `iter_cutouts`).

    Raises
    ------
    CatalogError
        If a column is missing (the message lists the columns present)
        or holds values that are not angles.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from astroclusterclf.cutouts import catalog_positions
    >>> catalog_positions(Table({'ra': [10.5], 'dec': [-20.0]}))
    <SkyCoord (ICRS): (ra, dec) in deg
        [(10.5, -20.)]>
    """
    if not isinstance(table, Table):
        raise CatalogError(f'expected an astropy Table, got {type(table).__name__}')
    if ra is None and dec is None:
        ra, dec = _find_position_columns(table)
    if dec is None and ra in table.colnames and isinstance(table[ra], SkyCoord):
        coords = table[ra]
        return coords.reshape((1,)) if coords.isscalar else coords
    # One name given: the other is the usual lower-case one.
    ra, dec = ra or 'ra', dec or 'dec'
    missing = [name for name in (ra, dec) if name not in table.colnames]
    if missing:
        raise CatalogError(
            f'catalog has no column {", ".join(repr(m) for m in missing)}; '
            f'columns present: {", ".join(table.colnames) or "(none)"}')
    values = []
    for name in (ra, dec):
        column = table[name]
        try:
            unit = column.unit if column.unit is not None else u.deg
            data = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)
            values.append(u.Quantity(data, unit))
        except (TypeError, ValueError, u.UnitsError) as exc:
            raise CatalogError(f'catalog column {name!r} does not hold angles: {exc}') from None
        if values[-1].unit.physical_type != 'angle':
            raise CatalogError(f'catalog column {name!r} has unit {unit}, not an angle')
    lon, lat = values
    with np.errstate(invalid='ignore'):
        bad = np.abs(lat.to_value(u.deg)) > 90
    if np.any(bad):
        # One impossible row must not abort the catalog: it becomes NaN,
        # and so is flagged as off the image, like a missing position.
        log.warning('catalog column %r: %d row(s) outside -90..90 deg (first: row %d); '
                    'flagged as off the image', dec, int(bad.sum()), int(np.argmax(bad)))
        lat = np.where(bad, np.nan * lat.unit, lat)
    return SkyCoord(lon, lat, frame=frame)


def parse_size(size):
    """Turn a cutout size into what `~astropy.nddata.Cutout2D` accepts.

    Parameters
    ----------
    size : int, float, `~astropy.units.Quantity`, str, or a pair of them
        Pixels (a number, or a Quantity in ``u.pix``), an angle Quantity,
        or a string such as ``'64'``, ``'64 pix'`` or ``'30 arcsec'``.
        A pair gives ``(ny, nx)``.

    Returns
    -------
    size : int or `~astropy.units.Quantity` or tuple

    Raises
    ------
    ParameterError
        If the size is not positive or has a unit that is neither pixels
        nor an angle.

    Examples
    --------
    >>> from astroclusterclf.cutouts import parse_size
    >>> parse_size('30 arcsec')
    <Quantity 30. arcsec>
    >>> parse_size('64')
    64
    """
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ParameterError(f'cutout size must be one value or (ny, nx), got {size!r}')
        return tuple(parse_size(s) for s in size)
    if isinstance(size, str):
        try:
            size = u.Quantity(size)
        except (TypeError, ValueError):
            raise ParameterError(
                f'cannot read cutout size {size!r}: give pixels (64, "64 pix") or an '
                'angle with an astropy unit ("30 arcsec", "0.5 arcmin")') from None
    if isinstance(size, u.Quantity):
        if size.unit == u.dimensionless_unscaled:
            size = size.value
        elif size.unit != u.pix and size.unit.physical_type != 'angle':
            raise ParameterError(f'cutout size {size} must be in pixels or an angle')
        elif size.isscalar and not size.value > 0:
            raise ParameterError(f'cutout size must be positive, got {size}')
        else:
            return size
    if not np.isscalar(size) or not np.isreal(size) or not size > 0:
        raise ParameterError(f'cutout size must be positive, got {size!r}')
    return int(round(size))


# -- the large image ---------------------------------------------------------

class _LargeImage:
    """Pixels (read lazily through a section for FITS inputs) and celestial
    WCS of an image resolved by `~astroclusterclf.io.resolve_image`; a
    context manager that closes a file it opened."""

    def __init__(self, image, *, hdu=None):
        # memmap=False: the section reads only the requested pixels
        # (memory mapping fails for scaled data, and touched pages would
        # count in the resident memory).
        self._source = resolve_image(image, hdu=hdu, memmap=False)
        try:
            self.name = self._source.name
            if self._source.hdu is not None:
                self.pixels = self._source.pixels
                self.shape = self._source.shape
            else:
                # In-memory inputs: masked pixels become NaN (a copy).
                self.pixels = self._source.read(with_wcs=False).data
                self.shape = self.pixels.shape
            if len(self.shape) not in (2, 3):
                raise InvalidImageError(
                    f'{self.name}: image has {len(self.shape)} axes; expected 2 '
                    '(ny, nx) or 3 (nbands, ny, nx)')
            wcs = self._source.wcs
            self.wcs = wcs.celestial if wcs is not None and wcs.has_celestial else None
        except BaseException:
            self.close()
            raise

    def close(self):
        self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def size_sides(size):
    """The ``(ny, nx)`` sides of a size as `parse_size` returns it (one
    value for both, a pair, or a two-element Quantity)."""
    if isinstance(size, tuple):
        return size
    if isinstance(size, u.Quantity) and not size.isscalar:
        return tuple(size)
    return size, size


def _pixels_of(size, wcs, name):
    """Length in pixels of one side given as pixels or as an angle."""
    if isinstance(size, u.Quantity):
        if size.unit == u.pix:
            return float(size.value)
        if wcs is None:
            raise MissingWCSError(f'{name}: no celestial WCS; cannot cut out a size '
                                  f'given as an angle ({size})')
        scale = np.min(proj_plane_pixel_scales(wcs)) * u.deg
        return float((size / scale).decompose())
    return float(size)


def _check_cutout_size(size, image, dtype):
    """Refuse a cutout larger than the size guard before allocating it."""
    ny, nx = (_pixels_of(side, image.wcs, image.name) for side in size_sides(size))
    nbands = image.shape[0] if len(image.shape) == 3 else 1
    nbytes = ny * nx * nbands * np.dtype(dtype).itemsize
    limit = max_image_bytes()
    if not nbytes <= limit:
        raise ParameterError(
            f'{image.name}: a cutout of {ny:.0f} x {nx:.0f} pixels would need '
            f'{nbytes / 2**20:.0f} MiB, more than the limit of {limit / 2**20:.0f} MiB '
            '(astroclusterclf.conf.max_image_mib)')


# -- cutouts -----------------------------------------------------------------

def _pixel_positions(image, positions, ra, dec):
    """(x, y) pixel arrays of the positions on the image."""
    if isinstance(positions, Table):
        positions = catalog_positions(positions, ra=ra, dec=dec)
    if isinstance(positions, SkyCoord):
        if image.wcs is None:
            raise MissingWCSError(f'{image.name}: no celestial WCS in the header; '
                                  'cannot place sky positions on it')
        with np.errstate(invalid='ignore'):
            x, y = skycoord_to_pixel(positions.reshape(-1) if not positions.isscalar
                                     else positions.reshape((1,)), image.wcs, mode='all')
        return np.asarray(x, float), np.asarray(y, float)
    xy = np.asarray(positions, dtype=float)
    if xy.ndim == 1 and xy.size == 2:
        xy = xy[np.newaxis]
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise CatalogError('pixel positions must be an (N, 2) array of (x, y); '
                           f'got shape {xy.shape}')
    return xy[:, 0], xy[:, 1]


def _has_angle(size):
    return any(isinstance(side, u.Quantity) and side.unit.physical_type == 'angle'
               for side in size_sides(size))


class _Window:
    """Pixels of a rectangle of the image read at once, indexed with the
    slices of the whole image (the cutouts of a chunk of rows are read in
    one read instead of one read per image row of each cutout)."""

    def __init__(self, data, y0, x0):
        self.data, self.y0, self.x0 = data, y0, x0

    def __getitem__(self, key):
        *lead, ys, xs = key
        return self.data[tuple(lead) + (slice(ys.start - self.y0, ys.stop - self.y0),
                                        slice(xs.start - self.x0, xs.stop - self.x0))]


def _window(image, x, y, size, dtype, limit):
    """A `_Window` holding every cutout of the positions, when it needs at
    most ``limit`` bytes and the cutouts cover at least half of it, else
    `None`."""
    finite = np.isfinite(x) & np.isfinite(y)
    if np.count_nonzero(finite) < 2:
        return None
    half_y, half_x = (_pixels_of(side, image.wcs, image.name) / 2 + 2
                      for side in size_sides(size))
    ny, nx = image.shape[-2:]
    y0 = int(np.clip(np.floor(y[finite].min() - half_y), 0, ny))
    y1 = int(np.clip(np.ceil(y[finite].max() + half_y) + 1, 0, ny))
    x0 = int(np.clip(np.floor(x[finite].min() - half_x), 0, nx))
    x1 = int(np.clip(np.ceil(x[finite].max() + half_x) + 1, 0, nx))
    nbands = image.shape[0] if len(image.shape) == 3 else 1
    area = (y1 - y0) * (x1 - x0)
    # Only for cutouts packed close together: a window over scattered
    # positions would read (and hold) mostly pixels nobody asked for.
    wanted = np.count_nonzero(finite) * (2 * half_y) * (2 * half_x)
    if y1 <= y0 or x1 <= x0 or area * nbands * dtype.itemsize > limit or area > 2 * wanted:
        return None
    lead = (slice(None),) * (len(image.shape) - 2)
    return _Window(np.asarray(image.pixels[lead + (slice(y0, y1), slice(x0, x1))]), y0, x0)


def _cutout(image, x, y, size, fill_value, max_bad_fraction, dtype, *, wcs=None,
            pixels=None):
    ny, nx = image.shape[-2:]
    pixels = image.pixels if pixels is None else pixels
    if not (np.isfinite(x) and np.isfinite(y)):
        return CutoutResult(None, CutoutFlag.OFF_IMAGE, 1.0)
    # The geometry (and WCS) from Cutout2D on a zero-stride stand-in of
    # the image's shape; the pixels read afterwards through the section.
    stand_in = np.broadcast_to(np.zeros((), dtype), (ny, nx))
    try:
        cutout = Cutout2D(stand_in, (x, y), size, wcs=wcs, mode='partial',
                          fill_value=fill_value)
    except NoOverlapError:
        return CutoutResult(None, CutoutFlag.OFF_IMAGE, 1.0)
    lead = (slice(None),) * (len(image.shape) - 2)
    data = np.full(image.shape[:-2] + cutout.shape, fill_value, dtype=dtype)
    data[lead + cutout.slices_cutout] = pixels[lead + cutout.slices_original]
    cutout.data = data
    flag = CutoutFlag(0)
    if data.shape[-2:] != tuple(s.stop - s.start for s in cutout.slices_original):
        flag |= CutoutFlag.PARTIAL
    bad_fraction = float(np.count_nonzero(~np.isfinite(data)) / data.size)
    if bad_fraction > max_bad_fraction:
        flag |= CutoutFlag.BAD_PIXELS
    return CutoutResult(cutout, flag, bad_fraction)


#: Cutouts of many positions whose common bounding box needs at most this
#: many bytes are read in one read (a survey tile, a chunk of rows).
WINDOW_BYTES = 64 << 20


def iter_cutouts(image, positions, size, *, hdu=None, ra=None, dec=None,
                 fill_value=np.nan, max_bad_fraction=0.5, with_wcs=True):
    """Cut out positions from a (large) image, one at a time.

    Parameters
    ----------
    image : str, `os.PathLike`, `~astropy.io.fits.HDUList`, HDU, NDData, tuple or array
        The image, 2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)``.  A FITS
        file or HDU is read through its ``section``: only the pixels of
        each cutout are read, never the whole image.  Other inputs are
        whatever `~astroclusterclf.io.read_image` accepts.
    positions : `~astropy.table.Table`, `~astropy.coordinates.SkyCoord` or array
        A catalog (positions from its ``ra``/``dec`` columns, see
        `catalog_positions`), sky positions (the image needs a celestial
        WCS), or pixel positions as an ``(N, 2)`` array of ``(x, y)``
        (0-based).
    size : int, `~astropy.units.Quantity`, str or pair
        Cutout size in pixels or as an angle (see `parse_size`).
    hdu : int or str, optional
        The HDU of a FITS file or `~astropy.io.fits.HDUList` (default: the
        first HDU with a 2-D or 3-D image).
    ra, dec : str, optional
        Column names, when ``positions`` is a table.
    fill_value : float, optional
        Value for the pixels of a partial cutout that fall off the image.
    max_bad_fraction : float, optional
        A cutout with more than this fraction of non-finite pixels is
        flagged `CutoutFlag.BAD_PIXELS`.
    with_wcs : bool, optional
        Give each cutout its WCS (copying a WCS costs more than cutting a
        small image; classification does not need it).

    Yields
    ------
    result : `CutoutResult`
        ``(cutout, flag, bad_fraction)`` for each position, in order.

    Raises
    ------
    ImageReadError, HDUNotFoundError, NoImageDataError, InvalidImageError
        If the image cannot be read.
    MissingWCSError
        If sky positions are given and the image has no celestial WCS.
    CatalogError
        If the catalog lacks the ``ra``/``dec`` columns.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf.cutouts import iter_cutouts
    >>> image = np.arange(100.0).reshape(10, 10)
    >>> for result in iter_cutouts(image, [(5, 5), (9, 5), (50, 50)], 4):
    ...     print(result.flag.value, None if result.cutout is None else result.cutout.shape)
    0 (4, 4)
    2 (4, 4)
    1 None
    """
    size = parse_size(size)
    if not 0 <= max_bad_fraction <= 1:
        raise ParameterError(f'max_bad_fraction must be within [0, 1], got {max_bad_fraction}')
    with _LargeImage(image, hdu=hdu) as large:
        x, y = _pixel_positions(large, positions, ra, dec)
        dtype = np.result_type(getattr(large.pixels, 'dtype', np.float32), np.float32)
        if dtype.kind != 'f':
            dtype = np.dtype(np.float64)
        _check_cutout_size(size, large, dtype)
        log.debug('%s: %d cutouts of size %s', large.name, len(x), size)
        # Many cutouts close together (the rows of one tile): read their
        # bounding box at once; scattered ones are read one by one.
        wcs = large.wcs if with_wcs else None
        if wcs is None and _has_angle(size) and large.wcs is not None:
            # The pixel shape of an angular size is the same everywhere on
            # the image (Cutout2D converts it with the WCS's pixel scales):
            # work it out once, without a WCS copy per cutout.
            ny, nx = large.shape[-2:]
            size = Cutout2D(np.broadcast_to(np.zeros((), dtype), (ny, nx)),
                            (nx / 2, ny / 2), size, wcs=large.wcs, mode='partial').shape
        window = _window(large, x, y, size, dtype, WINDOW_BYTES)
        for xi, yi in zip(x, y):
            yield _cutout(large, xi, yi, size, fill_value, max_bad_fraction, dtype,
                          wcs=wcs, pixels=window)


def make_cutouts(image, positions, size, **options):
    """Cut out positions from a (large) image.

    Same parameters as `iter_cutouts` (``options`` are its keyword
    options).

    Parameters
    ----------
    image : str, `os.PathLike`, `~astropy.io.fits.HDUList`, HDU, NDData, tuple or array
        The image, 2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)`` (see
        `iter_cutouts`).
    positions : `~astropy.table.Table`, `~astropy.coordinates.SkyCoord` or array
        A catalog, sky positions, or an ``(N, 2)`` array of 0-based pixel
        positions ``(x, y)``.
    size : int, `~astropy.units.Quantity`, str or pair
        Cutout size in pixels or as an angle (see `parse_size`).
    **options
        The keyword options of `iter_cutouts`: ``hdu``, ``ra``, ``dec``,
        ``fill_value``, ``max_bad_fraction``, ``with_wcs``.

    Returns
    -------
    results : list of `CutoutResult`
        One per position, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf.cutouts import make_cutouts
    >>> results = make_cutouts(np.ones((50, 50)), [(10, 10), (49, 49)], 8)
    >>> [int(r.flag) for r in results]
    [0, 6]
    """
    return list(iter_cutouts(image, positions, size, **options))
