# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The demo: the README's first command, on a small scale (the ``demo``
subcommand: test_cli.py)."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from helpers import m13_path
from astroclusterclf.demo import run_demo

pytestmark = pytest.mark.slow

M13 = m13_path()


@pytest.fixture(scope='module')
def demo_result(tmp_path_factory):
    """The demo on 10 images per class and 4 clusters (the head steps are
    cheap: enough of them for a confident model)."""
    workdir = tmp_path_factory.mktemp('demo')
    lines = []
    result = run_demo(workdir, n_per_class=10, n_clusters=4, mosaic_size=768,
                      steps=300, echo=lines.append)
    return result, lines


def test_demo_writes_every_output(demo_result):
    result, lines = demo_result
    for name, path in result.paths.items():
        assert path.exists(), name
    assert lines[0].startswith('[1/6]')
    assert any(line.startswith('[6/6]') for line in lines)
    assert any('accuracy against the simulated truth' in line for line in lines)
    assert (result.workdir / 'training' / 'globular cluster').is_dir()
    assert (result.workdir / 'training' / 'open cluster').is_dir()


def test_demo_annotated_table(demo_result):
    result, _ = demo_result
    table = Table.read(result.paths['annotated table'])
    assert len(table) == 4
    for name in ('pred_class', 'pred_conf', 'pred_flag',
                 'prob_globular_cluster', 'prob_open_cluster'):
        assert name in table.colnames
    ok = table['pred_flag'] == 0
    assert result.n_catalog == np.count_nonzero(ok) == 4
    truth = np.asarray(table['label'])
    predicted = np.asarray(table['pred_class'])
    expected = np.mean(truth[ok] == predicted[ok])
    assert result.catalog_accuracy == pytest.approx(expected)
    # The simulated truth is recovered (at most one of 4 wrong).
    assert expected >= 0.75, list(zip(truth, predicted))


def test_demo_annotated_fits(demo_result):
    result, _ = demo_result
    annotated = result.paths['annotated new_observation.fits']
    header = fits.getheader(annotated)
    # The new observation is a simulated globular cluster.
    assert header['CLSLABEL'] == 'globular cluster'
    assert header['CLSCONF'] == pytest.approx(max(header['CLSPRB1'], header['CLSPRB2']))
    assert header['CLSCONF'] > 0.8
    assert ('annotated m13.fits' in result.paths) == (M13 is not None)
    if M13 is not None:
        m13 = fits.getheader(result.paths['annotated m13.fits'])
        assert m13['CLSLABEL'] == 'globular cluster'
        # The real M13 file in astropy is left untouched.
        assert 'CLSLABEL' not in fits.getheader(M13)
