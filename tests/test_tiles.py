# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.tiles: the tile index built from headers, the
choice of a tile for each catalog row, its flags and its speed."""

import time

import astropy
import numpy as np
import pytest
from astropy import units as u
from astropy.utils import minversion
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from astropy.wcs.utils import skycoord_to_pixel

from astroclusterclf.cutouts import CutoutFlag, iter_cutouts
from astroclusterclf.exceptions import (ImageReadError, MissingWCSError, ParameterError,
                                        UnsupportedInputError)
from astroclusterclf.io import pixel_scale, read_image
from astroclusterclf.tiles import TileAssignment, TileIndex

from helpers import unchanged

SHAPE = (100, 100)          # (ny, nx) of the test tiles
SCALE = 1.0                 # arcsec per pixel


def tile_wcs(ra=10.0, dec=0.0, shape=SHAPE, scale=SCALE, *, galactic=False, rotation=0.0):
    """A TAN WCS centred on (ra, dec) (degrees) at the centre of ``shape``."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['GLON-TAN', 'GLAT-TAN'] if galactic else ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    if rotation:
        c, s = np.cos(np.deg2rad(rotation)), np.sin(np.deg2rad(rotation))
        wcs.wcs.pc = [[c, -s], [s, c]]
    return wcs


def shifted(dx, shape=SHAPE):
    """A tile centred ``dx`` pixels of the first tile (at RA 10, Dec 0)
    towards higher RA, i.e. at that tile's x = 49.5 - dx."""
    return tile_wcs(10.0 + dx * SCALE / 3600, 0.0, shape)


def at_pixels(wcs, x, y=49.7):
    """Sky positions of pixel positions (0-based) of ``wcs`` (the tests
    avoid positions where a box edge falls on an exact integer, which
    rounding on the way to the sky and back could move)."""
    return wcs.pixel_to_world(np.atleast_1d(x), np.broadcast_to(y, np.shape(np.atleast_1d(x))))


def write_tile(path, wcs, shape=SHAPE, *, compressed=False):
    data = np.zeros(shape, dtype=np.float32)
    if compressed:
        hdul = fits.HDUList([fits.PrimaryHDU(),
                             fits.CompImageHDU(data, header=wcs.to_header())])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=wcs.to_header())])
    hdul.writeto(path)
    return path


# -- building the index ----------------------------------------------------------

def test_from_files_plain_and_compressed(tmp_path):
    paths = [write_tile(tmp_path / 'a.fits', shifted(0)),
             write_tile(tmp_path / 'b.fits.fz', shifted(60, (80, 120)), (80, 120),
                        compressed=True)]
    done = []
    index = TileIndex.from_files(paths, progress=lambda i, n: done.append((i, n)))
    assert len(index) == 2
    assert done == [(1, 2), (2, 2)]
    assert index.paths == paths
    assert index.hdus == [0, 1]
    np.testing.assert_array_equal(index.shapes, [SHAPE, (80, 120)])
    np.testing.assert_allclose(index.pixel_scales.to_value(u.arcsec / u.pix), [1, 1])
    assert index.pixel_scales.value.tolist() == [pixel_scale(w) for w in index.wcs]
    # Radius: centre to a corner of the pixel edges, half the diagonal.
    np.testing.assert_allclose(index.radii.to_value(u.arcsec),
                               [np.hypot(50, 50), np.hypot(40, 60)], rtol=1e-4)
    centre = SkyCoord(10.0 + 60 / 3600, 0.0, unit='deg').cartesian.xyz.value
    np.testing.assert_allclose(index.centres[1], centre, atol=1e-12)
    assert repr(index) == '<TileIndex: 2 tiles, 1 arcsec/pix>'

    # The compressed tile is found and its rows are cut from it.
    coords = at_pixels(index.wcs[1], 10.2)   # x = 10.2 on b is x = -59.8 on a
    assignment = index.locate(coords, 10)
    assert assignment.tile.tolist() == [1] and assignment.flag.tolist() == [0]


def test_from_files_reads_no_pixels(tmp_path):
    """A tile whose data section is cut short still indexes (only its
    header is read; astropy notes the short file), although reading its
    pixels fails."""
    path = write_tile(tmp_path / 'big.fits', shifted(0, (400, 400)), (400, 400))
    header_bytes = len(fits.getheader(path).tostring())
    with open(path, 'r+b') as f:
        f.truncate(header_bytes + 2880)
    with pytest.raises(ImageReadError, match='truncated'):
        read_image(path)
    with pytest.warns(AstropyUserWarning, match='truncated'):
        index = TileIndex.from_files([path])
    np.testing.assert_array_equal(index.shapes, [(400, 400)])
    assert index.locate(at_pixels(index.wcs[0], 200.2), 16).flag.tolist() == [0]


