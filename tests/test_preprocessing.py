# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.preprocessing: settings, normalization, resize."""

import dataclasses
import hashlib
import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import (AsinhStretch, LinearStretch, LogStretch,
                                   ManualInterval, MinMaxInterval,
                                   PercentileInterval, SqrtStretch,
                                   ZScaleInterval)
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from helpers import unchanged
from astroclusterclf import (BandSelectionError, ImageReadError,
                             InvalidImageError, NonFinitePixelWarning,
                             NormalizationError, NormalizationSettings,
                             fits_to_rgb, normalize)
from astroclusterclf.preprocessing import (COLOR_MODES, INTERVALS, STRETCHES,
                                           resize)


# -- helpers -----------------------------------------------------------------


def check_rgb(rgb, shape):
    assert rgb.dtype == np.float32
    assert rgb.shape == shape
    assert np.isfinite(rgb).all()
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def star_field(shape=(48, 64), seed=0):
    """A noisy sky with a few Gaussian stars (float64)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    image = rng.normal(100.0, 4.0, shape)
    for x0, y0, flux in [(20, 15, 3000.0), (40, 30, 800.0), (10, 40, 300.0)]:
        image += flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 6.0)
    return image


@pytest.fixture
def sky():
    return star_field()


@pytest.fixture
def cube(sky):
    """A red source: brightest in band 0."""
    star = sky - 100.0
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 2.0, (3,) + sky.shape)
    return np.stack([100 + 2.0 * star, 100 + 1.0 * star,
                     100 + 0.5 * star]) + noise


# -- NormalizationSettings ---------------------------------------------------

def test_settings_defaults():
    settings = NormalizationSettings()
    assert (settings.interval, settings.stretch, settings.color) == (
        'zscale', 'asinh', 'lupton')
    assert settings.percentile == 99.5
    assert settings.bands is None and settings.size is None
    assert set(INTERVALS) == {'zscale', 'percentile', 'minmax', 'manual'}
    assert set(STRETCHES) == {'asinh', 'linear', 'sqrt', 'log'}
    assert set(COLOR_MODES) == {'lupton', 'per-band'}


def test_settings_frozen_and_hashable():
    settings = NormalizationSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.stretch = 'linear'
    assert hash(settings) == hash(NormalizationSettings())
    assert len({settings, NormalizationSettings(stretch='linear')}) == 2


def test_settings_canonical_values():
    settings = NormalizationSettings(interval='ZScale', color='per_band',
                                     percentile=99, bands=[2, 1, 0],
                                     size=224, stretch='log', stretch_a=100)
    assert settings.interval == 'zscale'
    assert settings.color == 'per-band'
    assert settings.percentile == 99.0 and isinstance(settings.percentile,
                                                      float)
    assert settings.bands == (2, 1, 0)
    assert settings.size == (224, 224)
    assert settings.stretch_a == 100.0
    assert NormalizationSettings(bands=1).bands == (1,)
    assert NormalizationSettings(size=[10, 20]).size == (10, 20)


@pytest.mark.parametrize('field, value', [
    ('interval', 'median'), ('interval', None), ('stretch', 'power'),
    ('color', 'rgb'), ('percentile', 0), ('percentile', 101),
    ('percentile', 'high'), ('percentile', True), ('vmin', np.nan),
    ('vmax', 'x'), ('stretch_a', -1.0), ('stretch_a', 0),
    ('bands', (0, 1)), ('bands', (0, -1, 2)), ('bands', (0, 1.5, 2)),
    ('bands', 'rgb'), ('size', (0, 224)), ('size', (224,)),
    ('size', (224.0, 224.0)), ('size', -3), ('size', True)])
def test_settings_invalid(field, value):
    with pytest.raises(NormalizationError,
                       match=rf'invalid {field}=') as excinfo:
        NormalizationSettings(**{field: value})
    assert repr(value) in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_settings_invalid_combinations():
    with pytest.raises(NormalizationError, match=r'vmax=1\.0: must be larger '
                                                 r'than vmin=2\.0'):
        NormalizationSettings(interval='manual', vmin=2.0, vmax=1.0)
    with pytest.raises(NormalizationError, match='0 < a <= 1'):
        NormalizationSettings(stretch='asinh', stretch_a=2.0)
    with pytest.raises(NormalizationError, match="'sqrt' stretch takes no"):
        NormalizationSettings(stretch='sqrt', stretch_a=0.5)
    # a > 1 is fine for the log stretch
    assert NormalizationSettings(stretch='log', stretch_a=1000).stretch_a == 1e3


def test_settings_dict_and_json_roundtrip():
    settings = NormalizationSettings(interval='manual', vmin=-1.5, vmax=1e38,
                                     stretch='log', stretch_a=500.0,
                                     color='per-band', bands=(4, 2, 0),
                                     size=(96, 128))
    as_dict = settings.to_dict()
    assert as_dict['bands'] == (4, 2, 0) and as_dict['size'] == (96, 128)
    assert NormalizationSettings.from_dict(as_dict) == settings
    text = settings.to_json()
    assert json.loads(text)['bands'] == [4, 2, 0]
    back = NormalizationSettings.from_json(text)
    assert back == settings
    assert isinstance(back.bands, tuple) and isinstance(back.size, tuple)
    assert back.cache_key() == settings.cache_key()
    # missing keys take defaults
    assert NormalizationSettings.from_dict({'stretch': 'sqrt'}) == \
        NormalizationSettings(stretch='sqrt')


def test_settings_from_dict_and_json_errors():
    with pytest.raises(NormalizationError, match=r"unknown setting\(s\) "
                                                 r"\['strech'\]"):
        NormalizationSettings.from_dict({'strech': 'sqrt'})
    with pytest.raises(NormalizationError, match='expected a dict'):
        NormalizationSettings.from_dict([('stretch', 'sqrt')])
    with pytest.raises(NormalizationError, match='invalid JSON'):
        NormalizationSettings.from_json('{"stretch": ')
    with pytest.raises(NormalizationError, match="invalid stretch='power'"):
        NormalizationSettings.from_json('{"stretch": "power"}')


def test_settings_replace():
    settings = NormalizationSettings()
    changed = settings.replace(stretch='sqrt', size=64)
    assert changed.stretch == 'sqrt' and changed.size == (64, 64)
    assert settings.stretch == 'asinh'  # the original is unchanged
    with pytest.raises(NormalizationError, match='invalid stretch'):
        settings.replace(stretch='cubic')
    with pytest.raises(NormalizationError, match=r"unknown setting\(s\) "
                                                 r"\['colour'\]"):
        settings.replace(colour='per-band')


def test_cache_key_stable_and_distinct():
    key = NormalizationSettings().cache_key()
    assert len(key) == 16 and int(key, 16) >= 0
    # The key is a hash of the canonical JSON: equal settings, equal keys,
    # in every session (the value below must never change silently, since
    # feature caches on users' disks depend on it).
    canonical = ('{"bands":null,"color":"lupton","interval":"zscale",'
                 '"percentile":99.5,"size":null,"stretch":"asinh",'
                 '"stretch_a":null,"vmax":null,"vmin":null}')
    assert NormalizationSettings().to_json() == canonical
    assert key == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert NormalizationSettings(percentile=99).cache_key() == \
        NormalizationSettings(percentile=99.0).cache_key()
    keys = {NormalizationSettings(**change).cache_key() for change in [
        {}, {'stretch': 'linear'}, {'size': 224}, {'bands': (0, 1, 2)},
        {'bands': (2, 1, 0)}, {'color': 'per-band'}]}
    assert len(keys) == 6


def test_make_interval_and_stretch_are_astropy_objects():
    settings = NormalizationSettings
    assert isinstance(settings().make_interval(), ZScaleInterval)
    interval = settings(interval='percentile', percentile=90).make_interval()
    assert isinstance(interval, PercentileInterval)
    assert interval.lower_percentile == 5.0
    assert isinstance(settings(interval='minmax').make_interval(),
                      MinMaxInterval)
    manual = settings(interval='manual', vmin=1, vmax=2).make_interval()
    assert isinstance(manual, ManualInterval) and manual.vmax == 2.0
    assert isinstance(settings().make_stretch(), AsinhStretch)
    assert settings(stretch_a=0.5).make_stretch().a == 0.5
    assert isinstance(settings(stretch='linear').make_stretch(), LinearStretch)
    assert isinstance(settings(stretch='sqrt').make_stretch(), SqrtStretch)
    log = settings(stretch='log', stretch_a=10).make_stretch()
    assert isinstance(log, LogStretch) and log.a == 10


# -- normalization -----------------------------------------------------------

@pytest.mark.parametrize('interval', INTERVALS)
@pytest.mark.parametrize('stretch', STRETCHES)
@pytest.mark.parametrize('bands, color', [(1, 'lupton'), (3, 'lupton'),
                                          (3, 'per-band')])
def test_every_combination_is_finite_rgb(sky, cube, interval, stretch, bands,
                                         color):
    data = sky if bands == 1 else cube
    rgb = fits_to_rgb(data, interval=interval, stretch=stretch, color=color)
    check_rgb(rgb, sky.shape + (3,))
    # the brightest star is brighter than the sky
    assert rgb[15, 20].max() > np.median(rgb)
    assert rgb[15, 20].max() > 0.9


@pytest.mark.parametrize('interval', ['zscale', 'percentile', 'minmax'])
@pytest.mark.parametrize('stretch', STRETCHES)
def test_grey_matches_astropy(sky, interval, stretch):
    settings = NormalizationSettings(interval=interval, stretch=stretch)
    expected = (settings.make_stretch() + settings.make_interval())(sky)
    rgb = normalize(sky, settings=settings)
    for channel in range(3):
        assert_allclose(rgb[..., channel], expected, atol=1e-6)


def test_manual_interval_linear():
    data = np.array([[0.0, 5.0], [10.0, 20.0]])
    rgb = normalize(data, settings=dict(interval='manual', vmin=0, vmax=10,
                                        stretch='linear'))
    assert_allclose(rgb[..., 0], [[0.0, 0.5], [1.0, 1.0]])
    # vmin/vmax None: astropy's ManualInterval takes the data range
    rgb = normalize(data, settings=dict(interval='manual', stretch='linear'))
    assert_allclose(rgb[..., 0], [[0.0, 0.25], [0.5, 1.0]])


def test_single_band_is_grey_and_monotonic(sky):
    rgb = fits_to_rgb(sky)
    assert_array_equal(rgb[..., 0], rgb[..., 1])
    assert_array_equal(rgb[..., 0], rgb[..., 2])
    order = np.argsort(sky.ravel())
    assert np.all(np.diff(rgb[..., 0].ravel()[order]) >= 0)


def test_lupton_preserves_colour(cube):
    rgb = fits_to_rgb(cube, stretch='asinh', interval='zscale')
    r, g, b = rgb[15, 20]  # centre of the brightest star: red
    assert r > g > b > 0
    # Colour ratios of a star that is bright but not saturated follow the
    # data after subtracting the background (2 : 1 : 0.5).
    rgb = fits_to_rgb(cube, stretch='asinh', interval='minmax')
    r, g, b = rgb[30, 40]
    assert 0 < r < 1
    assert_allclose([r / g, g / b], [2.0, 2.0], rtol=0.1)


def test_lupton_saturates_to_colour_not_white(cube):
    rgb = fits_to_rgb(cube, interval='percentile', percentile=50,
                      stretch='linear')
    r, g, b = rgb[15, 20]
    assert r == pytest.approx(1.0)
    assert g < 0.7 and b < 0.4


def test_lupton_manual_interval():
    cube = np.zeros((3, 2, 3))
    cube[:, 0, 0] = 30.0           # at vmax in every band: white
    cube[:, 0, 1] = [20, 10, 10]   # half-way, reddish
    cube[:, 0, 2] = 10.0           # at vmin: black
    cube[:, 1, :] = [[40], [25], [5]]  # beyond vmax in red: saturates
    rgb = normalize(cube, settings=dict(interval='manual', vmin=10, vmax=30,
                                        stretch='linear'))
    assert_allclose(rgb[0, 0], [1, 1, 1])
    assert_allclose(rgb[0, 1], [0.5, 0, 0], atol=1e-7)
    assert_allclose(rgb[0, 2], [0, 0, 0])
    # saturated: brightest band 1, the others in proportion, not white
    assert_allclose(rgb[1, 0], [1.0, 0.5, 0.0], atol=1e-7)


def test_per_band_normalizes_each_band(cube):
    rgb = fits_to_rgb(cube, color='per-band', interval='minmax',
                      stretch='linear')
    for channel in range(3):
        assert rgb[..., channel].max() == pytest.approx(1.0)
        assert rgb[..., channel].min() == pytest.approx(0.0)
    # with one interval per band the red star is no longer red
    r, g, b = rgb[15, 20]
    assert r == pytest.approx(g, abs=0.05)


def test_normalize_does_not_modify_input(sky, cube):
    for data in (sky, cube, sky.astype(np.float32)):
        copy = data.copy()
        normalize(data)
        normalize(data, settings={'color': 'per-band'})
        assert_array_equal(data, copy)


def test_constant_image_is_black():
    rgb = normalize(np.full((8, 8), 5.0))
    check_rgb(rgb, (8, 8, 3))
    assert rgb.max() == 0.0
    rgb = normalize(np.full((3, 8, 8), 5.0))
    assert rgb.max() == 0.0


def test_integer_and_bool_input():
    rgb = normalize(np.arange(64, dtype=np.uint16).reshape(8, 8))
    check_rgb(rgb, (8, 8, 3))
    check_rgb(normalize(np.eye(8, dtype=bool)), (8, 8, 3))


# -- non-finite and extreme values -------------------------------------------

def test_holes_are_filled_with_local_background():
    # A hole in an image with a sky gradient takes the level of its
    # neighbourhood, with noise, and is the same every time.
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:64, :64]
    data = 100.0 + 2.0 * x + rng.normal(0, 1.0, (64, 64))
    holed = data.copy()
    holed[20:30, 40:50] = np.nan
    with pytest.warns(NonFinitePixelWarning, match='local background'):
        a = normalize(holed, settings=dict(interval='minmax', stretch='linear'))
    with pytest.warns(NonFinitePixelWarning):
        b = normalize(holed, settings=dict(interval='minmax', stretch='linear'))
    assert_array_equal(a, b)
    clean = normalize(data, settings=dict(interval='minmax', stretch='linear'))
    hole = a[20:30, 40:50, 0]
    assert abs(hole.mean() - clean[20:30, 40:50, 0].mean()) < 0.1
    assert hole.std() > 0           # noise, not a flat patch


def test_nan_and_inf_warn_and_fill(sky):
    data = sky.copy()
    data[0, 0] = np.nan
    data[0, 1] = np.inf
    data[0, 2] = -np.inf
    with pytest.warns(NonFinitePixelWarning,
                      match=r'<ndarray>: 1 NaN and 2 infinite pixel value\(s\)'
                            r' out of 3072'):
        rgb = fits_to_rgb(data, interval='minmax', stretch='linear')
    check_rgb(rgb, sky.shape + (3,))
    # NaN and -inf -> the local background (sky level, not black);
    # +inf -> the brightest pixel.
    sky_level = np.median(expected_sky := normalize(
        sky, settings=dict(interval='minmax', stretch='linear'))[..., 0])
    noise = 5 * np.std(expected_sky)
    assert abs(rgb[0, 0, 0] - sky_level) < noise and rgb[0, 0, 0] > 0
    assert abs(rgb[0, 2, 0] - sky_level) < noise and rgb[0, 2, 0] > 0
    assert rgb[0, 1, 0] == 1.0
    # the masked pixels took no part in the interval
    reference = sky.copy()
    reference[0, :3] = np.median(sky)
    expected = normalize(reference, settings=dict(interval='minmax',
                                                  stretch='linear'))
    assert_allclose(rgb[1:], expected[1:])


@pytest.mark.parametrize('color', COLOR_MODES)
def test_nan_in_cube(cube, color):
    data = cube.copy()
    data[1, 5:10, 5:10] = np.nan
    data[2] = np.nan  # a whole band without a finite pixel
    with pytest.warns(NonFinitePixelWarning, match=str(25 + data[2].size)):
        rgb = normalize(data, settings={'color': color}, name='cube.fits')
    check_rgb(rgb, cube.shape[1:] + (3,))


def test_nan_from_fits_file_names_file(tmp_path, sky):
    data = sky.astype(np.float32)
    data[3, 3] = np.nan
    path = tmp_path / 'holes.fits'
    fits.writeto(path, data)
    with unchanged(path), pytest.warns(NonFinitePixelWarning,
                                       match=r'holes\.fits: 1 NaN'):
        rgb = fits_to_rgb(path)
    check_rgb(rgb, sky.shape + (3,))


def test_all_nan_image_is_an_error(tmp_path):
    path = tmp_path / 'all_nan.fits'
    fits.writeto(path, np.full((16, 16), np.nan, dtype=np.float32))
    with unchanged(path), pytest.raises(
            InvalidImageError, match=r'all_nan\.fits: the image has no finite '
                                     'pixel'):
        fits_to_rgb(path)
    with pytest.raises(InvalidImageError, match='no finite pixel'):
        normalize(np.full((3, 4, 4), np.inf))


@pytest.mark.parametrize('interval', INTERVALS)
@pytest.mark.parametrize('color', COLOR_MODES)
def test_huge_finite_values_need_no_warning(tmp_path, sky, interval, color):
    # 1e38 is a legitimate (if extreme) float32 value: no warning, and the
    # result must still be finite and in [0, 1].
    data = np.stack([sky, sky, sky]).astype(np.float32)
    data[:, 2, 2] = 1e38
    data[1, 3, 3] = -1e38
    data[2, 4, 4] = np.finfo(np.float32).max
    path = tmp_path / 'huge.fits'
    fits.writeto(path, data)
    with unchanged(path), warnings.catch_warnings():
        warnings.simplefilter('error')
        for bands in [(0,), (0, 1, 2)]:
            rgb = fits_to_rgb(path, interval=interval, color=color,
                              bands=bands)
            check_rgb(rgb, sky.shape + (3,))
            assert rgb[2, 2].max() == 1.0


def test_huge_and_inf_values(tmp_path, sky):
    data = sky.astype(np.float32)
    data[2, 2] = 1e38
    data[5, 5] = np.inf
    path = tmp_path / 'inf.fits'
    fits.writeto(path, data)
    with unchanged(path), pytest.warns(NonFinitePixelWarning,
                                       match=r'inf\.fits: 0 NaN and 1 '
                                             'infinite'):
        rgb = fits_to_rgb(path, size=(32, 32))
    check_rgb(rgb, (32, 32, 3))


# -- band selection ----------------------------------------------------------

def test_more_than_three_bands_need_bands(tmp_path, sky):
    path = tmp_path / 'five.fits'
    fits.writeto(path, np.stack([sky * (i + 1) for i in range(5)]))
    with unchanged(path), pytest.raises(
            BandSelectionError, match=r'five\.fits: the image has 5 bands; '
                                      'pick 1 or 3 of them with bands='):
        fits_to_rgb(path)
    with unchanged(path):
        check_rgb(fits_to_rgb(path, bands=(4, 2, 0)), sky.shape + (3,))
        grey = fits_to_rgb(path, bands=(3,))
    assert_array_equal(grey[..., 0], grey[..., 2])


def test_two_bands_need_bands(sky):
    with pytest.raises(BandSelectionError, match='has 2 bands'):
        normalize(np.stack([sky, sky]))
    check_rgb(normalize(np.stack([sky, sky]), settings={'bands': (0, 1, 1)}),
              sky.shape + (3,))


def test_bands_select_and_order(sky):
    planes = [np.zeros_like(sky) for _ in range(4)]
    planes[1][10, 10] = planes[3][20, 20] = 1.0
    planes[2][:] = sky
    data = np.stack(planes)
    rgb = fits_to_rgb(data, bands=(3, 2, 1), color='per-band',
                      interval='minmax', stretch='linear')
    assert rgb[20, 20, 0] == 1.0 and rgb[10, 10, 0] == 0.0  # R = band 3
    assert rgb[10, 10, 2] == 1.0 and rgb[20, 20, 2] == 0.0  # B = band 1
    assert_allclose(rgb[..., 1],
                    normalize(sky, settings=dict(interval='minmax',
                                                 stretch='linear'))[..., 0])


def test_band_index_out_of_range(sky):
    with pytest.raises(BandSelectionError, match='band index 3 out of range '
                                                 'for a cube with 3 band'):
        normalize(np.stack([sky] * 3), settings={'bands': (0, 1, 3)})
    with pytest.raises(BandSelectionError, match='single band'):
        normalize(sky, settings={'bands': (0, 1, 2)})
    check_rgb(normalize(sky, settings={'bands': (0,)}), sky.shape + (3,))


def test_one_band_cube_is_grey(sky):
    rgb = normalize(sky[np.newaxis])
    assert_array_equal(rgb, normalize(sky))


# -- inputs and options of fits_to_rgb ---------------------------------------

def test_fits_to_rgb_file_hdu_and_png(tmp_path, sky):
    path = tmp_path / 'mef.fits'
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sky, name='SCI'),
                  fits.ImageHDU(-sky, name='NEG')]).writeto(path)
    with unchanged(path):
        assert_array_equal(fits_to_rgb(path), fits_to_rgb(sky))
        assert_array_equal(fits_to_rgb(path, hdu='NEG'), fits_to_rgb(-sky))

    png = tmp_path / 'field.png'
    rgb8 = (fits_to_rgb(sky) * 255).astype(np.uint8)
    Image.fromarray(rgb8).save(png)
    with unchanged(png):
        check_rgb(fits_to_rgb(png, size=(224, 224)), (224, 224, 3))


def test_settings_and_options(sky):
    settings = NormalizationSettings(stretch='sqrt', interval='minmax')
    expected = fits_to_rgb(sky, settings=settings.replace(stretch='linear'))
    assert_array_equal(fits_to_rgb(sky, settings=settings, stretch='linear'),
                       expected)
    assert_array_equal(fits_to_rgb(sky, settings=settings.to_dict(),
                                   stretch='linear'), expected)
    assert_array_equal(fits_to_rgb(sky, settings=settings.to_json(),
                                   stretch='linear'), expected)
    assert fits_to_rgb(sky, settings=settings.replace(size=(10, 12))
                       ).shape == (10, 12, 3)
    assert fits_to_rgb(sky, settings=settings.replace(size=(10, 12)),
                       size=20).shape == (20, 20, 3)
    with pytest.raises(NormalizationError, match=r"unknown setting\(s\) "
                                                 r"\['strech'\]"):
        fits_to_rgb(sky, strech='linear')
    with pytest.raises(NormalizationError, match='invalid interval='):
        fits_to_rgb(sky, interval='iraf')
    with pytest.raises(NormalizationError, match='settings must be'):
        fits_to_rgb(sky, settings=42)


def test_read_errors_pass_through(tmp_path):
    path = tmp_path / 'text.fits'
    path.write_text('not FITS\n' * 30)
    with unchanged(path), pytest.raises(ImageReadError, match=r'text\.fits'):
        fits_to_rgb(path)
    with pytest.raises(InvalidImageError, match='1-D'):
        fits_to_rgb(np.arange(5.0))
    with pytest.raises(InvalidImageError, match='shape'):
        normalize(np.arange(5.0))
    with pytest.raises(InvalidImageError, match='not real numbers'):
        normalize(np.array([['a']]))


# -- resizing ----------------------------------------------------------------

@pytest.mark.parametrize('size', [(224, 224), (64, 64), (24, 32), (50, 30),
                                  (100, 20), 17])
def test_fits_to_rgb_sizes(sky, size):
    rgb = fits_to_rgb(sky, size=size)
    expected = (size, size) if isinstance(size, int) else size
    check_rgb(rgb, expected + (3,))


def test_resize_block_mean_is_exact():
    image = np.random.default_rng(3).random((128, 96, 3)).astype(np.float32)
    small = resize(image, (32, 24))
    assert_allclose(small, image.reshape(32, 4, 24, 4, 3).mean(axis=(1, 3)),
                    rtol=1e-6)


def test_resize_shrink_averages_area():
    rng = np.random.default_rng(4)
    image = rng.random((300, 300, 3)).astype(np.float32)
    small = resize(image, (224, 224))
    assert small.shape == (224, 224, 3) and small.dtype == np.float32
    # area averaging keeps the mean and smooths the noise
    assert_allclose(small.mean(axis=(0, 1)), image.mean(axis=(0, 1)),
                    atol=2e-3)
    assert small.std() < image.std()
    # a point source keeps its total flux
    point = np.zeros((300, 300, 1), dtype=np.float32)
    point[150, 150] = 1.0
    assert resize(point, (224, 224)).sum() == pytest.approx(
        (224 / 300) ** 2, rel=1e-4)


def test_resize_enlarge_bilinear():
    ramp = np.tile(np.linspace(0, 1, 128, dtype=np.float32), (128, 1))
    big = resize(ramp[..., np.newaxis], 224)[..., 0]
    assert big.shape == (224, 224)
    assert np.all(np.diff(big[100]) >= -1e-7)  # monotonic, no ringing
    assert big.min() >= 0 and big.max() <= 1
    # bilinear: interior values interpolate linearly between neighbours
    assert len(np.unique(np.round(big[100], 5))) > 128
    flat = resize(np.full((128, 128, 3), 0.25, dtype=np.float32), 224)
    assert_allclose(flat, 0.25, atol=1e-6)


def test_resize_mixed_and_identity():
    image = np.random.default_rng(5).random((40, 60, 3)).astype(np.float32)
    assert resize(image, (80, 30)).shape == (80, 30, 3)
    assert resize(image, (40, 60)) is image


def test_resize_errors():
    image = np.zeros((4, 4, 3), dtype=np.float32)
    for size in [(0, 4), (4,), 'big', (4.0, 4.0), -1]:
        with pytest.raises(NormalizationError, match='invalid size'):
            resize(image, size)
    with pytest.raises(InvalidImageError, match=r'\(H, W, C\)'):
        resize(np.zeros((4, 4)), 8)
