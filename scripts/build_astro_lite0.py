#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Rebuild the astro_lite0 backbone weights shipped in astroclusterclf/data.

Seeded and resumable: rerun the same command after an interruption and it
continues from the frames and the epoch checkpoint already in WORK_DIR.
About an hour on a 2-core CPU with the defaults (see docs/astro_lite0.rst)::

    nohup python scripts/build_astro_lite0.py --work-dir astro-build \
        > astro-build.log 2>&1 &

Afterwards set ``SHA256`` in astroclusterclf/backbones/astro_lite.py to the
printed checksum.
"""

import argparse
import logging

from astroclusterclf.backbones.astro_lite import build_weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='astro-build',
                        help='frames, checkpoints and log (default %(default)s)')
    parser.add_argument('--output', default=None,
                        help='weights file (default: the package data file)')
    parser.add_argument('--n-train', type=int, default=20000)
    parser.add_argument('--n-val', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--learning-rate', type=float, default=3e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(message)s')
    build_weights(args.work_dir, output=args.output, n_train=args.n_train,
                  n_val=args.n_val, epochs=args.epochs,
                  batch_size=args.batch_size,
                  learning_rate=args.learning_rate, seed=args.seed,
                  workers=args.workers, progress=print)


if __name__ == '__main__':
    main()