def test_from_files_decompresses_nothing(tmp_path):
    """A tile-compressed tile whose compressed pixels are garbage indexes
    without a warning: nothing is decompressed."""
    path = write_tile(tmp_path / 'tile.fits.fz', shifted(0), compressed=True)
    with fits.open(path) as hdul:
        start, span = hdul[1].fileinfo()['datLoc'], hdul[1].fileinfo()['datSpan']
    data = bytearray(path.read_bytes())
    data[start:start + span] = np.random.default_rng(0).integers(0, 256, span, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match='decompress'):
        fits.getdata(path, ext=1)
    index = TileIndex.from_files([path])
    assert index.hdus == [1]
    np.testing.assert_array_equal(index.shapes, [SHAPE])


def test_tile_without_wcs_names_the_file(tmp_path):
    good = write_tile(tmp_path / 'good.fits', shifted(0))
    bare = tmp_path / 'no_wcs.fits'
    fits.PrimaryHDU(np.zeros(SHAPE, np.float32)).writeto(bare)
    with unchanged(bare), pytest.raises(MissingWCSError, match=r'no_wcs\.fits: no celestial WCS'):
        TileIndex.from_files([good, bare])


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageReadError, match=r'absent\.fits: file not found'):
        TileIndex.from_files([tmp_path / 'absent.fits'])


def test_from_wcs_errors():
    with pytest.raises(ParameterError, match='at least one tile'):
        TileIndex.from_wcs([], np.zeros((0, 2), int))
    with pytest.raises(MissingWCSError, match='tile-x: no celestial WCS'):
        TileIndex.from_wcs([WCS(naxis=2)], [SHAPE], names=['tile-x'])
    with pytest.raises(ParameterError, match=r'\(ny, nx\) integer pairs'):
        TileIndex.from_wcs([tile_wcs()], [100])
    with pytest.raises(ParameterError, match='2 shapes'):
        TileIndex.from_wcs([tile_wcs()], [SHAPE, SHAPE])
    with pytest.raises(ParameterError, match='<tile 0>: tile shape must be positive'):
        TileIndex.from_wcs([tile_wcs()], [(0, 10)])
    planet = tile_wcs()
    planet.wcs.ctype = ['XLON-TAN', 'XLAT-TAN']
    with pytest.raises(MissingWCSError, match='<tile 0>: the celestial frame'):
        TileIndex.from_wcs([planet], [SHAPE])


# -- locating rows -----------------------------------------------------------------

def test_overlap_goes_to_the_tile_farthest_from_the_edge():
    # Tile b is tile a shifted by 60 pixels: a's x = b's x - 60.
    a, b = shifted(0), shifted(60)
    index = TileIndex.from_wcs([a, b], [SHAPE, SHAPE])
    # On a: x = 15.2 (box 11..20, margin 11); on b: x = 75.2 (box 71..80,
    # margin 19).  On a: x = 25.2 (margin 21); on b: x = 85.2 (margin 9).
    # x = 50.2 on a: box 46..55, margin 44 (along y: box 45..54).
    coords = at_pixels(a, [15.2, 25.2, 50.2])
    assignment = index.locate(coords, 10)
    assert isinstance(assignment, TileAssignment)
    assert assignment.tile.tolist() == [1, 0, 0]
    assert assignment.flag.tolist() == [0, 0, 0]
    assert assignment.flag.dtype == np.int16
    np.testing.assert_array_equal(assignment.margin, [19, 21, 44])


def test_gap_between_tiles_is_flag_1():
    # b lies 130 pixels towards higher RA: a gap of 30 pixels between them.
    a, b = shifted(0), shifted(130)
    index = TileIndex.from_wcs([a, b], [SHAPE, SHAPE])
    assignment = index.locate(at_pixels(a, -15.2), 10)
    assert assignment.tile.tolist() == [-1]
    assert assignment.flag.tolist() == [CutoutFlag.OFF_IMAGE]
    assert np.isnan(assignment.margin[0])


