# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Synthetic images of globular and open star clusters.

These images are the embedded demo and test data of astroclusterclf.  A
globular cluster is thousands of old, red giant-branch and horizontal-branch
stars drawn from a King (1962) projected profile, on top of the diffuse light
of its unresolved fainter stars; an open cluster is tens to a couple of
hundred young, blue stars (with the odd red giant) drawn from a shallow
Elson, Fall & Freeman (1987) profile.  Both are seen at a random distance,
through a random amount of reddening, among field stars and the occasional
background galaxy, convolved with a Moffat or Gaussian point spread
function, on a sky background with Poisson and read noise, and sometimes
saturated.  The parameter ranges overlap so that no single brightness or
size threshold separates the two classes.  See :doc:`/simulate` for the
model and its parameter ranges.

All the light (stars, the unresolved light of the cluster and the
galaxies, each represented by many faint points drawn from its profile) is
deposited on a 2x oversampled grid with cloud-in-cell weights and convolved
with the point spread function by FFT, so a 128 x 128 image takes a few
milliseconds.
"""

import logging
import math
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.utils.decorators import deprecated_renamed_argument
from astropy.wcs import WCS
from PIL import Image

from ._atomic import atomic_write
from .exceptions import SimulationError
from .preprocessing import normalize
from .version import __version__

__all__ = ['CLASS_NAMES', 'RANDOMIZED_RANGES', 'simulate_cluster',
           'make_dataset', 'make_mosaic']

log = logging.getLogger(__name__)

#: The class names, which are also the folder names written by
#: `make_dataset` and the labels of the `make_mosaic` catalog.
CLASS_NAMES = ('globular cluster', 'open cluster')

_KIND_ALIASES = {'globular cluster': 'globular cluster',
                 'globular': 'globular cluster',
                 'gc': 'globular cluster',
                 'open cluster': 'open cluster',
                 'open': 'open cluster',
                 'oc': 'open cluster'}

#: Band names of 3-band images, in the order of the first data axis: the
#: reddest first, so that `~astroclusterclf.preprocessing.fits_to_rgb`,
#: which maps the planes to red, green and blue, shows natural colours.
BANDS = ('i', 'r', 'g')

# Extinction per unit E(B-V) in the SDSS g, r, i bands (Schlafly &
# Finkbeiner 2011, R_V = 3.1).
_EXTINCTION = np.array([3.303, 2.285, 1.698])

# Pixel scale of a default (128 pixel) image and its field of view.
_PIXEL_SCALE = 0.4  # arcsec / pixel
_FOV = 128 * _PIXEL_SCALE  # arcsec

# Oversampling of the grid the light is deposited on before convolution.
_OVERSAMPLE = 2

# Allowed range of the apparent half-light radius for a 51.2 arcsec field:
# (distance, r_h) pairs are redrawn until the cluster fits the image.
_RH_WINDOW = (1.2, 16.0)  # arcsec

_RAD_TO_ARCSEC = 206264.806

# Cluster light is tapered to nothing at this many image sizes from the
# centre (about the corners of the image), so that clusters injected into
# a mosaic 2 * _TRUNCATION * cluster_size apart do not overlap.
_TRUNCATION = 0.75

_PARAM_DOC = {
    'distance': 'distance in kpc',
    'half_light_radius': 'projected half-light radius in pc',
    'concentration': 'King concentration log10(r_t/r_c) (globular only)',
    'gamma': 'EFF power-law slope (open only)',
    'n_stars': 'number of resolved cluster stars',
    'diffuse_fraction': 'fraction of the cluster light that is unresolved',
    'ellipticity': '1 - b/a of the cluster',
    'position_angle': 'position angle of the major axis in deg',
    'ebv': 'reddening E(B-V) in mag',
    'center': '(x, y) pixel position of the cluster centre (0-based)',
    'fwhm': 'PSF FWHM in arcsec',
    'psf': "'moffat' or 'gaussian'",
    'moffat_beta': 'Moffat beta',
    'sky': 'sky surface brightness in r, mag/arcsec2',
    'read_noise': 'read noise in electrons',
    'zero_point': 'photometric zero point (mag giving 1 electron)',
    'saturation': 'full-well level in electrons, or None',
    'n_field': 'number of field stars',
    'n_galaxies': 'number of background galaxies',
    'pixel_scale': 'pixel scale in arcsec/pixel',
    'ra': 'right ascension of the image centre in deg',
    'dec': 'declination of the image centre in deg',
    'n_subclusters': 'number of sub-clusters (open only; 1: none)',
}

#: Ranges of the domain-randomized mode (``randomize=True``), with the
#: surveys and papers they come from; see :doc:`/simulate`.
RANDOMIZED_RANGES = {
    'globular_distance': ((2.0, 150.0), 'kpc, Milky Way halo and bulge '
                          '(Harris 1996, 2010 edition)'),
    'extragalactic_distance': ((300.0, 20000.0), 'kpc, 20 % of globular '
                               'clusters: M31 to the Virgo cluster, '
                               'barely resolved or unresolved'),
    'globular_half_light_radius': ((1.0, 10.0), 'pc (Harris 1996)'),
    'concentration': ((0.5, 2.5), 'King c = log10(rt/rc) (Harris 1996)'),
    'open_distance': ((0.1, 15.0), 'kpc (Cantat-Gaudin et al. 2020; '
                      'Kharchenko et al. 2013)'),
    'open_members': ((20, 2000), 'resolved members, poor to rich '
                     '(Cantat-Gaudin et al. 2020)'),
    'open_half_light_radius': ((0.7, 8.0), 'pc (Kharchenko et al. 2013)'),
    'open_ellipticity': ((0.0, 0.6), 'elongation (Hu et al. 2021)'),
    'sub_clustered': (0.35, 'fraction of open clusters in 2-5 clumps '
                      '(Kuhn et al. 2014)'),
    'overfilling': (0.15, 'fraction of open clusters larger than half '
                    'the frame'),
    'pixel_scale': ((0.05, 10.0), 'arcsec/pixel, whatever the class: '
                    'HST/ACS to photographic-plate scans (DSS 1.0-1.7, '
                    '2MASS 1.0) and binned wide-field cutouts (HiPS) that '
                    'fit nearby open clusters'),
    'fwhm': ((0.5, 4.0), 'arcsec, Moffat or Gaussian, at least 0.8 '
             'pixel and at most 12 pixels'),
    'zero_point': ((24.5, 33.0), 'mag giving 1 electron: shallow plates '
                   'to deep co-adds (DSS to HSC-SSP Deep)'),
    'sky': ((17.5, 22.5), 'mag/arcsec2 in r; bands u to z keep dark-sky '
            'colours'),
    'field_density': ((0.1, 100.0), 'field stars per arcmin2 to r = '
                      '24.5: halo to bulge (Robin et al. 2003)'),
    'galaxy_density': ((0.5, 20.0), 'background galaxies per arcmin2 in '
                       'half of the frames'),
    'sky_subtracted': (0.5, 'fraction of sky-subtracted frames; the '
                       'others are raw, with a pedestal'),
    'gradient': ((0.02, 0.3), 'peak-to-peak sky gradient, fraction of '
                 'the sky, in half of the frames'),
    'saturated': (0.4, 'fraction of frames with a full well, with bleed '
                  'trails along columns'),
    'cosmic_rays': (0.5, 'fraction of frames with cosmic-ray hits'),
    'edge': (0.1, 'fraction of frames cut by the survey edge (10-45 % '
             'of the frame NaN or zero)'),
    'nan_gap': (0.1, 'fraction of frames with a NaN chip gap'),
    'center_offset': (0.15, 'fraction of frames with the cluster up to a '
                      'quarter of the frame off centre'),
}

# The SDSS bands, blue to red, that randomized frames are drawn in.
_SDSS = ('u', 'g', 'r', 'i', 'z')


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------

def _check_kind(kind):
    if not isinstance(kind, str) or kind.strip().lower() not in _KIND_ALIASES:
        raise SimulationError(
            f'unknown cluster kind {kind!r}; expected one of '
            + ', '.join(repr(k) for k in CLASS_NAMES))
    return _KIND_ALIASES[kind.strip().lower()]


def _check_int(value, name, minimum):
    if (isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < minimum):
        raise SimulationError(
            f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


def _check_bands(bands):
    if isinstance(bands, bool) or bands not in (1, 3):
        raise SimulationError(f'n_bands must be 1 or 3, got {bands!r}')
    return int(bands)


def _check_seed(seed, name='seed'):
    if (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
            or not 0 <= seed < 2**63):
        raise SimulationError(
            f'{name} must be an integer in [0, 2**63), got {seed!r}')
    return int(seed)


def _resolve_seed(rng):
    """Turn ``rng`` (None, int or Generator) into an integer seed that
    reproduces the image and is recorded in the header."""
    if rng is None:
        return int(np.random.default_rng().integers(2**63))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return _check_seed(rng, 'rng')
    raise SimulationError(
        f'rng must be None, an integer seed or a numpy.random.Generator, '
        f'got {type(rng).__name__}')


def _derived_seed(seed, *key):
    """A 63-bit seed derived from ``seed`` and a key of small integers,
    independent of how many other seeds are derived."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(
        1, np.uint64)
    return int(state[0] >> np.uint64(1))


