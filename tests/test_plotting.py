# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.plotting (skipped without matplotlib)."""

import numpy as np
import pytest

from astroclusterclf.exceptions import OutputError, ParameterError
from astroclusterclf.plotting import plot_confusion_matrix, plot_contact_sheet

pytest.importorskip('matplotlib')
Image = pytest.importorskip('PIL.Image')

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def cutouts(n=5):
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(32, 32)).astype(np.float32) for _ in range(n - 2)]
    images.append(rng.normal(size=(3, 24, 24)))                     # a cube
    images.append(rng.uniform(size=(16, 16, 3)).astype(np.float32))  # RGB in [0, 1]
    return images


def test_contact_sheet(tmp_path):
    path = tmp_path / 'sheet.png'
    labels = ['globular cluster', 'open cluster', None, 'open cluster', 'globular cluster']
    out = plot_contact_sheet(cutouts(), labels, [0.9, 0.6, np.nan, 0.7, 0.55], path,
                             truth=['globular cluster', 'globular cluster', 'open cluster',
                                    'open cluster', 'open cluster'], ncols=3)
    assert out == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        width, height = im.size
    assert width > height > 0                      # 3 columns, 2 rows
    assert [p.name for p in tmp_path.iterdir()] == ['sheet.png']


def test_contact_sheet_errors(tmp_path):
    with pytest.raises(ParameterError, match='same length'):
        plot_contact_sheet(cutouts(3), ['a'], [0.5], tmp_path / 'x.png')
    with pytest.raises(ParameterError, match='no cutouts'):
        plot_contact_sheet([], [], [], tmp_path / 'x.png')
    with pytest.raises(OutputError, match='does not exist'):
        plot_contact_sheet([np.ones((8, 8))], ['a'], [0.5], tmp_path / 'no' / 'x.png')
    assert list(tmp_path.iterdir()) == []


def test_confusion_matrix(tmp_path):
    path = plot_confusion_matrix([[10, 2], [1, 11]], ['globular cluster', 'open cluster'],
                                 tmp_path / 'cm.png')
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ParameterError, match='does not match 3 labels'):
        plot_confusion_matrix(np.eye(2), ['a', 'b', 'c'], tmp_path / 'bad.png')