def test_partial_cover_takes_the_larger_overlap():
    # b lies 110 pixels towards higher RA: a gap of 10 pixels, smaller
    # than the 20-pixel cutout.
    a, b = shifted(0), shifted(110)
    index = TileIndex.from_wcs([a, b], [SHAPE, SHAPE])
    # a's x = -3.2: box -13..6 (7 columns on a), on b 97..116 (3 columns).
    # a's x = -8.2: box -18..1 (2 columns on a), on b 92..111 (8 columns).
    assignment = index.locate(at_pixels(a, [-3.2, -8.2]), 20)
    assert assignment.tile.tolist() == [0, 1]
    assert assignment.flag.tolist() == [CutoutFlag.PARTIAL] * 2
    np.testing.assert_array_equal(assignment.margin, [-13, 100 - 112])


def test_edge_convention_is_cutout2d_bbox():
    index = TileIndex.from_wcs([shifted(0)], [SHAPE])
    # The box starts at ceil(x - 5): x = 4.8 and 4.2 give 0..9, whole;
    # x = 3.8 gives -1..8, partial; x = 94.8 gives 90..99, whole, and
    # x = 95.2 gives 91..100, partial.
    x = [4.8, 4.2, 3.8, 94.8, 95.2]
    assignment = index.locate(at_pixels(index.wcs[0], x), 10)
    assert assignment.flag.tolist() == [0, 0, 2, 0, 2]
    np.testing.assert_array_equal(assignment.margin, [0, 0, -1, 0, -1])
    stand_in = np.zeros(SHAPE)
    for xi, flag in zip(x, assignment.flag):
        cut = Cutout2D(stand_in, (xi, 49.7), 10, mode='partial')
        assert (cut.data.shape != cut.data[cut.slices_cutout].shape) == (flag == 2)


def test_nan_and_empty_positions():
    index = TileIndex.from_wcs([shifted(0)], [SHAPE])
    inside = at_pixels(index.wcs[0], 50.0)
    coords = SkyCoord([np.nan, inside.ra.deg[0], 10.0], [0.0, inside.dec.deg[0], np.nan],
                      unit='deg')
    assignment = index.locate(coords, 10)
    assert assignment.flag.tolist() == [1, 0, 1]
    assert assignment.tile.tolist() == [-1, 0, -1]
    # A scalar is one row; no rows give empty arrays.
    assert index.locate(inside[0], 10).tile.tolist() == [0]
    empty = index.locate(inside[:0], 10)
    assert [len(a) for a in empty] == [0, 0, 0]


def test_angle_and_pixel_sizes_agree():
    a, b = shifted(0), shifted(60)
    index = TileIndex.from_wcs([a, b], [SHAPE, SHAPE])
    rng = np.random.default_rng(3)
    coords = at_pixels(a, rng.uniform(-80, 110, 400), rng.uniform(-10, 110, 400))
    expected = index.locate(coords, 12)
    for size in (12 * u.pix, 12 * SCALE * u.arcsec, (12, 12), (12 * u.arcsec, 12 * u.pix),
                 '12 arcsec', [12, 12] * u.arcsec, 0.2 * u.arcmin):
        got = index.locate(coords, size)
        for field in TileAssignment._fields:
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field),
                                          err_msg=f'{size}: {field}')
    assert set(expected.flag.tolist()) == {0, 1, 2}


def test_angle_size_uses_each_tiles_pixel_scale():
    # The same 10 arcsec cutout is 10 pixels on a, 20 pixels on b (0.5"/px).
    a = tile_wcs(10.0, 0.0)
    b = tile_wcs(10.0, 0.0, (200, 200), 0.5)
    index = TileIndex.from_wcs([a, b], [SHAPE, (200, 200)])
    # a's x = 8.2 is b's x = 99.5 + 2 * (8.2 - 49.5) = 16.9.  On b the
    # cutout is 20 pixels: box 7..26, margin 7; on a, box 4..13, margin 4.
    coords = at_pixels(a, 8.2)
    assignment = index.locate(coords, 10 * u.arcsec)
    assert assignment.tile.tolist() == [1]
    np.testing.assert_array_equal(assignment.margin, [7])
    # 10 pixels: box 12..21 on b.
    assert index.locate(coords, 10).margin.tolist() == [12]


def test_size_errors():
    index = TileIndex.from_wcs([shifted(0)], [SHAPE])
    coords = at_pixels(index.wcs[0], 50.0)
    with pytest.raises(ParameterError, match='must be positive'):
        index.locate(coords, -3)
    with pytest.raises(ParameterError, match='must be positive'):
        index.locate(coords, [-3, 4] * u.arcsec)
    with pytest.raises(ParameterError, match='pixels or an angle'):
        index.locate(coords, 3 * u.m)
    with pytest.raises(ParameterError, match='less than one pixel'):
        index.locate(coords, 0.1 * u.arcsec)
    with pytest.raises(UnsupportedInputError, match='SkyCoord'):
        index.locate([(10.0, 0.0)], 10)


