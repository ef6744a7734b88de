# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.io.read_image on every input kind and error."""

import gzip

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.wcsapi import HighLevelWCSWrapper
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from helpers import unchanged
from astroclusterclf import (AstroClusterClfError, HDUNotFoundError, ImageData,
                             ImageReadError, InvalidImageError,
                             NoImageDataError, UnsupportedInputError,
                             read_image)
from astroclusterclf.cutouts import make_cutouts
from astroclusterclf.io import SUPPORTED_EXTENSIONS, is_image_file, resolve_image


# -- helpers -----------------------------------------------------------------

def make_wcs(naxis=2):
    wcs = WCS(naxis=naxis)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN'] + ['WAVE'] * (naxis - 2)
    wcs.wcs.crval = [250.4, 36.46] + [5e-7] * (naxis - 2)
    wcs.wcs.crpix = [16.5, 12.5] + [1.0] * (naxis - 2)
    wcs.wcs.cdelt = [-1e-4, 1e-4] + [1e-7] * (naxis - 2)
    wcs.wcs.cunit = ['deg', 'deg'] + ['m'] * (naxis - 2)
    return wcs


@pytest.fixture
def image2d():
    rng = np.random.default_rng(42)
    return rng.normal(100.0, 5.0, (24, 32)).astype(np.float32)


@pytest.fixture
def fits_path(tmp_path, image2d):
    path = tmp_path / 'image.fits'
    fits.PrimaryHDU(image2d, header=make_wcs().to_header()).writeto(path)
    return path


# -- extensions --------------------------------------------------------------

@pytest.mark.parametrize('name', ['a.fits', 'a.FITS', 'a.fit', 'a.fts',
                                  'a.fits.gz', 'a.Fit.GZ', 'a.fts.gz',
                                  'a.fits.fz', 'a.png', 'a.JPG', 'a.jpeg',
                                  'a.tif', 'a.TIFF', 'dir.v2/a.fits'])
def test_is_image_file_true(name):
    assert is_image_file(name)


@pytest.mark.parametrize('name', ['a.txt', 'a.ecsv', 'a.gz', 'a.fz',
                                  'fits', 'a.fits.bz2', 'a.png.txt'])
def test_is_image_file_false(name):
    assert not is_image_file(name)


def test_supported_extensions_lower_case():
    assert all(ext == ext.lower() and ext.startswith('.')
               for ext in SUPPORTED_EXTENSIONS)


# -- FITS files --------------------------------------------------------------

@pytest.mark.parametrize('suffix', ['.fits', '.fit', '.fts', '.FITS',
                                    '.fits.gz', '.fit.gz', '.fts.gz',
                                    '.FITS.GZ'])
def test_read_fits_file(tmp_path, image2d, suffix):
    path = tmp_path / f'image{suffix}'
    fits.PrimaryHDU(image2d, header=make_wcs().to_header()).writeto(path)
    with unchanged(path):
        image = read_image(path)
    assert isinstance(image, ImageData)
    assert image.data.dtype == np.float32
    assert image.data.dtype.isnative
    assert_array_equal(image.data, image2d)
    assert image.header['CTYPE1'] == 'RA---TAN'
    assert image.wcs.has_celestial
    assert_allclose(image.wcs.wcs.crval, [250.4, 36.46])
    assert image.name == str(path)


def test_read_fits_str_path_keeps_name(fits_path):
    image = read_image(str(fits_path))
    assert image.name == str(fits_path)


def test_read_fits_returns_copy_not_memmap(fits_path):
    with unchanged(fits_path):
        image = read_image(fits_path)
        assert not isinstance(image.data, np.memmap)
        assert image.data.flags.writeable and image.data.flags.owndata
        image.data[:] = 0  # must not reach the file
    assert fits.getdata(fits_path).max() > 0


def test_read_tile_compressed_fz(tmp_path, image2d):
    path = tmp_path / 'image.fits.fz'
    counts = np.round(image2d).astype(np.int32)  # RICE is lossless for ints
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(counts, header=make_wcs().to_header())]
                 ).writeto(path)
    with unchanged(path):
        image = read_image(path)
    assert_array_equal(image.data, counts)
    assert image.header['CTYPE2'] == 'DEC--TAN'
    assert image.wcs is not None


