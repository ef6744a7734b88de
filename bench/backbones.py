# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark the backbones: feature-extraction speed and first-start time.

For every backbone whose ImageNet weights are available here (the
EfficientNet-Lite packages that are installed; the keras.applications
models only if their weights are already in Keras' cache), print

* images per second of ``model.predict_on_batch`` at batch 32 (after one
  warm-up batch), and
* the time a fresh Python process needs for ``import astroclusterclf``
  plus ``import keras`` (TensorFlow start-up), and then for
  ``get_backbone(name)`` with an empty conversion cache (cold: the ``.pth``
  is read, checked and converted, and the cache entry written) and with
  the cache filled by that run (warm: the ``.keras`` entry is verified
  and loaded),

then the ratios.  Best-of-N timings are printed, since other processes on
a shared machine only ever make a run slower.  Run: ``python bench/backbones.py [--repeats N]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_START = '''
import json, time
t0 = time.perf_counter()
import astroclusterclf
from astroclusterclf.backbones import get_backbone
import keras
t1 = time.perf_counter()
get_backbone({name!r})
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "get_backbone": t2 - t1}}))
'''


def usable_backbones():
    """Names whose ImageNet weights are available without a download."""
    from astroclusterclf.backbones import available_backbones, get_spec
    from astroclusterclf.backbones import efficientnet_lite, keras_apps
    from astroclusterclf.exceptions import WeightsNotFoundError

    names = []
    for name in available_backbones():
        spec = get_spec(name)
        try:
            if spec.family == 'efficientnet_lite':
                efficientnet_lite.checkpoint_path(name)
            elif keras_apps.find_weights(spec.family, alpha=spec.alpha,
                                         size=spec.input_size) is None:
                continue
        except WeightsNotFoundError:
            continue
        names.append(name)
    return names


def first_start(name, cache):
    """Seconds for import and get_backbone in a fresh process."""
    env = dict(os.environ, ASTROCLUSTERCLF_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, '-c', _START.format(name=name)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(name, *, batch=32, repeats=3):
    """Images per second of the feature extractor at ``batch``."""
    import numpy as np
    from astroclusterclf.backbones import get_backbone, get_spec

    model = get_backbone(name)
    size = get_spec(name).input_size
    x = np.random.default_rng(0).random((batch, size, size, 3),
                                        dtype=np.float32)
    model.predict_on_batch(x)   # warm-up (graph tracing)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - t0)
    return batch / min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=6,
                        help='timed batches of 32 per backbone')
    parser.add_argument('--starts', type=int, default=3,
                        help='fresh processes per cold and warm timing')
    args = parser.parse_args()

    names = usable_backbones()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ['ASTROCLUSTERCLF_CACHE_DIR'] = cache
        for name in names:
            colds, warms = [], []
            for _ in range(args.starts):
                with tempfile.TemporaryDirectory() as fresh:
                    colds.append(first_start(name, fresh))
                warms.append(first_start(name, cache))
            cold = min(colds, key=lambda t: t['get_backbone'])
            warm = min(warms, key=lambda t: t['get_backbone'])
            warm['import'] = min(t['import'] for t in colds + warms)
            speed = throughput(name, repeats=args.repeats)
            rows.append((name, speed, cold, warm))

    from astroclusterclf.backbones import get_spec
    print(f'{os.cpu_count()} CPU cores; batch 32; best of {args.repeats} '
          f'timed batches after 1 warm-up; best of {args.starts} fresh '
          'processes for the start-up times')
    head = (f'{"backbone":22s} {"size":>4s} {"feat":>5s} {"img/s":>7s} '
            f'{"imports":>7s} {"cold":>7s} {"warm":>7s} {"cold/warm":>9s}')
    print(head)
    print('-' * len(head))
    base = rows[0][1] if rows else 1.0
    for name, speed, cold, warm in rows:
        spec = get_spec(name)
        print(f'{name:22s} {spec.input_size:4d} {spec.feature_length:5d} '
              f'{speed:7.1f} {warm["import"]:6.2f}s '
              f'{cold["get_backbone"]:6.2f}s {warm["get_backbone"]:6.2f}s '
              f'{cold["get_backbone"] / warm["get_backbone"]:8.2f}x')
    print()
    print('cold/warm: get_backbone time without / with the conversion cache')
    print('first-start totals (best imports + get_backbone), cold -> warm:')
    for name, speed, cold, warm in rows:
        total_cold = warm['import'] + cold['get_backbone']
        total_warm = warm['import'] + warm['get_backbone']
        print(f'  {name:22s} {total_cold:6.2f}s -> {total_warm:6.2f}s '
              f'({total_cold / total_warm:.2f}x); speed vs '
              f'{rows[0][0]}: {speed / base:.2f}x')


if __name__ == '__main__':
    main()
