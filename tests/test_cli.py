# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the command line, ``astroclusterclf.cli.main``, one group per
subcommand.  The CLI only parses, calls the API and prints: what it
computes is tested in the module of each stage."""

import importlib.util

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from helpers import LABELS
from astroclusterclf import ClusterClassifier
from astroclusterclf.cli import _cli_words, main
from astroclusterclf.simulate import make_dataset


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, match):
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert 'Traceback' not in err
    assert match in lines[0], lines[0]


# -- usage, --help, --version ------------------------------------------------

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


# -- label ---------------------------------------------------------------------

@pytest.mark.slow
def test_cli_label_one_file(trained_model_path, small_dataset_files, capsys,
                            trained_classifier):
    files = small_dataset_files
    status = main(['label', '--graph', str(trained_model_path),
                   '--image', str(files[0])])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert len(out) == 2
    probs = trained_classifier.predict(files[0])[0]
    best, other = np.argsort(-probs)
    assert out == [f'{LABELS[best]} {probs[best]:.5f}',
                   f'{LABELS[other]} {probs[other]:.5f}']


@pytest.mark.slow
def test_cli_label_many(trained_model_path, small_dataset_files,
                        small_dataset_dir, capsys, tmp_path):
    files = small_dataset_files
    (tmp_path / 'labels.txt').write_text('GC\nOC\n')
    status = main(['label', '--graph', str(trained_model_path),
                   '--image', str(files[0]),
                   '--image', str(small_dataset_dir / 'open cluster'),
                   '--top_k', '1', '--labels',
                   str(tmp_path / 'labels.txt'), '--hdu', '0'])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    headers = [line for line in out if line.endswith(':')]
    assert len(headers) == 11 and headers[0] == f'{files[0]}:'
    values = [line for line in out if line and not line.endswith(':')]
    assert len(values) == 11
    assert all(v.split()[0] in ('GC', 'OC') for v in values)


@pytest.mark.slow
@pytest.mark.parametrize('make_args, message', [
    (lambda m, d: ['--graph', str(d / 'nope.keras'), '--image', 'x.fits'],
     'model file not found'),
    (lambda m, d: ['--graph', str(m), '--image', str(d / 'nope.fits')],
     'nope.fits'),
    (lambda m, d: ['--graph', str(m), '--image', str(d)],
     'holds no image file'),
])
def test_cli_label_errors(trained_model_path, tmp_path, capsys, make_args,
                          message):
    status = main(['label'] + make_args(trained_model_path, tmp_path))
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith('astroclusterclf label: error: ')
    assert captured.err.count('\n') == 1 and message in captured.err
    assert 'Traceback' not in captured.err


@pytest.mark.slow
def test_cli_label_batch_skips_and_reports(accurate_result, cluster_image, tmp_path,
                                           capsys):
    """Bad files get one error line each and are skipped; the good ones are
    still classified; the exit status is 1; --output writes every row."""
    data, header = cluster_image
    folder = tmp_path / 'images'
    folder.mkdir()
    fits.PrimaryHDU(data, header=header).writeto(folder / 'a_good.fits')
    (folder / 'b_broken.fits').write_bytes(b'SIMPLE  = garbage' * 10)
    fits.PrimaryHDU(data[::-1], header=header).writeto(folder / 'c_good.fits')
    noise = np.random.default_rng(0).normal(100, 10, (128, 128)).astype(np.float32)
    fits.PrimaryHDU(noise).writeto(folder / 'd_noise.fits')
    out = tmp_path / 'results.ecsv'
    status, stdout, err = run_cli(capsys, 'label', '--graph', accurate_result.output,
                                  '--image', folder, '--image', tmp_path / 'missing.fits',
                                  '--output', out)
    assert status == 1
    errors = [line for line in err.splitlines() if ': error: ' in line]
    assert len(errors) == 2 and 'Traceback' not in err
    assert any('b_broken.fits' in line for line in errors)
    assert any('missing.fits: file not found' in line for line in errors)
    warnings_ = [line for line in err.splitlines() if ': warning: ' in line]
    assert len(warnings_) == 1 and 'd_noise.fits: unlike the training images' in warnings_[0]
    for name in ('a_good', 'c_good', 'd_noise'):
        assert f'{folder / name}.fits:' in stdout
    assert 'b_broken' not in stdout
    table = Table.read(out)
    assert table.colnames == ['path', 'pred_class', 'pred_conf', 'prob_globular_cluster',
                              'prob_open_cluster', 'pred_ood', 'pred_flag']
    assert len(table) == 5
    flags = dict(zip(table['path'], table['pred_flag']))
    assert flags[str(folder / 'b_broken.fits')] == 8
    assert flags[str(tmp_path / 'missing.fits')] == 8
    assert flags[str(folder / 'd_noise.fits')] & 16
    assert flags[str(folder / 'a_good.fits')] == 0
    assert table['pred_class'][0] == 'globular cluster'


@pytest.mark.slow
def test_cli_all_hdus(accurate_result, cluster_image, tmp_path, capsys):
    """Every image extension (HST/JWST-style SCI HDUs) is classified and
    annotated; label writes one row per HDU."""
    data, header = cluster_image
    path = tmp_path / 'multi.fits'
    noise = np.random.default_rng(1).normal(100, 10, data.shape).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(data, header=header, name='SCI', ver=1),
                  fits.BinTableHDU(Table({'a': [1]}), name='CAT'),
                  fits.ImageHDU(noise, name='SCI', ver=2)]).writeto(path)
    status, stdout, err = run_cli(capsys, 'annotate-fits', '--graph', accurate_result.output,
                                  path, '--output-dir', tmp_path / 'out', '--all-hdus')
    assert status == 0, err
    assert '[HDU 1]' in stdout and '[HDU 3]' in stdout
    with fits.open(tmp_path / 'out' / 'multi.fits') as hdul:
        assert hdul[1].header['CLSLABEL'] == 'globular cluster'
        assert hdul[1].header['CLSFLAG'] == 0
        assert hdul[3].header['CLSFLAG'] & 16
        assert 'CLSLABEL' not in hdul[0].header and 'CLSLABEL' not in hdul[2].header
    status, stdout, err = run_cli(capsys, 'label', '--graph', accurate_result.output,
                                  '--image', path, '--all-hdus', '--output',
                                  tmp_path / 'rows.fits')
    assert status == 0, err
    table = Table.read(tmp_path / 'rows.fits')
    assert list(table['hdu']) == [1, 3]
    assert list(table['pred_flag'] & 16) == [0, 16]


# -- retrain -------------------------------------------------------------------

@pytest.mark.slow
def test_cli_retrain(small_dataset_dir, tmp_path, capsys, retrain_result):
    status = main([
        'retrain', '--image-dir', str(small_dataset_dir),
        '--output_graph', str(tmp_path / 'm.keras'),
        '--output-labels', str(tmp_path / 'labels.txt'),
        '--how_many_training_steps', '20', '--eval-step-interval', '10',
        '--bottleneck_dir', str(retrain_result.work_dir / 'bottlenecks'),
        '--summaries-dir', str(tmp_path / 'tb')])
    out = capsys.readouterr().out
    assert status == 0
    lines = out.splitlines()
    steps = [line for line in lines if line.startswith('Step ')]
    assert len(steps) == 2
    assert steps[0].startswith('Step 10: Train accuracy = ')
    assert '%, Cross entropy = ' in steps[0]
    assert steps[0].endswith(')') and ', Validation accuracy = ' in steps[0]
    assert any(line.startswith('Final test accuracy = ') for line in lines)
    assert 'Confusion matrix' in out and 'Misclassified' in out
    assert (tmp_path / 'labels.txt').read_text().splitlines() == LABELS
    assert (tmp_path / 'tb' / 'train').is_dir()


@pytest.mark.slow
def test_cli_retrain_default_head_and_trust_options(small_dataset_dir, tmp_path, capsys,
                                                    retrain_result):
    # Without the old tool's step flags: the cross-validated logistic head,
    # no "Step" lines; the OOD rate and the drift calibration are options.
    status = main([
        'retrain', '--image_dir', str(small_dataset_dir), '--architecture',
        'efficientnet_lite0', '--output_graph', str(tmp_path / 'm.keras'),
        '--ood_false_alarm_rate', '0.1', '--no-drift-calibration',
        '--bottleneck_dir', str(retrain_result.work_dir / 'bottlenecks')])
    out = capsys.readouterr().out
    assert status == 0
    assert not any(line.startswith('Step ') for line in out.splitlines())
    assert 'Head regularization chosen by 5-fold cross-validation' in out
    assert 'false-alarm rate 10%' in out and 'degraded copy' not in out
    metadata = ClusterClassifier.load(tmp_path / 'm.keras').metadata
    assert metadata['head'] == 'logistic' and metadata['ood_false_alarm_rate'] == 0.1
    # --head sgd asks for the old head without its step flags.
    status = main([
        'retrain', '--image_dir', str(small_dataset_dir), '--architecture',
        'efficientnet_lite0', '--output_graph', str(tmp_path / 's.keras'), '--head', 'sgd',
        '--bottleneck_dir', str(retrain_result.work_dir / 'bottlenecks')])
    assert status == 0 and capsys.readouterr().out.count('Step ') == 400
    assert ClusterClassifier.load(tmp_path / 's.keras').metadata['head'] == 'sgd'


@pytest.mark.slow   # the subcommand imports TensorFlow first (seconds)
def test_cli_retrain_error(tmp_path, capsys):
    (tmp_path / 'only class').mkdir()
    status = main(['retrain', '--image_dir', str(tmp_path),
                   '--output_graph', str(tmp_path / 'm.keras')])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.count('\n') == 1
    assert captured.err.startswith('astroclusterclf retrain: error: ')
    assert 'at least 2 class' in captured.err
    assert 'Traceback' not in captured.err + captured.out


# -- annotate-fits ---------------------------------------------------------------

@pytest.mark.slow
def test_cli_annotate_fits(accurate_result, cluster_image, tmp_path, capsys):
    data, header = cluster_image
    files = []
    for name in ('a.fits', 'b.fits'):
        fits.PrimaryHDU(data, header=header).writeto(tmp_path / name)
        files.append(tmp_path / name)
    outdir = tmp_path / 'out'
    outdir.mkdir()
    status, out, err = run_cli(capsys, 'annotate-fits', '--graph', accurate_result.output,
                               *files, '--output-dir', outdir)
    assert status == 0, err
    assert len(out.strip().splitlines()) == 2
    assert 'globular cluster' in out
    assert fits.getheader(outdir / 'a.fits')['CLSLABEL'] == 'globular cluster'
    status, out, err = run_cli(capsys, 'annotate-fits', '--graph', accurate_result.output,
                               files[0], '--in-place')
    assert status == 0, err
    assert 'CLSLABEL' in fits.getheader(files[0])


@pytest.mark.slow
def test_cli_annotate_fits_errors(accurate_result, cluster_image, tmp_path, capsys):
    data, header = cluster_image
    src = tmp_path / 'a.fits'
    fits.PrimaryHDU(data, header=header).writeto(src)
    model = accurate_result.output
    cases = [
        (['--graph', model, src], 'exactly one of --output-dir DIR and --in-place'),
        (['--graph', model, src, '--in-place', '--output-dir', tmp_path],
         'exactly one of --output-dir DIR and --in-place'),
        (['--graph', model, src, '--output-dir', src], 'not a folder'),
        (['--graph', tmp_path / 'missing.keras', src, '--in-place'],
         'model file not found'),
        (['--graph', model, tmp_path / 'missing.fits', '--in-place'], 'file not found'),
        (['--graph', model, src, '--in-place', '--hdu', '4'], 'no HDU 4'),
        (['--graph', model, src, '--output-dir', tmp_path], 'output is the input file'),
    ]
    for argv, match in cases:
        status, out, err = run_cli(capsys, 'annotate-fits', *argv)
        assert_one_line_error(status, err, match)
        assert err.startswith('astroclusterclf annotate-fits: error:')
    assert 'CLSLABEL' not in fits.getheader(src)
    # --output-dir is created, as retrain's folders are.
    status, out, err = run_cli(capsys, 'annotate-fits', '--graph', model, src,
                               '--output-dir', tmp_path / 'new' / 'dir')
    assert status == 0, err
    assert 'CLSLABEL' in fits.getheader(tmp_path / 'new' / 'dir' / 'a.fits')


# -- annotate-table --------------------------------------------------------------

@pytest.mark.slow
def test_cli_annotate_table(accurate_result, survey_mosaic, tmp_path, capsys):
    mosaic_path, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)[:6]['ra', 'dec', 'label']
    catalog.meta.clear()
    catalog.write(tmp_path / 'cat.fits')
    out = tmp_path / 'annotated.xml'
    status, stdout, err = run_cli(capsys, 'annotate-table', '--graph', accurate_result.output,
                                  tmp_path / 'cat.fits', '--image', mosaic_path,
                                  '--output', out, '--size', '51.2 arcsec')
    assert status == 0, err
    assert 'Classified 6 of 6 rows' in stdout and str(out) in stdout
    table = Table.read(out)
    assert 'pred_class' in table.colnames and len(table) == 6


@pytest.mark.slow
def test_cli_annotate_table_errors(accurate_result, survey_mosaic, tmp_path, capsys):
    mosaic_path, catalog_path = survey_mosaic
    model = accurate_result.output
    exists = tmp_path / 'exists.ecsv'
    exists.write_text('keep')
    Table({'X': [1.0], 'Y': [2.0]}).write(tmp_path / 'odd.ecsv')
    base = ['--graph', model, catalog_path]
    cases = [
        (base + ['--output', tmp_path / 'o.ecsv'], 'exactly one of --image MOSAIC and '
                                                   '--path-column COL'),
        (base + ['--image', mosaic_path, '--path-column', 'x', '--output',
                 tmp_path / 'o.ecsv'], 'exactly one of --image'),
        (['--graph', model, tmp_path / 'missing.ecsv', '--image', mosaic_path,
          '--output', tmp_path / 'o.ecsv'], 'catalog file not found'),
        (base + ['--image', mosaic_path, '--output', exists],
         'output file exists (--overwrite replaces it)'),
        (base + ['--image', mosaic_path, '--output', tmp_path / 'o.unknown'],
         'cannot tell the table format'),
        (base + ['--image', mosaic_path, '--output', tmp_path / 'o.ecsv', '--size', '5 kg'],
         '--size'),
        (base + ['--image', tmp_path / 'missing.fits', '--output', tmp_path / 'o.ecsv'],
         'missing.fits: file not found'),
        (['--graph', tmp_path / 'missing.keras', catalog_path, '--image', mosaic_path,
          '--output', tmp_path / 'o.ecsv'], 'model file not found'),
        (['--graph', model, tmp_path / 'odd.ecsv', '--image', mosaic_path,
          '--output', tmp_path / 'o.ecsv'],
         f"{tmp_path / 'odd.ecsv'}: catalog has no position columns: tried"),
        (base + ['--path-column', 'nofile', '--output', tmp_path / 'o.ecsv'],
         "no column 'nofile'"),
    ]
    for argv, match in cases:
        status, out, err = run_cli(capsys, 'annotate-table', *argv)
        assert_one_line_error(status, err, match)
        assert err.startswith('astroclusterclf annotate-table: error:')
    assert exists.read_text() == 'keep'
    assert not (tmp_path / 'o.ecsv').exists()


@pytest.mark.slow
def test_cli_annotate_table_sky_centroid(accurate_result, survey_mosaic, tmp_path, capsys):
    """photutils' catalogs: positions in a SkyCoord column, found without
    --ra-column; the default cutout is the model's field of view."""
    mosaic_path, catalog_path = survey_mosaic
    truth = Table.read(catalog_path)[:3]
    catalog = Table({'id': [1, 2, 3],
                     'sky_centroid': SkyCoord(truth['ra'], truth['dec'], unit='deg')})
    catalog.write(tmp_path / 'cat.ecsv')
    out = tmp_path / 'out.ecsv'
    status, stdout, err = run_cli(capsys, 'annotate-table', '--graph', accurate_result.output,
                                  tmp_path / 'cat.ecsv', '--image', mosaic_path,
                                  '--output', out)
    assert status == 0, err
    table = Table.read(out)
    assert list(table['pred_class']) == list(truth['label'])
    assert table.meta['CLSSIZE'] == '51.2 x 51.2 arcsec'
    assert 'Cutout size: 51.2 x 51.2 arcsec' in stdout


