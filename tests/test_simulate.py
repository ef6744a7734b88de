# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.simulate (the ``simulate`` subcommand: test_cli.py)."""

import hashlib

import numpy as np
import pytest
from astropy.utils.exceptions import AstropyDeprecationWarning
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from PIL import Image

import astroclusterclf
from astroclusterclf import simulate as sim
from astroclusterclf.exceptions import AstroClusterClfError, SimulationError
from astroclusterclf.simulate import (CLASS_NAMES, make_dataset, make_mosaic,
                                      simulate_cluster)

GC, OC = CLASS_NAMES


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def samples():
    """20 default images of each class (the headers are what we need)."""
    return {kind: [simulate_cluster(kind, rng=seed)
                   for seed in range(1000, 1020)]
            for kind in CLASS_NAMES}


@pytest.fixture(scope='module')
def mosaic(tmp_path_factory):
    directory = tmp_path_factory.mktemp('mosaic')
    paths = make_mosaic(directory, n_clusters=6, shape=(640, 512), seed=3,
                        cluster_size=64)
    return directory, paths


# -- simulate_cluster ---------------------------------------------------------

def test_class_names():
    assert CLASS_NAMES == ('globular cluster', 'open cluster')
    assert astroclusterclf.CLASS_NAMES is CLASS_NAMES
    assert astroclusterclf.simulate_cluster is simulate_cluster
    assert astroclusterclf.make_dataset is make_dataset
    assert astroclusterclf.make_mosaic is make_mosaic


@pytest.mark.parametrize('kind', CLASS_NAMES)
@pytest.mark.parametrize('bands', [1, 3])
def test_simulate_shapes_and_header(kind, bands):
    data, header = simulate_cluster(kind, size=96, rng=1, n_bands=bands)
    shape = (96, 96) if bands == 1 else (3, 96, 96)
    assert data.shape == shape
    assert data.dtype == np.float32
    assert np.all(np.isfinite(data))
    assert header['SIMKIND'] == kind
    assert header['BUNIT'] == 'electron'
    assert header['SIMSEED'] == 1
    if bands == 3:
        assert [header[f'BAND{i}'] for i in (1, 2, 3)] == ['i', 'r', 'g']
    else:
        assert header['FILTER'] == 'r'
    # Every card of ours has a comment and a standard 8-character keyword.
    for card in header.cards:
        if card.keyword.startswith('SIM'):
            assert len(card.keyword) <= 8
            assert card.comment
    assert 'astroclusterclf' in str(header['HISTORY'])
    # No time-dependent cards (byte-identical files).
    assert 'DATE' not in header and 'DATE-OBS' not in header
    # A FITS HDU built from it is valid and round-trips.
    hdu = fits.PrimaryHDU(data, header)
    hdu.verify('exception')


@pytest.mark.parametrize('bands', [1, 3])
def test_header_wcs(bands):
    data, header = simulate_cluster('globular', rng=5, n_bands=bands)
    wcs = WCS(header)
    assert wcs.naxis == 2
    assert wcs.has_celestial
    assert list(wcs.wcs.ctype) == ['RA---TAN', 'DEC--TAN']
    scale = wcs.proj_plane_pixel_scales()
    assert u.allclose(scale, 0.4 * u.arcsec)
    assert 0 <= header['CRVAL1'] < 360 and -90 <= header['CRVAL2'] <= 90
    # The image centre is the reference point; pixel <-> sky round-trips.
    centre = wcs.pixel_to_world(63.5, 63.5)
    assert centre.separation(
        SkyCoord(header['CRVAL1'], header['CRVAL2'], unit='deg')
    ) < 1e-6 * u.deg
    x, y = wcs.world_to_pixel(wcs.pixel_to_world(10.0, 100.0))
    assert np.allclose([x, y], [10.0, 100.0], atol=1e-6)
    # East is left (CDELT1 < 0), north is up.
    assert header['CDELT1'] < 0 < header['CDELT2']


