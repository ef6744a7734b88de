# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The demo: the README's first command, on a small scale."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from astroclusterclf.cli import main
from astroclusterclf.demo import M13_PATH, run_demo


@pytest.fixture(scope='module')
def demo_result(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('demo')
    lines = []
    result = run_demo(workdir, n_per_class=10, n_clusters=4, mosaic_size=768,
                      steps=30, echo=lines.append)
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
    assert set(table['pred_class'][table['pred_flag'] == 0]) <= {
        'globular cluster', 'open cluster'}
    truth = np.asarray(table['label'])
    predicted = np.asarray(table['pred_class'])
    expected = np.mean(truth[table['pred_flag'] == 0]
                       == predicted[table['pred_flag'] == 0])
    assert result.catalog_accuracy == pytest.approx(expected)


def test_demo_annotated_fits(demo_result):
    result, _ = demo_result
    annotated = result.paths['annotated new_observation.fits']
    header = fits.getheader(annotated)
    assert header['CLSLABEL'] in ('globular cluster', 'open cluster')
    assert 0.5 <= header['CLSCONF'] <= 1
    if M13_PATH.exists():
        m13 = fits.getheader(result.paths['annotated m13.fits'])
        assert 'CLSLABEL' in m13
        # The real M13 file in astropy is left untouched.
        assert 'CLSLABEL' not in fits.getheader(M13_PATH)


def test_demo_cli(tmp_path, capsys):
    status = main(['demo', '--workdir', str(tmp_path / 'demo'),
                   '--n-per-class', '10', '--n-clusters', '2',
                   '--mosaic-size', '512', '--how-many-training-steps', '10'])
    out = capsys.readouterr().out
    assert status == 0
    assert 'Final test accuracy' in out
    assert 'Outputs:' in out
    assert str(tmp_path / 'demo' / 'model.keras') in out


def test_demo_cli_bad_workdir(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    status = main(['demo', '--workdir', str(blocker / 'sub'),
                   '--n-per-class', '4'])
    captured = capsys.readouterr()
    assert status == 1
    assert 'Traceback' not in captured.err
    assert str(blocker) in captured.err


@pytest.mark.parametrize('argv', [
    ['label', '--image', 'x.fits'],                     # missing --graph
    ['retrain', '--image_dir', 'd'],                    # missing --output_graph
    ['annotate-table', '--graph', 'm.keras'],           # missing catalog
    ['simulate', '--output', 'o', '--n-per-class', 'x'],
    ['no-such-command'],
])
def test_cli_usage_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1
    assert 'error:' in captured.err and '--help' in captured.err
    assert 'Traceback' not in captured.err


def test_cli_help_and_version(capsys):
    assert main(['--version']) == 0
    assert 'astroclusterclf' in capsys.readouterr().out
    assert main(['label', '--help']) == 0
    assert '--graph' in capsys.readouterr().out