def test_bscale_bzero_applied(tmp_path):
    raw = np.arange(12, dtype=np.int16).reshape(3, 4)
    hdu = fits.PrimaryHDU(raw)
    hdu.header['BSCALE'] = 2.5
    hdu.header['BZERO'] = 1000.0
    path = tmp_path / 'scaled.fits'
    hdu.writeto(path)
    with unchanged(path):
        image = read_image(path)
    assert_allclose(image.data, raw * 2.5 + 1000.0)
    assert image.data.dtype.kind == 'f'


def test_unsigned_bzero_and_blank(tmp_path):
    raw = np.array([[0, 65535], [40000, 7]], dtype=np.uint16)
    path = tmp_path / 'uint.fits'
    fits.PrimaryHDU(raw).writeto(path)
    assert_array_equal(read_image(path).data, raw)

    blanked = np.array([[1, -999], [3, 4]], dtype=np.int16)
    hdu = fits.PrimaryHDU(blanked)
    hdu.header['BLANK'] = -999
    path = tmp_path / 'blank.fits'
    hdu.writeto(path)
    data = read_image(path).data
    assert np.isnan(data[0, 1])
    assert_array_equal(data[np.isfinite(data)], [1, 3, 4])


def test_integer_dtypes(tmp_path):
    for dtype, expected in [('uint8', np.float32), ('int16', np.float32),
                            ('int32', np.float64), ('float64', np.float64)]:
        path = tmp_path / f'{dtype}.fits'
        fits.PrimaryHDU(np.arange(6, dtype=dtype).reshape(2, 3)).writeto(path)
        assert read_image(path).data.dtype == expected


def test_cube_bands_first_and_celestial_wcs(tmp_path):
    cube = np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    path = tmp_path / 'cube.fits'
    fits.PrimaryHDU(cube, header=make_wcs(3).to_header()).writeto(path)
    image = read_image(path)
    assert image.data.shape == (3, 5, 7)
    assert_array_equal(image.data[2], cube[2])
    assert image.wcs.naxis == 2 and image.wcs.has_celestial
    assert image.header['NAXIS3'] == 3


def test_degenerate_leading_axes_dropped():
    image = read_image(np.ones((1, 1, 4, 5)))
    assert image.data.shape == (4, 5)


def test_first_image_hdu_skips_empty_primary_and_tables(tmp_path, image2d):
    table = fits.BinTableHDU(Table({'a': [1, 2]}), name='CAT')
    hdul = fits.HDUList([fits.PrimaryHDU(), table,
                         fits.ImageHDU(image2d, name='SCI'),
                         fits.ImageHDU(image2d * 2, name='ERR')])
    path = tmp_path / 'mef.fits'
    hdul.writeto(path)
    with unchanged(path):
        image = read_image(path)
        assert image.header['EXTNAME'] == 'SCI'
        assert_array_equal(image.data, image2d)
        assert_array_equal(read_image(path, hdu='ERR').data, image2d * 2)
        assert_array_equal(read_image(path, hdu='err').data, image2d * 2)
        assert_array_equal(read_image(path, hdu=3).data, image2d * 2)
        assert_array_equal(read_image(path, hdu=('SCI', 1)).data, image2d)


# -- in-memory FITS objects --------------------------------------------------

def test_hdulist_not_closed_and_named(fits_path):
    with fits.open(fits_path) as hdul:
        image = read_image(hdul)
        assert image.name == str(fits_path)
        assert hdul[0].data is not None  # still usable
        assert not np.shares_memory(image.data, hdul[0].data)

    hdul = fits.HDUList([fits.PrimaryHDU(np.ones((3, 3)))])
    assert read_image(hdul).name == '<HDUList>'


@pytest.mark.parametrize('kind', ['primary', 'image', 'compressed'])
def test_hdu_objects(image2d, kind):
    header = make_wcs().to_header()
    hdu = {'primary': fits.PrimaryHDU,
           'image': fits.ImageHDU,
           'compressed': fits.CompImageHDU}[kind](image2d, header=header)
    image = read_image(hdu)
    assert_allclose(image.data, image2d, rtol=1e-3 if kind == 'compressed'
                    else 0)
    assert image.wcs.has_celestial
    assert image.name.startswith('<') and 'HDU' in image.name
    assert not np.shares_memory(image.data, hdu.data)