def test_pixel_scale_follows_size():
    _, header = simulate_cluster('open', size=64, rng=2)
    assert np.isclose(header['CDELT2'] * 3600, 0.8)
    _, header = simulate_cluster('open', size=64, rng=2, pixel_scale=0.4)
    assert np.isclose(header['CDELT2'] * 3600, 0.4)


def test_kind_aliases():
    for alias in ('globular', 'GC', ' Globular Cluster '):
        assert simulate_cluster(alias, size=32, rng=0)[1]['SIMKIND'] == GC
    for alias in ('open', 'oc'):
        assert simulate_cluster(alias, size=32, rng=0)[1]['SIMKIND'] == OC


def test_determinism():
    a, ha = simulate_cluster(GC, size=64, rng=11)
    b, hb = simulate_cluster(GC, size=64, rng=11)
    c, _ = simulate_cluster(GC, size=64, rng=12)
    assert np.array_equal(a, b)
    assert ha == hb
    assert not np.array_equal(a, c)
    # Generators: equal state, equal image; the seed drawn is recorded and
    # reproduces the image.
    d, hd = simulate_cluster(OC, size=64, rng=np.random.default_rng(5))
    e, _ = simulate_cluster(OC, size=64, rng=np.random.default_rng(5))
    assert np.array_equal(d, e)
    f, _ = simulate_cluster(OC, size=64, rng=hd['SIMSEED'])
    assert np.array_equal(d, f)
    # rng=None: fresh entropy, still reproducible through SIMSEED.
    g, hg = simulate_cluster(OC, size=64)
    h, _ = simulate_cluster(OC, size=64, rng=hg['SIMSEED'])
    assert np.array_equal(g, h)


def test_override_changes_only_that_parameter():
    _, h1 = simulate_cluster(GC, rng=4)
    _, h2 = simulate_cluster(GC, rng=4, fwhm=1.234, concentration=2.0)
    assert h2['SIMFWHM'] == 1.234 and h2['SIMCONC'] == 2.0
    for key in ('SIMDIST', 'SIMRH', 'SIMNSTAR', 'SIMEBV', 'SIMSKY', 'CRVAL1'):
        assert h1[key] == h2[key], key


def test_population_parameters(samples):
    for data, header in samples[GC]:
        assert 0.8 <= header['SIMCONC'] <= 2.2
        assert 1500 <= header['SIMNSTAR'] <= 10000
        assert np.isclose(np.log10(header['SIMRT'] / header['SIMRC']),
                          header['SIMCONC'], atol=1e-3)
        assert 'SIMGAMMA' not in header
    for data, header in samples[OC]:
        assert 20 <= header['SIMNSTAR'] <= 200
        assert 'SIMCONC' not in header
    # Globulars are on average farther away (halo) than open clusters.
    dist = {k: np.median([h['SIMDIST'] for _, h in samples[k]])
            for k in CLASS_NAMES}
    assert dist[GC] > dist[OC]


def _threshold_accuracy(a, b):
    """Best accuracy of a single threshold on one feature."""
    values = np.concatenate([a, b])
    truth = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    best = 0.0
    for t in values:
        acc = np.mean((values >= t) == truth)
        best = max(best, acc, 1 - acc)
    return best


def test_classes_not_separable_by_one_threshold(samples):
    def feature(kind, f):
        return np.array([f(d, h) for d, h in samples[kind]])

    features = {
        'true total flux': lambda d, h: h['SIMFLUX'],
        'true half-light radius': lambda d, h: h['SIMRHPIX'],
        # Measured on the image: sky-subtracted sum, and image maximum.
        'image flux': lambda d, h: np.sum(d - np.median(d)),
        'peak': lambda d, h: d.max() - np.median(d),
    }
    for name, f in features.items():
        gc, oc = feature(GC, f), feature(OC, f)
        # The ranges overlap ...
        assert max(gc.min(), oc.min()) < min(gc.max(), oc.max()), name
        # ... and no threshold classifies even 90 % of the images.
        assert _threshold_accuracy(gc, oc) < 0.9, name