@pytest.mark.slow
def test_cli_annotate_table_contact_sheet_and_size_warning(accurate_result, survey_mosaic,
                                                           tmp_path, capsys):
    pytest.importorskip('matplotlib')
    mosaic_path, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)['ra', 'dec', 'label']
    catalog.meta.clear()
    catalog.add_row((0.0, -89.0, 'nowhere'))        # off the image: flagged
    catalog.write(tmp_path / 'cat.ecsv')
    sheet = tmp_path / 'sheet.png'
    status, stdout, err = run_cli(capsys, 'annotate-table', '--graph', accurate_result.output,
                                  tmp_path / 'cat.ecsv', '--image', mosaic_path,
                                  '--output', tmp_path / 'out.ecsv', '--contact-sheet', sheet,
                                  '--size', '64')
    assert status == 0, err
    # A 64-pixel size is half the 128-pixel training frames: one warning line.
    assert err.count('warning: cutout size 64 pixels is more than a factor of 1.5') == 1
    assert 'Traceback' not in err
    assert f'Wrote {sheet}' in stdout
    assert sheet.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_contact_sheet_samples_lowest_confidence_first():
    from astroclusterclf.plotting import _sheet_rows
    table = Table({'pred_conf': np.ma.MaskedArray([0.9, 0.6, 0.99, 0.7, 0.5],
                                                  mask=[0, 0, 0, 0, 1])})
    assert list(_sheet_rows(table, 3)) == [4, 1, 3]       # unclassified first
    assert list(_sheet_rows(table, 10)) == [0, 1, 2, 3, 4]   # all, in order