def test_hdulist_with_compressed_hdu(image2d):
    counts = np.round(image2d).astype(np.int16)
    hdul = fits.HDUList([fits.PrimaryHDU(),
                         fits.CompImageHDU(counts, name='COMP')])
    assert_array_equal(read_image(hdul).data, counts)
    assert_array_equal(read_image(hdul, hdu='COMP').data, counts)


def test_array_header_tuple(image2d):
    header = make_wcs().to_header()
    image = read_image((image2d, header))
    assert_array_equal(image.data, image2d)
    assert image.header is not header and image.header['CTYPE1'] == 'RA---TAN'
    assert image.wcs.has_celestial
    assert image.name == '<(array, Header)>'


def test_array_wcs_tuple(image2d):
    wcs = make_wcs()
    image = read_image((image2d, wcs))
    assert image.wcs.wcs.ctype[0] == 'RA---TAN'
    assert image.header['CTYPE1'] == 'RA---TAN'
    assert not np.shares_memory(image.data, image2d)


def test_array_none_tuple(image2d):
    image = read_image((image2d, None))
    assert image.header is None and image.wcs is None


def test_header_without_wcs_gives_no_wcs(image2d):
    image = read_image((image2d, fits.Header({'OBJECT': 'M13'})))
    assert image.wcs is None
    assert image.header['OBJECT'] == 'M13'


def test_nddata_with_mask_and_wcs(image2d):
    mask = np.zeros(image2d.shape, dtype=bool)
    mask[3, 4] = True
    nd = NDData(image2d, mask=mask, wcs=make_wcs())
    image = read_image(nd)
    assert np.isnan(image.data[3, 4])
    assert np.isfinite(image.data).sum() == image2d.size - 1
    assert image.wcs.has_celestial
    assert image.name == '<NDData>'
    assert np.isfinite(image2d).all()  # the input is untouched


def test_ccddata_header(image2d):
    header = make_wcs().to_header()
    header['OBJECT'] = 'NGC 6205'
    ccd = CCDData(image2d, unit='adu', meta=header)
    image = read_image(ccd)
    assert image.header['OBJECT'] == 'NGC 6205'
    assert image.name == '<CCDData>'
    assert_array_equal(image.data, image2d)


def test_plain_arrays(image2d):
    image = read_image(image2d)
    assert image == (image.data, None, None, '<ndarray>')
    assert not np.shares_memory(image.data, image2d)
    assert read_image(np.ones((3, 4, 5), dtype=np.uint8)).data.shape == (
        3, 4, 5)
    assert read_image(np.ones((2, 2), dtype=bool)).data.dtype == np.float32


def test_masked_array(image2d):
    masked = np.ma.masked_greater(image2d, 105)
    data = read_image(masked).data
    assert_array_equal(np.isnan(data), image2d > 105)


# -- PNG / JPEG / TIFF -------------------------------------------------------

@pytest.fixture
def gradient():
    return (np.arange(20 * 30) % 256).astype(np.uint8).reshape(20, 30)


def test_png_greyscale(tmp_path, gradient):
    path = tmp_path / 'grey.png'
    Image.fromarray(gradient).save(path)
    with unchanged(path):
        image = read_image(path)
    assert image.data.dtype == np.float32
    assert_array_equal(image.data, gradient)
    assert image.header is None and image.wcs is None