def test_globulars_are_redder():
    def colour(kind, seed):
        data, header = simulate_cluster(kind, rng=seed, n_bands=3,
                                        n_field=0, n_galaxies=0)
        assert header['BAND2'] == 'r' and header['BAND3'] == 'g'
        sky = np.median(data, axis=(1, 2))
        i, r, g = (data - sky[:, None, None]).sum(axis=(1, 2))
        return -2.5 * np.log10(g / r)

    gc = np.median([colour(GC, s) for s in range(8)])
    oc = np.median([colour(OC, s) for s in range(8)])
    assert gc > oc + 0.2


def test_king_inverse_cdf_sampling():
    rng = np.random.default_rng(0)
    conc, rc = 1.5, 2.0
    r = sim._sample_king(200_000, conc, rc, rng)
    rt = rc * 10 ** conc
    assert r.min() >= 0 and r.max() <= rt
    for radius in (0.5, 2.0, 10.0, 50.0):
        expected = (sim._king_cumulative((radius / rc) ** 2, (rt / rc) ** 2)
                    / sim._king_cumulative((rt / rc) ** 2, (rt / rc) ** 2))
        assert abs(np.mean(r <= radius) - expected) < 0.005
    # Half-number radius in units of r_c.
    assert np.isclose(np.median(r) / rc,
                      sim._king_half_number_radius(conc), rtol=0.02)
    # More concentrated clusters have larger r_h / r_c.
    assert (sim._king_half_number_radius(2.2)
            > sim._king_half_number_radius(1.5)
            > sim._king_half_number_radius(0.8))


def test_eff_sampling_half_radius():
    rng = np.random.default_rng(1)
    for gamma in (2.3, 3.0, 4.0):
        r = sim._sample_eff(100_000, gamma, 1.0, 6.0, rng)
        assert r.max() <= 6.0
        assert np.isclose(np.median(r), sim._eff_half_number_radius(gamma, 6),
                          rtol=0.02)


@pytest.mark.parametrize('psf', ['gaussian', 'moffat'])
def test_render_psf_and_flux(psf):
    """A single star: total flux conserved, centroid and FWHM as asked."""
    fwhm = 5.0
    kernel, radius = sim._psf_kernel(fwhm, psf, 3.0)
    flux = np.array([[1000.0]])
    image = sim._render((64, 64), np.array([31.3]), np.array([30.6]), flux,
                        kernel, radius)[0]
    assert np.isclose(image.sum(), 1000.0, rtol=1e-4)
    ys, xs = np.indices(image.shape)
    assert np.isclose((image * xs).sum() / image.sum(), 31.3, atol=0.02)
    assert np.isclose((image * ys).sum() / image.sum(), 30.6, atol=0.02)
    # On a pixel centre: the half-maximum width of its row.
    image = sim._render((64, 64), np.array([32.0]), np.array([32.0]), flux,
                        kernel, radius)[0]
    row = image[32]
    half = row[32] / 2
    left = np.interp(half, row[:33], np.arange(33))       # rising side
    right = np.interp(half, row[:31:-1], np.arange(63, 31, -1))  # falling
    assert np.isclose(right - left, fwhm, rtol=0.08), right - left


def test_sky_noise_and_saturation():
    data, header = simulate_cluster(OC, rng=9, n_field=0, n_galaxies=0,
                                    n_stars=1, diffuse_fraction=0.0,
                                    sky=20.0, read_noise=5.0,
                                    saturation=None)
    corner = data[:40, :40]
    sky = header['SIMSKYE']
    assert np.isclose(np.median(corner), sky, rtol=0.02)
    assert np.isclose(corner.std(), np.sqrt(sky + 5.0 ** 2), rtol=0.1)

    data, header = simulate_cluster(GC, rng=9, saturation=2000.0)
    assert data.max() == np.float32(2000.0)
    assert header['SIMSATUR'] == 2000.0


