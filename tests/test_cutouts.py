# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.cutouts: catalog positions, cutout geometry and
flags, and section reading (the large image is never loaded whole)."""

import hashlib
import tracemalloc

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS

from astroclusterclf.cutouts import (CutoutFlag, catalog_positions, iter_cutouts,
                                     make_cutouts, parse_size)
from astroclusterclf.io import read_image
from astroclusterclf.exceptions import (CatalogError, HDUNotFoundError, ImageReadError,
                                        MissingWCSError, NoImageDataError)

PIXEL_SCALE = 0.5  # arcsec


def make_wcs(shape, pixel_scale=PIXEL_SCALE):
    w = WCS(naxis=2)
    w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    w.wcs.cdelt = [-pixel_scale / 3600, pixel_scale / 3600]
    w.wcs.cunit = ['deg', 'deg']
    return w


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def image_file(tmp_path):
    """A 200 x 300 float32 image with a WCS, pixel value = 1000 y + x."""
    shape = (200, 300)
    y, x = np.mgrid[:shape[0], :shape[1]]
    data = (1000.0 * y + x).astype(np.float32)
    path = tmp_path / 'image.fits'
    header = make_wcs(shape).to_header()
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(data, header=header, name='SCI')]).writeto(path)
    return path, data


def test_interior_partial_off(image_file):
    path, data = image_file
    results = make_cutouts(path, [(100, 50), (298, 50), (-40, 50), (1, 198)], 10)
    inner, edge, off, corner = results
    assert inner.flag == 0 and inner.bad_fraction == 0
    np.testing.assert_array_equal(inner.cutout.data, data[45:55, 95:105])
    assert inner.cutout.data.dtype == np.float32

    assert edge.flag == CutoutFlag.PARTIAL
    assert edge.cutout.shape == (10, 10)
    np.testing.assert_array_equal(edge.cutout.data[:, :7], data[45:55, 293:300])
    assert np.all(np.isnan(edge.cutout.data[:, 7:]))
    assert edge.bad_fraction == pytest.approx(0.3)

    assert off.flag == CutoutFlag.OFF_IMAGE and off.cutout is None
    assert off.bad_fraction == 1.0

    # a corner: 6 x 7 of 100 pixels on the image -> also too many bad pixels
    assert corner.flag == CutoutFlag.PARTIAL | CutoutFlag.BAD_PIXELS
    assert int(corner.flag) == 6


def test_sky_positions_and_cutout_wcs(image_file):
    path, data = image_file
    wcs = make_wcs(data.shape)
    coord = wcs.pixel_to_world(120, 80)
    (result,) = make_cutouts(path, coord, 11)
    assert result.flag == 0
    # value 1000 y + x at the centre of an odd-sized cutout
    assert result.cutout.data[5, 5] == 1000 * 80 + 120
    cx, cy = result.cutout.wcs.world_to_pixel(coord)
    assert (float(cx), float(cy)) == pytest.approx((5, 5), abs=1e-6)


def test_catalog_table_and_angle_size(image_file):
    path, data = image_file
    wcs = make_wcs(data.shape)
    coords = wcs.pixel_to_world([50, 150, 250], [100, 100, 100])
    table = Table({'RAJ2000': coords.ra.deg, 'DEJ2000': coords.dec.deg})
    results = make_cutouts(path, table, 8 * u.arcsec, ra='RAJ2000', dec='DEJ2000')
    assert [r.cutout.shape for r in results] == [(16, 16)] * 3
    assert [r.flag for r in results] == [0, 0, 0]
    # a (ny, nx) pair in pixels and angle
    (r,) = make_cutouts(path, coords[0], (10, 5 * u.arcsec))
    assert r.cutout.shape == (10, 10)


def test_scaled_int16_read_through_section(tmp_path):
    raw = np.arange(60 * 80, dtype=np.int16).reshape(60, 80) % 1000
    hdu = fits.PrimaryHDU(raw, header=make_wcs(raw.shape).to_header())
    hdu.header['BSCALE'] = 0.5
    hdu.header['BZERO'] = 100.0
    path = tmp_path / 'scaled.fits'
    hdu.writeto(path)
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        assert hdul[0].header['BITPIX'] == 16
    before = sha256(path)
    (r,) = make_cutouts(path, [(40, 30)], 6)
    expected = raw[27:33, 37:43] * 0.5 + 100
    np.testing.assert_allclose(r.cutout.data, expected)
    assert sha256(path) == before


def test_cube_cutouts(tmp_path):
    cube = np.stack([np.full((50, 60), band, np.float32) for band in range(3)])
    header = make_wcs(cube.shape[1:]).to_header()
    path = tmp_path / 'cube.fits'
    fits.PrimaryHDU(cube, header=header).writeto(path)
    (r,) = make_cutouts(path, [(30, 25)], 8)
    assert r.cutout.data.shape == (3, 8, 8)
    assert r.cutout.wcs.naxis == 2
    np.testing.assert_array_equal(r.cutout.data[:, 0, 0], [0, 1, 2])


@pytest.mark.parametrize('scaled', [False, True])
def test_large_image_never_loaded_whole(tmp_path, scaled):
    shape = (2048, 2048)                 # 16 MB as float32
    path = tmp_path / 'large.fits'
    data = np.ones(shape, dtype=np.int16 if scaled else np.float32)
    hdu = fits.PrimaryHDU(data)
    if scaled:
        hdu.header['BSCALE'] = 2.0
        hdu.header['BZERO'] = 10.0
    hdu.writeto(path)
    nbytes = shape[0] * shape[1] * 4
    del data
    positions = [(x, y) for x in range(100, 2000, 400) for y in range(100, 2000, 400)]
    tracemalloc.start()
    try:
        results = make_cutouts(path, positions, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(results) == 25 and all(r.flag == 0 for r in results)
    assert np.all(results[0].cutout.data == (12.0 if scaled else 1.0))
    assert peak < nbytes / 10


def test_in_memory_inputs(image_file):
    path, data = image_file
    wcs = make_wcs(data.shape)
    coord = wcs.pixel_to_world(60, 40)
    expected = data[37:44, 57:64]
    with fits.open(path) as hdul:
        for source in (hdul, hdul['SCI']):
            (r,) = make_cutouts(source, coord, 7)
            np.testing.assert_array_equal(r.cutout.data, expected)
    for source in ((data, wcs), data):
        (r,) = make_cutouts(source, [(60, 40)], 7)
        np.testing.assert_array_equal(r.cutout.data, expected)


def test_hdu_selection_and_errors(image_file, tmp_path):
    path, data = image_file
    (r,) = make_cutouts(path, [(10, 10)], 4, hdu='SCI')
    assert r.flag == 0
    with pytest.raises(HDUNotFoundError, match='no HDU 5'):
        make_cutouts(path, [(10, 10)], 4, hdu=5)
    with pytest.raises(ImageReadError, match='missing.fits: file not found'):
        make_cutouts(tmp_path / 'missing.fits', [(1, 1)], 4)
    # The same messages as the reader's: one resolver.
    for hdu, error in ((5, HDUNotFoundError), (None, ImageReadError)):
        source = path if hdu is not None else tmp_path / 'missing.fits'
        with pytest.raises(error) as from_cutouts:
            make_cutouts(source, [(1, 1)], 4, hdu=hdu)
        with pytest.raises(error) as from_reader:
            read_image(source, hdu=hdu)
        assert str(from_cutouts.value) == str(from_reader.value)
    garbage = tmp_path / 'garbage.fits'
    garbage.write_bytes(b'not a FITS file at all' * 10)
    with pytest.raises(ImageReadError, match='garbage.fits'):
        make_cutouts(garbage, [(1, 1)], 4)
    table_only = tmp_path / 'table.fits'
    fits.HDUList([fits.PrimaryHDU(),
                  fits.BinTableHDU(Table({'a': [1, 2]}))]).writeto(table_only)
    with pytest.raises(NoImageDataError, match='table.fits'):
        make_cutouts(table_only, [(1, 1)], 4)


def test_no_wcs(tmp_path):
    path = tmp_path / 'nowcs.fits'
    fits.PrimaryHDU(np.zeros((20, 20), np.float32)).writeto(path)
    with pytest.raises(MissingWCSError, match='nowcs.fits.*no celestial WCS'):
        make_cutouts(path, SkyCoord(1 * u.deg, 2 * u.deg), 4)
    # pixel positions need no WCS
    (r,) = make_cutouts(path, [(10, 10)], 4)
    assert r.flag == 0 and r.cutout.wcs is None


def test_catalog_positions():
    table = Table({'ra': [10.0, 20.0], 'dec': [-5.0, 5.0], 'name': ['a', 'b']})
    with pytest.raises(CatalogError, match=r"no column 'RA'.*columns present: ra, dec, name"):
        catalog_positions(table, ra='RA')
    table['ra_h'] = [1.0, 2.0] * u.hourangle
    coords = catalog_positions(table, ra='ra_h')
    assert coords.ra.deg == pytest.approx([15.0, 30.0])
    table['dec'] = MaskedColumn([1.0, 2.0], mask=[False, True])
    assert np.isnan(catalog_positions(table).dec.deg[1])
    with pytest.raises(CatalogError, match="'name' does not hold angles"):
        catalog_positions(table, dec='name')
    table['dist'] = [1.0, 2.0] * u.pc
    with pytest.raises(CatalogError, match="'dist' has unit pc"):
        catalog_positions(table, dec='dist')


def test_masked_position_is_off_image(image_file):
    path, data = image_file
    coords = make_wcs(data.shape).pixel_to_world([50, 60], [50, 60])
    table = Table({'ra': coords.ra.deg,
                   'dec': MaskedColumn(coords.dec.deg, mask=[False, True])})
    assert [r.flag for r in make_cutouts(path, table, 8)] == [0, CutoutFlag.OFF_IMAGE]


def test_iter_cutouts_is_lazy(image_file):
    path, _ = image_file
    results = iter_cutouts(path, [(10, 10), (20, 20)], 4)
    first = next(results)
    assert first.flag == 0 and first.cutout.shape == (4, 4)
    results.close()                      # closes the file


def test_bad_pixels(tmp_path):
    data = np.ones((40, 40), np.float32)
    data[:, :22] = np.nan
    flags = [r.flag for r in make_cutouts(data, [(20, 20), (30, 20)], 10)]
    assert flags == [CutoutFlag.BAD_PIXELS, 0]
    flags = [r.flag for r in make_cutouts(data, [(20, 20)], 10, max_bad_fraction=0.8)]
    assert flags == [0]
    with pytest.raises(ValueError, match='max_bad_fraction'):
        make_cutouts(data, [(20, 20)], 10, max_bad_fraction=2)


@pytest.mark.parametrize('size, expected', [
    (64, 64), (63.6, 64), ('64', 64), ('30 arcsec', 30 * u.arcsec),
    ('16 pix', 16 * u.pix), ((10, '2 arcmin'), (10, 2 * u.arcmin))])
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize('size', [0, -3, '5 kg', 'big', '-2 arcsec', (1, 2, 3)])
def test_parse_size_errors(size):
    with pytest.raises(ValueError, match='size'):
        parse_size(size)


@pytest.mark.parametrize('ra, dec', [('ra', 'dec'), ('RA', 'DEC'), ('RAJ2000', 'DEJ2000'),
                                     ('RA_ICRS', 'DE_ICRS'), ('ALPHA_J2000', 'DELTA_J2000'),
                                     ('Ra', 'Dec')])
def test_catalog_position_columns_are_recognised(ra, dec):
    table = Table({'id': [1, 2], ra: [10.0, 20.0] * u.deg, dec: [-5.0, 5.0] * u.deg})
    coords = catalog_positions(table)
    assert coords.ra.deg == pytest.approx([10.0, 20.0])
    assert coords.dec.deg == pytest.approx([-5.0, 5.0])


def test_catalog_skycoord_column():
    table = Table({'id': [1], 'sky_centroid': SkyCoord([10.0], [-5.0], unit='deg')})
    assert catalog_positions(table).ra.deg == pytest.approx([10.0])
    assert catalog_positions(table, ra='sky_centroid').dec.deg == pytest.approx([-5.0])
    table['other'] = SkyCoord([1.0], [2.0], unit='deg')
    with pytest.raises(CatalogError, match='several SkyCoord columns'):
        catalog_positions(table)


def test_catalog_without_position_columns():
    with pytest.raises(CatalogError, match=r"no position columns: tried a SkyCoord column and "
                                           r"ra/dec, RA/DEC, RAJ2000/DEJ2000, RA_ICRS/DE_ICRS, "
                                           r"ALPHA_J2000/DELTA_J2000; columns present: x, y; "
                                           r"name them with ra=/dec= "
                                           r"\(--ra-column/--dec-column\)"):
        catalog_positions(Table({'x': [1.0], 'y': [2.0]}))