@pytest.mark.skipif(not minversion(astropy, '7.0'),
                    reason="brute force against this astropy's Cutout2D: astropy 6.0 "
                           'rounds one edge case of 600 differently')
def test_matches_cutout2d_on_every_tile():
    """Brute force: Cutout2D on every tile decides what is whole or partial;
    the chosen tile has the largest margin (or overlap)."""
    wcs = [tile_wcs(10.0, 0.0), tile_wcs(10.02, 0.005, (80, 120), rotation=30),
           tile_wcs(10.01, -0.02, (150, 90), 0.7)]
    shapes = [SHAPE, (80, 120), (150, 90)]
    # A tile in galactic coordinates, near the others.
    centre = SkyCoord(10.03, -0.01, unit='deg').galactic
    wcs.append(tile_wcs(centre.l.deg, centre.b.deg, (90, 90), 1.2, galactic=True))
    shapes.append((90, 90))
    # Non-square pixels (where Cutout2D converts angles with the scale of
    # the other axis).
    wcs.append(tile_wcs(9.99, 0.02, (40, 100)))
    wcs[-1].wcs.cdelt = [-1 / 3600, 2 / 3600]
    shapes.append((40, 100))
    index = TileIndex.from_wcs(wcs, shapes)
    rng = np.random.default_rng(7)
    coords = SkyCoord(rng.uniform(9.98, 10.055, 600), rng.uniform(-0.045, 0.035, 600),
                      unit='deg')
    for size in (15, 11 * u.arcsec, (9, 21)):
        assignment = index.locate(coords, size)
        best = np.full((len(coords), 2), -np.inf)   # best margin (whole), area (partial)
        chosen = np.full(len(coords), np.nan)       # the same on the chosen tile
        n_whole = np.zeros(len(coords), int)        # tiles holding the cutout whole
        for t, (w, shape) in enumerate(zip(wcs, shapes)):
            stand_in = np.broadcast_to(np.float32(0), shape)
            xs, ys = skycoord_to_pixel(coords, w, mode='all')
            for i, (x, y) in enumerate(zip(xs, ys)):
                try:
                    cut = Cutout2D(stand_in, (x, y), size, wcs=w, mode='partial')
                except NoOverlapError:
                    continue
                (y0, y1), (x0, x1) = cut.bbox_original
                if (y1 - y0 + 1, x1 - x0 + 1) == cut.shape:
                    value = min(x0, y0, shape[1] - 1 - x1, shape[0] - 1 - y1)
                    best[i, 0] = max(best[i, 0], value)
                    n_whole[i] += 1
                else:
                    value = (y1 - y0 + 1) * (x1 - x0 + 1)
                    best[i, 1] = max(best[i, 1], value)
                if assignment.tile[i] == t:
                    chosen[i] = value
        whole, partial = np.isfinite(best[:, 0]), np.isfinite(best[:, 1])
        expected_flag = np.where(whole, 0, np.where(partial, 2, 1))
        np.testing.assert_array_equal(assignment.flag, expected_flag, err_msg=str(size))
        np.testing.assert_array_equal(assignment.margin[whole], best[whole, 0])
        np.testing.assert_array_equal(chosen[whole], best[whole, 0])
        np.testing.assert_array_equal(chosen[~whole & partial], best[~whole & partial, 1])
        assert np.all(assignment.margin[~whole & partial] < 0)
        assert np.all(np.isnan(assignment.margin[expected_flag == 1]))
        assert np.all(assignment.tile[expected_flag == 1] == -1)
        assert min(np.count_nonzero(expected_flag == f) for f in (0, 1, 2)) > 20
        assert np.count_nonzero(n_whole > 1) > 20
        for t in range(len(wcs)):     # each tile chosen for whole and partial rows
            assert {0, 2} <= set(assignment.flag[assignment.tile == t].tolist())


def test_partial_choice_matches_cutout2d_overlap():
    wcs = [shifted(0), shifted(110), tile_wcs(10.0 + 55 / 3600, 90 / 3600)]
    index = TileIndex.from_wcs(wcs, [SHAPE] * 3)
    rng = np.random.default_rng(11)
    coords = at_pixels(wcs[0], rng.uniform(-12, 2, 200), rng.uniform(80, 110, 200))
    assignment = index.locate(coords, 20)
    for i in np.flatnonzero(assignment.flag == 2):
        areas = []
        for w in wcs:
            try:
                cut = Cutout2D(np.broadcast_to(np.float32(0), SHAPE), coords[i], 20,
                               wcs=w, mode='partial')
            except NoOverlapError:
                areas.append(0)
                continue
            (y0, y1), (x0, x1) = cut.bbox_original
            areas.append((y1 - y0 + 1) * (x1 - x0 + 1))
        assert areas[assignment.tile[i]] == max(areas)
    assert np.count_nonzero(assignment.flag == 2) > 50