def test_galaxies_and_field_stars_add_light():
    base, _ = simulate_cluster(OC, rng=3, n_field=0, n_galaxies=0)
    busy, header = simulate_cluster(OC, rng=3, n_field=50, n_galaxies=3)
    assert header['SIMNFLD'] == 50 and header['SIMNGAL'] == 3
    assert busy.sum() > base.sum()


def test_speed_sanity():
    """Not a benchmark (see bench/simulate.py): only catches a render that
    became pathologically slow."""
    import time
    t0 = time.perf_counter()
    simulate_cluster(GC, rng=0, n_stars=10000, n_bands=3)
    assert time.perf_counter() - t0 < 5.0


# -- errors -------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, match', [
    (dict(kind='spiral galaxy'), "unknown cluster kind 'spiral galaxy'"),
    (dict(kind=3), 'unknown cluster kind 3'),
    (dict(size=8), 'size must be an integer >= 16, got 8'),
    (dict(size=64.0), 'size must be an integer'),
    (dict(n_bands=2), 'bands must be 1 or 3, got 2'),
    (dict(rng=-1), r'rng must be an integer in \[0, 2\*\*63\)'),
    (dict(rng='abc'), 'rng must be None, an integer seed or a numpy'),
    (dict(colour='blue'), r'unknown simulation parameter\(s\) colour'),
    (dict(gamma=3.0), "'gamma' applies only to open clusters"),
    (dict(concentration=5.0), "'concentration' must be in"),
    (dict(fwhm=-1.0), "parameter 'fwhm' must be a positive number"),
    (dict(psf='airy'), "parameter 'psf' must be 'moffat' or 'gaussian'"),
    (dict(center='middle'), "parameter 'center' must be a pair"),
    (dict(n_field=-3), "parameter 'n_field' must be an integer >= 0"),
])
def test_simulate_errors(kwargs, match):
    kwargs = {'kind': GC, **kwargs}
    kind = kwargs.pop('kind')
    with pytest.raises(SimulationError, match=match) as exc:
        simulate_cluster(kind, **kwargs)
    assert isinstance(exc.value, ValueError)
    assert isinstance(exc.value, AstroClusterClfError)


def test_open_cluster_rejects_concentration():
    with pytest.raises(SimulationError, match='only to globular'):
        simulate_cluster(OC, concentration=1.0)


# -- make_dataset -------------------------------------------------------------

def test_make_dataset_layout_and_determinism(tmp_path):
    calls = []
    files = make_dataset(tmp_path / 'a', n_per_class=3, seed=7, size=48,
                         progress=lambda done, total: calls.append((done,
                                                                    total)))
    assert sorted(p.name for p in (tmp_path / 'a').iterdir()) == [
        'globular cluster', 'open cluster']
    assert set(files) == set(CLASS_NAMES)
    assert [p.name for p in files[GC]] == [
        f'globular_cluster_000{i}.fits' for i in range(3)]
    assert [p.name for p in files[OC]] == [
        f'open_cluster_000{i}.fits' for i in range(3)]
    assert calls == [(i, 6) for i in range(1, 7)]
    # Nothing else (no temporary files) left behind.
    assert sorted((tmp_path / 'a').rglob('*.*')) == sorted(
        files[GC] + files[OC])
    for kind in CLASS_NAMES:
        for path in files[kind]:
            with fits.open(path) as hdul:
                assert hdul[0].header['SIMKIND'] == kind
                assert hdul[0].data.shape == (48, 48)
                assert WCS(hdul[0].header).has_celestial

    # Same seed: byte-identical files.  A larger set starts with the same
    # images; another seed gives other images.
    again = make_dataset(tmp_path / 'b', n_per_class=4, seed=7, size=48)
    for kind in CLASS_NAMES:
        for p, q in zip(files[kind], again[kind][:3]):
            assert p.read_bytes() == q.read_bytes()
    other = make_dataset(tmp_path / 'c', n_per_class=1, seed=8, size=48)
    assert _digest(other[GC][0]) != _digest(files[GC][0])
    # Image i of a class is reproducible from its header alone.
    header = fits.getheader(files[OC][1])
    data, _ = simulate_cluster(header['SIMKIND'], size=48,
                               rng=header['SIMSEED'])
    assert np.array_equal(fits.getdata(files[OC][1]), data)


