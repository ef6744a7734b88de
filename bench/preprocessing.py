# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark the read → normalize stages (the hot path before the CNN).

Prints, for simulated 128-pixel FITS files resized to 224 pixels (the
input of the default backbone):

* milliseconds per image for ``read_image`` alone and for ``fits_to_rgb``
  (read + interval + stretch + colour + resize), for 1 and 3 bands and
  each interval, and the ratio to a 20 ms budget (a CNN forward pass runs
  at ~50 images/s on 2 CPU cores, so preprocessing should stay well below
  one forward pass);
* milliseconds for ``resize`` alone: 128 → 224 (enlarge, bilinear),
  300 → 224 and 2048 → 224 (shrink, area average).

Run: ``python bench/preprocessing.py [--n N]``.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

BUDGET_MS = 20.0


def _per_image_ms(function, items):
    start = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - start) / len(items) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--n', type=int, default=100,
                        help='images per class and band count')
    args = parser.parse_args(argv)

    from astropy.io import fits

    from astroclusterclf import fits_to_rgb, read_image
    from astroclusterclf.preprocessing import resize
    from astroclusterclf.simulate import CLASS_NAMES, simulate_cluster

    with tempfile.TemporaryDirectory() as tmp:
        for bands in (1, 3):
            paths = []
            for i in range(args.n):
                kind = CLASS_NAMES[i % 2]
                data, header = simulate_cluster(kind, size=128, rng=i,
                                                bands=bands)
                path = Path(tmp) / f'{bands}-{i}.fits'
                fits.PrimaryHDU(data, header=header).writeto(path)
                paths.append(path)
            read_image(paths[0])  # warm up imports
            ms = _per_image_ms(read_image, paths)
            print(f'{bands} band(s), read_image: {ms:6.2f} ms/image')
            for interval in ('zscale', 'percentile', 'minmax'):
                kwargs = dict(size=(224, 224), interval=interval,
                              bands=(2, 1, 0) if bands == 3 else None)
                ms = _per_image_ms(lambda p: fits_to_rgb(p, **kwargs), paths)
                print(f'{bands} band(s), fits_to_rgb {interval:10s} -> 224: '
                      f'{ms:6.2f} ms/image, {ms / BUDGET_MS:5.2f} x the '
                      f'{BUDGET_MS:.0f} ms budget')

    rng = np.random.default_rng(0)
    for n_in, repeats in ((128, 300), (300, 100), (2048, 5)):
        image = rng.random((n_in, n_in, 3), dtype=np.float32)
        resize(image, 224)  # build the cached resampling plan
        ms = _per_image_ms(lambda im: resize(im, 224), [image] * repeats)
        print(f'resize {n_in:4d} -> 224, 3 channels: {ms:7.2f} ms')


if __name__ == '__main__':
    main()