# ---------------------------------------------------------------------------
# Radial profiles: inverse-CDF sampling
# ---------------------------------------------------------------------------

def _king_cumulative(x, xt):
    """Number of stars within ``x = (R/r_c)**2`` for a King (1962) projected
    profile truncated at ``xt = (r_t/r_c)**2`` (arbitrary normalisation)."""
    c = 1.0 / np.sqrt(1.0 + xt)
    return np.log1p(x) - 4.0 * c * (np.sqrt(1.0 + x) - 1.0) + c * c * x


def _king_table(concentration, n=2048):
    """Radii (in units of r_c) and normalised cumulative counts."""
    rt = 10.0 ** concentration
    r = np.concatenate([[0.0], np.geomspace(1e-4, rt, n)])
    cum = _king_cumulative(r * r, rt * rt)
    return r, cum / cum[-1]


def _king_half_number_radius(concentration):
    """Projected half-number radius of a King (1962) profile in units of
    its core radius."""
    r, cum = _king_table(concentration)
    return float(np.interp(0.5, cum, r))


def _sample_king(n, concentration, rc, rng):
    r, cum = _king_table(concentration)
    return rc * np.interp(rng.random(n), cum, r)


def _eff_half_number_radius(gamma, rmax):
    """Half-number radius of an EFF profile truncated at ``rmax`` (both in
    units of the scale radius a)."""
    e = 1.0 - gamma / 2.0
    ctot = 1.0 - (1.0 + rmax ** 2) ** e
    return math.sqrt((1.0 - 0.5 * ctot) ** (1.0 / e) - 1.0)


def _sample_eff(n, gamma, a, rmax, rng):
    """Radii from an Elson, Fall & Freeman (1987) profile
    ``(1 + r**2/a**2)**(-gamma/2)`` truncated at ``rmax * a``."""
    e = 1.0 - gamma / 2.0
    ctot = 1.0 - (1.0 + rmax ** 2) ** e
    uu = rng.random(n) * ctot
    return a * np.sqrt((1.0 - uu) ** (1.0 / e) - 1.0)


def _sample_sersic(n, index, re, rng, rmax=8.0):
    """Radii from a Sersic profile of index ``index`` and effective radius
    ``re``, truncated at ``rmax * re`` (numerical inverse CDF)."""
    b = 2.0 * index - 1.0 / 3.0 + 0.009876 / index
    r = np.linspace(0.0, rmax, 1025)
    dens = r * np.exp(-b * (r ** (1.0 / index) - 1.0))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]))])
    return re * np.interp(rng.random(n), cum / cum[-1], r)


def _place(r, ellipticity, pa_deg, rng):
    """Turn radii into (dx, dy) offsets on an ellipse of the given
    ellipticity and position angle (area-preserving)."""
    theta = rng.random(r.size) * (2 * np.pi)
    q = 1.0 - ellipticity
    a = r * np.cos(theta) / np.sqrt(q)
    b = r * np.sin(theta) * np.sqrt(q)
    # Position angle from north (+y) through east (-x).
    pa = np.deg2rad(pa_deg)
    dx = -a * np.sin(pa) - b * np.cos(pa)
    dy = a * np.cos(pa) - b * np.sin(pa)
    return dx, dy


def _loguniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _sample_magnitudes(n, bright, faint, slope, rng):
    """Absolute magnitudes from a luminosity function
    ``dN/dM ~ 10**(slope * M)`` between ``bright`` and ``faint``."""
    lo, hi = 10.0 ** (slope * bright), 10.0 ** (slope * faint)
    return np.log10(lo + rng.random(n) * (hi - lo)) / slope


def _band_names(bands):
    """Band names of an image: 1 -> ('r',), 3 -> `BANDS`, or the names."""
    if bands == 1:
        return ('r',)
    if bands == 3:
        return BANDS
    return tuple(bands)


def _reference_band(bands):
    """Index of the band that magnitudes and SIM* cards refer to: r, or
    the middle band of images without r."""
    names = _band_names(bands)
    return names.index('r') if 'r' in names else len(names) // 2


def _colour(band, g_r, r_i):
    """Colour ``band - r`` of stars of colours g-r and r-i.  u-g and i-z
    follow the stellar locus of Covey et al. (2007) to first order."""
    if band == 'g':
        return g_r
    if band == 'i':
        return -r_i
    if band == 'u':
        return g_r + (0.75 + 1.25 * np.maximum(g_r, -0.3))
    if band == 'z':
        return -r_i - (0.55 * r_i + 0.02)
    return 0.0


def _fluxes(mag_r, g_r, r_i, zero_point, bands):
    """Fluxes in electrons, shape (nbands, n), from r magnitudes and
    colours, in the bands ``bands`` (see `_band_names`)."""
    f_r = 10.0 ** (-0.4 * (mag_r - zero_point))
    return np.stack([f_r if b == 'r' else f_r * 10.0 ** (
        -0.4 * _colour(b, g_r, r_i)) for b in _band_names(bands)])


# ---------------------------------------------------------------------------
# Stellar populations
# ---------------------------------------------------------------------------

def _globular_population(n, rng):
    """Absolute r magnitudes and intrinsic g-r, r-i colours of the resolved
    stars of an old, metal-poor population: red giant branch, subgiants
    and the horizontal branch."""
    mag = _sample_magnitudes(n, -3.3, 4.0, 0.35, rng)
    g_r = 0.40 + 0.08 * (3.0 - np.minimum(mag, 3.0)) + rng.normal(0.0, 0.04, n)
    hb = rng.random(n) < 0.08
    mag[hb] = rng.normal(0.6, 0.15, hb.sum())
    g_r[hb] = rng.uniform(-0.25, 0.45, hb.sum())
    r_i = 0.42 * g_r + 0.02 + rng.normal(0.0, 0.02, n)
    return mag, g_r, r_i


def _open_population(n, rng):
    """Same for a young population: blue main sequence with a few red
    (super)giants."""
    mag = _sample_magnitudes(n, -4.5, 3.0, 0.18, rng)
    g_r = -0.35 + 0.09 * (mag + 4.5) + rng.normal(0.0, 0.04, n)
    giants = rng.random(n) < 0.05
    mag[giants] = rng.uniform(-3.5, -0.5, giants.sum())
    g_r[giants] = rng.uniform(0.8, 1.3, giants.sum())
    r_i = 0.42 * g_r + 0.0 + rng.normal(0.0, 0.02, n)
    return mag, g_r, r_i


def _field_stars(n, width, height, x0, y0, zero_point, bands, rng):
    """Foreground stars spread uniformly over a rectangle."""
    x = x0 + rng.random(n) * width
    y = y0 + rng.random(n) * height
    mag = _sample_magnitudes(n, 14.0, 24.5, 0.25, rng)
    g_r = rng.uniform(0.2, 1.5, n)
    r_i = 0.42 * g_r + rng.normal(0.0, 0.05, n)
    return x, y, _fluxes(mag, g_r, r_i, zero_point, bands)


def _galaxies(n, width, height, x0, y0, pixel_scale, zero_point, bands,
              rng):
    """Background galaxies as points drawn from Sersic profiles."""
    xs, ys, fs = [], [], []
    for _ in range(n):
        xc = x0 + rng.random() * width
        yc = y0 + rng.random() * height
        mag = rng.uniform(17.0, 22.0)
        re = _loguniform(rng, 0.8, 4.0) / pixel_scale
        index = rng.uniform(0.6, 4.0)
        ell = rng.uniform(0.0, 0.7)
        pa = rng.uniform(0.0, 180.0)
        g_r = rng.uniform(0.4, 1.2)
        r_i = rng.uniform(0.25, 0.6)
        npts = 3000
        dx, dy = _place(_sample_sersic(npts, index, re, rng), ell, pa, rng)
        flux = _fluxes(np.array([mag]), g_r, r_i, zero_point, bands) / npts
        xs.append(xc + dx)
        ys.append(yc + dy)
        fs.append(np.repeat(flux, npts, axis=1))
    if not xs:
        return np.empty(0), np.empty(0), np.empty((len(_band_names(bands)), 0))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(fs, axis=1)


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

