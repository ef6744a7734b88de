# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest

from astroclusterclf._augment import N_VARIANTS, dihedral
from astroclusterclf.exceptions import ParameterError


def test_dihedral_group():
    image = np.random.default_rng(0).random((5, 5, 3))
    variants = [dihedral(image, v) for v in range(N_VARIANTS)]
    # 8 distinct images, each a permutation of the pixels.
    assert len({v.tobytes() for v in variants}) == 8
    for v in variants:
        assert np.shares_memory(v, image)   # views: batches copy them once
        assert sorted(v.ravel()) == sorted(image.ravel())
    # 4 quarter turns give back the original; flips are involutions.
    x = image
    for _ in range(4):
        x = dihedral(x, 1)
    np.testing.assert_array_equal(x, image)
    np.testing.assert_array_equal(dihedral(dihedral(image, 4), 4), image)
    with pytest.raises(ParameterError, match='0..7'):
        dihedral(image, 8)