def test_png_rgb_is_bands_first(tmp_path, gradient):
    rgb = np.stack([gradient, 255 - gradient, gradient // 2], axis=-1)
    path = tmp_path / 'rgb.PNG'
    Image.fromarray(rgb).save(path, format='PNG')
    data = read_image(path).data
    assert data.shape == (3, 20, 30)
    assert_array_equal(data[0], gradient)
    assert_array_equal(data[1], 255 - gradient)
    assert_array_equal(data[2], gradient // 2)


def test_png_rgba_drops_alpha(tmp_path, gradient):
    rgba = np.stack([gradient, gradient, gradient, np.full_like(gradient, 7)],
                    axis=-1)
    path = tmp_path / 'rgba.png'
    Image.fromarray(rgba, 'RGBA').save(path)
    data = read_image(path).data
    assert data.shape == (3, 20, 30)
    assert_array_equal(data[1], gradient)


def test_png_la_drops_alpha(tmp_path, gradient):
    path = tmp_path / 'la.png'
    Image.fromarray(gradient).convert('LA').save(path)
    assert_array_equal(read_image(path).data, gradient)


def test_png_palette_colour_and_grey(tmp_path, gradient):
    rgb = np.stack([gradient, 255 - gradient, np.zeros_like(gradient)], -1)
    path = tmp_path / 'palette.png'
    Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE).save(path)
    with Image.open(path) as im:
        assert im.mode == 'P'
        expected = np.moveaxis(np.asarray(im.convert('RGB')), -1, 0)
    assert_array_equal(read_image(path).data, expected)

    path = tmp_path / 'grey_palette.png'
    Image.fromarray(gradient).convert('P').save(path)
    with Image.open(path) as im:
        assert im.mode == 'P'
    data = read_image(path).data
    assert data.shape == (20, 30)
    assert_array_equal(data, gradient)


def test_png_16bit(tmp_path):
    deep = (np.arange(20 * 30, dtype=np.uint16) * 100).reshape(20, 30)
    path = tmp_path / 'deep.png'
    Image.fromarray(deep).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith('I')
    data = read_image(path).data
    assert data.max() == deep.max() > 255
    assert_array_equal(data, deep)


def write_png_rgb16(path, rgb):
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind, payload):
        crc = zlib.crc32(kind + payload) & 0xffffffff
        return struct.pack('>I', len(payload)) + kind + payload + \
            struct.pack('>I', crc)

    height, width, _ = rgb.shape
    rows = b''.join(b'\0' + row.astype('>u2').tobytes() for row in rgb)
    path.write_bytes(b'\x89PNG\r\n\x1a\n'
                     + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height,
                                                  16, 2, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(rows))
                     + chunk(b'IEND', b''))


def test_png_rgb_16bit(tmp_path):
    rgb = (np.arange(20 * 30 * 3, dtype=np.uint16) * 30).reshape(20, 30, 3)
    path = tmp_path / 'rgb16.png'
    write_png_rgb16(path, rgb)
    with unchanged(path):
        data = read_image(path).data
    assert data.shape == (3, 20, 30)
    # Pillow keeps the 8 most significant bits of 16-bit colour images
    expected = np.moveaxis(rgb, -1, 0).astype(float)
    assert_allclose(data / data.max(), expected / expected.max(), atol=0.01)


@pytest.mark.parametrize('mode', ['I;16', 'I', 'F', '1', 'CMYK'])
def test_tiff_modes(tmp_path, gradient, mode):
    if mode == 'I;16':
        im = Image.fromarray(gradient.astype(np.uint16) * 250)
    else:
        im = Image.fromarray(gradient).convert(mode)
    path = tmp_path / 'image.tiff'
    im.save(path)
    data = read_image(path).data
    assert data.dtype == np.float32
    assert data.shape == ((3, 20, 30) if mode == 'CMYK' else (20, 30))
    if mode == 'I;16':
        assert_array_equal(data, gradient.astype(np.float32) * 250)
    elif mode in ('I', 'F'):
        assert_array_equal(data, gradient)


@pytest.mark.parametrize('suffix', ['.jpg', '.jpeg', '.JPEG'])
def test_jpeg(tmp_path, gradient, suffix):
    path = tmp_path / f'image{suffix}'
    image = Image.fromarray(np.stack([gradient] * 3, -1))
    image.save(path, format='JPEG', quality=95)
    data = read_image(path).data
    assert data.shape == (3, 20, 30)
    assert np.abs(data[0] - gradient).mean() < 10


# -- errors ------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / 'missing.fits'
    with pytest.raises(ImageReadError, match=r'missing\.fits: file not found'):
        read_image(path)
    assert not path.exists()


def test_directory(tmp_path):
    folder = tmp_path / 'folder.fits'
    folder.mkdir()
    with pytest.raises(ImageReadError, match=r'folder\.fits: is a folder, not an image file'):
        read_image(folder)


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.fits'
    path.write_bytes(b'')
    with unchanged(path), pytest.raises(ImageReadError,
                                        match=r'empty\.fits: empty file'):
        read_image(path)
    assert path.stat().st_size == 0


@pytest.mark.parametrize('name', ['notes.fits', 'notes.fits.gz',
                                  'notes.fits.fz'])
