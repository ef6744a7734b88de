# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""How far to trust a prediction: calibration and the out-of-distribution flag.

Trains on simulated clusters with the default configuration, then tests on
clusters simulated under a *shifted* configuration (another zero point and
sky brightness as from another band, another pixel scale, another depth,
and raw frames with a pedestal instead of sky-subtracted ones), and on
inputs that are not star clusters at all.  Prints, side by side:

- accuracy, ECE (10 bins) and NLL on the shifted test, before and after
  calibration (targets: ECE <= 0.05 after);
- the fraction flagged as unlike the training images, for the shifted
  clusters (target <= 5 %) and for each kind of non-cluster input (target
  >= 90 % in all).

Usage::

    python bench/trust.py [--n-per-class 100] [--n-test 200] [--workdir DIR]
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import skimage.data

from astroclusterclf import ClusterClassifier, make_dataset, retrain, simulate_cluster
from astroclusterclf.calibration import (calibrate_probabilities,
                                         expected_calibration_error,
                                         negative_log_likelihood)
from astroclusterclf.classifier import PredictionFlag
from astroclusterclf.plotting import plot_reliability_diagram


def shifted_clusters(n, rng):
    """Clusters under observing conditions the training set did not have."""
    images, labels = [], []
    for i in range(n):
        kind = ('globular cluster', 'open cluster')[i % 2]
        data, header = simulate_cluster(
            kind, size=128, rng=int(rng.integers(2**31)),
            pixel_scale=float(rng.uniform(0.25, 0.6)),       # training: 0.4"/px
            zero_point=float(rng.uniform(24.0, 27.5)),       # another band / depth
            sky=float(rng.uniform(19.0, 21.5)),
            read_noise=float(rng.uniform(2.0, 12.0)))
        if rng.random() < 0.5:
            data = data - np.median(data)                    # sky-subtracted
        else:
            data = data + rng.uniform(100, 2000)             # raw, with a pedestal
        images.append(data)
        labels.append(i % 2)
    return images, np.array(labels)


def _galaxy(rng, size=128):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    q, pa = rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
    xr = xx * np.cos(pa) + yy * np.sin(pa)
    yr = (-xx * np.sin(pa) + yy * np.cos(pa)) / q
    r = np.hypot(xr, yr)
    re, n = rng.uniform(6, 30), rng.uniform(0.8, 4)
    model = rng.uniform(500, 5000) * np.exp(-(2 * n - 1 / 3) * ((r / re) ** (1 / n) - 1))
    return rng.poisson(np.clip(model + 200, 0, 1e7)).astype(float)


def _spectrum(rng, size=128):
    image = rng.normal(50, 5, (size, size))
    yy = np.arange(size)[:, None]
    for centre in rng.uniform(10, size - 10, int(rng.integers(1, 5))):
        profile = np.exp(-(yy - centre) ** 2 / (2 * rng.uniform(0.8, 3) ** 2))
        image += rng.uniform(100, 2000) * profile * rng.uniform(0.3, 1, (1, size))
    for x in rng.integers(0, size, 6):                       # sky lines
        image[:, x] += rng.uniform(100, 500)
    return image


def _radio(rng, size=128):
    image = rng.normal(0, 1e-4, (size, size))
    yy, xx = np.mgrid[:size, :size]
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(20, size - 20, 2)
        lobe = np.exp(-((xx - cx) ** 2 / rng.uniform(20, 200)
                        + (yy - cy) ** 2 / rng.uniform(20, 200)))
        image += rng.uniform(1e-3, 1e-2) * lobe
    # a sidelobe pattern: the dirty beam's rings
    r = np.hypot(xx - size / 2, yy - size / 2)
    return image + 2e-4 * np.cos(r / 3) * np.exp(-r / 40)


def _photos():
    names = ['astronaut', 'coffee', 'chelsea', 'camera', 'rocket', 'moon', 'page',
             'text', 'brick', 'grass', 'gravel', 'coins', 'clock', 'hubble_deep_field',
             'immunohistochemistry', 'logo', 'motorcycle_left', 'retina', 'cell']
    out = {}
    for name in names:
        try:
            image = getattr(skimage.data, name)()
        except Exception:  # a few need pooch downloads
            continue
        image = np.asarray(image, float)
        if image.ndim == 3:
            image = np.moveaxis(image[..., :3], -1, 0)
        out[name] = image
    return out