@pytest.mark.parametrize('bands, mode', [(1, 'L'), (3, 'RGB')])
def test_make_dataset_png(tmp_path, bands, mode):
    files = make_dataset(tmp_path, n_per_class=1, size=40, n_bands=bands,
                         formats=('fits', 'png'))
    for kind in CLASS_NAMES:
        assert [p.suffix for p in files[kind]] == ['.fits', '.png']
        with Image.open(files[kind][1]) as image:
            assert image.mode == mode
            assert image.size == (40, 40)
            pixels = np.asarray(image)
        assert pixels.min() < 50 and pixels.max() > 200
    again = make_dataset(tmp_path / 'again', n_per_class=1, size=40,
                         n_bands=bands, formats=['png'])
    assert again[GC][0].read_bytes() == files[GC][1].read_bytes()


def test_make_dataset_files_readable_by_pipeline(tmp_path):
    from astroclusterclf.preprocessing import fits_to_rgb
    files = make_dataset(tmp_path, n_per_class=1, size=32, n_bands=3)
    rgb = fits_to_rgb(files[GC][0])
    assert rgb.shape == (32, 32, 3)
    assert rgb.dtype == np.float32
    assert np.all((rgb >= 0) & (rgb <= 1))


@pytest.mark.parametrize('kwargs, match', [
    (dict(n_per_class=0), 'n_per_class must be an integer >= 1, got 0'),
    (dict(n_per_class=2.5), 'n_per_class must be an integer'),
    (dict(n_per_class=1, formats=('jpeg',)), r"unknown image format\(s\)"),
    (dict(n_per_class=1, seed=-5), 'seed must be an integer'),
    (dict(n_per_class=1, n_bands=4), 'bands must be 1 or 3'),
])
def test_make_dataset_errors(tmp_path, kwargs, match):
    with pytest.raises(SimulationError, match=match):
        make_dataset(tmp_path / 'out', **kwargs)
    assert not (tmp_path / 'out').exists()