def test_chosen_tile_cuts_the_flag_it_promised(tmp_path):
    """The lead's use: cut each group from its tile with iter_cutouts."""
    paths = [write_tile(tmp_path / 'a.fits', shifted(0)),
             write_tile(tmp_path / 'b.fits.fz', shifted(60), compressed=True)]
    index = TileIndex.from_files(paths)
    coords = at_pixels(index.wcs[0], np.linspace(-70, 120, 40), np.linspace(-5, 105, 40))
    assignment = index.locate(coords, 12)
    seen = []
    for tile, rows in index.groups(assignment):
        seen.append(tile)
        for row, result in zip(rows, iter_cutouts(index.paths[tile], coords[rows], 12,
                                                  hdu=index.hdus[tile])):
            assert int(result.flag & (CutoutFlag.OFF_IMAGE | CutoutFlag.PARTIAL)) == \
                assignment.flag[row]
    assert seen == [0, 1]


def test_groups_in_tile_order():
    assignment = TileAssignment(np.array([2, -1, 0, 2, 0, 5]), np.zeros(6, np.int16),
                                np.zeros(6))
    index = TileIndex.from_wcs([shifted(60 * i) for i in range(6)], [SHAPE] * 6)
    groups = [(tile, rows.tolist()) for tile, rows in index.groups(assignment)]
    assert groups == [(0, [2, 4]), (2, [0, 3]), (5, [5])]
    none = TileAssignment(np.array([-1, -1]), np.ones(2, np.int16), np.full(2, np.nan))
    assert list(index.groups(none)) == []


# -- scale ---------------------------------------------------------------------------

def test_scale_2000_tiles_50000_rows():
    # A 50 x 40 grid of 360 x 360 tiles of 1"/px (0.1 deg), 0.09 deg apart
    # (36 pixels of overlap), around the equator.
    shape = (360, 360)
    ras, decs = np.meshgrid(100 + 0.09 * np.arange(50), -1.8 + 0.09 * np.arange(40))
    wcs = [tile_wcs(ra, dec, shape) for ra, dec in zip(ras.ravel(), decs.ravel())]
    start = time.perf_counter()
    index = TileIndex.from_wcs(wcs, [shape] * len(wcs))
    build = time.perf_counter() - start
    rng = np.random.default_rng(5)
    n = 50_000
    inside = SkyCoord(rng.uniform(100, 104.41, n - 1000), rng.uniform(-1.8, 1.71, n - 1000),
                      unit='deg')
    outside = SkyCoord(rng.uniform(0, 90, 1000), rng.uniform(-60, 60, 1000), unit='deg')
    coords = SkyCoord(np.r_[inside.ra.deg, outside.ra.deg],
                      np.r_[inside.dec.deg, outside.dec.deg], unit='deg')
    start = time.perf_counter()
    assignment = index.locate(coords, 16)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f'locate took {elapsed:.1f} s'
    assert build < 10, f'building the index took {build:.1f} s'
    # Every row inside the grid fits whole in some tile (the overlap is
    # wider than the cutout), every row far outside is in none.
    assert np.all(assignment.flag[:n - 1000] == 0)
    assert np.all(assignment.flag[n - 1000:] == 1)
    # The margin is right on the chosen tile, and no tile does better
    # for a sample of rows (all tiles are ICRS: all_world2pix of RA, Dec
    # is skycoord_to_pixel).
    ra, dec = coords.ra.deg, coords.dec.deg
    for tile, rows in index.groups(assignment):
        x, y = index.wcs[tile].all_world2pix(ra[rows], dec[rows], 0)
        x0, y0 = np.ceil(x - 8), np.ceil(y - 8)
        np.testing.assert_array_equal(assignment.margin[rows],
                                      np.minimum.reduce([x0, y0, 344 - x0, 344 - y0]))
    sample = rng.choice(n - 1000, 50, replace=False)
    for w in index.wcs:
        x, y = w.all_world2pix(ra[sample], dec[sample], 0)
        x0, y0 = np.ceil(x - 8), np.ceil(y - 8)
        margin = np.minimum.reduce([x0, y0, 344 - x0, 344 - y0])
        assert np.all(margin <= assignment.margin[sample])
