# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark the tile index of `astroclusterclf.tiles`: building it from
the headers of many tile files, and locating catalog rows on it.

Set-up: ``--n-tiles`` small (16 x 16 float32) FITS files with a TAN WCS
written to a temporary folder, on a grid over the sky.  The cost of
indexing a file is that of opening it and reading its header and WCS,
which does not depend on the size its header declares, so small files
measure it.

Measured:

1. ``TileIndex.from_files`` on those files (headers only), with the time
   per tile;
2. ``TileIndex.from_wcs`` on a grid of ``--n-tiles`` survey-sized tiles
   (4096 x 4096 pixels of 0.2 arcsec, overlapping by 128 pixels), built
   in memory;
3. ``TileIndex.locate`` of ``--n-rows`` random positions on that grid (a
   few percent outside it) with 64-pixel cutouts, and the flags found.

Run: ``python bench/tiles.py [--n-tiles 10000] [--n-rows 100000]
[--format fits|fits.fz|fits.gz]``.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from astroclusterclf.tiles import TileIndex


def tile_wcs(ra, dec, shape, scale):
    """A TAN WCS centred on (ra, dec) (degrees), ``scale`` arcsec/pixel."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    return wcs


def grid(n_tiles, step):
    """Centres (degrees) of a square-ish grid of ``n_tiles`` tiles
    ``step`` degrees apart, around the equator."""
    side = int(np.ceil(np.sqrt(n_tiles)))
    ra, dec = np.meshgrid(150 + step * np.arange(side), step * (np.arange(side) - side / 2))
    return ra.ravel()[:n_tiles], dec.ravel()[:n_tiles]


def write_tiles(folder, n_tiles, fmt):
    shape, scale = (16, 16), 0.2
    data = np.zeros(shape, dtype=np.float32)
    paths = []
    for i, (ra, dec) in enumerate(zip(*grid(n_tiles, 16 * scale / 3600))):
        header = tile_wcs(ra, dec, shape, scale).to_header()
        path = folder / f'tile{i:05d}.{fmt}'
        if fmt == 'fits.fz':
            hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header)])
        else:
            hdul = fits.HDUList([fits.PrimaryHDU(data, header=header)])
        hdul.writeto(path)
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1])
    parser.add_argument('--n-tiles', type=int, default=10_000)
    parser.add_argument('--n-rows', type=int, default=100_000)
    parser.add_argument('--format', choices=['fits', 'fits.fz', 'fits.gz'], default='fits')
    args = parser.parse_args()
    print(f'{args.n_tiles} tiles, {args.n_rows} rows, {os.cpu_count()} CPU cores')

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = write_tiles(Path(tmp), args.n_tiles, args.format)
        print(f'wrote {len(paths)} 16 x 16 .{args.format} tiles in '
              f'{time.perf_counter() - start:.1f} s')
        start = time.perf_counter()
        index = TileIndex.from_files(paths)
        wall = time.perf_counter() - start
        print(f'from_files (headers only)    : {wall:7.2f} s '
              f'({1e3 * wall / len(paths):.2f} ms per tile)')

    shape, scale, overlap = (4096, 4096), 0.2, 128
    step = (shape[0] - overlap) * scale / 3600
    ras, decs = grid(args.n_tiles, step)
    wcs = [tile_wcs(ra, dec, shape, scale) for ra, dec in zip(ras, decs)]
    start = time.perf_counter()
    index = TileIndex.from_wcs(wcs, [shape] * len(wcs))
    wall = time.perf_counter() - start
    print(f'from_wcs, 4096 x 4096 tiles  : {wall:7.2f} s')

    rng = np.random.default_rng(1)
    pad = 0.02 * (ras.max() - ras.min())
    coords = SkyCoord(rng.uniform(ras.min() - pad, ras.max() + pad, args.n_rows),
                      rng.uniform(decs.min() - pad, decs.max() + pad, args.n_rows),
                      unit='deg')
    start = time.perf_counter()
    assignment = index.locate(coords, 64)
    wall = time.perf_counter() - start
    counts = {flag: int(np.count_nonzero(assignment.flag == flag)) for flag in (0, 2, 1)}
    print(f'locate, 64-pixel cutouts     : {wall:7.2f} s '
          f'({args.n_rows / wall:,.0f} rows/s)')
    print(f'flags 0 / 2 / 1 (whole / partial / none): '
          f'{counts[0]} / {counts[2]} / {counts[1]}; '
          f'{len(list(index.groups(assignment)))} tiles with rows')


if __name__ == '__main__':
    main()