def test_make_dataset_unwritable_directory(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    with pytest.raises(SimulationError, match='cannot create output'):
        make_dataset(blocker / 'sub', n_per_class=1)
    assert blocker.read_text() == 'not a directory'


# -- make_mosaic --------------------------------------------------------------

def test_make_mosaic_files(mosaic):
    directory, (image_path, catalog_path) = mosaic
    assert image_path == directory / 'mosaic.fits'
    assert catalog_path == directory / 'mosaic.ecsv'
    with fits.open(image_path) as hdul:
        data, header = hdul[0].data, hdul[0].header
        assert data.shape == (640, 512)
        assert data.dtype == np.dtype('>f4')
        assert np.all(np.isfinite(data))
        wcs = WCS(header)
    assert list(wcs.wcs.ctype) == ['RA---TAN', 'DEC--TAN']
    assert header['SIMNCLUS'] == 6

    table = Table.read(catalog_path)
    assert table.colnames[:5] == ['ra', 'dec', 'x', 'y', 'label']
    assert table['ra'].unit == u.deg and table['dec'].unit == u.deg
    assert table['x'].unit == u.pix and table['y'].unit == u.pix
    for name in table.colnames:
        assert table[name].description
    assert table.meta['seed'] == 3
    assert table.meta['image'] == 'mosaic.fits'
    assert len(table) == 6
    assert set(table['label']) == set(CLASS_NAMES)

    # Positions inside the image, away from the edges, not overlapping.
    x, y = np.asarray(table['x']), np.asarray(table['y'])
    assert np.all((x >= 64) & (x <= 511 - 64) & (y >= 64) & (y <= 639 - 64))
    dx = np.abs(x[:, None] - x[None, :])
    dy = np.abs(y[:, None] - y[None, :])
    sep = np.maximum(dx, dy) + np.eye(len(x)) * 1e9
    assert sep.min() >= 1.5 * 64
    # ra/dec and x/y agree through the image WCS.
    coords = SkyCoord(table['ra'], table['dec'])
    px, py = wcs.world_to_pixel(coords)
    assert np.allclose(px, x, atol=1e-6) and np.allclose(py, y, atol=1e-6)
    # And there is a cluster at each position: much more light within
    # 10 pixels than the sky noise allows.
    sky, noise = np.median(data), np.std(data[data < np.median(data)]) * 1.7
    for xi, yi in zip(x.round().astype(int), y.round().astype(int)):
        box = data[yi - 10:yi + 11, xi - 10:xi + 11] - sky
        assert box.sum() > 20 * noise * 21


def test_make_mosaic_bytes_identical(mosaic, tmp_path):
    _, (image_path, catalog_path) = mosaic
    again = make_mosaic(tmp_path, n_clusters=6, shape=(640, 512), seed=3,
                        cluster_size=64)
    assert again[0].read_bytes() == image_path.read_bytes()
    assert again[1].read_bytes() == catalog_path.read_bytes()


def test_make_mosaic_three_bands(tmp_path):
    image_path, catalog_path = make_mosaic(tmp_path, n_clusters=2,
                                           shape=(256, 200), cluster_size=48,
                                           n_bands=3)
    with fits.open(image_path) as hdul:
        assert hdul[0].data.shape == (3, 256, 200)
        assert WCS(hdul[0].header).celestial.naxis == 2
        assert hdul[0].header['WCSAXES'] == 2


@pytest.mark.parametrize('kwargs, match', [
    (dict(n_clusters=0), 'n_clusters must be an integer >= 1'),
    (dict(n_clusters=50), 'cannot place 50 clusters'),
    (dict(shape=(100, 100)), 'too small for clusters of 64 pixels'),
    (dict(shape='big'), 'shape must be a pair'),
])
def test_make_mosaic_errors(tmp_path, kwargs, match):
    kwargs = {'shape': (400, 400), 'cluster_size': 64, **kwargs}
    with pytest.raises(SimulationError, match=match):
        make_mosaic(tmp_path / 'out', **kwargs)
    assert not (tmp_path / 'out' / 'mosaic.fits').exists()


# -- the domain-randomized mode ---------------------------------------------

@pytest.fixture(scope='module')
def randomized():
    """60 randomized frames of each class, one and three bands."""
    frames = []
    for i in range(120):
        kind = CLASS_NAMES[i % 2]
        frames.append(simulate_cluster(kind, size=48, rng=1000 + i,
                                       n_bands=1 + 2 * (i % 3 == 0),
                                       randomize=True))
    return frames


def _within(name, value):
    lo, hi = sim.RANDOMIZED_RANGES[name][0]
    return lo * (1 - 1e-3) <= value <= hi * (1 + 1e-3)


def test_randomized_ranges_documented():
    for name, (value, reference) in sim.RANDOMIZED_RANGES.items():
        assert isinstance(reference, str) and reference
        if isinstance(value, tuple):
            assert value[0] < value[1], name
        else:
            assert 0 < value < 1, name


def test_randomized_cards_within_ranges(randomized):
    gc_dist, oc_dist, scales, bands = [], [], [], set()
    for data, header in randomized:
        assert header['SIMRAND'] is True
        assert header['BUNIT'] == 'adu'
        scale = WCS(header).proj_plane_pixel_scales()[1].to_value(u.arcsec)
        assert _within('pixel_scale', scale)
        assert _within('zero_point', header['MAGZERO'])
        assert _within('sky', header['SIMSKY'])
        # FWHM within the range, or clipped to 0.8-12 pixels.
        assert (_within('fwhm', header['SIMFWHM'])
                or 0.8 * 0.999 <= header['SIMFWHM'] / scale <= 12 * 1.001)
        scales.append(scale)
        if header['SIMKIND'] == GC:
            assert (_within('globular_distance', header['SIMDIST'])
                    or _within('extragalactic_distance', header['SIMDIST']))
            assert _within('globular_half_light_radius', header['SIMRH'])
            assert _within('concentration', header['SIMCONC'])
            gc_dist.append(header['SIMDIST'])
        else:
            assert _within('open_distance', header['SIMDIST'])
            assert _within('open_half_light_radius', header['SIMRH'])
            assert _within('open_members', header['SIMNSTAR'])
            assert _within('open_ellipticity', header['SIMELL'])
            oc_dist.append(header['SIMDIST'])
        nb = 1 if data.ndim == 2 else data.shape[0]
        names = tuple(header.get(f'BAND{i + 1}', header.get('BAND'))
                      for i in range(nb)) if nb > 1 else None
        if names:
            bands.update(names)
        if header['SIMEDGE'] == 0 and header['SIMGAP'] == 0:
            assert np.isfinite(data).all()
    # The draws span their ranges rather than sitting in one corner.
    assert max(gc_dist) > 150 and min(gc_dist) < 20
    assert max(oc_dist) > 8 and min(oc_dist) < 3
    assert min(scales) < 0.3 and max(scales) > 1.0
    assert {'u', 'z'} & bands or len(bands) >= 3


def test_randomized_frame_effects(randomized):
    headers = [h for _, h in randomized]
    assert any(h['SIMSKYSB'] for h in headers)
    assert any(not h['SIMSKYSB'] and h['SIMPED'] > 0 for h in headers)
    assert any(h['SIMGRAD'] > 0 for h in headers)
    assert any(h['SIMNCR'] > 0 for h in headers)
    assert any(h.get('SIMNSUB', 1) > 1 for h in headers)
    # A survey edge or chip gap blanks pixels (NaN or zero) as recorded.
    for data, h in randomized:
        if h['SIMGAP']:
            assert np.isnan(data).any()
    sky_subtracted = [d for d, h in randomized
                      if h['SIMSKYSB'] and not h['SIMEDGE'] and not h['SIMGAP']]
    raw = [d for d, h in randomized if not h['SIMSKYSB'] and not h['SIMEDGE']
           and not h['SIMGAP'] and h['SIMPED'] > 100]
    assert np.median([np.median(d) for d in sky_subtracted]) < np.median(
        [np.median(d) for d in raw])


def test_randomized_determinism_and_default_unchanged():
    a, ha = simulate_cluster(OC, size=48, rng=3, randomize=True)
    b, hb = simulate_cluster(OC, size=48, rng=3, randomize=True)
    assert np.array_equal(a, b, equal_nan=True) and ha == hb
    c, hc = simulate_cluster(OC, size=48, rng=3)
    assert 'SIMRAND' not in hc and hc['BUNIT'] != 'adu'
    assert not np.array_equal(a, c)
    # Overrides still apply on top of the randomized draw.
    d, hd = simulate_cluster(GC, size=48, rng=3, randomize=True, distance=8.0)
    assert hd['SIMDIST'] == 8.0


def test_randomized_make_dataset(tmp_path):
    files = make_dataset(tmp_path, n_per_class=2, size=32, seed=4,
                         randomize=True)
    header = fits.getheader(files['globular cluster'][0])
    assert header['SIMRAND'] is True
    again = make_dataset(tmp_path / 'again', n_per_class=2, size=32, seed=4,
                         randomize=True)
    assert (files['open cluster'][1].read_bytes()
            == again['open cluster'][1].read_bytes())


def test_old_bands_spelling_is_deprecated(tmp_path):
    with pytest.warns(AstropyDeprecationWarning, match='"bands" was deprecated'):
        old, _ = simulate_cluster('open cluster', size=32, rng=4, bands=3)
    new, _ = simulate_cluster('open cluster', size=32, rng=4, n_bands=3)
    np.testing.assert_array_equal(old, new)
    with pytest.warns(AstropyDeprecationWarning):
        make_dataset(tmp_path, n_per_class=1, size=32, bands=1)