def _draw_observation(rng, size):
    """Observing conditions of one image (or mosaic)."""
    p = {}
    p['pixel_scale'] = _PIXEL_SCALE * 128 / size
    p['fwhm'] = rng.uniform(0.7, 1.6)
    p['psf'] = 'moffat' if rng.random() < 0.7 else 'gaussian'
    p['moffat_beta'] = rng.uniform(2.5, 4.5)
    p['sky'] = rng.uniform(19.8, 21.5)
    p['read_noise'] = rng.uniform(3.0, 10.0)
    p['zero_point'] = rng.uniform(28.5, 30.5)
    saturate = rng.random() < 0.3
    full_well = rng.uniform(3e4, 1.2e5)
    p['saturation'] = full_well if saturate else None
    p['ra'] = rng.uniform(0.0, 360.0)
    p['dec'] = float(np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0))))
    return p


def _observation_cards(header, obs, sky, bands, n_field, n_galaxies):
    """Write the SIM* cards of the observing conditions (PSF, sky, noise,
    saturation, field population) of an image or mosaic."""
    psf = obs['psf'].lower()
    header['SIMPSF'] = (psf.upper(), 'PSF profile')
    header['SIMFWHM'] = (_fmt(obs['fwhm']), '[arcsec] PSF FWHM')
    if psf == 'moffat':
        header['SIMBETA'] = (_fmt(obs['moffat_beta']), 'Moffat beta')
    header['SIMSKY'] = (_fmt(obs['sky']), '[mag/arcsec2] Sky brightness in r')
    header['SIMSKYE'] = (_fmt(sky[_reference_band(bands)], 2),
                         '[electron] Sky level per pixel (reference band)')
    header['SIMRDN'] = (_fmt(obs['read_noise'], 3), '[electron] Read noise')
    header['SIMSATUR'] = (_fmt(obs['saturation'] or 0.0, 1),
                          '[electron] Full well (0: no saturation)')
    header['SIMNFLD'] = (n_field, 'Field stars')
    header['SIMNGAL'] = (n_galaxies, 'Background galaxies')


def _draw_cluster(kind, rng, fov_scale):
    """Intrinsic and distance parameters of one cluster.  ``fov_scale`` is
    the field of view in units of 51.2 arcsec; distances scale inversely
    so that the cluster fills the same fraction of the field."""
    p = {}
    lo, hi = _RH_WINDOW[0] * fov_scale, _RH_WINDOW[1] * fov_scale
    if kind == 'globular cluster':
        dist_range, rh_range = (30.0, 300.0), (1.5, 8.0)
    else:
        dist_range, rh_range = (15.0, 90.0), (1.0, 5.0)
    for _ in range(1000):
        dist = _loguniform(rng, *dist_range) / fov_scale
        rh = _loguniform(rng, *rh_range)
        if lo <= rh / (dist * 1e3) * _RAD_TO_ARCSEC <= hi:
            break
    p['distance'] = dist
    p['half_light_radius'] = rh
    if kind == 'globular cluster':
        p['concentration'] = rng.uniform(0.8, 2.2)
        p['n_stars'] = int(round(_loguniform(rng, 1500, 10000)))
        p['diffuse_fraction'] = rng.uniform(0.15, 0.4)
        p['ellipticity'] = rng.uniform(0.0, 0.2)
        p['ebv'] = rng.uniform(0.0, 0.2)
    else:
        p['gamma'] = rng.uniform(2.3, 4.0)
        p['n_stars'] = int(round(_loguniform(rng, 20, 200)))
        p['diffuse_fraction'] = rng.uniform(0.0, 0.2)
        p['ellipticity'] = rng.uniform(0.0, 0.4)
        p['ebv'] = rng.uniform(0.0, 0.35)
    p['position_angle'] = rng.uniform(0.0, 180.0)
    return p


def _rand_range(name):
    return RANDOMIZED_RANGES[name][0]


