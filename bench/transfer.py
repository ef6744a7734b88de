# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Transfer: train on the package's simulator, judge on data that shares no
code with it.

The judge is ``bench/_cleanroom_sim.py``, a second simulator written
clean-room (by a session that never read ``astroclusterclf/simulate.py``)
with other physics: Elson-Fall-Freeman globular profiles instead of King,
its own luminosity functions, Moffat PSFs with haloes, another noise and
detector model, its own contaminants and field densities.  It is used
here only to validate, never to train astro_lite0 or a head.

Training: ``make_dataset`` (the package's simulator, default mode), 60
images per class (30 with ``--quick``), ``retrain`` with the CLI
defaults; the default once more with the SGD head; and the default
retrained on 60 per class of the clean-room simulator's normal mode (a
user's own data, which we did not make) and judged on its hard mode, as
the team's held-out "hard cutouts" test does.  ``--model FILE`` judges a
saved model too (for example one written by an earlier version).

Printed side by side for each model, in one run:

- **own**: 100 per class from the package's simulator, another seed;
- **independent**: 100 per class from the clean-room simulator, normal
  and hard (poor seeing, bright sky, crowded, distant compact globulars,
  sparse faint open clusters);
- **survey**: a clean-room survey mosaic with its catalog, classified
  through ``annotate_table`` (the default cutout size);
- and the **gap** independent minus own,

each with accuracy, expected calibration error (10 bins), the fraction
flagged unlike training (``UNLIKE_TRAINING``), the number of errors made
at confidence >= 0.99, and the ECE of the unflagged predictions.

Out-of-distribution checks on real images that packages ship: 128-pixel
tiles of scikit-image's Hubble Deep Field (galaxies, no cluster) and
scikit-image's everyday photographs (should be flagged), and astropy's
M13 (a real globular cluster: its probability of 'globular cluster').

Run: ``python bench/transfer.py [--workdir DIR] [--quick] [--models NAMES]``.
Never tune anything to these figures: the team's held-out sets decide.
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from astroclusterclf import ClusterClassifier, retrain
from astroclusterclf.annotate import annotate_table, probability_column_name
from astroclusterclf.calibration import expected_calibration_error
from astroclusterclf.classifier import PredictionFlag
from astroclusterclf.simulate import CLASS_NAMES, make_dataset

sys.path.insert(0, str(Path(__file__).parent))
import _cleanroom_sim as cleanroom  # noqa: E402

#: (name, training folder, retrain options).  ``independent-train`` is a
#: user's workflow on data we did not make: a model retrained (with the
#: defaults) on clean-room images of the normal mode and judged on its hard
#: mode, as the team's held-out "hard cutouts" test does.
MODELS = (
    ('default', 'train', {}),
    ('sgd head', 'train', {'head': 'sgd'}),
    ('no drift calibration', 'train', {'drift_calibration': False}),
    ('default on independent', 'independent-train', {}),
    ('no drift calibration on independent', 'independent-train',
     {'drift_calibration': False}),
)


def _files(directory):
    paths, y = [], []
    for k, kind in enumerate(CLASS_NAMES):
        for path in sorted((Path(directory) / kind).glob('*.fits')):
            paths.append(path)
            y.append(k)
    return paths, np.array(y)


def _figures(probs, flags, y, labels):
    order = [labels.index(name) for name in CLASS_NAMES]
    p = probs[:, order]
    conf = p.max(axis=1)
    wrong = p.argmax(axis=1) != y
    flagged = (flags & PredictionFlag.UNLIKE_TRAINING) > 0
    keep = ~flagged
    return {'n': len(y), 'accuracy': float(np.mean(~wrong)),
            'ece': expected_calibration_error(p, y),
            'flagged': float(np.mean(flagged)),
            'errors_099': int(np.sum(wrong & (conf >= 0.99))),
            'ece_unflagged': (expected_calibration_error(p[keep], y[keep])
                              if keep.any() else float('nan'))}


def _assess(clf, paths):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return clf.assess(paths)


def _survey(clf, mosaic, catalog):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        table = annotate_table(clf, Table.read(catalog), image=mosaic)
    y = np.array([CLASS_NAMES.index(str(c)) for c in table['true_class']])
    probs = np.stack([np.asarray(table[probability_column_name(name)]) for name in clf.labels],
                     axis=1)
    return _figures(probs, np.asarray(table['pred_flag']), y, clf.labels)


def _real_ood(clf, workdir):
    """Fraction of real non-cluster images flagged, and M13's probability."""
    import skimage.data

    out = {}
    folder = Path(workdir) / 'real'
    folder.mkdir(exist_ok=True)
    hdf = skimage.data.hubble_deep_field().astype(np.float32).mean(axis=2)
    tiles = []
    for i in range(0, hdf.shape[0] - 127, 128):
        for j in range(0, hdf.shape[1] - 127, 128):
            path = folder / f'hdf_{i}_{j}.fits'
            fits.writeto(path, hdf[i:i + 128, j:j + 128], overwrite=True)
            tiles.append(path)
    photos = []
    for name in ('astronaut', 'coffee', 'chelsea', 'rocket', 'camera', 'coins',
                 'moon', 'page', 'text', 'brick', 'grass', 'gravel', 'horse',
                 'cell', 'clock', 'immunohistochemistry'):
        image = np.asarray(getattr(skimage.data, name)(), np.float32)
        if image.ndim == 3:
            image = image[..., :3].mean(axis=2)
        path = folder / f'{name}.fits'
        fits.writeto(path, image, overwrite=True)
        photos.append(path)
    for key, paths in (('hubble_deep_field_tiles', tiles), ('photographs', photos)):
        a = _assess(clf, paths)
        out[key] = (float(np.mean((a.flag & PredictionFlag.UNLIKE_TRAINING) > 0)), len(paths))
    m13 = Path(fits.__file__).parent / 'hdu/compressed/tests/data/m13.fits'
    if m13.exists():
        a = _assess(clf, m13)
        out['m13_globular'] = float(a.probabilities[0, clf.labels.index('globular cluster')])
        out['m13_flagged'] = bool(a.flag[0] & PredictionFlag.UNLIKE_TRAINING)
    return out


def _prepare(work, quick):
    n_train = 30 if quick else 60
    n_test = 30 if quick else 100
    t0 = time.perf_counter()
    if not (work / 'train').exists():
        make_dataset(work / 'train', n_per_class=n_train, seed=11)
    if not (work / 'own-test').exists():
        make_dataset(work / 'own-test', n_per_class=n_test, seed=12)
    for name, hard in (('independent', False), ('independent-hard', True)):
        if not (work / name).exists():
            cleanroom.write_class_folders(work / name, n_test, seed=21 + hard, hard=hard)
    if not (work / 'independent-train').exists():
        cleanroom.write_class_folders(work / 'independent-train', n_train, seed=31)
    if not (work / 'survey' / 'catalog.ecsv').exists():
        cleanroom.make_survey(work / 'survey', n_clusters=20 if quick else 40, seed=23,
                              shape=(1536, 1536) if quick else (2560, 2560))
    print(f'data ready in {time.perf_counter() - t0:.0f} s', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--workdir', help='keep the data here (default: a temporary folder)')
    parser.add_argument('--quick', action='store_true', help='fewer images, for a smoke run')
    parser.add_argument('--models', help='comma-separated subset of: '
                        + ', '.join(name for name, _, _ in MODELS))
    parser.add_argument('--model', action='append', default=[],
                        help='also judge this model file (repeatable)')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        _prepare(work, args.quick)
        sets = {name: _files(work / name)
                for name in ('own-test', 'independent', 'independent-hard')}
        chosen = set(args.models.split(',')) if args.models else None
        models = []
        for name, folder, options in MODELS:
            if chosen and name not in chosen:
                continue
            t1 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                result = retrain(work / folder, bottleneck_dir=work / 'bottlenecks',
                                 **options)
            t = result.selection if result.selection is not None else result.candidates
            picked = t['candidate'][t['chosen']][0]
            c = result.calibration
            print(f'{name}: retrained in {time.perf_counter() - t1:.0f} s; chose {picked}; '
                  f'calibration {c.get("method", "temperature")} (T = '
                  f'{c["temperature"]:.3f}); OOD threshold {c["ood_threshold"]:.3g}',
                  flush=True)
            models.append((name, result.classifier))
        for path in args.model:
            models.append((Path(path).name, ClusterClassifier.load(path)))
        rows, real_rows = [], []
        for name, clf in models:
            t1 = time.perf_counter()
            figures = {}
            for key, (paths, y) in sets.items():
                a = _assess(clf, paths)
                figures[key] = _figures(a.probabilities, a.flag, y, clf.labels)
            figures['survey'] = _survey(clf, work / 'survey' / 'mosaic.fits',
                                        work / 'survey' / 'catalog.ecsv')
            for key, f in figures.items():
                rows.append((name, key, f['n'], f['accuracy'], f['ece'], f['flagged'],
                             f['errors_099'], f['ece_unflagged']))
            own = figures['own-test']
            for key in ('independent', 'independent-hard', 'survey'):
                f = figures[key]
                rows.append((name, f'gap {key} - own', f['n'], f['accuracy'] - own['accuracy'],
                             f['ece'] - own['ece'], f['flagged'] - own['flagged'],
                             f['errors_099'] - own['errors_099'],
                             f['ece_unflagged'] - own['ece_unflagged']))
            real = _real_ood(clf, work)
            real_rows.append((name, *real['hubble_deep_field_tiles'], *real['photographs'],
                              real.get('m13_globular', np.nan),
                              real.get('m13_flagged', False)))
            print(f'{name}: judged in {time.perf_counter() - t1:.0f} s', flush=True)
        table = Table(rows=rows, names=('model', 'set', 'n', 'accuracy', 'ece', 'flagged',
                                        'errors_conf>=0.99', 'ece_unflagged'))
        for col in ('accuracy', 'ece', 'flagged', 'ece_unflagged'):
            table[col].format = '+.3f'
        print()
        print('Simulated sets (own: the package simulator; independent: the clean-room one)')
        table.pprint(max_lines=-1, max_width=-1)
        real = Table(rows=real_rows, names=('model', 'hdf_tiles_flagged', 'n_hdf',
                                            'photos_flagged', 'n_photos', 'm13_globular',
                                            'm13_flagged'))
        for col in ('hdf_tiles_flagged', 'photos_flagged', 'm13_globular'):
            real[col].format = '.3f'
        print()
        print('Real images (should be flagged: Hubble Deep Field tiles, photographs; '
              'M13 is a globular cluster)')
        real.pprint(max_lines=-1, max_width=-1)


if __name__ == '__main__':
    main()
