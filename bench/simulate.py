# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark the star-cluster simulator.

Prints

* milliseconds per ``simulate_cluster`` image (median wall-clock and CPU
  time) for each class, 1 and 3 bands, at 128 pixels (the target is well
  under 50 ms) and 256 pixels, and the ratio to the 50 ms target (on a
  busy machine the wall-clock time exceeds the CPU time);
* ``make_mosaic`` wall time and peak memory (resident set size of a fresh
  process, and its increase over the RSS right after ``import
  astroclusterclf``) for a 2048 x 2048 image and, with ``--big``,
  8192 x 8192, with the ratio of that increase to the size of the float32
  image.

Run: ``python bench/simulate.py [--repeats N] [--big]``.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

_MOSAIC = '''
import json, resource, sys, time
from astroclusterclf.simulate import make_mosaic
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
make_mosaic(sys.argv[1], shape=({n}, {n}), n_clusters={k})
t1 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": t1 - t0, "peak_rss": rss, "base_rss": base}}))
'''


def bench_images(repeats):
    from astroclusterclf.simulate import CLASS_NAMES, simulate_cluster
    print(f'simulate_cluster, median of {repeats} images:')
    for size in (128, 256):
        for kind in CLASS_NAMES:
            for bands in (1, 3):
                simulate_cluster(kind, size=size, n_bands=bands, rng=0)
                times, cpu = [], []
                for seed in range(repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    simulate_cluster(kind, size=size, n_bands=bands, rng=seed)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                ms = 1e3 * sorted(times)[len(times) // 2]
                cpu_ms = 1e3 * sorted(cpu)[len(cpu) // 2]
                worst = 1e3 * max(times)
                target = (f', {ms / 50:.2f} x the 50 ms target'
                          if size == 128 else '')
                print(f'  {kind:16s} size {size:3d} bands {bands}: '
                      f'{ms:6.1f} ms wall, {cpu_ms:6.1f} ms CPU '
                      f'(worst {worst:6.1f} ms wall{target})')


def bench_mosaic(n, k):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, '-c',
                              _MOSAIC.format(n=n, k=k), tmp],
                             check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    image = n * n * 4
    extra = result['peak_rss'] - result['base_rss']
    print(f'make_mosaic {n} x {n}, {k} clusters: {result["seconds"]:.1f} s, '
          f'peak RSS {result["peak_rss"] / 2**20:.0f} MiB, of which '
          f'{extra / 2**20:.0f} MiB above the RSS after import '
          f'({extra / image:.1f} x the float32 image)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--big', action='store_true',
                        help='also 8192 x 8192 (about 40 s, 1 GB)')
    args = parser.parse_args()
    bench_images(args.repeats)
    bench_mosaic(2048, 24)
    if args.big:
        bench_mosaic(8192, 100)


if __name__ == '__main__':
    main()
