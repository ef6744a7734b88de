# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Survey scale: a catalog of >= 100,000 rows over >= 50 tiles.

Prints, measured side by side in one run:

- in-process rows/s of ``annotate_table(image=[tiles...])`` against the raw
  forward pass of the same model on the same number of images (target
  >= 0.8x);
- ``--workers 2`` (a local Dask cluster) against in-process, on this
  machine;
- peak RSS of each worker after a run of a quarter of the rows and after
  the full run (it must not grow with the number of rows; target
  <= 1.5 GB);
- the time to build the tile index for 10,000 tiles from headers only.

The model is EfficientNet-Lite0 at 224 px retrained on 40 simulated
images per class (its own features serve the out-of-distribution score,
so each row takes one forward pass; a model on ``astro_lite0`` takes a
second one, of the fixed ImageNet view: see the trust page).
``--input-size 64`` makes a run of 100,000 rows take minutes instead of
half an hour, but then the fixed costs per row (reading, cutting,
normalizing, batching, writing chunks) weigh more against a forward pass
ten times cheaper.

Usage::

    python bench/survey.py [--rows 100000] [--tiles 64] [--workdir DIR]
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astroclusterclf import ClusterClassifier, annotate_table, make_dataset, retrain
from astroclusterclf._forward import forward_function
from astroclusterclf.simulate import make_mosaic
from astroclusterclf.tiles import TileIndex


def _tiles(folder, n_tiles, shape, seed):
    """``n_tiles`` simulated survey tiles on a grid, overlapping by 10 %."""
    paths = []
    side = int(np.ceil(np.sqrt(n_tiles)))
    for k in range(n_tiles):
        path = folder / f'tile_{k:04d}.fits'
        paths.append(path)
        if path.exists():
            continue
        mosaic, _ = make_mosaic(folder / f'sim_{k:04d}', n_clusters=1, shape=shape,
                                seed=seed + k)
        with fits.open(mosaic) as hdul:
            data, header = hdul[0].data, hdul[0].header.copy()
        # Place the tile on a grid of the sky: CRVAL moves by 0.9 tile.
        i, j = divmod(k, side)
        scale = abs(WCS(header).proj_plane_pixel_scales()[0].to_value('deg'))
        header['CRVAL1'] = 150.0 + 0.9 * shape[1] * scale * i
        header['CRVAL2'] = 2.0 + 0.9 * shape[0] * scale * j
        fits.PrimaryHDU(data, header=header).writeto(path)
    return [str(p) for p in paths]


