# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Benchmark end-to-end classification of FITS cutout files against the raw
forward pass of the model, in the same run.

* end to end: ``ClusterClassifier.predict(paths)``: read each FITS file,
  normalize it (the model's stored preprocessing, resize to 224 pixels),
  batch, forward pass;
* raw: the same model's forward pass on the already-prepared float32
  tensors, batch by batch (the ceiling for the end-to-end figure).

Prints images/s for both and their ratio (target: >= 0.9, i.e. reading
and normalization hidden behind the forward pass).  The head is an
untrained softmax layer: throughput does not depend on the weights.

Run: ``python bench/classify.py [--n N] [--batch-size B] [--repeat R]``.
"""

import argparse
import os
import tempfile
import time

import numpy as np


def _build_classifier(backbone):
    import keras

    from astroclusterclf.backbones import get_backbone, get_spec
    from astroclusterclf.classifier import ClusterClassifier
    from astroclusterclf.simulate import CLASS_NAMES

    size = get_spec(backbone).input_size
    inputs = keras.Input((size, size, 3))
    features = get_backbone(backbone)(inputs)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation='softmax')(features)
    return ClusterClassifier(keras.Model(inputs, outputs), list(CLASS_NAMES),
                             backbone=backbone)


def _best_rate(function, n, repeat):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return n / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--n', type=int, default=64, help='images per class')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--repeat', type=int, default=3,
                        help='timed runs of each kind (the best is kept)')
    parser.add_argument('--backbone', default='efficientnet_lite0')
    args = parser.parse_args(argv)

    from astroclusterclf._forward import forward_function
    from astroclusterclf.preprocessing import fits_to_rgb
    from astroclusterclf.simulate import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        files = make_dataset(tmp, n_per_class=args.n, seed=0)
        paths = [os.fspath(p) for group in files.values() for p in group]
        clf = _build_classifier(args.backbone)
        n = len(paths)
        clf.predict(paths[:args.batch_size], batch_size=args.batch_size)  # warm up

        tensors = np.stack([fits_to_rgb(p, settings=clf.settings) for p in paths])
        forward = forward_function(clf.model)

        def raw():
            for start in range(0, n, args.batch_size):
                np.asarray(forward(tensors[start:start + args.batch_size]))

        raw()  # warm up (traces every batch shape)
        raw_rate = _best_rate(raw, n, args.repeat)
        e2e_rate = _best_rate(lambda: clf.predict(paths, batch_size=args.batch_size),
                              n, args.repeat)

    print(f'{n} simulated 128x128 FITS cutouts -> {clf.input_size}x{clf.input_size} '
          f'{args.backbone}, batch {args.batch_size}, {os.cpu_count()} CPU cores')
    print(f'raw forward pass on prepared tensors : {raw_rate:7.1f} img/s')
    print(f'end to end (read + normalize + model): {e2e_rate:7.1f} img/s')
    ratio = e2e_rate / raw_rate
    print(f'ratio end-to-end / raw               : {ratio:7.2f} (target >= 0.9: '
          f'{"met" if ratio >= 0.9 else "NOT met"})')


if __name__ == '__main__':
    main()
