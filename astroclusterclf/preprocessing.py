# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Turn image data into normalized float32 RGB tensors.

The second stage of the pipeline (read → normalize → embed → head →
annotate).  An interval (`astropy.visualization` ``ZScaleInterval``,
``PercentileInterval``, ``MinMaxInterval`` or ``ManualInterval``) maps the
data to [0, 1], a stretch (``AsinhStretch``, ``LinearStretch``,
``SqrtStretch`` or ``LogStretch``) maps [0, 1] to [0, 1], single bands become
grey RGB and three bands are combined with colour-preserving (Lupton-style)
or per-band scaling.  All choices live in one small serializable
`NormalizationSettings` object, which a saved model carries so that
prediction uses exactly the preprocessing it was trained with.
"""

import dataclasses
import functools
import hashlib
import json
import logging
import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.visualization import (AsinhStretch, LinearStretch, LogStretch,
                                   ManualInterval, MinMaxInterval,
                                   PercentileInterval, SqrtStretch,
                                   ZScaleInterval)

from .exceptions import (BandSelectionError, InvalidImageError,
                         NonFinitePixelWarning, NormalizationError)
from .io import _read

__all__ = ['NormalizationSettings', 'normalize', 'fits_to_rgb', 'INTERVALS',
           'STRETCHES', 'COLOR_MODES']

log = logging.getLogger(__name__)

INTERVALS = ('zscale', 'percentile', 'minmax', 'manual')
"""Names accepted for `NormalizationSettings.interval`."""

STRETCHES = ('asinh', 'linear', 'sqrt', 'log')
"""Names accepted for `NormalizationSettings.stretch`."""

COLOR_MODES = ('lupton', 'per-band')
"""Names accepted for `NormalizationSettings.color`."""


def _is_real(value):
    return (isinstance(value, numbers.Real)
            and not isinstance(value, (bool, np.bool_)))


def _is_int(value):
    return (isinstance(value, numbers.Integral)
            and not isinstance(value, (bool, np.bool_)))


@dataclass(frozen=True)
class NormalizationSettings:
    """How image data become a normalized RGB tensor.

    A frozen (hashable) dataclass, validated on creation, that converts to
    and from a plain dict or JSON so that a saved model can carry it.

    Parameters
    ----------
    interval : {'zscale', 'percentile', 'minmax', 'manual'}, optional
        How the data range mapped to [0, 1] is found, on the finite pixels
        only: `~astropy.visualization.ZScaleInterval` (default),
        `~astropy.visualization.PercentileInterval`,
        `~astropy.visualization.MinMaxInterval` or
        `~astropy.visualization.ManualInterval` (``vmin``/``vmax``).
    percentile : float, optional
        For ``interval='percentile'``: the percentage of pixels kept,
        0 < percentile <= 100 (default 99.5).
    vmin, vmax : float or None, optional
        For ``interval='manual'``: the data values mapped to 0 and 1; `None`
        takes the minimum/maximum of the finite pixels.
    stretch : {'asinh', 'linear', 'sqrt', 'log'}, optional
        The stretch applied after the interval (default ``'asinh'``).
    stretch_a : float or None, optional
        The ``a`` parameter of `~astropy.visualization.AsinhStretch`
        (0 < a <= 1, astropy default 0.1) or
        `~astropy.visualization.LogStretch` (a > 0, astropy default 1000);
        `None` uses astropy's default.  Must be `None` for the other
        stretches.
    color : {'lupton', 'per-band'}, optional
        For three bands: ``'lupton'`` (default) scales all bands by the
        stretched mean intensity, preserving colours as
        `~astropy.visualization.make_lupton_rgb` does; ``'per-band'``
        normalizes each band with its own interval.
    bands : tuple of int or None, optional
        Indices (along the first axis of a cube) of the 1 or 3 bands to use,
        in R, G, B order.  Required for cubes with 2 or more than 3 bands.
    size : tuple of int or None, optional
        Output ``(height, width)``; an int ``n`` means ``(n, n)``.  `None`
        keeps the image size.

    Raises
    ------
    NormalizationError
        An unknown name or an out-of-range value; the message names it.

    Examples
    --------
    >>> from astroclusterclf import NormalizationSettings
    >>> settings = NormalizationSettings(stretch='sqrt', size=224)
    >>> settings.size
    (224, 224)
    >>> NormalizationSettings.from_json(settings.to_json()) == settings
    True
    >>> settings.replace(interval='percentile', percentile=99).percentile
    99.0
    """

    interval: str = 'zscale'
    percentile: float = 99.5
    vmin: float | None = None
    vmax: float | None = None
    stretch: str = 'asinh'
    stretch_a: float | None = None
    color: str = 'lupton'
    bands: tuple | None = None
    size: tuple | None = None

    def __post_init__(self):
        def fail(field, value, problem):
            raise NormalizationError(
                f'NormalizationSettings: invalid {field}={value!r}: {problem}')

        def set_(field, value):
            object.__setattr__(self, field, value)

        for field, choices in (('interval', INTERVALS), ('stretch', STRETCHES),
                               ('color', COLOR_MODES)):
            value = getattr(self, field)
            if isinstance(value, str):
                value = value.strip().lower().replace('_', '-')
            if value not in choices:
                fail(field, getattr(self, field),
                     f'expected one of {", ".join(map(repr, choices))}')
            set_(field, value)

        if not _is_real(self.percentile) or not 0 < self.percentile <= 100:
            fail('percentile', self.percentile,
                 'expected a number with 0 < percentile <= 100')
        set_('percentile', float(self.percentile))

        for field in ('vmin', 'vmax'):
            value = getattr(self, field)
            if value is None:
                continue
            if not _is_real(value) or not math.isfinite(value):
                fail(field, value, 'expected a finite number or None')
            set_(field, float(value))
        if (self.vmin is not None and self.vmax is not None
                and not self.vmin < self.vmax):
            fail('vmax', self.vmax, f'must be larger than vmin={self.vmin!r}')

        a = self.stretch_a
        if a is not None:
            if self.stretch not in ('asinh', 'log'):
                fail('stretch_a', a, f'the {self.stretch!r} stretch takes no '
                     'parameter (only asinh and log do)')
            if not _is_real(a) or not math.isfinite(a) or a <= 0:
                fail('stretch_a', a, 'expected a positive number or None')
            if self.stretch == 'asinh' and a > 1:
                fail('stretch_a', a, 'the asinh stretch needs 0 < a <= 1')
            set_('stretch_a', float(a))

        if self.bands is not None:
            bands = self.bands
            if _is_int(bands):
                bands = (bands,)
            if (not isinstance(bands, (tuple, list)) or len(bands) not in (1, 3)
                    or not all(_is_int(b) and b >= 0 for b in bands)):
                fail('bands', self.bands,
                     'expected None or 1 or 3 non-negative band indices')
            set_('bands', tuple(int(b) for b in bands))

        if self.size is not None:
            size = self.size
            if _is_int(size):
                size = (size, size)
            if (not isinstance(size, (tuple, list)) or len(size) != 2
                    or not all(_is_int(n) and n > 0 for n in size)):
                fail('size', self.size,
                     'expected None, a positive int or (height, width)')
            set_('size', tuple(int(n) for n in size))

    # -- serialization -------------------------------------------------------

    def to_dict(self):
        """The settings as a dict of JSON-compatible values (tuples kept).

        Returns
        -------
        dict
        """
        return {field.name: getattr(self, field.name)
                for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, mapping):
        """Settings from a dict such as `to_dict` returns.

        Missing keys take their default; lists become tuples.

        Parameters
        ----------
        mapping : dict

        Returns
        -------
        settings : `NormalizationSettings`

        Raises
        ------
        NormalizationError
            ``mapping`` is not a dict, has unknown keys, or invalid values.
        """
        if not isinstance(mapping, dict):
            raise NormalizationError(
                'NormalizationSettings.from_dict: expected a dict, not '
                f'{type(mapping).__name__!r}')
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise NormalizationError(
                f'NormalizationSettings: unknown setting(s) {unknown}; '
                f'known: {sorted(names)}')
        return cls(**mapping)

    def to_json(self):
        """The settings as canonical JSON (sorted keys, compact).

        Returns
        -------
        str
        """
        return json.dumps(self.to_dict(), sort_keys=True,
                          separators=(',', ':'))

    @classmethod
    def from_json(cls, text):
        """Settings from JSON written by `to_json`.

        Parameters
        ----------
        text : str

        Returns
        -------
        settings : `NormalizationSettings`

        Raises
        ------
        NormalizationError
            ``text`` is not valid JSON or holds invalid settings.
        """
        try:
            mapping = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise NormalizationError(
                f'NormalizationSettings: invalid JSON ({exc})') from None
        return cls.from_dict(mapping)

    def replace(self, **changes):
        """A copy with some settings changed (and validated).

        Parameters
        ----------
        **changes
            New values of fields, e.g. ``size=(224, 224)``.

        Returns
        -------
        settings : `NormalizationSettings`
        """
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise NormalizationError(
                f'NormalizationSettings: unknown setting(s) {unknown}; '
                f'known: {sorted(names)}')
        return dataclasses.replace(self, **changes)

    def cache_key(self):
        """A short, stable hex digest of the settings.

        Equal settings give equal keys across sessions and machines; it is
        meant for content-addressed caches of normalized images or features.

        Returns
        -------
        str
            16 hexadecimal characters (a SHA-256 prefix of `to_json`).
        """
        return hashlib.sha256(self.to_json().encode('utf-8')).hexdigest()[:16]

    # -- astropy objects -----------------------------------------------------

    def make_interval(self):
        """The `astropy.visualization` interval object for these settings.

        Returns
        -------
        interval : `~astropy.visualization.BaseInterval`
            A `~astropy.visualization.ZScaleInterval`,
            `~astropy.visualization.PercentileInterval` (of ``percentile``),
            `~astropy.visualization.MinMaxInterval`, or
            `~astropy.visualization.ManualInterval` (``vmin``, ``vmax``).
        """
        if self.interval == 'zscale':
            return ZScaleInterval()
        if self.interval == 'percentile':
            return PercentileInterval(self.percentile)
        if self.interval == 'minmax':
            return MinMaxInterval()
        return ManualInterval(vmin=self.vmin, vmax=self.vmax)

    def make_stretch(self):
        """The `astropy.visualization` stretch object for these settings.

        Returns
        -------
        stretch : `~astropy.visualization.BaseStretch`
            An `~astropy.visualization.AsinhStretch` or
            `~astropy.visualization.LogStretch` (with ``stretch_a`` when
            set), a `~astropy.visualization.SqrtStretch`, or a
            `~astropy.visualization.LinearStretch`.
        """
        if self.stretch == 'asinh':
            return (AsinhStretch() if self.stretch_a is None
                    else AsinhStretch(a=self.stretch_a))
        if self.stretch == 'log':
            return (LogStretch() if self.stretch_a is None
                    else LogStretch(a=self.stretch_a))
        if self.stretch == 'sqrt':
            return SqrtStretch()
        return LinearStretch()


def _coerce_settings(settings, options):
    if settings is None:
        settings = NormalizationSettings()
    elif isinstance(settings, dict):
        settings = NormalizationSettings.from_dict(settings)
    elif isinstance(settings, str):
        settings = NormalizationSettings.from_json(settings)
    elif not isinstance(settings, NormalizationSettings):
        raise NormalizationError(
            'settings must be a NormalizationSettings, a dict or JSON, not '
            f'{type(settings).__name__!r}')
    options = {key: value for key, value in options.items()
               if value is not None or key in ('vmin', 'vmax', 'stretch_a')}
    return settings.replace(**options) if options else settings


def fits_to_rgb(source, *, hdu=None, bands=None, size=None, settings=None,
                **options):
    """Read an image and return it as a normalized float32 RGB tensor.

    Parameters
    ----------
    source : str, `os.PathLike`, HDU list, HDU, tuple, NDData or ndarray
        Anything `~astroclusterclf.read_image` accepts: a FITS, PNG, JPEG or
        TIFF file, an `~astropy.io.fits.HDUList`, an image HDU, an
        ``(array, Header|WCS)`` tuple, an `~astropy.nddata.NDData` or a
        2-D/3-D array.
    hdu : int, str or tuple, optional
        The HDU to read (index or EXTNAME); default: the first with image
        data.
    bands : tuple of int, optional
        The 1 or 3 bands of a cube to use, in R, G, B order (overrides
        ``settings.bands``).  Required for more than 3 bands.
    size : int or tuple of int, optional
        Output ``(height, width)`` (overrides ``settings.size``); shrinking
        averages over pixel areas, enlarging interpolates bilinearly.
    settings : `NormalizationSettings`, dict or str, optional
        The normalization; default ``NormalizationSettings()`` (zscale
        interval, asinh stretch, Lupton colours).
    **options
        Any other `NormalizationSettings` field (``interval``, ``stretch``,
        ``percentile``, ``vmin``, ``vmax``, ``stretch_a``, ``color``),
        overriding ``settings``.

    Returns
    -------
    rgb : `~numpy.ndarray`
        float32 array of shape ``(height, width, 3)``, finite, with values
        in [0, 1].  Row 0 is row 0 of the data (the bottom of a FITS image
        displayed with ``origin='lower'``).

    Raises
    ------
    ImageReadError, NoImageDataError, HDUNotFoundError, UnsupportedInputError
        The source cannot be read (see `~astroclusterclf.read_image`).
    InvalidImageError
        The data are not 2-D/3-D or have no finite pixel.
    BandSelectionError
        A cube with 2 or more than 3 bands and no ``bands``, or a band index
        out of range.
    NormalizationError
        Invalid settings.

    Warns
    -----
    NonFinitePixelWarning
        The image has NaN or infinite pixels; they are left out of the
        interval and filled (NaN and -inf as the lower limit, +inf as the
        upper one).

    See Also
    --------
    normalize : the same for an array already in memory.

    Examples
    --------
    A synthetic star on a noisy sky, as a FITS HDU:

    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from astroclusterclf import fits_to_rgb
    >>> rng = np.random.default_rng(0)
    >>> y, x = np.mgrid[:64, :64]
    >>> sky = rng.normal(100.0, 3.0, (64, 64))
    >>> star = 2000.0 * np.exp(-((x - 31) ** 2 + (y - 33) ** 2) / 8.0)
    >>> rgb = fits_to_rgb(fits.PrimaryHDU(sky + star))
    >>> rgb.shape, rgb.dtype
    ((64, 64, 3), dtype('float32'))
    >>> print(f'range {rgb.min():.2f} to {rgb.max():.2f}')
    range 0.00 to 1.00

    Resized for a CNN that takes 224 x 224 pixels:

    >>> rgb = fits_to_rgb(fits.PrimaryHDU(sky + star), size=(224, 224))
    >>> rgb.shape, bool(np.isfinite(rgb).all())
    ((224, 224, 3), True)

    A single band is grey; three bands keep their colours:

    >>> bool(np.all(rgb[..., 0] == rgb[..., 1]))
    True
    >>> cube = np.stack([sky + 2 * star, sky + star, sky + 0.5 * star])
    >>> rgb = fits_to_rgb(cube, stretch='sqrt', interval='percentile')
    >>> rgb.shape
    (64, 64, 3)
    >>> r, g, b = rgb[33, 31]
    >>> bool(r > g > b)
    True
    """
    settings = _coerce_settings(settings, dict(options, bands=bands,
                                               size=size))
    image = _read(source, hdu=hdu, with_wcs=False)  # the WCS is not needed
    return normalize(image.data, settings=settings, name=image.name)


def normalize(data, *, settings=None, name='<array>', warn=True):
    """Normalize a 2-D or 3-D array to a float32 RGB tensor.

    Parameters
    ----------
    data : array-like
        ``(ny, nx)`` or ``(nbands, ny, nx)``.
    settings : `NormalizationSettings`, dict or str, optional
        The normalization; default ``NormalizationSettings()``.
    name : str, optional
        Names the data in messages and warnings (e.g. the file name).
    warn : bool, optional
        Warn (`~astroclusterclf.NonFinitePixelWarning`) when non-finite
        pixels are filled (default); `False` when the caller normalizes
        the same image again in another view and has warned already.

    Returns
    -------
    rgb : `~numpy.ndarray`
        float32 ``(height, width, 3)``, finite, in [0, 1].

    Raises
    ------
    InvalidImageError
        The data are not 2-D/3-D real numbers or have no finite pixel.
    BandSelectionError
        Bad or missing band selection (see `fits_to_rgb`).

    Warns
    -----
    NonFinitePixelWarning
        NaN or infinite pixels were masked and filled.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf import normalize
    >>> settings = {'interval': 'minmax', 'stretch': 'linear'}
    >>> rgb = normalize(np.arange(12.0).reshape(3, 4), settings=settings)
    >>> rgb[..., 0]
    array([[0.        , 0.09090909, 0.18181819, 0.27272728],
           [0.36363637, 0.45454547, 0.54545456, 0.6363636 ],
           [0.72727275, 0.8181818 , 0.90909094, 1.        ]], dtype=float32)
    """
    settings = _coerce_settings(settings, {})
    array = np.asarray(data)
    if array.dtype.kind not in 'biuf':
        raise InvalidImageError(f'{name}: image data of type {array.dtype} '
                                'are not real numbers')
    if array.ndim not in (2, 3) or array.size == 0:
        raise InvalidImageError(
            f'{name}: image data must be non-empty 2-D (ny, nx) or 3-D '
            f'(nbands, ny, nx), got shape {array.shape}')
    planes = _select_bands(array, settings.bands, name)
    # float64 arithmetic: values up to ~1e38 must not overflow.
    planes = np.asarray(planes, dtype=np.float64)

    finite = np.isfinite(planes)
    all_finite = bool(finite.all())
    if not all_finite:
        if not finite.any():
            raise InvalidImageError(f'{name}: the image has no finite pixel')
        n_nan = int(np.isnan(planes).sum())
        n_inf = planes.size - int(finite.sum()) - n_nan
        if warn:
            warnings.warn(
                f'{name}: {n_nan} NaN and {n_inf} infinite pixel value(s) out of '
                f'{planes.size} were left out of the interval and filled (from the '
                'local background; +inf as the brightest pixel)',
                NonFinitePixelWarning, stacklevel=2)
        finite_mask = finite
        planes = _fill_from_background(planes, finite)
    else:
        finite_mask = None

    interval = settings.make_interval()
    stretch = settings.make_stretch()
    if planes.shape[0] == 1:
        grey = _scale_band(planes[0], None if finite_mask is None
                           else finite_mask[0], interval, stretch)
        grey = grey[:, :, np.newaxis].astype(np.float32)
        if settings.size is not None:  # resize one channel, not three
            grey = resize(grey, settings.size)
            np.clip(grey, 0.0, 1.0, out=grey)
        return np.repeat(grey, 3, axis=2)
    if settings.color == 'per-band':
        rgb = np.stack([_scale_band(plane, None if finite_mask is None
                                    else finite_mask[i], interval, stretch)
                        for i, plane in enumerate(planes)], axis=-1)
    else:
        rgb = _lupton(planes, finite_mask, interval, stretch)

    rgb = rgb.astype(np.float32)
    if settings.size is not None:
        rgb = resize(rgb, settings.size)
        np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb


def _select_bands(array, bands, name):
    """Return a 3-D ``(1 or 3, ny, nx)`` view of the selected bands."""
    if array.ndim == 2:
        if bands is not None and any(b != 0 for b in bands):
            raise BandSelectionError(
                f'{name}: bands={bands} selects bands of a cube, but the '
                'image has a single band (2-D data)')
        return array[np.newaxis]
    nbands = array.shape[0]
    if bands is not None:
        bad = [b for b in bands if b >= nbands]
        if bad:
            raise BandSelectionError(
                f'{name}: band index {bad[0]} out of range for a cube with '
                f'{nbands} band(s) (indices 0 to {nbands - 1})')
        return array[list(bands)]
    if nbands in (1, 3):
        return array
    raise BandSelectionError(
        f'{name}: the image has {nbands} bands; pick 1 or 3 of them with '
        'bands=(2, 1, 0) in Python or --bands 2,1,0 on the command line (red, '
        'green, blue; 0-based)')


def _limits(values, interval):
    """Interval limits of the 1-D finite ``values``; never degenerate
    unless all values are equal."""
    if values.size == 0:  # a band without a finite pixel
        return 0.0, 0.0
    vmin, vmax = interval.get_limits(values)
    vmin, vmax = float(vmin), float(vmax)
    if not vmax > vmin:
        # e.g. zscale of a flat sky with a few hot pixels: use the full range.
        vmin = min(vmin, float(values.min()))
        vmax = max(vmax, float(values.max()))
    return vmin, vmax


def _finite_values(plane, mask):
    return plane.ravel() if mask is None else plane[mask]


#: Side in pixels of the boxes in which the background of masked pixels
#: is estimated.
FILL_BOX = 16


def _fill_from_background(planes, finite):
    """A copy of ``planes`` whose non-finite pixels are filled.

    NaN and -inf pixels (masked, blank, holes) get the local background:
    the median of the finite pixels of their `FILL_BOX` box (the band's
    median where a box is less than a quarter finite), plus Gaussian noise
    of the band's robust standard deviation (1.4826 MAD), drawn from a
    fixed seed so that a file always gives the same tensor.  A hole then
    looks like sky rather than a black patch, which neither the classifier
    nor the out-of-distribution score was trained on.  +inf pixels
    (saturated) get the band's brightest finite value.
    """
    out = planes.copy()
    rng = np.random.default_rng(0)
    b = FILL_BOX
    for plane, ok in zip(out, finite):
        if ok.all():
            continue
        values = plane[ok]
        if values.size == 0:     # a band without a finite pixel
            plane[...] = 0.0
            continue
        median = float(np.median(values))
        sigma = 1.4826 * float(np.median(np.abs(values - median)))
        ny, nx = plane.shape
        by, bx = -(-ny // b), -(-nx // b)
        padded = np.full((by * b, bx * b), np.nan)
        padded[:ny, :nx] = np.where(ok, plane, np.nan)
        cells = padded.reshape(by, b, bx, b).swapaxes(1, 2).reshape(by, bx, b * b)
        enough = np.isfinite(cells).sum(axis=-1) >= (b * b) // 4
        local = np.full((by, bx), median)
        if enough.any():
            local[enough] = np.nanmedian(cells[enough], axis=-1)
        local = np.repeat(np.repeat(local, b, axis=0), b, axis=1)[:ny, :nx]
        positive_inf = plane == np.inf
        holes = ~ok & ~positive_inf
        plane[holes] = local[holes] + sigma * rng.standard_normal(int(holes.sum()))
        plane[positive_inf] = values.max()
    return out


def _scale_band(plane, mask, interval, stretch):
    """Interval + stretch of one band -> float64 in [0, 1]."""
    values = _finite_values(plane, mask)
    vmin, vmax = _limits(values, interval)
    out = plane - vmin
    if vmax > vmin:
        out /= vmax - vmin
    else:  # constant image
        out[...] = 0.0
    np.clip(out, 0.0, 1.0, out=out)
    return stretch(out, clip=True, out=out)


def _lupton(planes, mask, interval, stretch):
    """Colour-preserving scaling of three bands, after Lupton et al. (2004).

    Each band ``b`` has its interval ``(lo_b, hi_b)`` computed and ``lo_b``
    subtracted; the mean intensity ``I`` of the shifted bands, divided by
    the mean interval width ``mean(hi_b - lo_b)`` (so that a pixel at
    ``hi_b`` in every band has intensity 1), is stretched; all bands are
    multiplied by ``stretch(I) / I`` so that their ratios (the colour) are
    kept, and pixels whose brightest band exceeds 1 are divided by it
    (saturating to their colour, not to white).
    """
    shifted = np.empty_like(planes)
    widths = []
    for i, plane in enumerate(planes):
        band_mask = None if mask is None else mask[i]
        values = _finite_values(plane, band_mask)
        vmin, vmax = _limits(values, interval)
        widths.append(vmax - vmin)
        np.subtract(plane, vmin, out=shifted[i])
    np.maximum(shifted, 0.0, out=shifted)
    intensity = shifted.mean(axis=0)
    high = float(np.mean(widths))
    if not high > 0:  # constant image
        return np.zeros(planes.shape[1:] + (3,))
    scaled = np.clip(intensity / high, 0.0, 1.0)
    stretched = stretch(scaled, clip=True, out=scaled)
    positive = intensity > 0
    factor = np.zeros_like(intensity)
    np.divide(stretched, intensity, out=factor, where=positive)
    rgb = shifted * factor  # (3, ny, nx)
    brightest = rgb.max(axis=0)
    over = brightest > 1.0
    if over.any():
        rgb[:, over] /= brightest[over]
    rgb = np.moveaxis(rgb, 0, -1)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


@functools.lru_cache(maxsize=64)
def _axis_plan(n_in, n_out):
    """How to resample one axis of length ``n_in`` to ``n_out``.

    Returns ``(index, weight)``, both ``(taps, n_out)``: output pixel ``i``
    is ``sum(weight[k, i] * input[index[k, i]] for k in range(taps))``.
    Shrinking: the input pixels under the output pixel's footprint,
    weighted by the overlapping length (exact area averaging).  Enlarging:
    bilinear interpolation between the two nearest pixel centres, edges
    clamped (the same as Pillow's and OpenCV's bilinear filters).
    """
    rows = np.arange(n_out)
    if n_out < n_in:
        scale = n_in / n_out
        start = rows * scale
        taps = int(np.ceil(scale)) + 1
        index = np.floor(start).astype(np.intp)[:, np.newaxis] + np.arange(taps)
        overlap = (np.minimum(start[:, np.newaxis] + scale, index + 1)
                   - np.maximum(start[:, np.newaxis], index))
        weight = np.clip(overlap, 0.0, None) / scale
    else:
        centre = np.clip((rows + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        low = np.floor(centre).astype(np.intp)
        frac = centre - low
        index = np.stack([low, low + 1], axis=1)
        weight = np.stack([1.0 - frac, frac], axis=1)
    index = np.minimum(index, n_in - 1)
    used = weight.any(axis=0)  # drop taps that are zero for every pixel
    return index[:, used].T.copy(), weight[:, used].T.astype(np.float32)


def _resample_axis(array, n_out, axis):
    n_in = array.shape[axis]
    if n_in == n_out:
        return array
    index, weight = _axis_plan(n_in, n_out)
    shape = [1] * array.ndim
    shape[axis] = n_out
    out = None
    for tap_index, tap_weight in zip(index, weight):
        term = np.take(array, tap_index, axis=axis)
        term *= tap_weight.reshape(shape)
        if out is None:
            out = term
        else:
            out += term
    return out


def resize(rgb, size):
    """Resize an ``(H, W, C)`` image, averaging areas when shrinking.

    Each axis is resampled on its own: shrinking averages the input pixels
    under each output pixel weighted by their overlap (exact area
    averaging, a plain block mean for integer factors), enlarging
    interpolates bilinearly between pixel centres.  One axis may shrink
    while the other grows.

    Parameters
    ----------
    rgb : `~numpy.ndarray`
        ``(H, W, C)`` image.
    size : int or tuple of int
        Output ``(height, width)``; an int ``n`` means ``(n, n)``.

    Returns
    -------
    resized : `~numpy.ndarray`
        float32 ``(height, width, C)``; ``rgb`` itself (as float32) if the
        size is unchanged.

    Raises
    ------
    NormalizationError
        An invalid ``size``.
    InvalidImageError
        ``rgb`` is not 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> from astroclusterclf.preprocessing import resize
    >>> image = np.arange(16, dtype='float32').reshape(4, 4, 1)
    >>> resize(image, (2, 2))[..., 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> resize(image, 8).shape
    (8, 8, 1)
    """
    if _is_int(size):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(_is_int(n) and n > 0 for n in size)):
        raise NormalizationError(f'resize: invalid size={size!r}: expected a '
                                 'positive int or (height, width)')
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3:
        raise InvalidImageError(f'resize: expected an (H, W, C) image, got '
                                f'shape {rgb.shape}')
    height, width = int(size[0]), int(size[1])
    in_h, in_w, channels = rgb.shape
    if (in_h, in_w) == (height, width):
        return rgb
    if in_h % height == 0 and in_w % width == 0:
        fy, fx = in_h // height, in_w // width
        return rgb.reshape(height, fy, width, fx, channels).mean(
            axis=(1, 3), dtype=np.float32)

    return _resample_axis(_resample_axis(rgb, height, 0), width, 1)
