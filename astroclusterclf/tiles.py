# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
An index of the sky footprints of many survey tiles, for catalog cutouts.

A survey is often delivered as thousands of image tiles.  `TileIndex`
reads only their headers (never a pixel) and, for each catalog position,
finds the tile to cut it from, so that a catalog can be annotated by
opening each tile once and only the tiles that hold catalog rows.

Each row gets a tile and a flag, with the same meaning as the bits of
`~astroclusterclf.cutouts.CutoutFlag`:

* 0: the whole cutout lies inside a tile.  When several tiles hold it
  whole, the tile where it lies farthest from the edge is chosen;
* 2, ``PARTIAL``: no tile holds the whole cutout, but some overlap it;
  the tile with the largest overlap (in pixels) is chosen;
* 1, ``OFF_IMAGE``: the cutout overlaps no tile, or the position is not
  finite; no tile is chosen (``-1``).

The geometry is that of `~astropy.nddata.Cutout2D` in ``'partial'`` mode,
as used by `~astroclusterclf.cutouts.iter_cutouts`: the cutout is
centred on the position's pixel coordinates, its size in pixels is
rounded as Cutout2D rounds it, and its pixel box starts at
``ceil(position - size / 2)``.
"""

import itertools
import logging
import os
from typing import NamedTuple

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales, wcs_to_celestial_frame

from .cutouts import parse_size
from .exceptions import MissingWCSError, ParameterError, UnsupportedInputError
from .io import resolve_image

__all__ = ['TileIndex', 'TileAssignment']

log = logging.getLogger(__name__)

# The 27 offsets of a grid cell and its neighbours.
_NEIGHBOURS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)

# Rows per batch of the candidate search, and the most (row, tile) pairs
# one batch expands at once (bounds the memory of the search).
_ROW_BATCH = 32768
_MAX_PAIRS = 1 << 22

# Safety factors of the candidate cutoff: the search keeps every tile
# whose centre is within (tile radius + cutout radius) of a row, with the
# cutout radius taken generously (local pixel scale, distortion, the
# rounding of the cutout box); the exact test is then done in pixels.
_RADIUS_PAD = 1.01
_CUTOUT_PAD = 1.25


class TileAssignment(NamedTuple):
    """The tile of each catalog row, from `TileIndex.locate`.

    Attributes
    ----------
    tile : `~numpy.ndarray` of int
        Index of the chosen tile in the `TileIndex`, ``-1`` for rows in no
        tile.
    flag : `~numpy.ndarray` of int16
        0 when the whole cutout lies inside the chosen tile, 2 when it
        lies only partly inside any tile (the tile with the largest
        overlap is chosen), 1 when it overlaps no tile or the position is
        not finite.  The values are those of
        `~astroclusterclf.cutouts.CutoutFlag` (``PARTIAL``, ``OFF_IMAGE``).
    margin : `~numpy.ndarray` of float
        Whole pixels between the cutout's pixel box and the nearest edge
        of the chosen tile: 0 when the box touches the edge, negative when
        the cutout is partial (minus the pixels that stick out), NaN for
        rows in no tile.
    """

    tile: np.ndarray
    flag: np.ndarray
    margin: np.ndarray


class TileIndex:
    """The sky footprints of a set of image tiles, read from their
    headers only.

    Build one with `from_files` (paths of FITS tiles) or `from_wcs`
    (WCS objects in memory), then assign catalog positions to tiles with
    `locate` and visit the tiles that got rows with `groups`.

    Parameters
    ----------
    wcs : list of `~astropy.wcs.WCS`
        The celestial WCS of each tile.
    shapes : array-like of int, shape (N, 2)
        ``(ny, nx)`` of each tile.
    paths : list
        A path or name of each tile.
    hdus : list of int or None
        The index of the image HDU of each tile (`None` where there is
        none).

    Attributes
    ----------
    paths : list
        The tiles as given to `from_files` (or the ``names`` given to
        `from_wcs`).
    hdus : list of int or None
        The index of the image HDU of each tile (`None` for `from_wcs`).
    shapes : `~numpy.ndarray` of int, shape (N, 2)
        ``(ny, nx)`` of each tile.
    wcs : list of `~astropy.wcs.WCS`
        The celestial WCS of each tile (for `from_wcs`, the objects given,
        not copies, when they have only the two celestial axes).
    centres : `~numpy.ndarray`, shape (N, 3)
        Unit vectors (ICRS) of the tile centres.
    radii : `~astropy.units.Quantity`, shape (N,)
        Angle from each tile's centre to its farthest corner (pixel edges
        included), in degrees.
    pixel_scales : `~astropy.units.Quantity`, shape (N,)
        Pixel scale of each tile (`astroclusterclf.io.pixel_scale`), in
        arcsec per pixel.

    Examples
    --------
    Two overlapping 100 x 100 tiles of 1 arcsec pixels, side by side in
    right ascension:

    >>> from astropy import units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.wcs import WCS
    >>> from astroclusterclf.tiles import TileIndex
    >>> def tile_wcs(ra):
    ...     wcs = WCS(naxis=2)
    ...     wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    ...     wcs.wcs.crval = [ra, 0.0]
    ...     wcs.wcs.crpix = [50.5, 50.5]
    ...     wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    ...     return wcs
    >>> index = TileIndex.from_wcs([tile_wcs(10.0), tile_wcs(10.02)],
    ...                            [(100, 100), (100, 100)], names=['a', 'b'])
    >>> index
    <TileIndex: 2 tiles, 1 arcsec/pix>
    >>> coords = SkyCoord([10.0, 10.012, 10.06, 10.0335], [0, 0, 0, 0], unit='deg')
    >>> assignment = index.locate(coords, 10)
    >>> assignment.tile, assignment.flag
    (array([ 0,  1, -1,  1]), array([0, 0, 1, 2], dtype=int16))
    >>> for tile, rows in index.groups(assignment):
    ...     print(index.paths[tile], rows)
    a [0]
    b [1 3]
    """

    def __init__(self, wcs, shapes, *, paths, hdus):
        # Use from_files or from_wcs; this constructor does the geometry.
        self.paths = list(paths)
        self.hdus = list(hdus)
        self.wcs = list(wcs)
        self.shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        n = len(self.wcs)
        if not (len(self.paths) == len(self.hdus) == len(self.shapes) == n):
            raise ParameterError(f'{n} WCS but {len(self.shapes)} shapes and '
                                 f'{len(self.paths)} names')
        if n == 0:
            raise ParameterError('a tile index needs at least one tile; none given')
        self._frames = []            # one celestial frame per kind of WCS
        self._frame_of = np.zeros(n, dtype=np.int64)
        self._lonlat = np.zeros((n, 2), dtype=np.int64)   # WCS axes of lon, lat
        self._axis_scales = np.zeros((n, 2))   # proj_plane_pixel_scales, deg
        scales = np.zeros(n)
        points = np.zeros((n, 2, 9))   # lon/lat of centre, 4 corners, 4 sides
        frame_keys = {}
        for i, (wcs_i, (ny, nx), name) in enumerate(zip(self.wcs, self.shapes,
                                                        self.paths)):
            if not (ny > 0 and nx > 0):
                raise ParameterError(f'{name}: tile shape must be positive, got '
                                     f'{(int(ny), int(nx))}')
            try:
                self._axis_scales[i] = proj_plane_pixel_scales(wcs_i)
            except Exception:  # a degenerate matrix
                self._axis_scales[i] = np.nan
            # As astroclusterclf.io.pixel_scale (which would copy the WCS).
            scales[i] = np.mean(self._axis_scales[i]) * 3600
            if not (np.all(np.isfinite(self._axis_scales[i]))
                    and np.all(self._axis_scales[i] > 0)):
                raise MissingWCSError(f'{name}: the WCS has a degenerate pixel scale; '
                                      'cannot index it as a tile')
            self._lonlat[i] = wcs_i.wcs.lng, wcs_i.wcs.lat
            key = _frame_key(wcs_i)
            if key not in frame_keys:
                try:
                    frame = wcs_to_celestial_frame(wcs_i)
                except ValueError as exc:
                    raise MissingWCSError(f'{name}: the celestial frame of the WCS is '
                                          f'not known ({exc})') from None
                frame_keys[key] = len(self._frames)
                self._frames.append(frame)
            self._frame_of[i] = frame_keys[key]
            cx, cy, ex, ey = (nx - 1) / 2, (ny - 1) / 2, nx - 0.5, ny - 0.5
            px = np.array([cx, -0.5, ex, ex, -0.5, cx, ex, cx, -0.5])
            py = np.array([cy, -0.5, -0.5, ey, ey, -0.5, cy, ey, cy])
            world = wcs_i.all_pix2world(px, py, 0)
            points[i] = world[self._lonlat[i, 0]], world[self._lonlat[i, 1]]
        vectors = np.empty((n, 9, 3))
        for f, frame in enumerate(self._frames):
            members = self._frame_of == f
            vectors[members] = _unit_vectors(SkyCoord(
                points[members, 0] * u.deg, points[members, 1] * u.deg, frame=frame))
        bad = ~np.all(np.isfinite(vectors), axis=(1, 2))
        if np.any(bad):
            raise MissingWCSError(f'{self.paths[int(np.argmax(bad))]}: the WCS does not '
                                  'place all corners of the tile on the sky; cannot '
                                  'index it as a tile')
        self.centres = vectors[:, 0]
        chord = np.linalg.norm(vectors[:, 1:] - self.centres[:, np.newaxis], axis=2)
        self._radius = 2 * np.arcsin(np.minimum(chord.max(axis=1) / 2, 1.0))  # rad
        self.radii = (self._radius * u.rad).to(u.deg)
        self.pixel_scales = scales * (u.arcsec / u.pix)

    @classmethod
    def from_files(cls, paths, *, hdu=None, progress=None):
        """Index image tiles from their headers (no pixel is read).

        Parameters
        ----------
        paths : iterable of str or `os.PathLike`
            The tiles: FITS files (``.fits``, ``.fits.gz``, tile-compressed
            ``.fits.fz``, ...), or anything else
            `~astroclusterclf.io.resolve_image` accepts.
        hdu : int, str or tuple, optional
            The HDU of every tile (index, EXTNAME or ``(EXTNAME, EXTVER)``);
            by default the first image HDU, by the rule of
            `~astroclusterclf.io.resolve_image`.
        progress : callable, optional
            Called as ``progress(done, total)`` after each tile.

        Returns
        -------
        index : `TileIndex`

        Raises
        ------
        MissingWCSError
            A tile without a usable celestial WCS (the message names it).
        ImageReadError, HDUNotFoundError, NoImageDataError
            A tile that cannot be opened, as from
            `~astroclusterclf.io.resolve_image`.
        ParameterError
            No tiles.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> from astropy.wcs import WCS
        >>> from astroclusterclf.tiles import TileIndex
        >>> wcs = WCS(naxis=2)
        >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
        >>> wcs.wcs.crval = [150.0, 2.0]
        >>> wcs.wcs.cdelt = [-0.5 / 3600, 0.5 / 3600]
        >>> hdu = fits.PrimaryHDU(np.zeros((40, 60), np.float32), header=wcs.to_header())
        >>> index = TileIndex.from_files([hdu])
        >>> index.shapes, index.hdus, index.pixel_scales
        (array([[40, 60]]), [0], <Quantity [0.5] arcsec / pix>)
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = list(paths)
        wcs_list, shapes, hdus = [], [], []
        for done, path in enumerate(paths, start=1):
            with resolve_image(path, hdu=hdu) as resolved:
                wcs = resolved.wcs
                if wcs is None or not wcs.has_celestial:
                    raise MissingWCSError(f'{resolved.name}: no celestial WCS in the '
                                          'header; cannot index it as a tile')
                if len(resolved.shape) < 2:
                    raise ParameterError(f'{resolved.name}: not a 2-D image')
                wcs_list.append(_celestial(wcs))
                shapes.append(tuple(int(n) for n in resolved.shape[-2:]))
                hdus.append(resolved.index)
            if progress is not None:
                progress(done, len(paths))
        index = cls(wcs_list, shapes, paths=paths, hdus=hdus)
        log.debug('indexed %d tiles', len(index))
        return index

    @classmethod
    def from_wcs(cls, wcs_list, shapes, *, names=None):
        """Index tiles given by their WCS and shape (e.g. tiles not yet
        written, or a survey's tiling scheme).

        Parameters
        ----------
        wcs_list : sequence of `~astropy.wcs.WCS`
            The WCS of each tile (its celestial part is used).
        shapes : sequence of (ny, nx)
            The shape of each tile in pixels.
        names : sequence, optional
            Stored as `paths`, and used in messages (default
            ``'<tile 0>'``, ``'<tile 1>'``, ...).

        Returns
        -------
        index : `TileIndex`

        Raises
        ------
        MissingWCSError
            A WCS without a usable celestial part.
        ParameterError
            No tiles, a shape that is not a positive ``(ny, nx)``, or as
            many names, shapes and WCS.
        """
        wcs_list = list(wcs_list)
        names = [f'<tile {i}>' for i in range(len(wcs_list))] if names is None else list(names)
        shapes = np.asarray(shapes)
        if shapes.ndim != 2 or shapes.shape[1] != 2 or shapes.dtype.kind not in 'iu':
            raise ParameterError(f'tile shapes must be (ny, nx) integer pairs, got an '
                                 f'array of shape {shapes.shape} and type {shapes.dtype}')
        celestial = []
        for wcs, name in zip(wcs_list, names):
            if not isinstance(wcs, WCS) or not wcs.has_celestial:
                raise MissingWCSError(f'{name}: no celestial WCS; cannot index it as a tile')
            celestial.append(_celestial(wcs))
        return cls(celestial, shapes, paths=names, hdus=[None] * len(names))

    def __len__(self):
        return len(self.wcs)

    def __repr__(self):
        low, high = np.min(self.pixel_scales.value), np.max(self.pixel_scales.value)
        scales = f'{low:.3g}' if np.isclose(low, high) else f'{low:.3g}-{high:.3g}'
        return f'<TileIndex: {len(self)} tiles, {scales} arcsec/pix>'

    # -- locating rows ---------------------------------------------------------

    def _cutout_shapes(self, size):
        """``(ny, nx)`` of the cutout on every tile (as Cutout2D rounds it)."""
        size = parse_size(size)
        if isinstance(size, tuple):
            sides = size
        elif isinstance(size, u.Quantity) and not size.isscalar:
            if size.size not in (1, 2):
                raise ParameterError(f'cutout size must be one value or (ny, nx), got {size}')
            sides = (size.flat[0], size.flat[-1])
        else:
            sides = (size, size)
        n = len(self)
        shape = np.zeros((n, 2), dtype=np.int64)
        for axis, side in enumerate(sides):
            if isinstance(side, u.Quantity) and side.unit != u.pix:
                if not side.value > 0:
                    raise ParameterError(f'cutout size must be positive, got {side}')
                # As Cutout2D: side / proj_plane_pixel_scales[axis] (its
                # scales are in (x, y) order, the sides in (ny, nx) order).
                pixels = side.to_value(u.deg) / self._axis_scales[:, axis]
            else:
                value = side.value if isinstance(side, u.Quantity) else side
                if not value > 0:
                    raise ParameterError(f'cutout size must be positive, got {side}')
                pixels = np.full(n, float(value))
            shape[:, axis] = np.round(pixels)
        small = np.any(shape < 1, axis=1)
        if np.any(small):
            raise ParameterError(f'{self.paths[int(np.argmax(small))]}: a cutout of '
                                 f'size {size} is less than one pixel on this tile')
        return shape

    def _candidates(self, vectors, cutoff):
        """(row, tile) pairs whose angle is within the tile's ``cutoff``
        (radians): a grid of cells on the unit vectors, each row checked
        against the tiles of its cell and the 26 neighbouring cells."""
        chord2 = (2 * np.sin(np.minimum(cutoff, np.pi) / 2)) ** 2
        cell = max(float(np.sqrt(chord2.max())), 2e-6)
        k = int(2 / cell) + 3

        def cells(v):
            return np.floor((v + 1) / cell).astype(np.int64) + 1

        def keys(c):
            return c[..., 0] + k * (c[..., 1] + k * c[..., 2])

        tile_keys = keys(cells(self.centres))
        order = np.argsort(tile_keys, kind='stable')
        sorted_keys = tile_keys[order]
        rows_out, tiles_out = [], []
        for start in range(0, len(vectors), _ROW_BATCH):
            batch = vectors[start:start + _ROW_BATCH]
            near = keys(cells(batch)[:, np.newaxis] + _NEIGHBOURS)
            lo = np.searchsorted(sorted_keys, near, side='left').ravel()
            count = np.searchsorted(sorted_keys, near, side='right').ravel() - lo
            hit = np.flatnonzero(count)
            row_of, lo, count = hit // len(_NEIGHBOURS) + start, lo[hit], count[hit]
            ends = np.cumsum(count)
            first = 0
            while first < len(hit):
                base = ends[first - 1] if first else 0
                last = max(int(np.searchsorted(ends, base + _MAX_PAIRS, side='right')),
                           first + 1)
                c = count[first:last]
                total = int(c.sum())
                runs = np.cumsum(c) - c
                rows = np.repeat(row_of[first:last], c)
                tiles = order[np.repeat(lo[first:last] - runs, c) + np.arange(total)]
                d = vectors[rows] - self.centres[tiles]
                keep = np.einsum('ij,ij->i', d, d) <= chord2[tiles]
                rows_out.append(rows[keep])
                tiles_out.append(tiles[keep])
                first = last
        if not rows_out:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows_out), np.concatenate(tiles_out)

    def locate(self, coords, size):
        """Choose the tile to cut each catalog position from.

        Parameters
        ----------
        coords : `~astropy.coordinates.SkyCoord`
            The positions, shape ``(N,)`` (a scalar counts as one row);
            non-finite positions are allowed (flag 1).
        size : int, `~astropy.units.Quantity`, str or pair
            The cutout size, as for `~astroclusterclf.cutouts.iter_cutouts`
            (see `~astroclusterclf.cutouts.parse_size`): pixels, or an
            angle converted to pixels with each tile's own pixel scale.

        Returns
        -------
        assignment : `TileAssignment`
            ``(tile, flag, margin)``, one value per row.

        Raises
        ------
        UnsupportedInputError
            ``coords`` is not a SkyCoord.
        ParameterError
            The size is not positive, or less than one pixel on a tile.

        Notes
        -----
        The cutout of a row on a tile is the pixel box that
        `~astropy.nddata.Cutout2D` would cut (``mode='partial'``, centred on
        the row's pixel coordinates from ``all_world2pix``).  It fits whole
        when the box lies within ``[0, nx - 1] x [0, ny - 1]``.  Among the
        tiles that hold it whole, the one with the largest margin (whole
        pixels to the nearest edge; then the distance of the exact
        cutout edge, then the lowest tile index) is chosen; when none
        does, the tile with the largest overlap area, then the one where
        the position lies farthest inside.  Margins are compared in each
        tile's own pixels.

        Candidate tiles are found with a grid on the unit sphere: only the
        tiles whose centre is within (tile radius + cutout radius) of a
        row are projected, so the cost grows with the number of rows and
        tiles, not with their product.
        """
        if not isinstance(coords, SkyCoord):
            raise UnsupportedInputError(f'coords must be a SkyCoord, got '
                                        f'{type(coords).__name__}')
        coords = coords.reshape((1,)) if coords.isscalar else coords.reshape(-1)
        n_rows = len(coords)
        shape = self._cutout_shapes(size)
        tile = np.full(n_rows, -1, dtype=np.int64)
        flag = np.ones(n_rows, dtype=np.int16)
        margin = np.full(n_rows, np.nan)
        if n_rows == 0:
            return TileAssignment(tile, flag, margin)

        vectors = _unit_vectors(coords)
        valid = np.flatnonzero(np.all(np.isfinite(vectors), axis=1))
        # Cutoff: tile radius + half the cutout's diagonal (one pixel more
        # for the rounding of the box) at the tile's largest pixel scale.
        half_diagonal = 0.5 * np.hypot(shape[:, 0] + 2, shape[:, 1] + 2)
        cutout_radius = np.deg2rad(half_diagonal * self._axis_scales.max(axis=1))
        cutoff = self._radius * _RADIUS_PAD + cutout_radius * _CUTOUT_PAD
        rows, tiles = self._candidates(vectors[valid], cutoff)
        rows = valid[rows]
        if len(rows) == 0:
            return TileAssignment(tile, flag, margin)

        # Pixel positions, tile by tile (in the frame of each tile's WCS).
        order = np.argsort(tiles, kind='stable')
        rows, tiles = rows[order], tiles[order]
        x = np.empty(len(rows))
        y = np.empty(len(rows))
        lonlat = {}
        bounds = np.flatnonzero(np.diff(tiles)) + 1
        for first, last in zip(np.r_[0, bounds], np.r_[bounds, len(tiles)]):
            t = tiles[first]
            f = self._frame_of[t]
            if f not in lonlat:
                lonlat[f] = _lon_lat(coords, self._frames[f])
            lon, lat = lonlat[f]
            world = [None, None]
            world[self._lonlat[t, 0]] = lon[rows[first:last]]
            world[self._lonlat[t, 1]] = lat[rows[first:last]]
            with np.errstate(invalid='ignore'):
                pixels = self.wcs[t].all_world2pix(*world, 0, quiet=True)
            x[first:last], y[first:last] = pixels

        # The Cutout2D box of each (row, tile) pair: [x0, x1) x [y0, y1).
        ny, nx = self.shapes[tiles, 0], self.shapes[tiles, 1]
        sy, sx = shape[tiles, 0], shape[tiles, 1]
        finite = np.isfinite(x) & np.isfinite(y)
        x, y = np.where(finite, x, 0.0), np.where(finite, y, 0.0)
        x0 = np.ceil(x - sx / 2).astype(np.int64)
        y0 = np.ceil(y - sy / 2).astype(np.int64)
        x1, y1 = x0 + sx, y0 + sy
        overlaps = finite & (x1 > 0) & (y1 > 0) & (x0 < nx) & (y0 < ny)
        whole = overlaps & (x0 >= 0) & (y0 >= 0) & (x1 <= nx) & (y1 <= ny)
        box_margin = np.minimum(np.minimum(x0, y0), np.minimum(nx - x1, ny - y1))
        area = ((np.minimum(x1, nx) - np.maximum(x0, 0))
                * (np.minimum(y1, ny) - np.maximum(y0, 0)))
        exact = np.minimum(np.minimum(x - sx / 2 + 0.5, y - sy / 2 + 0.5),
                           np.minimum(nx - 0.5 - x - sx / 2, ny - 0.5 - y - sy / 2))

        # The best pair of each row: whole before partial; then the largest
        # margin (whole) or overlap (partial); then the exact margin; then
        # the lowest tile index.
        keep = np.flatnonzero(overlaps)
        if len(keep) == 0:
            return TileAssignment(tile, flag, margin)
        primary = np.where(whole, box_margin, area)[keep]
        ranked = keep[np.lexsort((-tiles[keep], exact[keep], primary,
                                  whole[keep], rows[keep]))]
        r = rows[ranked]
        best = ranked[np.r_[r[1:] != r[:-1], True]]
        tile[rows[best]] = tiles[best]
        flag[rows[best]] = np.where(whole[best], 0, 2)
        margin[rows[best]] = box_margin[best]
        log.debug('located %d rows on %d tiles: %d whole, %d partial, %d in no tile',
                  n_rows, len(self), np.sum(flag == 0), np.sum(flag == 2),
                  np.sum(flag == 1))
        return TileAssignment(tile, flag, margin)

    def groups(self, assignment):
        """The rows of each tile that has rows, in tile order.

        Parameters
        ----------
        assignment : `TileAssignment`
            The result of `locate`.

        Yields
        ------
        tile : int
            Index of the tile.
        rows : `~numpy.ndarray` of int
            Indices of its rows (ascending).
        """
        tiles = np.asarray(assignment.tile)
        order = np.argsort(tiles, kind='stable')
        order = order[tiles[order] >= 0]
        sorted_tiles = tiles[order]
        bounds = np.flatnonzero(np.diff(sorted_tiles)) + 1
        for rows in np.split(order, bounds):
            if len(rows):
                yield int(tiles[rows[0]]), rows


def _celestial(wcs):
    """The celestial part of a WCS (the WCS itself when it has only the
    two celestial axes: `WCS.celestial` makes a copy, which costs more than
    the rest of indexing a tile)."""
    return wcs if wcs.naxis == 2 else wcs.celestial


def _frame_key(wcs):
    """What `wcs_to_celestial_frame` reads, to compute each frame once."""
    w = wcs.wcs
    return (tuple(c[:4] for c in w.ctype), w.radesys, repr(w.equinox), w.dateobs,
            repr(w.mjdobs), tuple(repr(v) for v in getattr(w, 'obsgeo', ())))


def _unit_vectors(coords):
    """ICRS unit vectors of a SkyCoord, shape ``coords.shape + (3,)``."""
    sph = coords.icrs.represent_as(UnitSphericalRepresentation)
    lon, lat = sph.lon.to_value(u.rad), sph.lat.to_value(u.rad)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                     np.sin(lat)], axis=-1)


def _lon_lat(coords, frame):
    """Longitude and latitude of ``coords`` in ``frame``, in degrees."""
    sph = coords.transform_to(frame).represent_as(UnitSphericalRepresentation)
    return sph.lon.to_value(u.deg), sph.lat.to_value(u.deg)