def _catalog(index, n_rows, rng):
    """``n_rows`` positions spread over the tiles."""
    per = -(-n_rows // len(index))
    ra, dec = [], []
    for wcs, (ny, nx) in zip(index.wcs, index.shapes):
        x = rng.uniform(40, nx - 40, per)
        y = rng.uniform(40, ny - 40, per)
        sky = wcs.pixel_to_world(x, y)
        ra.append(sky.ra.deg)
        dec.append(sky.dec.deg)
    return Table({'ra': np.concatenate(ra)[:n_rows], 'dec': np.concatenate(dec)[:n_rows]})


def _raw_forward_rate(classifier, n, batch_size):
    forward = forward_function(classifier.model)
    size = classifier.input_size
    x = np.random.default_rng(0).random((batch_size, size, size, 3), dtype=np.float32)
    np.asarray(forward(x))
    t = time.perf_counter()
    done = 0
    while done < n:
        np.asarray(forward(x))
        done += batch_size
    return done / (time.perf_counter() - t)


def _header_index_time(folder, n):
    """Seconds to index ``n`` tiles from their headers alone."""
    folder.mkdir(exist_ok=True)
    paths = []
    for k in range(n):
        path = folder / f'h{k:05d}.fits'
        paths.append(path)
        if path.exists():
            continue
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
        wcs.wcs.crval = [k % 100 * 0.3, k // 100 * 0.3 - 15]
        wcs.wcs.cdelt = [-0.25 / 3600, 0.25 / 3600]
        wcs.wcs.crpix = [8, 8]
        fits.PrimaryHDU(np.zeros((16, 16), np.float32), header=wcs.to_header()).writeto(path)
    t = time.perf_counter()
    TileIndex.from_files(paths)
    return time.perf_counter() - t


def _worker_peaks(client):
    """Peak resident memory (MB) of each worker process: VmHWM, its own
    peak (ru_maxrss would include the peak of the process it was forked
    from: it survives fork and exec)."""
    def peak():
        try:
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return sorted(client.run(peak).values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=100_000)
    parser.add_argument('--tiles', type=int, default=64)
    parser.add_argument('--tile-size', type=int, default=512)
    parser.add_argument('--index-tiles', type=int, default=10_000)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--input-size', type=int, default=None,
                        help='backbone input of the bench model (default: the '
                             "backbone's own, 224 px)")
    parser.add_argument('--worker-rows', type=int, default=None,
                        help='rows of the --workers 2 comparison (default: all)')
    parser.add_argument('--workdir', type=Path)
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix='acc-bench-survey-'))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    model_path = workdir / f'model-{args.input_size or "default"}.keras'
    if not model_path.exists():
        make_dataset(workdir / 'train', n_per_class=40, seed=1)
        retrain(workdir / 'train', output=model_path, architecture='efficientnet_lite0',
                input_size=args.input_size, bottleneck_dir=workdir / 'bottlenecks',
                reliability_plot=None)
    classifier = ClusterClassifier.load(model_path)
    t = time.perf_counter()
    tiles = _tiles(workdir / 'tiles', args.tiles, (args.tile_size, args.tile_size), seed=10)
    index = TileIndex.from_files(tiles)
    catalog = _catalog(index, args.rows, rng)
    print(f'{len(catalog)} rows over {len(tiles)} tiles of {args.tile_size}^2 pixels '
          f'(prepared in {time.perf_counter() - t:.0f} s); model input '
          f'{classifier.input_size} px, batch {args.batch_size}')

    raw = _raw_forward_rate(classifier, min(len(catalog), 5_000), args.batch_size)
    t = time.perf_counter()
    annotate_table(classifier, catalog, image=tiles, batch_size=args.batch_size,
                   output=workdir / 'in_process.ecsv', overwrite=True)
    here = len(catalog) / (time.perf_counter() - t)
    print(f'\n{"raw forward pass":28s} {raw:9.1f} img/s')
    print(f'{"in-process annotate_table":28s} {here:9.1f} rows/s   ratio {here / raw:.2f} '
          '(target >= 0.8)')

    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print('(no Dask: pip install "astroclusterclf[survey]")')
    else:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None, host='127.0.0.1') as cluster, \
                Client(cluster) as client:
            rows = catalog[:args.worker_rows or len(catalog)]
            quarter = rows[:len(rows) // 4]
            annotate_table(classifier, quarter, image=tiles, batch_size=args.batch_size,
                           client=client, output=workdir / 'quarter.ecsv', overwrite=True)
            peaks_quarter = _worker_peaks(client)
            t = time.perf_counter()
            annotate_table(classifier, rows, image=tiles, batch_size=args.batch_size,
                           client=client, output=workdir / 'workers.ecsv', overwrite=True)
            there = len(rows) / (time.perf_counter() - t)
            peaks_full = _worker_peaks(client)
        print(f'{"--workers 2":28s} {there:9.1f} rows/s   ratio to in-process '
              f'{there / here:.2f} ({len(rows)} rows; 2 cores in all)')
        print(f'peak RSS per worker: after {len(quarter)} rows '
              + ', '.join(f'{p:.0f} MB' for p in peaks_quarter)
              + f'; after {len(rows)} more rows '
              + ', '.join(f'{p:.0f} MB' for p in peaks_full) + '   target <= 1500 MB, flat')

    seconds = _header_index_time(workdir / 'headers', args.index_tiles)
    print(f'tile index of {args.index_tiles} tiles from headers: {seconds:.1f} s')


if __name__ == '__main__':
    main()
