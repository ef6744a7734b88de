# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Degraded copies of images, to calibrate for another survey.

A temperature fitted on held-out images of the training survey makes the
confidences honest on that survey.  Images of another survey are harder:
worse seeing, shallower, at another pixel scale or distance, and a head
that is always right on held-out images of its own survey is then right
less often than it says.  Following Tomani et al. (2021, "Post-hoc
Uncertainty Calibration for Domain Drift Scenarios", CVPR), `retrain`
also predicts a degraded copy of each held-out image and fits the
temperature on the clean and the degraded held-out predictions together,
so that the confidence holds over a range of survey drifts, not only at
none.

The degradations are those that separate one imaging survey from
another, applied to the raw pixels before normalization, each with a
strength drawn uniformly up to `MAX_LEVEL`:

- **scale**: the frame shrinks by a factor up to 3 (a coarser pixel scale,
  or the same objects farther away), the border filled with sky noise;
- **seeing**: a Gaussian blur of up to 2 pixels (sigma);
- **depth**: added Gaussian noise of up to 3 times the frame's own sky
  noise (robust standard deviation).

They use the frame's own sky level and noise (median and MAD of the
finite pixels), so they need no header, and they are drawn from a seed:
the same image always gets the same copy.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf.drift import degrade
>>> rng = np.random.default_rng(0)
>>> frame = rng.normal(100, 5, (64, 64))
>>> frame[28:36, 28:36] += 500
>>> copy = degrade(frame, np.random.default_rng(1), level=1.0)
>>> copy.shape, bool(np.isfinite(copy).all())
((64, 64), True)
>>> bool(copy.max() < frame.max())        # blurred, shrunk: the peak drops
True
"""

import numpy as np

from .exceptions import ParameterError
from .preprocessing import resize

__all__ = ['degrade', 'MAX_LEVEL']

#: The largest strength of a degradation (1: a frame up to 3 times
#: smaller, a blur of up to 2 pixels, up to 3 times the sky noise added).
MAX_LEVEL = 1.0


def _gaussian_blur(plane, sigma):
    if sigma < 0.3:
        return plane
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(plane, radius, mode='reflect')
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode='valid'), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode='valid'), 0, rows)


def _degrade_plane(plane, rng, scale, blur, noise):
    finite = np.isfinite(plane)
    values = plane[finite]
    if values.size == 0:
        return plane.copy()
    sky = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - sky)))
    d = np.where(finite, plane, sky) - sky
    ny, nx = d.shape
    if scale > 1.01:
        small = resize(d[:, :, None].astype(np.float32),
                       (max(2, int(round(ny / scale))), max(2, int(round(nx / scale)))))[..., 0]
        # The block average lowers the sky noise by the scale: fill the
        # border with the same lowered noise.
        out = rng.normal(0.0, sigma / scale, d.shape)
        oy, ox = (ny - small.shape[0]) // 2, (nx - small.shape[1]) // 2
        out[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
        d = out
    d = _gaussian_blur(d, blur)
    d = d + rng.normal(0.0, noise * sigma, d.shape)
    out = d + sky
    out[~finite] = np.nan
    return out


def degrade(data, rng, *, level=MAX_LEVEL):
    """A degraded copy of an image (see the module's description).

    Parameters
    ----------
    data : array-like
        2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)`` pixels (NaN allowed:
        they stay NaN).
    rng : `numpy.random.Generator`
        Draws the strengths (each uniform in ``[0, level]``) and the noise.
    level : float, optional
        The largest strength, in ``[0, MAX_LEVEL]``.

    Returns
    -------
    copy : `~numpy.ndarray`
        float64, the shape of ``data``; the same strengths in every band.

    Raises
    ------
    ParameterError
        A level outside ``[0, MAX_LEVEL]`` or data that are not 2-D/3-D.
    """
    if not 0 <= level <= MAX_LEVEL:
        raise ParameterError(f'level must be between 0 and {MAX_LEVEL}, got {level!r}')
    data = np.asarray(data, dtype=np.float64)
    if data.ndim not in (2, 3):
        raise ParameterError(f'data must be 2-D or 3-D, got shape {data.shape}')
    u = rng.uniform(0, level, 3)
    scale, blur, noise = 1 + 2 * u[0], 2 * u[1], 3 * u[2]
    if data.ndim == 2:
        return _degrade_plane(data, rng, scale, blur, noise)
    return np.stack([_degrade_plane(plane, rng, scale, blur, noise) for plane in data])
