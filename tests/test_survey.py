# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Survey scale: a catalog over many tiles, on Dask, streamed and resumable."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from astroclusterclf import annotate_table
from astroclusterclf._chunks import ChunkStore
from astroclusterclf.cli import main
from astroclusterclf.exceptions import OutputError

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def tiles(survey_mosaic, tmp_path_factory):
    """The mosaic cut into 2 x 2 overlapping tiles of 1200 x 1200 pixels
    (overlap 352 px), each with its own WCS; one tile-compressed
    (``.fits.fz``, lossless)."""
    mosaic_path, _ = survey_mosaic
    folder = tmp_path_factory.mktemp('tiles')
    with fits.open(mosaic_path) as hdul:
        data, header = hdul[0].data, hdul[0].header
        paths = []
        for j, y0 in enumerate((0, 848)):
            for i, x0 in enumerate((0, 848)):
                h = header.copy()
                h['CRPIX1'] -= x0
                h['CRPIX2'] -= y0
                part = np.ascontiguousarray(data[y0:y0 + 1200, x0:x0 + 1200])
                if (i, j) == (1, 1):
                    path = folder / f'tile_{j}{i}.fits.fz'
                    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
                        part, header=h, compression_type='GZIP_2',
                        quantize_level=0.0)]).writeto(path)
                else:
                    path = folder / f'tile_{j}{i}.fits'
                    fits.PrimaryHDU(part, header=h).writeto(path)
                paths.append(str(path))
    return paths


def test_tiles_give_the_mosaic_probabilities(accurate_model, survey_mosaic, tiles):
    mosaic_path, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)
    whole = annotate_table(accurate_model, catalog, image=mosaic_path)
    tiled = annotate_table(accurate_model, catalog, image=tiles, chunk_size=5)
    inside = tiled['pred_flag'] & 0b11 == 0
    assert inside.sum() >= 20                         # most clusters fit a tile whole
    for name in ('prob_globular_cluster', 'prob_open_cluster', 'pred_ood'):
        np.testing.assert_allclose(np.asarray(tiled[name])[inside],
                                   np.asarray(whole[name])[inside], atol=1e-5)
    assert np.all(tiled['pred_flag'][inside] == whole['pred_flag'][inside])
    assert set(tiled['pred_tile'][inside]) <= {os.path.basename(p) for p in tiles}
    assert 'tile_11.fits.fz' in set(tiled['pred_tile'][inside])
    assert tiled.meta['CLSSIZE'] == whole.meta['CLSSIZE']


def test_local_cluster_gives_the_in_process_result(accurate_model, survey_mosaic, tiles):
    distributed = pytest.importorskip('distributed')
    _, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)[:12]
    here = annotate_table(accurate_model, catalog, image=tiles, chunk_size=3)
    # Two single-thread workers in this process (worker processes would each
    # import TensorFlow, for the same tasks; the CLI's --workers uses them).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        there = annotate_table(accurate_model, catalog, image=tiles, chunk_size=3,
                               client=client)
    for name in ('prob_globular_cluster', 'pred_ood', 'pred_flag', 'pred_tile'):
        np.testing.assert_allclose(np.asarray(there[name], float),
                                   np.asarray(here[name], float), atol=1e-6) \
            if name != 'pred_tile' else np.testing.assert_array_equal(there[name],
                                                                      here[name])


def test_killed_run_resumes_without_duplicates(accurate_result, survey_mosaic, tiles,
                                               tmp_path, capsys):
    """SIGKILL a run once it has written some chunks; --resume finishes it
    without recomputing them; the table equals an uninterrupted run."""
    _, catalog_path = survey_mosaic
    out = tmp_path / 'out.ecsv'
    parts = ChunkStore.folder_for(out)
    argv = ['annotate-table', '--graph', str(accurate_result.output), str(catalog_path),
            '--output', str(out), '--chunk-size', '3']
    for tile in tiles:
        argv += ['--image', tile]
    proc = subprocess.Popen([sys.executable, '-m', 'astroclusterclf', *argv], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if parts.is_dir() and len(list(parts.glob('chunk-*.npz'))) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail('the run ended before it could be killed')
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    chunk_files = sorted(parts.glob('chunk-*.npz'))
    done = len(chunk_files)
    done_rows = sum(len(np.load(f)['rows']) for f in chunk_files)
    assert done >= 2 and done_rows >= done and not out.exists()
    # Without --resume, the partial results are refused.
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 1 and 'use --resume' not in captured.out
    assert 'partial results of an interrupted run' in captured.err
    # In the command line's words.
    assert 'continue it with --resume, or remove' in captured.err
    assert 'resume=True' not in captured.err
    status = main(argv + ['--resume'])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f'Resuming {out}: found {done_rows} rows done in {done} chunks' in captured.out
    assert not parts.exists()
    resumed = Table.read(out)
    fresh = annotate_table(accurate_result.classifier, Table.read(catalog_path),
                           image=tiles)
    assert len(resumed) == len(fresh) == len(Table.read(catalog_path))
    np.testing.assert_allclose(np.ma.filled(resumed['prob_globular_cluster'], np.nan),
                               np.ma.filled(fresh['prob_globular_cluster'], np.nan),
                               atol=1e-6)
    assert list(resumed['pred_flag']) == list(fresh['pred_flag'])


def test_partial_results_are_refused(accurate_model, survey_mosaic, tiles, tmp_path):
    _, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)[:4]
    out = tmp_path / 'out.ecsv'
    ChunkStore.folder_for(out).mkdir()
    with pytest.raises(OutputError, match='partial results of an interrupted run'):
        annotate_table(accurate_model, catalog, image=tiles, output=out)
    # Parts of another run (another catalog) are refused on resume too.
    store = ChunkStore.folder_for(out)
    (store / 'manifest.json').write_text('{"model": "another"}')
    with pytest.raises(OutputError, match='belong to another run'):
        annotate_table(accurate_model, catalog, image=tiles, output=out, resume=True)


def test_parquet_round_trip(accurate_model, survey_mosaic, tiles, tmp_path):
    pytest.importorskip('pyarrow')
    _, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)[:6]
    out = tmp_path / 'out.parquet'
    table = annotate_table(accurate_model, catalog, image=tiles, output=out)
    again = Table.read(out)
    assert again.colnames == table.colnames
    np.testing.assert_allclose(np.asarray(again['pred_conf']), np.asarray(table['pred_conf']))
    assert list(again['pred_class']) == list(table['pred_class'])
    assert again.meta['CLSMODEL'] == table.meta['CLSMODEL']
    assert not ChunkStore.folder_for(out).exists()