def test_text_file_named_fits(tmp_path, name):
    path = tmp_path / name
    path.write_text('This is not a FITS file.\n' * 20)
    with unchanged(path), pytest.raises(
            ImageReadError, match=rf'{name}: not a valid FITS file'):
        read_image(path)


@pytest.mark.parametrize('name', ['notes.png', 'notes.jpg', 'notes.tif'])
def test_text_file_named_picture(tmp_path, name):
    path = tmp_path / name
    path.write_text('This is not a picture.\n' * 20)
    with unchanged(path), pytest.raises(ImageReadError,
                                        match=rf'{name}: not a valid'):
        read_image(path)


@pytest.mark.parametrize('keep', [0.5, 'padding'])
def test_truncated_fits(fits_path, keep):
    full = fits_path.read_bytes()
    # 'padding': only the zero padding after the data is missing; astropy
    # reads the data and merely warns, which must still be an error.
    length = (2880 + 24 * 32 * 4 if keep == 'padding'
              else int(len(full) * keep))
    fits_path.write_bytes(full[:length])
    with unchanged(fits_path), pytest.raises(
            ImageReadError, match=r'image\.fits: the FITS file is truncated'):
        read_image(fits_path)


def test_truncated_header(fits_path):
    fits_path.write_bytes(fits_path.read_bytes()[:1000])
    with unchanged(fits_path), pytest.raises(
            ImageReadError, match=r'image\.fits: .*truncated or corrupt .*'
                                  r'Header size is not multiple of 2880'):
        read_image(fits_path)


def test_truncated_gzip_and_fz(tmp_path, image2d):
    path = tmp_path / 'image.fits.gz'
    fits.PrimaryHDU(image2d).writeto(path)
    path.write_bytes(path.read_bytes()[:-200])
    with unchanged(path), pytest.raises(ImageReadError, match=r'image\.fits\.gz'):
        read_image(path)

    path = tmp_path / 'image.fits.fz'
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image2d)]).writeto(path)
    path.write_bytes(path.read_bytes()[:-3000])
    with unchanged(path), pytest.raises(ImageReadError,
                                        match='FITS file is truncated'):
        read_image(path)


def test_truncated_png(tmp_path, gradient):
    path = tmp_path / 'cut.png'
    Image.fromarray(gradient).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with unchanged(path), pytest.raises(ImageReadError, match=r'cut\.png'):
        read_image(path)


def test_header_only_fits(tmp_path):
    path = tmp_path / 'header_only.fits'
    fits.PrimaryHDU().writeto(path)
    with unchanged(path), pytest.raises(
            NoImageDataError, match=r'header_only\.fits: no HDU holds a 2-D or 3-D image'):
        read_image(path)


def test_table_only_fits(tmp_path):
    path = tmp_path / 'table.fits'
    fits.HDUList([fits.PrimaryHDU(),
                  fits.BinTableHDU(Table({'a': [1.0]}), name='CAT')]
                 ).writeto(path)
    with unchanged(path), pytest.raises(NoImageDataError, match="'CAT'"):
        read_image(path)
    with unchanged(path), pytest.raises(NoImageDataError,
                                        match="HDU 'CAT' .*no 2-D or 3-D image"):
        read_image(path, hdu='CAT')


def test_header_only_hdu_object():
    with pytest.raises(NoImageDataError, match='PrimaryHDU.*no 2-D or 3-D image'):
        read_image(fits.PrimaryHDU())


def test_unknown_extname(fits_path):
    with unchanged(fits_path), pytest.raises(
            HDUNotFoundError, match=r"image\.fits: no HDU 'NOPE'.*available: "
                                    r"0 \(PRIMARY\)") as excinfo:
        read_image(fits_path, hdu='NOPE')
    assert isinstance(excinfo.value, KeyError)
    assert not str(excinfo.value).startswith('"')  # readable message


def test_hdu_index_out_of_range(fits_path):
    with unchanged(fits_path), pytest.raises(HDUNotFoundError,
                                             match='no HDU 5'):
        read_image(fits_path, hdu=5)


def test_bad_hdu_type(fits_path):
    with pytest.raises(UnsupportedInputError, match='hdu= must be'):
        read_image(fits_path, hdu=1.5)


