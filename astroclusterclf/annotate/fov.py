# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The field-of-view policy: the cutout size that matches a model's training
frames, and the warnings when a survey is outside their range.
"""

import logging
import warnings

import numpy as np
from astropy import units as u

from ..cutouts import parse_size, size_sides
from ..exceptions import FieldOfViewWarning
from ..io import image_geometry

__all__ = ['cutout_size']

log = logging.getLogger(__name__)

#: Factor beyond the training frames' range that draws a FieldOfViewWarning.
FOV_TOLERANCE = 1.5


def cutout_size(classifier, image=None, *, hdu=None, size=None):
    """The cutout size to classify a survey image with, and why.

    Without ``size``, the model's own field of view: the median size of
    its training frames in pixels, or, when the training frames' pixel
    scales agree within 10 % and the survey image has a celestial WCS, the
    same angle on the sky.  Models of older versions, which do not record
    their training frames, get 64 pixels.

    Warns (`FieldOfViewWarning`) when the survey's pixel scale, or the
    given ``size``, is more than a factor of 1.5 outside the range of the
    training frames.

    Parameters
    ----------
    classifier : `~astroclusterclf.ClusterClassifier`
        The model.
    image : optional
        The survey image (anything `~astroclusterclf.io.resolve_image`
        accepts; only its header is read).
    hdu : int or str, optional
        Its HDU.
    size : int, `~astropy.units.Quantity`, str or pair, optional
        A size asked for (see `~astroclusterclf.cutouts.parse_size`).

    Returns
    -------
    size : int, tuple or `~astropy.units.Quantity`
        What to pass to `~astroclusterclf.cutouts.iter_cutouts`.
    text : str
        The size as recorded in table metadata (``CLSSIZE``), e.g.
        ``'128 x 128 pix'`` or ``'51.2 x 51.2 arcsec'``.
    """
    frames = classifier.training_frames
    survey_scale = None
    if image is not None:
        survey_scale = image_geometry(image, hdu=hdu)[1]
    train_scale = frames.get('pixel_scale') if frames else None
    if survey_scale is not None and train_scale:
        lo, hi = train_scale['min'], train_scale['max']
        if survey_scale > FOV_TOLERANCE * hi or survey_scale < lo / FOV_TOLERANCE:
            warnings.warn(
                f'the survey image has {survey_scale:.3g} arcsec/pixel, more than a '
                f'factor of {FOV_TOLERANCE} outside the training frames\' '
                f'{lo:.3g}-{hi:.3g} arcsec/pixel', FieldOfViewWarning, stacklevel=2)
    if size is not None:
        size = parse_size(size)
        if frames:
            _check_size(size, frames, survey_scale)
        return size, _size_text(size)
    if not frames:
        log.warning('the model does not record its training frames (an older model '
                    'file): cutting 64-pixel cutouts')
        return 64, _size_text(64)
    ny, nx = (int(round(v)) for v in frames['shape']['median'])
    if (train_scale and survey_scale is not None
            and (train_scale['max'] - train_scale['min']) <= 0.1 * train_scale['median']):
        angle = (ny * train_scale['median'], nx * train_scale['median']) * u.arcsec
        return angle, _size_text(angle)
    return (ny, nx), _size_text((ny, nx))


def _size_text(size):
    if isinstance(size, u.Quantity):
        values = np.atleast_1d(size.value)
        values = values if values.size == 2 else np.repeat(values, 2)
        return f'{values[0]:.4g} x {values[1]:.4g} {size.unit.to_string()}'
    if isinstance(size, tuple):
        parts = [s.to_value(u.pix) if isinstance(s, u.Quantity) else s for s in size]
        return f'{parts[0]:.4g} x {parts[1]:.4g} pix'
    return f'{size} x {size} pix'


def _check_size(size, frames, survey_scale):
    """Warn when a requested size is far outside the training frames."""
    train_scale = frames.get('pixel_scale')
    lo_pix, hi_pix = min(frames['shape']['min']), max(frames['shape']['max'])
    for side in size_sides(size):
        if isinstance(side, u.Quantity) and side.unit.physical_type == 'angle':
            if not train_scale:
                continue
            value, lo, hi = (side.to_value(u.arcsec), lo_pix * train_scale['min'],
                             hi_pix * train_scale['max'])
            unit = 'arcsec'
        else:
            value = side.to_value(u.pix) if isinstance(side, u.Quantity) else side
            lo, hi, unit = lo_pix, hi_pix, 'pixels'
        if value > FOV_TOLERANCE * hi or value < lo / FOV_TOLERANCE:
            warnings.warn(
                f'cutout size {value:.4g} {unit} is more than a factor of {FOV_TOLERANCE} '
                f'outside the training frames ({lo:.4g}-{hi:.4g} {unit}): the model sees '
                'a field of view it was not trained on', FieldOfViewWarning, stacklevel=3)
            return
