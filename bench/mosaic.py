# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark catalog annotation over a large survey mosaic: wall time and
peak memory, against the size of the mosaic in memory.

Set-up (in child processes, so that their memory does not count): a
simulated ``--shape`` float32 mosaic with ``--n-clusters`` clusters and
its catalog (`astroclusterclf.simulate.make_mosaic`), and a model
retrained on 30 simulated images per class.

Measured (in a fresh process): ``annotate_table(classifier, catalog,
image=mosaic, size=128)``; the mosaic is read through FITS sections and
never loaded whole.  Prints the wall time, rows/s, the peak resident
memory (``resource.getrusage``) before and after, its increase, the
mosaic's size in memory and their ratio, and the accuracy against the
simulated truth.

Run: ``python bench/mosaic.py [--shape 8192] [--n-clusters 256]``.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 ** 2


def _peak_rss():
    """Peak resident memory of this process in bytes (Linux: ru_maxrss in kB)."""
    scale = 1 if sys.platform == 'darwin' else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _setup(workdir, shape, n_clusters):
    from astroclusterclf.retrain import retrain
    from astroclusterclf.simulate import make_dataset, make_mosaic

    workdir = Path(workdir)
    start = time.perf_counter()
    make_mosaic(workdir / 'mosaic', n_clusters=n_clusters, shape=(shape, shape), seed=1)
    print(f'mosaic made in {time.perf_counter() - start:.1f} s', flush=True)
    make_dataset(workdir / 'train', n_per_class=30, seed=1)
    retrain(workdir / 'train', output=workdir / 'model.keras',
            steps=300, bottleneck_dir=workdir / 'bottlenecks')


def _measure(workdir, batch_size):
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

    from astroclusterclf.annotate import annotate_table
    from astroclusterclf.classifier import ClusterClassifier

    workdir = Path(workdir)
    mosaic = workdir / 'mosaic' / 'mosaic.fits'
    catalog = Table.read(workdir / 'mosaic' / 'mosaic.ecsv')
    clf = ClusterClassifier.load(workdir / 'model.keras')
    annotate_table(clf, catalog[:batch_size], image=mosaic, size=128,
                   batch_size=batch_size)                    # warm up
    before = _peak_rss()
    start = time.perf_counter()
    table = annotate_table(clf, catalog, image=mosaic, size=128, batch_size=batch_size)
    wall = time.perf_counter() - start
    after = _peak_rss()
    header = fits.getheader(mosaic)
    mosaic_bytes = header['NAXIS1'] * header['NAXIS2'] * abs(header['BITPIX']) // 8
    accuracy = float(np.mean(table['pred_class'] == table['label']))
    print(f'mosaic {header["NAXIS2"]} x {header["NAXIS1"]} float32: '
          f'{mosaic_bytes / MiB:.0f} MiB in memory, {mosaic.stat().st_size / MiB:.0f} MiB file')
    print(f'{len(table)} catalog rows, 128-pixel cutouts, batch {batch_size}, '
          f'{os.cpu_count()} CPU cores')
    print(f'wall time                    : {wall:7.1f} s ({len(table) / wall:.1f} rows/s)')
    print(f'peak RSS before / after      : {before / MiB:7.0f} / {after / MiB:.0f} MiB')
    print(f'peak RSS increase            : {(after - before) / MiB:7.0f} MiB '
          f'({(after - before) / mosaic_bytes:.3f} x the mosaic)')
    print(f'peak RSS after / mosaic size : {after / mosaic_bytes:7.2f} '
          '(includes TensorFlow and the model)')
    print(f'accuracy vs simulated truth  : {accuracy:7.3f}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--shape', type=int, default=8192, help='mosaic side (pixels)')
    parser.add_argument('--n-clusters', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--workdir', help='keep the files here (default: a temporary folder)')
    parser.add_argument('--_stage', choices=('setup', 'measure'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._stage == 'setup':
        return _setup(args.workdir, args.shape, args.n_clusters)
    if args._stage == 'measure':
        return _measure(args.workdir, args.batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        common = [sys.executable, __file__, '--workdir', workdir,
                  '--shape', str(args.shape), '--n-clusters', str(args.n_clusters),
                  '--batch-size', str(args.batch_size)]
        if not (Path(workdir) / 'model.keras').exists():
            subprocess.run(common + ['--_stage', 'setup'], check=True)
        subprocess.run(common + ['--_stage', 'measure'], check=True)


if __name__ == '__main__':
    main()