# -- simulate ----------------------------------------------------------------------

def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / 'sim'
    assert main(['simulate', '--output', str(out), '--n-per-class', '2',
                 '--size', '32', '--seed', '5']) == 0
    printed = capsys.readouterr().out
    assert "2 FITS image(s) of 'globular cluster'" in printed
    assert str(out / 'open cluster') in printed
    assert sorted(p.name for p in (out / 'globular cluster').iterdir()) == [
        'globular_cluster_0000.fits', 'globular_cluster_0001.fits']
    # Same as the API with the same seed, byte for byte.
    api = make_dataset(tmp_path / 'api', n_per_class=2, size=32, seed=5)
    assert (api['open cluster'][1].read_bytes()
            == (out / 'open cluster' / 'open_cluster_0001.fits').read_bytes())


def test_cli_simulate_underscore_flag_png_bands(tmp_path, capsys):
    out = tmp_path / 'sim'
    assert main(['simulate', '--output', str(out), '--n_per_class', '1',
                 '--size', '32', '--bands', '3', '--format', 'png',
                 '--format', 'fits']) == 0
    assert '1 PNG, 1 FITS' in capsys.readouterr().out
    with Image.open(out / 'open cluster' / 'open_cluster_0000.png') as im:
        assert im.mode == 'RGB'
    assert fits.getdata(
        out / 'open cluster' / 'open_cluster_0000.fits').shape == (3, 32, 32)


