# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The dihedral group of an image: its 8 rotations and flips.

Sky images have no preferred orientation, so every element of the group
is a valid augmentation.  Training uses them to multiply the examples
(each variant is a separate bottleneck), and test-time augmentation
averages the predictions over them.

Examples
--------
>>> import numpy as np
>>> from astroclusterclf._augment import dihedral
>>> image = np.arange(4.).reshape(2, 2, 1)
>>> [dihedral(image, k)[..., 0].tolist() for k in (0, 1, 4)]
[[[0.0, 1.0], [2.0, 3.0]], [[1.0, 3.0], [0.0, 2.0]], [[1.0, 0.0], [3.0, 2.0]]]
"""

import numpy as np

from .exceptions import ParameterError

__all__ = ['N_VARIANTS', 'dihedral']

#: Number of augmentation variants: the 8 elements of the dihedral group.
N_VARIANTS = 8


def dihedral(image, variant):
    """Return one of the 8 rotations/flips of an image.

    Parameters
    ----------
    image : `~numpy.ndarray`
        Array whose first two axes are (y, x), e.g. ``(H, W, 3)``.
    variant : int
        0-3: rotation by ``90 * variant`` degrees counter-clockwise;
        4-7: the same rotations of the left-right mirrored image.

    Returns
    -------
    out : `~numpy.ndarray`
        A view of ``image`` (no copy: callers copy it once into their
        batch).

    Raises
    ------
    ParameterError
        If ``variant`` is not in 0..7.
    """
    variant = int(variant)
    if not 0 <= variant < N_VARIANTS:
        raise ParameterError(f'dihedral variant must be in 0..7, got {variant}')
    if variant == 0:
        return image
    out = image[:, ::-1] if variant >= 4 else image
    return np.rot90(out, variant % 4, axes=(0, 1))