def test_one_dimensional_fits(tmp_path):
    path = tmp_path / 'spectrum.fits'
    fits.PrimaryHDU(np.arange(10.0)).writeto(path)
    with unchanged(path), pytest.raises(
            NoImageDataError, match=r'spectrum\.fits: no HDU holds a 2-D or 3-D image'):
        read_image(path)
    with unchanged(path), pytest.raises(
            NoImageDataError, match=r'spectrum\.fits: HDU 0 .*NAXIS=1'):
        read_image(path, hdu=0)


def test_one_dimensional_primary_then_image(tmp_path):
    """A 1-D primary (e.g. a spectrum) does not hide the image after it,
    and every stage picks the same HDU."""
    path = tmp_path / 'mixed.fits'
    fits.HDUList([fits.PrimaryHDU(np.arange(10.0)),
                  fits.ImageHDU(np.ones((8, 8)), name='SCI')]).writeto(path)
    with unchanged(path):
        image = read_image(path)
        assert image.data.shape == (8, 8)
        assert image.header['EXTNAME'] == 'SCI'
        with resolve_image(path) as resolved:
            assert resolved.index == 1
        result = make_cutouts(path, [(4, 4)], 4)[0]
        assert result.cutout.data.shape == (4, 4)


def test_resolve_image_ape14_wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    high_level = HighLevelWCSWrapper(wcs)
    image = read_image((np.ones((5, 5)), high_level))
    assert image.wcs.wcs.ctype[0] == 'RA---TAN'


@pytest.mark.parametrize('shape', [(10,), (2, 3, 4, 5), (0, 5)])
def test_bad_dimensions_array(shape):
    with pytest.raises(InvalidImageError, match='<ndarray>'):
        read_image(np.ones(shape))


def test_non_numeric_array():
    with pytest.raises(InvalidImageError, match='not real numbers'):
        read_image(np.array([['a', 'b'], ['c', 'd']]))
    with pytest.raises(InvalidImageError, match='not real numbers'):
        read_image(np.ones((2, 2), dtype=complex))


def test_unsupported_extension(tmp_path):
    path = tmp_path / 'catalog.ecsv'
    path.write_text('# %ECSV 1.0\n')
    with unchanged(path), pytest.raises(
            ImageReadError, match=r"catalog\.ecsv: unsupported file "
                                  r"extension '\.ecsv'; supported: \.fits"):
        read_image(path)


@pytest.mark.parametrize('source', [[[1, 2], [3, 4]], 42, {'data': 1},
                                    fits.BinTableHDU(Table({'a': [1]})),
                                    (np.ones((2, 2)),),
                                    (np.ones((2, 2)), 'header'),
                                    ([[1, 2]], fits.Header())])
def test_wrong_type(source):
    with pytest.raises(UnsupportedInputError) as excinfo:
        read_image(source)
    assert isinstance(excinfo.value, TypeError)


def test_errors_share_base_class(tmp_path):
    for exc in (ImageReadError, NoImageDataError, HDUNotFoundError,
                InvalidImageError, UnsupportedInputError):
        assert issubclass(exc, AstroClusterClfError)
    path = tmp_path / 'x.fits'
    path.write_bytes(b'\0' * 10)
    with pytest.raises(OSError):
        read_image(path)


def test_gzip_of_non_fits(tmp_path):
    path = tmp_path / 'text.fits.gz'
    path.write_bytes(gzip.compress(b'hello world\n' * 100))
    with unchanged(path), pytest.raises(ImageReadError,
                                        match='not a valid FITS file'):
        read_image(path)


def test_concurrent_reads_keep_warning_filters(tmp_path, image2d):
    # Files are read in worker threads (bottlenecks.prefetch_map); the
    # recording of astropy's truncation warnings must not corrupt the
    # process-wide warning filters or mix up results.
    import concurrent.futures
    import warnings

    good = tmp_path / 'good.fits'
    fits.PrimaryHDU(image2d, header=make_wcs().to_header()).writeto(good)
    bad = tmp_path / 'bad.fits'
    bad.write_bytes(good.read_bytes()[:-500])
    sources = [good, bad] * 20
    filters = list(warnings.filters)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(read_image, path) for path in sources]
    for path, future in zip(sources, futures):
        if path == good:
            assert_array_equal(future.result().data, image2d)
        else:
            with pytest.raises(ImageReadError, match='truncated'):
                future.result()
    assert warnings.filters == filters