def test_cli_simulate_errors(tmp_path, capsys):
    assert main(['simulate', '--output', str(tmp_path / 'x'),
                 '--n-per-class', '0']) == 1
    err = capsys.readouterr().err
    assert err == ('astroclusterclf simulate: error: n_per_class must be an '
                   'integer >= 1, got 0\n')
    assert not (tmp_path / 'x').exists()
    assert main(['simulate', '--output', str(tmp_path), '--n-per-class', '1',
                 '--bands', '2']) == 2
    err = capsys.readouterr().err
    assert 'invalid choice' in err
    assert len(err.splitlines()) == 1


# -- demo ----------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_cli(tmp_path, capsys):
    status = main(['demo', '--workdir', str(tmp_path / 'demo'),
                   '--n-per-class', '10', '--n-clusters', '2',
                   '--mosaic-size', '512', '--how-many-training-steps', '10'])
    out = capsys.readouterr().out
    assert status == 0
    assert 'Final test accuracy' in out
    assert 'Outputs:' in out
    assert str(tmp_path / 'demo' / 'model.keras') in out


@pytest.mark.slow   # the subcommand imports TensorFlow first (seconds)
def test_demo_cli_bad_workdir(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    status = main(['demo', '--workdir', str(blocker / 'sub'),
                   '--n-per-class', '4'])
    captured = capsys.readouterr()
    assert status == 1
    assert 'Traceback' not in captured.err
    assert str(blocker) in captured.err


def test_cli_simulate_randomize(tmp_path, capsys):
    out = tmp_path / 'sim'
    assert main(['simulate', '--output', str(out), '--n-per-class', '1',
                 '--size', '32', '--randomize']) == 0
    header = fits.getheader(out / 'globular cluster' / 'globular_cluster_0000.fits')
    assert header['SIMRAND'] is True
    api = make_dataset(tmp_path / 'api', n_per_class=1, size=32, randomize=True)
    assert (api['open cluster'][0].read_bytes()
            == (out / 'open cluster' / 'open_cluster_0000.fits').read_bytes())


@pytest.mark.parametrize('argv, expected', [
    (['label', '--graph', 'm.keras', '--image', 'x.fits', '--topk', '1'],
     'astroclusterclf label: error: unknown option --topk; did you mean --top_k? '
     '(see astroclusterclf label --help)'),
    # An unknown flag is named before the required one it leaves missing.
    (['retrain', '--image-dirr', 'clusters', '--output_graph', 'm.keras'],
     'astroclusterclf retrain: error: unknown option --image-dirr; did you mean '
     '--image-dir? (see astroclusterclf retrain --help)'),
    (['simulate', '--output', 'x', '--zzz=3'],
     'astroclusterclf simulate: error: unknown option --zzz '
     '(see astroclusterclf simulate --help)'),
])
def test_unknown_options_are_named_with_a_suggestion(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == expected


def test_api_messages_in_the_command_line_words():
    assert _cli_words('x.ecsv: output file exists (overwrite=True replaces it)') == (
        'x.ecsv: output file exists (--overwrite replaces it)')
    assert _cli_words('a.fits: use in_place=True to update it') == (
        'a.fits: use --in-place to update it')
    assert _cli_words('continue it with resume=True, or remove the folder') == (
        'continue it with --resume, or remove the folder')


@pytest.mark.slow   # the subcommand imports TensorFlow first (seconds)
def test_failed_annotate_fits_leaves_no_empty_folder(tmp_path, capsys):
    new = tmp_path / 'new' / 'deeper'
    status = main(['annotate-fits', '--graph', str(tmp_path / 'missing.keras'),
                   str(tmp_path / 'x.fits'), '--output-dir', str(new)])
    assert status == 1 and 'model file not found' in capsys.readouterr().err
    assert not (tmp_path / 'new').exists()
    # A folder that was there before stays.
    kept = tmp_path / 'kept'
    kept.mkdir()
    assert main(['annotate-fits', '--graph', str(tmp_path / 'missing.keras'),
                 str(tmp_path / 'x.fits'), '--output-dir', str(kept)]) == 1
    assert kept.is_dir()


@pytest.mark.slow   # the subcommand imports TensorFlow first (seconds)
def test_missing_extras_are_found_before_any_work(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: (
        None if name in ('matplotlib', 'distributed') else real(name, *a)))
    Table({'ra': [1.0], 'dec': [2.0]}).write(tmp_path / 'cat.ecsv')
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(tmp_path / 'img.fits')
    base = ['annotate-table', '--graph', str(tmp_path / 'missing.keras'),
            str(tmp_path / 'cat.ecsv'), '--image', str(tmp_path / 'img.fits'),
            '--output', str(tmp_path / 'out.ecsv')]
    for extra, expected in ((['--contact-sheet', str(tmp_path / 's.png')],
                             '--contact-sheet needs matplotlib: pip install '
                             '"astroclusterclf[plot]"'),
                            (['--workers', '2'], '--workers and --scheduler need Dask: '
                                                 'pip install "astroclusterclf[survey]"')):
        assert main(base + extra) == 1
        # named before the model file is even looked at
        assert expected in capsys.readouterr().err


@pytest.mark.slow   # two worker processes, each importing TensorFlow
def test_workers_run_quietly(accurate_result, survey_mosaic, tmp_path, capfd):
    """A --workers 2 run prints no TensorFlow start-up lines from the
    workers (on descriptor 2 of their own processes) and no Dask log."""
    mosaic, catalog = survey_mosaic
    status = main(['annotate-table', '--graph', str(accurate_result.output), str(catalog),
                   '--image', str(mosaic), '--workers', '2', '--chunk-size', '12',
                   '--output', str(tmp_path / 'out.ecsv')])
    out, err = capfd.readouterr()
    assert status == 0, err
    noise = [line for line in err.splitlines()
             if any(word in line for word in ('tensorflow', 'oneDNN', 'cuInit', 'E0000',
                                              'I0000', 'distributed.'))]
    assert noise == []
    assert 'Classified 24 of 24 rows' in out