def non_clusters(rng, n):
    """Inputs that are not star clusters, by kind."""
    sets = {
        'noise': [rng.normal(100, 10, (128, 128)) for _ in range(n)],
        'blank sky': [rng.poisson(rng.uniform(50, 3000), (128, 128)).astype(float)
                      for _ in range(n)],
        'spectrograph frame': [_spectrum(rng) for _ in range(n)],
        'radio map': [_radio(rng) for _ in range(n)],
        'galaxy only': [_galaxy(rng) for _ in range(n)],
        'flat field with dust rings': [],
    }
    for _ in range(n):
        yy, xx = np.mgrid[:128, :128]
        flat = 1e4 * (1 - 0.1 * np.hypot(xx - 64, yy - 64) / 90) + rng.normal(0, 30, (128, 128))
        for cx, cy in rng.uniform(10, 118, (3, 2)):
            rr = np.hypot(xx - cx, yy - cy)
            flat *= 1 - 0.05 * np.exp(-(rr - 8) ** 2 / 4)
        sets['flat field with dust rings'].append(flat)
    photos = _photos()
    sets['everyday photograph'] = list(photos.values())
    return sets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n-per-class', type=int, default=100)
    parser.add_argument('--n-test', type=int, default=200)
    parser.add_argument('--n-other', type=int, default=30, help='inputs of each other kind')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workdir', type=Path)
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix='acc-bench-trust-'))
    rng = np.random.default_rng(args.seed + 1000)

    t0 = time.perf_counter()
    data = workdir / 'train'
    if not data.exists():
        make_dataset(data, n_per_class=args.n_per_class, seed=args.seed)
    result = retrain(data, output=workdir / 'model.keras',
                     bottleneck_dir=workdir / 'bottlenecks', seed=args.seed)
    clf = ClusterClassifier.load(workdir / 'model.keras')
    print(f'trained on {args.n_per_class} per class in {time.perf_counter() - t0:.1f} s; '
          f'temperature {clf.temperature:.3f} ({result.calibration["source"]}), '
          f'OOD threshold {clf.ood_threshold:.3g}')

    images, truth = shifted_clusters(args.n_test, rng)
    assessment = clf.assess(images)
    calibrated = assessment.probabilities
    raw = calibrate_probabilities(calibrated, 1 / clf.temperature)
    accuracy = float(np.mean(calibrated.argmax(axis=1) == truth))
    flagged = (assessment.flag & PredictionFlag.UNLIKE_TRAINING) != 0
    print(f'\nshifted test ({len(truth)} clusters): accuracy {accuracy:.3f}')
    print(f'{"":22s} {"before":>8s} {"after":>8s}')
    print(f'{"ECE (10 bins)":22s} {expected_calibration_error(raw, truth):8.3f} '
          f'{expected_calibration_error(calibrated, truth):8.3f}   target after <= 0.05')
    print(f'{"NLL":22s} {negative_log_likelihood(raw, truth):8.3f} '
          f'{negative_log_likelihood(calibrated, truth):8.3f}')
    plot = workdir / 'reliability_shifted.png'
    try:
        plot_reliability_diagram(raw, truth, plot, calibrated=calibrated)
        print(f'reliability diagram of the shifted test: {plot}')
    except ImportError:
        pass
    print(f'\nflagged as unlike the training images (threshold {clf.ood_threshold:.3g}):')
    print(f'{"shifted clusters":28s} {flagged.mean():6.1%}  (N={len(flagged)}; '
          f'median score {np.median(assessment.ood_score):.3g})   target <= 5 %')
    total, total_flagged = 0, 0
    for kind, inputs in non_clusters(rng, args.n_other).items():
        if not inputs:
            continue
        other = clf.assess(inputs)
        hit = (other.flag & (PredictionFlag.UNLIKE_TRAINING | PredictionFlag.DEGENERATE)) != 0
        total += len(hit)
        total_flagged += int(hit.sum())
        print(f'{kind:28s} {hit.mean():6.1%}  (N={len(hit)}; median score '
              f'{np.median(other.ood_score):.3g}, min {np.min(other.ood_score):.3g})')
    print(f'{"all non-cluster inputs":28s} {total_flagged / total:6.1%}  (N={total})'
          '   target >= 90 %')
    print(f'\n{time.perf_counter() - t0:.0f} s in all; work files in {workdir}')


if __name__ == '__main__':
    main()