def _draw_randomized(kind, rng, size, nbands):
    """All the parameters of one domain-randomized frame, and its frame
    effects (see `RANDOMIZED_RANGES`)."""
    p = {}
    # Band(s): one of u..z, or three adjacent ones, reddest first.
    if nbands == 1:
        p['bands'] = (_SDSS[int(rng.integers(0, 5))],)
    else:
        first = int(rng.integers(0, 3))
        p['bands'] = tuple(reversed(_SDSS[first:first + 3]))
    p['psf'] = 'moffat' if rng.random() < 0.6 else 'gaussian'
    p['moffat_beta'] = rng.uniform(2.0, 5.0)
    fwhm = _loguniform(rng, *_rand_range('fwhm'))
    p['sky'] = rng.uniform(*_rand_range('sky'))
    p['read_noise'] = _loguniform(rng, 1.5, 20.0)
    # Depth: the sky level per pixel (20 electrons on a short exposure
    # to 30000 on a deep one) sets the zero point.
    sky_e = _loguniform(rng, 20.0, 3e4)
    saturate = rng.random() < RANDOMIZED_RANGES['saturated'][0]
    full_well = _loguniform(rng, 1e4, 2e5)
    p['ra'] = rng.uniform(0.0, 360.0)
    p['dec'] = float(np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0))))

    # The pixel scale is drawn whatever the class (so that it is no clue
    # to the class), then the cluster, redrawn until it fits the frame
    # (apparent half-light radius at most 0.4 of the frame, 1.0 for an
    # overfilling open cluster) and spans at least half a pixel.  After
    # 200 draws that do not fit, the pixel scale is redrawn.
    overfill = (kind == 'open cluster'
                and rng.random() < RANDOMIZED_RANGES['overfilling'][0])
    for attempt in range(10000):
        if attempt % 200 == 0:
            scale = float(_loguniform(rng, *_rand_range('pixel_scale')))
        if kind == 'globular cluster':
            far = rng.random() < 0.2
            dist = _loguniform(rng, *_rand_range(
                'extragalactic_distance' if far else 'globular_distance'))
            rh = _loguniform(rng, *_rand_range('globular_half_light_radius'))
        else:
            dist = _loguniform(rng, *_rand_range('open_distance'))
            rh = _loguniform(rng, *_rand_range('open_half_light_radius'))
        rh_pix = rh / (dist * 1e3) * _RAD_TO_ARCSEC / scale
        if 0.5 <= rh_pix <= (1.0 if overfill else 0.4) * size:
            break
    p['pixel_scale'] = scale
    p['fwhm'] = float(np.clip(fwhm, 0.8 * scale, 12.0 * scale))
    p['zero_point'] = float(np.clip(
        p['sky'] + 2.5 * np.log10(sky_e / scale ** 2),
        *_rand_range('zero_point')))
    sky_max = float(_sky_per_pixel(p['sky'], scale, p['zero_point'],
                                   p['bands']).max())
    full_well = max(full_well, 4.0 * sky_max)
    p['distance'] = dist
    p['half_light_radius'] = rh
    if kind == 'globular cluster':
        p['concentration'] = rng.uniform(*_rand_range('concentration'))
        p['n_stars'] = int(round(_loguniform(rng, 1500, 10000)))
        p['diffuse_fraction'] = rng.uniform(0.15, 0.5)
        p['ellipticity'] = rng.uniform(0.0, 0.25)
        p['ebv'] = rng.uniform(0.0, 0.6)
    else:
        p['gamma'] = rng.uniform(2.2, 4.5)
        p['n_stars'] = int(round(_loguniform(rng,
                                             *_rand_range('open_members'))))
        p['diffuse_fraction'] = rng.uniform(0.0, 0.2)
        p['ellipticity'] = rng.uniform(*_rand_range('open_ellipticity'))
        p['ebv'] = rng.uniform(0.0, 1.0)
        p['n_subclusters'] = (
            int(rng.integers(2, 6))
            if rng.random() < RANDOMIZED_RANGES['sub_clustered'][0] else 1)
    p['position_angle'] = rng.uniform(0.0, 180.0)
    p['saturation'] = full_well if saturate else None

    # Field and framing.
    area = (size * scale / 60.0) ** 2  # arcmin2
    density = _loguniform(rng, *_rand_range('field_density'))
    p['n_field'] = int(min(rng.poisson(density * area), 30000))
    gal_density = _loguniform(rng, *_rand_range('galaxy_density'))
    p['n_galaxies'] = (int(min(rng.poisson(gal_density * area), 40))
                       if rng.random() < 0.5 else 0)
    offset = rng.normal(0.0, size / 20.0, 2)
    if rng.random() < RANDOMIZED_RANGES['center_offset'][0]:
        offset = rng.uniform(-size / 4.0, size / 4.0, 2)
    p['center'] = tuple(size / 2.0 - 0.5 + offset)

    frame = {}
    frame['sky_subtracted'] = bool(
        rng.random() < RANDOMIZED_RANGES['sky_subtracted'][0])
    frame['pedestal'] = (0.0 if frame['sky_subtracted']
                         else float(rng.uniform(0.0, 2000.0)))
    frame['gain'] = float(_loguniform(rng, 0.5, 5.0))
    frame['gradient'] = (float(rng.uniform(*_rand_range('gradient')))
                         if rng.random() < 0.5 else 0.0)
    frame['gradient_angle'] = float(rng.uniform(0.0, 2.0 * np.pi))
    frame['n_cosmic'] = (
        int(rng.integers(1, 2 + size * size // 800))
        if rng.random() < RANDOMIZED_RANGES['cosmic_rays'][0] else 0)
    frame['edge'] = (float(rng.uniform(0.1, 0.45))
                     if rng.random() < RANDOMIZED_RANGES['edge'][0] else 0.0)
    frame['edge_side'] = int(rng.integers(0, 4))
    frame['edge_nan'] = bool(rng.random() < 0.5)
    frame['nan_gap'] = (int(rng.integers(2, 11))
                        if rng.random() < RANDOMIZED_RANGES['nan_gap'][0]
                        else 0)
    return p, frame


def _sky_map(sky, frame, shape):
    """Per-band sky (nbands, ny, nx) with the frame's linear gradient."""
    ny, nx = shape
    sky = np.asarray(sky, dtype=np.float32)[:, np.newaxis, np.newaxis]
    if not frame['gradient']:
        return sky * np.ones((1, ny, nx), dtype=np.float32)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    a = frame['gradient_angle']
    t = ((x - nx / 2) * np.cos(a) + (y - ny / 2) * np.sin(a)) / max(ny, nx)
    return sky * (1.0 + frame['gradient'] * t.astype(np.float32))


def _add_cosmic_rays(model, n, rng):
    """Add ``n`` cosmic-ray hits (sharp tracks of 1-10 pixels, in every
    band: a cube's planes are one exposure here) to ``model``."""
    nbands, ny, nx = model.shape
    for _ in range(n):
        length = rng.uniform(0.0, 10.0)
        angle = rng.uniform(0.0, np.pi)
        amp = _loguniform(rng, 200.0, 2e4)
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        t = np.arange(0.0, length + 0.5, 0.5)
        ix = np.clip((x0 + t * np.cos(angle)).astype(int), 0, nx - 1)
        iy = np.clip((y0 + t * np.sin(angle)).astype(int), 0, ny - 1)
        for b in range(nbands):
            np.add.at(model[b], (iy, ix), np.float32(amp / t.size * 2))


def _bleed(plane, full_well):
    """Saturate one plane at ``full_well``: the charge above it runs up
    and down the column (bleed trails), as in a CCD."""
    excess = plane - full_well
    for col in np.flatnonzero((excess > 0).any(axis=0)):
        over = excess[:, col] > 0
        # Runs of saturated pixels in this column.
        edges = np.flatnonzero(np.diff(np.concatenate(
            [[0], over.astype(np.int8), [0]])))
        for start, stop in zip(edges[::2], edges[1::2]):
            charge = float(excess[start:stop, col].sum())
            extra = int(math.ceil(charge / full_well / 2.0))
            lo, hi = max(0, start - extra), min(plane.shape[0], stop + extra)
            plane[lo:hi, col] = np.maximum(plane[lo:hi, col], full_well)
    np.minimum(plane, np.float32(full_well), out=plane)
    return plane


def _finish_frame(data, sky, full_well, frame, rng):
    """Saturation with bleed trails, sky subtraction or a pedestal, gain,
    and the blank parts (survey edge, chip gap) of a randomized frame."""
    nbands, ny, nx = data.shape
    if full_well is not None:
        for b in range(nbands):
            _bleed(data[b], full_well)
    if frame['sky_subtracted']:
        data -= sky
    data /= np.float32(frame['gain'])
    data += np.float32(frame['pedestal'])
    if frame['edge']:
        fill = np.nan if frame['edge_nan'] else 0.0
        side = frame['edge_side']
        n = int(round(frame['edge'] * (nx if side < 2 else ny)))
        region = [(Ellipsis, slice(None), slice(0, n)),
                  (Ellipsis, slice(None), slice(nx - n, nx)),
                  (Ellipsis, slice(0, n), slice(None)),
                  (Ellipsis, slice(ny - n, ny), slice(None))][side]
        data[region] = fill
    if frame['nan_gap']:
        w = frame['nan_gap']
        if rng.random() < 0.5:
            at = int(rng.integers(0, nx - w))
            data[:, :, at:at + w] = np.nan
        else:
            at = int(rng.integers(0, ny - w))
            data[:, at:at + w, :] = np.nan
    return data


def _frame_cards(header, frame, bands):
    header['SIMRAND'] = (True, 'Domain-randomized frame (randomize=True)')
    header['SIMSKYSB'] = (frame['sky_subtracted'], 'Sky subtracted')
    header['SIMPED'] = (_fmt(frame['pedestal'], 1), '[adu] Pedestal')
    header['SIMGRAD'] = (_fmt(frame['gradient']),
                         'Sky gradient, peak to peak / sky')
    header['SIMNCR'] = (frame['n_cosmic'], 'Cosmic-ray hits')
    header['SIMEDGE'] = (_fmt(frame['edge'] if frame['edge'] else 0.0),
                         'Fraction of the frame past the survey edge')
    header['SIMGAP'] = (frame['nan_gap'], '[pix] Width of a NaN chip gap')
    header['GAIN'] = (_fmt(frame['gain']), '[electron/adu] Gain')
    header['BUNIT'] = ('adu', 'Pixel unit')


def _cluster_light(kind, p, x0, y0, pixel_scale, zero_point, bands, rng,
                   rlimit):
    """Points (x, y, flux) that make up the light of one cluster centred on
    (x0, y0), tapered to nothing at ``rlimit`` pixels from the centre, and
    a dict of derived quantities."""
    dist_pc = p['distance'] * 1e3
    pc_to_pix = _RAD_TO_ARCSEC / dist_pc / pixel_scale
    rh_pix = p['half_light_radius'] * pc_to_pix
    n = p['n_stars']
    derived = {}
    if kind == 'globular cluster':
        conc = p['concentration']
        rc_pix = rh_pix / _king_half_number_radius(conc)
        derived['rc_pix'] = rc_pix
        derived['rt_pix'] = rc_pix * 10.0 ** conc

        def radii(m):
            return _sample_king(m, conc, rc_pix, rng)
        mag, g_r, r_i = _globular_population(n, rng)
    else:
        gamma = p['gamma']
        rmax = 6.0
        a_pix = rh_pix / _eff_half_number_radius(gamma, rmax)
        derived['a_pix'] = a_pix

        def radii(m):
            return _sample_eff(m, gamma, a_pix, rmax, rng)
        mag, g_r, r_i = _open_population(n, rng)

    ebv = p['ebv']
    dm = 5.0 * np.log10(dist_pc / 10.0)
    mag_app = mag + dm + _EXTINCTION[1] * ebv
    g_r_obs = g_r + (_EXTINCTION[0] - _EXTINCTION[1]) * ebv
    r_i_obs = r_i + (_EXTINCTION[1] - _EXTINCTION[2]) * ebv
    flux = _fluxes(mag_app, g_r_obs, r_i_obs, zero_point, bands)
    dx, dy = _place(radii(n), p['ellipticity'], p['position_angle'], rng)
    nsub = p.get('n_subclusters', 1)
    if nsub > 1:
        # Sub-clustering: 70 % of the members in ``nsub`` clumps of a
        # third of the cluster's size, scattered over its half-light
        # radius (Kuhn et al. 2014).
        member = rng.random(n) < 0.7
        clump = rng.integers(0, nsub, n)[member]
        centres = rng.normal(0.0, rh_pix, (nsub, 2))
        dx[member] = 0.35 * dx[member] + centres[clump, 0]
        dy[member] = 0.35 * dy[member] + centres[clump, 1]

    # Unresolved light: the same profile, many faint points with the mean
    # colour of the resolved stars.
    rband = _reference_band(bands)
    fd = p['diffuse_fraction']
    diffuse = flux.sum(axis=1) * fd / (1.0 - fd)
    ndiff = 0
    if fd > 0:
        # Faint enough points that their granularity is like surface
        # brightness fluctuations, not like stars.
        ndiff = int(np.clip(diffuse[rband] / 50.0, 500, 20000))
        ddx, ddy = _place(radii(ndiff), p['ellipticity'],
                          p['position_angle'], rng)
        dx = np.concatenate([dx, ddx])
        dy = np.concatenate([dy, ddy])
        flux = np.concatenate(
            [flux, np.repeat(diffuse[:, np.newaxis] / ndiff, ndiff, axis=1)],
            axis=1)
    # Taper the outskirts smoothly to nothing at ``rlimit`` (a cos**2
    # window from rlimit / 2), by thinning the points.
    rr = np.hypot(dx, dy)
    t = np.clip(2.0 * rr / rlimit - 1.0, 0.0, 1.0)
    inside = rng.random(rr.size) < np.cos(0.5 * np.pi * t) ** 2
    dx, dy, rr, flux = dx[inside], dy[inside], rr[inside], flux[:, inside]
    x, y = x0 + dx, y0 + dy

    r_flux = flux[rband]
    total = float(r_flux.sum())
    order = np.argsort(rr)
    cum = np.cumsum(r_flux[order])
    derived['flux'] = total
    derived['mag'] = float(zero_point - 2.5 * np.log10(total))
    derived['rh_pix'] = float(rr[order][np.searchsorted(cum, 0.5 * total)])
    derived['n_diffuse'] = ndiff
    return x, y, flux, derived


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

def _psf_kernel(fwhm_pix, kind, beta):
    """The PSF sampled on the oversampled grid, normalised to unit sum."""
    radius = int(math.ceil(5.0 * fwhm_pix)) + 1
    n = radius * _OVERSAMPLE
    t = (np.arange(-n, n + 1) / _OVERSAMPLE)
    r2 = t[:, np.newaxis] ** 2 + t[np.newaxis, :] ** 2
    if kind == 'gaussian':
        sigma = fwhm_pix / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        kernel = np.exp(-0.5 * r2 / sigma ** 2)
    else:
        alpha = fwhm_pix / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        kernel = (1.0 + r2 / alpha ** 2) ** (-beta)
    return (kernel / kernel.sum()).astype(np.float32), radius


def _fast_length(n):
    """The smallest 5-smooth integer >= n (a fast FFT length)."""
    best = 2 * n
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # Smallest power of 2 times p35 that is >= n.
            p2 = p35 * 2 ** max(0, math.ceil(math.log2(n / p35)))
            best = min(best, p2)
            p35 *= 3
        p5 *= 5
    return best


def _render(shape, x, y, flux, kernel, radius, origin=(0, 0)):
    """Deposit points (x, y in pixels of the full image, 0-based) with
    cloud-in-cell weights on a 2x oversampled grid covering the pixels
    ``origin + (0..shape)`` plus a margin of ``radius`` pixels (the
    kernel's half-width), convolve with ``kernel`` by FFT and return the
    noiseless (nbands, ny, nx) float32 image."""
    ny, nx = shape
    oy, ox = origin
    nbands = flux.shape[0]
    os_ = _OVERSAMPLE
    m = radius * os_  # margin on the oversampled grid = kernel half-width
    gy, gx = ny * os_ + 2 * m, nx * os_ + 2 * m
    # Oversampled coordinates of the points on the padded grid.
    ux = (x - ox + radius + 0.5) * os_ - 0.5
    uy = (y - oy + radius + 0.5) * os_ - 0.5
    keep = (ux >= 0) & (ux < gx - 1) & (uy >= 0) & (uy < gy - 1)
    ux, uy, flux = ux[keep], uy[keep], flux[:, keep]
    ix, iy = np.floor(ux).astype(np.intp), np.floor(uy).astype(np.intp)
    tx, ty = ux - ix, uy - iy
    idx = iy * gx + ix
    cells = np.concatenate([idx, idx + 1, idx + gx, idx + gx + 1])
    weights = np.concatenate([(1 - tx) * (1 - ty), tx * (1 - ty),
                              (1 - tx) * ty, tx * ty])
    grid = np.empty((nbands, gy, gx), dtype=np.float32)
    for b in range(nbands):
        grid[b] = np.bincount(cells, weights=np.tile(flux[b], 4) * weights,
                              minlength=gy * gx).reshape(gy, gx)
    # Circular convolution with the kernel centred on (0, 0): the margin
    # absorbs the wrap-around, so the interior is the exact linear
    # convolution and no further padding is needed.
    fy, fx = _fast_length(gy), _fast_length(gx)
    wrapped = np.zeros((fy, fx), dtype=np.float32)
    wrapped[:2 * m + 1, :2 * m + 1] = kernel
    wrapped = np.roll(wrapped, (-m, -m), axis=(0, 1))
    conv = np.fft.irfft2(np.fft.rfft2(grid, s=(fy, fx))
                         * np.fft.rfft2(wrapped), s=(fy, fx))
    conv = conv[:, m:m + ny * os_, m:m + nx * os_]
    out = conv.reshape(nbands, ny, os_, nx, os_).sum(axis=(2, 4),
                                                     dtype=np.float32)
    np.maximum(out, 0.0, out=out)  # FFT round-off
    return out


# Dark-sky colours, band - r in mag/arcsec2 (e.g. the SDSS sky: u 22.1,
# g 21.8, r 21.0, i 20.1, z 19.2).
_SKY_COLOUR = {'u': 1.1, 'g': 0.8, 'r': 0.0, 'i': -0.9, 'z': -1.8}


def _sky_per_pixel(sky_mag, pixel_scale, zero_point, bands):
    """Sky level in electrons per pixel in each band (dark-sky colours);
    ``sky_mag`` is the r-band sky brightness."""
    sky_r = 10.0 ** (-0.4 * (sky_mag - zero_point)) * pixel_scale ** 2
    return np.array([sky_r if b == 'r' else sky_r * 10 ** (
        -0.4 * _SKY_COLOUR[b]) for b in _band_names(bands)])


def _observe(model, sky, read_noise, saturation, rng):
    """Add sky, Poisson and read noise (in place, float32) and saturate."""
    for b in range(model.shape[0]):
        lam = model[b]
        lam += np.asarray(sky[b], dtype=np.float32)
        model[b] = rng.poisson(lam)
        model[b] += rng.normal(0.0, read_noise, lam.shape).astype(np.float32)
        if saturation is not None:
            np.minimum(model[b], np.float32(saturation), out=model[b])
    return model


def _wcs_header(shape, ra, dec, pixel_scale):
    """A TAN WCS centred on the image."""
    w = WCS(naxis=2)
    ny, nx = shape
    w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    w.wcs.cunit = ['deg', 'deg']
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    w.wcs.crval = [ra, dec]
    w.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    w.wcs.radesys = 'ICRS'
    header = w.to_header()
    # astropy adds MJDREF/DATEREF-like cards only when set; drop anything
    # time dependent for byte-identical files.
    for key in ('DATE', 'DATE-OBS', 'MJD-OBS'):
        header.remove(key, ignore_missing=True)
    return header


def _image_header(shape, ra, dec, pixel_scale, zp, bands):
    """The header cards every simulated image shares: WCS, unit, zero
    point, gain and bands."""
    header = fits.Header()
    header.extend(_wcs_header(shape, ra, dec, pixel_scale))
    header['BUNIT'] = ('electron', 'Pixel unit (sky included)')
    header['MAGZERO'] = (_fmt(zp), '[mag] Zero point: mag giving 1 electron')
    header['GAIN'] = (1.0, '[electron/adu] Gain')
    _add_band_cards(header, bands)
    return header


def _add_band_cards(header, bands):
    names = _band_names(bands)
    if len(names) == 1:
        header['FILTER'] = (names[0], f'Band (SDSS-like {names[0]})')
    else:
        header['WCSAXES'] = (2, 'Celestial axes only; axis 3 is the band')
        for i, band in enumerate(names, start=1):
            header[f'BAND{i}'] = (band, f'SDSS-like band of plane {i} '
                                        f'of axis 3')


def _history(header):
    header['HISTORY'] = f'Simulated by astroclusterclf {__version__}'


def _fmt(value, ndigits=4):
    return float(round(float(value), ndigits))


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

@deprecated_renamed_argument('bands', 'n_bands', '0.1')
def simulate_cluster(kind, *, size=128, rng=None, n_bands=1, randomize=False,
                     **params):
    """Simulate an image of a globular or an open star cluster.

    Parameters
    ----------
    kind : {'globular cluster', 'open cluster'}
        The class to simulate (``'globular'`` and ``'open'`` also work).
    size : int, optional
        Width and height of the image in pixels (at least 16).  The field
        of view is 51.2 arcsec whatever the size (0.4 arcsec/pixel at the
        default 128 pixels) unless ``pixel_scale`` is given.
    rng : None, int or `numpy.random.Generator`, optional
        Source of randomness: `None` for fresh entropy, an integer seed, or
        a generator (from which one integer seed is drawn).  The integer
        seed that reproduces the image is stored in the ``SIMSEED`` card.
    n_bands : {1, 3}, optional
        (``bands`` before 0.1, deprecated.)  One band (r) gives a
        ``(size, size)`` image; three bands give a ``(3, size, size)``
        cube in the bands i, r, g (reddest first: the order
        `~astroclusterclf.preprocessing.fits_to_rgb` maps to red, green,
        blue), named in the ``BAND1..3`` cards.
    randomize : bool, optional
        Draw a domain-randomized frame instead: every parameter over the
        ranges of real surveys (`RANDOMIZED_RANGES`: distances, pixel
        scales 0.05-10"/pixel, PSFs, depths, one of the bands u to z or
        three adjacent ones), sky-subtracted or raw with a pedestal (in
        adu), with sky gradients, saturation with bleed trails, cosmic
        rays, survey edges and NaN gaps.  ``size`` then sets only the
        number of pixels.  See :doc:`/simulate`.
    **params
        Fix any of the randomly drawn parameters instead of drawing it:
        ``distance`` (kpc), ``half_light_radius`` (pc), ``concentration``
        (globular only), ``gamma`` (open only), ``n_stars``,
        ``diffuse_fraction``, ``ellipticity``, ``position_angle`` (deg),
        ``ebv`` (mag), ``center`` ((x, y) pixels, 0-based), ``fwhm``
        (arcsec), ``psf`` ('moffat' or 'gaussian'), ``moffat_beta``,
        ``sky`` (mag/arcsec2), ``read_noise`` (electrons), ``zero_point``
        (mag), ``saturation`` (electrons or `None`), ``n_field``,
        ``n_galaxies``, ``pixel_scale`` (arcsec/pixel), ``ra``, ``dec``
        (deg).  Fixing one parameter leaves all the others as they would
        have been drawn.

    Returns
    -------
    data : `~numpy.ndarray`
        float32 image in electrons, sky included.
    header : `~astropy.io.fits.Header`
        A TAN WCS, ``BUNIT``, ``MAGZERO`` and ``SIM*`` cards recording the
        simulation parameters (``SIMKIND``, ``SIMSEED``, ``SIMDIST``, ...).

    Raises
    ------
    SimulationError
        Unknown ``kind``, invalid ``size``, ``n_bands``, ``rng`` or an unknown
        or invalid parameter.

    Notes
    -----
    Globular clusters follow a King (1962) projected profile with
    concentration ``c = log10(r_t / r_c)`` between 0.8 and 2.2, 1500 to
    8000 resolved old stars plus 30-60 % unresolved light; open clusters
    follow an EFF profile with 20 to 200 young blue stars.  See
    :doc:`/simulate` for all the ranges.

    Examples
    --------
    >>> from astroclusterclf.simulate import simulate_cluster
    >>> data, header = simulate_cluster('globular cluster', size=64, rng=42)
    >>> data.shape, data.dtype
    ((64, 64), dtype('float32'))
    >>> header['SIMKIND'], header['CTYPE1'], header['CTYPE2']
    ('globular cluster', 'RA---TAN', 'DEC--TAN')
    >>> 0.8 <= header['SIMCONC'] <= 2.2
    True
    >>> cube, header = simulate_cluster('open cluster', n_bands=3, rng=1)
    >>> cube.shape, header['BAND1'], header['BAND3']
    ((3, 128, 128), 'i', 'g')

    The same seed gives the same image; fixing a parameter changes only
    that parameter:

    >>> import numpy as np
    >>> a, _ = simulate_cluster('open', size=32, rng=7)
    >>> b, _ = simulate_cluster('open', size=32, rng=7)
    >>> np.array_equal(a, b)
    True
    >>> c, hdr = simulate_cluster('open', size=32, rng=7, fwhm=1.0)
    >>> hdr['SIMFWHM']
    1.0

    A domain-randomized frame records its draws in more cards:

    >>> d, hdr = simulate_cluster('open', size=64, rng=7, randomize=True)
    >>> hdr['SIMRAND'], hdr['BUNIT'], hdr['SIMSKYSB'] in (True, False)
    (True, 'adu', True)
    """
    kind = _check_kind(kind)
    size = _check_int(size, 'size', 16)
    bands = _check_bands(n_bands)
    seed = _resolve_seed(rng)
    data, header = _simulate(kind, size, bands, seed, params,
                             randomize=bool(randomize))
    return data, header


def _simulate(kind, size, bands, seed, params, randomize=False):
    unknown = sorted(set(params) - set(_PARAM_DOC))
    if unknown:
        raise SimulationError(
            f'unknown simulation parameter(s) {", ".join(unknown)}; '
            f'expected some of {", ".join(sorted(_PARAM_DOC))}')
    if kind == 'globular cluster' and 'gamma' in params:
        raise SimulationError(
            "parameter 'gamma' applies only to open clusters")
    if kind == 'open cluster' and 'concentration' in params:
        raise SimulationError(
            "parameter 'concentration' applies only to globular clusters")

    if kind == 'globular cluster' and 'n_subclusters' in params:
        raise SimulationError(
            "parameter 'n_subclusters' applies only to open clusters")

    rng = np.random.default_rng(seed)
    # Draw everything first, in a fixed order, then apply the overrides:
    # fixing one parameter leaves the others unchanged.
    if randomize:
        p, frame = _draw_randomized(kind, rng, size, bands)
        bands = p.pop('bands')
        pixel_scale = params.get('pixel_scale', p['pixel_scale'])
    else:
        frame = None
        obs = _draw_observation(rng, size)
        pixel_scale = params.get('pixel_scale', obs['pixel_scale'])
        _check_positive(pixel_scale, 'pixel_scale')
        fov_scale = size * pixel_scale / _FOV
        clu = _draw_cluster(kind, rng, fov_scale)
        area = (size / 128.0) ** 2 * (pixel_scale / _PIXEL_SCALE) ** 2
        density = (_loguniform(rng, 5, 80) if kind == 'globular cluster'
                   else _loguniform(rng, 15, 150))
        p = {**obs, **clu,
             'center': tuple(size / 2.0 - 0.5
                             + rng.normal(0.0, size / 40.0, 2)),
             'n_field': int(rng.poisson(density * area)),
             'n_galaxies': (int(rng.integers(1, 4)) if rng.random() < 0.35
                            else 0)}
    _check_positive(pixel_scale, 'pixel_scale')
    p.update(params)
    _check_params(p, kind)

    psf_kind = p['psf'].lower()
    fwhm_pix = p['fwhm'] / pixel_scale
    kernel, radius = _psf_kernel(fwhm_pix, psf_kind, p['moffat_beta'])

    zp = p['zero_point']
    xc, yc = p['center']
    x, y, flux, der = _cluster_light(kind, p, xc, yc, pixel_scale, zp,
                                     bands, rng, _TRUNCATION * size)
    fx, fy, ff = _field_stars(p['n_field'], size + 2 * radius,
                              size + 2 * radius, -radius - 0.5,
                              -radius - 0.5, zp, bands, rng)
    gx, gy, gf = _galaxies(p['n_galaxies'], size, size, -0.5, -0.5,
                           pixel_scale, zp, bands, rng)
    x = np.concatenate([x, fx, gx])
    y = np.concatenate([y, fy, gy])
    flux = np.concatenate([flux, ff, gf], axis=1)

    model = _render((size, size), x, y, flux, kernel, radius)
    sky = _sky_per_pixel(p['sky'], pixel_scale, zp, bands)
    if frame is None:
        data = _observe(model, sky, p['read_noise'], p['saturation'], rng)
    else:
        sky = _sky_map(sky, frame, (size, size))
        _add_cosmic_rays(model, frame['n_cosmic'], rng)
        data = _observe(model, sky, p['read_noise'], None, rng)
        data = _finish_frame(data, sky, p['saturation'], frame, rng)
        sky = sky.mean(axis=(1, 2))
    if data.shape[0] == 1:
        data = data[0]

    header = _image_header((size, size), p['ra'], p['dec'], pixel_scale, zp, bands)
    header['SIMKIND'] = (kind, 'Simulated class')
    header['SIMSEED'] = (seed, 'Seed: simulate_cluster(SIMKIND, rng=SIMSEED)')
    header['SIMXC'] = (_fmt(xc, 2), '[pix] Cluster centre x (0-based)')
    header['SIMYC'] = (_fmt(yc, 2), '[pix] Cluster centre y (0-based)')
    header['SIMDIST'] = (_fmt(p['distance'], 3), '[kpc] Distance')
    header['SIMRH'] = (_fmt(p['half_light_radius'], 3),
                       '[pc] Projected half-light radius')
    header['SIMRHPIX'] = (_fmt(der['rh_pix'], 3),
                          '[pix] Half-light radius of the cluster light')
    if kind == 'globular cluster':
        header['SIMCONC'] = (_fmt(p['concentration']),
                             'King concentration log10(rt/rc)')
        header['SIMRC'] = (_fmt(der['rc_pix'], 3), '[pix] King core radius')
        header['SIMRT'] = (_fmt(der['rt_pix'], 3), '[pix] King tidal radius')
    else:
        header['SIMGAMMA'] = (_fmt(p['gamma']), 'EFF profile power-law slope')
        header['SIMA'] = (_fmt(der['a_pix'], 3), '[pix] EFF scale radius')
    header['SIMNSTAR'] = (p['n_stars'], 'Resolved cluster stars')
    header['SIMFDIFF'] = (_fmt(p['diffuse_fraction']),
                          'Unresolved fraction of the cluster light')
    header['SIMELL'] = (_fmt(p['ellipticity']), 'Cluster ellipticity 1-b/a')
    header['SIMPA'] = (_fmt(p['position_angle'], 2),
                       '[deg] Cluster position angle (N through E)')
    header['SIMEBV'] = (_fmt(p['ebv']), '[mag] Reddening E(B-V)')
    header['SIMFLUX'] = (_fmt(der['flux'], 1),
                         '[electron] Total r flux of the cluster')
    header['SIMMAG'] = (_fmt(der['mag']), '[mag] Total r magnitude of cluster')
    if p.get('n_subclusters', 1) > 1:
        header['SIMNSUB'] = (p['n_subclusters'], 'Sub-clusters')
    _observation_cards(header, p, sky, bands, p['n_field'], p['n_galaxies'])
    if frame is not None:
        _frame_cards(header, frame, bands)
    _history(header)
    return data, header


def _check_positive(value, name):
    try:
        ok = float(value) > 0 and math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SimulationError(
            f'parameter {name!r} must be a positive number, got {value!r}')


def _check_params(p, kind):
    for name in ('distance', 'half_light_radius', 'n_stars', 'fwhm',
                 'moffat_beta', 'read_noise', 'zero_point', 'pixel_scale'):
        _check_positive(p[name], name)
    if kind == 'globular cluster' and not 0.3 <= p['concentration'] <= 3.0:
        raise SimulationError(
            f"parameter 'concentration' must be in [0.3, 3], got "
            f"{p['concentration']!r}")
    if kind == 'open cluster' and not 2.05 <= p['gamma'] <= 8.0:
        raise SimulationError(
            f"parameter 'gamma' must be in [2.05, 8], got {p['gamma']!r}")
    if not 0 <= p['diffuse_fraction'] < 1:
        raise SimulationError(
            f"parameter 'diffuse_fraction' must be in [0, 1), got "
            f"{p['diffuse_fraction']!r}")
    if not 0 <= p['ellipticity'] < 1:
        raise SimulationError(
            f"parameter 'ellipticity' must be in [0, 1), got "
            f"{p['ellipticity']!r}")
    if not isinstance(p['psf'], str) or p['psf'].lower() not in (
            'moffat', 'gaussian'):
        raise SimulationError(
            f"parameter 'psf' must be 'moffat' or 'gaussian', got "
            f"{p['psf']!r}")
    if p['saturation'] is not None:
        _check_positive(p['saturation'], 'saturation')
    for name in ('n_field', 'n_galaxies'):
        _check_int(p[name], f'parameter {name!r}', 0)
    p['n_stars'] = _check_int(p['n_stars'], "parameter 'n_stars'", 1)
    try:
        xc, yc = (float(v) for v in p['center'])
    except (TypeError, ValueError):
        raise SimulationError(
            f"parameter 'center' must be a pair (x, y) of pixel "
            f"coordinates, got {p['center']!r}") from None
    p['center'] = (xc, yc)
    if 'n_subclusters' in p:
        p['n_subclusters'] = _check_int(p['n_subclusters'],
                                        "parameter 'n_subclusters'", 1)
    if p['ebv'] < 0:
        raise SimulationError(
            f"parameter 'ebv' must be >= 0, got {p['ebv']!r}")


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------

def _write_fits(path, data, header):
    hdu = fits.PrimaryHDU(data=data, header=header)
    atomic_write(path, hdu.writeto)


def _write_png(path, data, name):
    rgb = normalize(data, name=name)
    pixels = np.round(np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0)
    pixels = pixels.astype(np.uint8)
    if data.ndim == 2:
        image = Image.fromarray(np.ascontiguousarray(pixels[..., 0]), mode='L')
    else:
        image = Image.fromarray(pixels, mode='RGB')
    atomic_write(path, lambda tmp: image.save(tmp, format='PNG'))


_FORMATS = ('fits', 'png')


def _check_formats(formats):
    if isinstance(formats, str):
        formats = (formats,)
    try:
        formats = tuple(str(f).lower().lstrip('.') for f in formats)
    except TypeError:
        raise SimulationError(
            f'formats must be a sequence of {_FORMATS}, got {formats!r}'
        ) from None
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise SimulationError(
            f'unknown image format(s) {bad or formats!r}; expected some of '
            + ', '.join(repr(f) for f in _FORMATS))
    return tuple(dict.fromkeys(formats))


def _make_directory(directory):
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(
            f'cannot create output directory {str(directory)!r}: '
            f'{exc.strerror or exc}') from None
    return directory


@deprecated_renamed_argument('bands', 'n_bands', '0.1')
def make_dataset(directory, *, n_per_class, seed=0, size=128, n_bands=1,
                 formats=('fits',), randomize=False, progress=None):
    """Write a training set of simulated cluster images in class folders.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Output directory (created if needed).  The images go to the
        sub-folders ``globular cluster/`` and ``open cluster/`` (see
        `CLASS_NAMES`), named ``globular_cluster_0000.fits``, ...
    n_per_class : int
        Number of images of each class (at least 1).
    seed : int, optional
        Seed of the whole set.  The same seed writes byte-identical files;
        image ``i`` of a class does not depend on ``n_per_class``, so a
        larger set starts with the images of a smaller one.
    size : int, optional
        Image width and height in pixels.
    n_bands : {1, 3}, optional
        Number of bands (r, or i, r, g as in `simulate_cluster`);
        ``bands`` before 0.1 (deprecated).
    formats : sequence of {'fits', 'png'}, optional
        File formats to write.  PNG images are normalized with
        `astroclusterclf.preprocessing.normalize` (default settings) and
        saved as 8-bit greyscale (1 band) or RGB (3 bands).
    randomize : bool, optional
        Domain-randomized frames (see `simulate_cluster`).
    progress : callable, optional
        Called as ``progress(n_done, n_total)`` after each image.

    Returns
    -------
    files : dict of str to list of `~pathlib.Path`
        The files written, by class name.

    Raises
    ------
    SimulationError
        Invalid arguments or an output directory that cannot be created.

    Examples
    --------
    >>> import tempfile
    >>> from astroclusterclf.simulate import make_dataset
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = make_dataset(tmp, n_per_class=2, size=32)
    ...     print([p.name for p in files['open cluster']])
    ...     print(files['open cluster'][0].parent.name)
    ['open_cluster_0000.fits', 'open_cluster_0001.fits']
    open cluster
    """
    n_per_class = _check_int(n_per_class, 'n_per_class', 1)
    seed = _check_seed(seed)
    size = _check_int(size, 'size', 16)
    bands = _check_bands(n_bands)
    formats = _check_formats(formats)
    directory = _make_directory(directory)

    width = max(4, len(str(n_per_class - 1)))
    total = n_per_class * len(CLASS_NAMES)
    done = 0
    files = {}
    for k, kind in enumerate(CLASS_NAMES):
        folder = _make_directory(directory / kind)
        stem = kind.replace(' ', '_')
        files[kind] = []
        for i in range(n_per_class):
            image_seed = _derived_seed(seed, k, i)
            data, header = _simulate(kind, size, bands, image_seed, {},
                                     randomize=bool(randomize))
            name = f'{stem}_{i:0{width}d}'
            for fmt in formats:
                path = folder / f'{name}.{fmt}'
                if fmt == 'fits':
                    _write_fits(path, data, header)
                else:
                    _write_png(path, data, str(path))
                files[kind].append(path)
            done += 1
            if progress is not None:
                progress(done, total)
    log.info('wrote %d simulated images per class to %s', n_per_class,
             directory)
    return files


def _place_clusters(n, shape, min_sep, margin, rng):
    """Non-overlapping positions (random sequential adsorption)."""
    ny, nx = shape
    pos = np.empty((0, 2))
    attempts = 0
    while len(pos) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise SimulationError(
                f'cannot place {n} clusters {min_sep:g} pixels apart and '
                f'{margin} pixels from the edges of a {ny}x{nx} image; use '
                f'a larger shape, fewer clusters or a smaller cluster_size')
        cand = np.array([rng.uniform(margin, nx - 1 - margin),
                         rng.uniform(margin, ny - 1 - margin)])
        if len(pos) and np.min(np.max(np.abs(pos - cand), axis=1)) < min_sep:
            continue
        pos = np.vstack([pos, cand])
    return pos


@deprecated_renamed_argument('bands', 'n_bands', '0.1')
def make_mosaic(directory, *, n_clusters=24, shape=(2048, 2048), seed=0,
                cluster_size=128, n_bands=1):
    """Write a survey image with injected clusters, and their catalog.

    The image is sky, noise and field stars (and background galaxies)
    over the whole area, with ``n_clusters`` globular and open clusters
    (about half of each, in random order) at non-overlapping positions
    at least ``cluster_size`` pixels from the edges.  One PSF, sky level
    and noise apply to the whole image; the pixel scale is 0.4 arcsec.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Output directory (created if needed).
    n_clusters : int, optional
        Number of clusters to inject (at least 1).
    shape : tuple of int, optional
        ``(ny, nx)`` of the image.  8192 x 8192 works (the image is built
        in float32 tile by tile).
    seed : int, optional
        Seed; the same seed writes byte-identical files.
    cluster_size : int, optional
        Size in pixels of the box each cluster is drawn to fit, as
        ``size`` in `simulate_cluster`; boxes do not overlap.
    n_bands : {1, 3}, optional
        Number of bands (``bands`` before 0.1, deprecated).

    Returns
    -------
    mosaic_path, catalog_path : `~pathlib.Path`
        ``mosaic.fits`` (float32, TAN WCS) and ``mosaic.ecsv``, an
        `~astropy.table.Table` with columns ``ra``, ``dec`` (deg), ``x``,
        ``y`` (0-based pixels), ``label``, ``r_half`` (pixels) and ``flux``
        (electrons).

    Raises
    ------
    SimulationError
        Invalid arguments, or clusters that do not fit in the image.

    Examples
    --------
    >>> import tempfile
    >>> from astropy.table import Table
    >>> from astroclusterclf.simulate import make_mosaic
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     image, catalog = make_mosaic(tmp, n_clusters=2, shape=(256, 256),
    ...                                  cluster_size=48, seed=1)
    ...     table = Table.read(catalog)
    >>> image.name, catalog.name
    ('mosaic.fits', 'mosaic.ecsv')
    >>> table.colnames
    ['ra', 'dec', 'x', 'y', 'label', 'r_half', 'flux']
    >>> table['ra'].unit, sorted(table['label'].tolist())
    (Unit("deg"), ['globular cluster', 'open cluster'])
    """
    n_clusters = _check_int(n_clusters, 'n_clusters', 1)
    seed = _check_seed(seed)
    cluster_size = _check_int(cluster_size, 'cluster_size', 16)
    bands = _check_bands(n_bands)
    try:
        ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise SimulationError(
            f'shape must be a pair (ny, nx) of integers, got {shape!r}'
        ) from None
    if min(ny, nx) < 3 * cluster_size:
        raise SimulationError(
            f'shape {shape!r} is too small for clusters of {cluster_size} '
            f'pixels; each side must be at least {3 * cluster_size}')
    directory = _make_directory(directory)

    rng = np.random.default_rng(_derived_seed(seed, 0))
    obs = _draw_observation(rng, 128)
    pixel_scale = _PIXEL_SCALE
    zp = obs['zero_point']
    fwhm_pix = obs['fwhm'] / pixel_scale
    kernel, radius = _psf_kernel(fwhm_pix, obs['psf'], obs['moffat_beta'])
    sky = _sky_per_pixel(obs['sky'], pixel_scale, zp, bands)
    fov_scale = cluster_size * pixel_scale / _FOV

    positions = _place_clusters(n_clusters, (ny, nx),
                                2 * _TRUNCATION * cluster_size,
                                cluster_size, rng)
    labels = [CLASS_NAMES[i % 2] for i in range(n_clusters)]
    labels = [labels[i] for i in rng.permutation(n_clusters)]

    # All the light as points (clusters, field stars, galaxies).
    xs, ys, fs, rows = [], [], [], []
    for j, (label, (xc, yc)) in enumerate(zip(labels, positions)):
        crng = np.random.default_rng(_derived_seed(seed, 1, j))
        p = _draw_cluster(label, crng, fov_scale)
        x, y, flux, der = _cluster_light(label, p, xc, yc, pixel_scale, zp,
                                         bands, crng,
                                         _TRUNCATION * cluster_size)
        xs.append(x)
        ys.append(y)
        fs.append(flux)
        rows.append((xc, yc, label, der['rh_pix'], der['flux']))
    frng = np.random.default_rng(_derived_seed(seed, 2))
    area = ny * nx / 128.0 ** 2
    n_field = int(frng.poisson(_loguniform(frng, 10, 60) * area))
    x, y, flux = _field_stars(n_field, nx + 2 * radius, ny + 2 * radius,
                              -radius - 0.5, -radius - 0.5, zp, bands, frng)
    xs.append(x)
    ys.append(y)
    fs.append(flux)
    n_gal = int(frng.poisson(0.3 * area))
    x, y, flux = _galaxies(n_gal, nx, ny, -0.5, -0.5, pixel_scale, zp, bands,
                           frng)
    xs.append(x)
    ys.append(y)
    fs.append(flux)
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    flux = np.concatenate(fs, axis=1).astype(np.float32)
    del xs, ys, fs

    image = np.empty((bands, ny, nx), dtype=np.float32)
    tile = 512
    for t, (y0, x0) in enumerate((y0, x0) for y0 in range(0, ny, tile)
                                 for x0 in range(0, nx, tile)):
        th, tw = min(tile, ny - y0), min(tile, nx - x0)
        sel = ((x >= x0 - radius - 1) & (x < x0 + tw + radius)
               & (y >= y0 - radius - 1) & (y < y0 + th + radius))
        model = _render((th, tw), x[sel], y[sel], flux[:, sel], kernel,
                        radius, origin=(y0, x0))
        trng = np.random.default_rng(_derived_seed(seed, 3, t))
        image[:, y0:y0 + th, x0:x0 + tw] = _observe(
            model, sky, obs['read_noise'], obs['saturation'], trng)
    del x, y, flux
    data = image[0] if bands == 1 else image

    header = _image_header((ny, nx), obs['ra'], obs['dec'], pixel_scale, zp, bands)
    header['SIMKIND'] = ('mosaic', 'Simulated survey image with clusters')
    header['SIMSEED'] = (seed, 'Seed: make_mosaic(seed=SIMSEED)')
    header['SIMNCLUS'] = (n_clusters, 'Injected clusters')
    header['SIMCLSIZ'] = (cluster_size,
                          '[pix] Size the clusters are drawn for')
    _observation_cards(header, obs, sky, bands, n_field, n_gal)
    _history(header)

    mosaic_path = directory / 'mosaic.fits'
    catalog_path = directory / 'mosaic.ecsv'
    _write_fits(mosaic_path, data, header)
    del image, data

    wcs = WCS(header, naxis=2)
    xcol = np.array([r[0] for r in rows])
    ycol = np.array([r[1] for r in rows])
    sky_coords = wcs.pixel_to_world(xcol, ycol)
    table = Table(meta={'seed': seed, 'image': mosaic_path.name,
                        'shape': [ny, nx], 'cluster_size': cluster_size,
                        'bands': bands,
                        'generator': f'astroclusterclf {__version__}'})
    table['ra'] = u.Quantity(sky_coords.ra.deg, u.deg)
    table['ra'].description = 'Right ascension (ICRS) of the cluster centre'
    table['dec'] = u.Quantity(sky_coords.dec.deg, u.deg)
    table['dec'].description = 'Declination (ICRS) of the cluster centre'
    table['x'] = u.Quantity(xcol, u.pix)
    table['x'].description = 'Cluster centre x in the image (0-based)'
    table['y'] = u.Quantity(ycol, u.pix)
    table['y'].description = 'Cluster centre y in the image (0-based)'
    table['label'] = [r[2] for r in rows]
    table['label'].description = 'True class of the injected cluster'
    table['r_half'] = u.Quantity([r[3] for r in rows], u.pix)
    table['r_half'].description = 'Half-light radius of the cluster light'
    table['flux'] = u.Quantity([r[4] for r in rows], u.electron)
    table['flux'].description = 'Total flux of the cluster in r'

    atomic_write(catalog_path,
                 lambda tmp: table.write(tmp, format='ascii.ecsv'))
    log.info('wrote mosaic %s and catalog %s', mosaic_path, catalog_path)
    return mosaic_path, catalog_path
