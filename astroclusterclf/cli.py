# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Command-line front end: ``astroclusterclf <command> ...``.

This module only parses arguments, calls the public API and prints what
the user asked for.  Errors derived from
`~astroclusterclf.AstroClusterClfError` are printed as one line on
standard error with exit status 1, never as a traceback.
"""

import argparse
import contextlib
import difflib
import glob
import importlib.util
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.utils.console import ProgressBar

from ._atomic import check_writable
from ._quiet import import_tensorflow
from .annotate import (annotate_fits, annotate_table, check_table_output, cutout_size,
                       predictions_table, read_catalog, write_table)
from ._chunks import ChunkStore
from .classifier import ClusterClassifier, PredictionFlag
from .cutouts import parse_size
from .datasets import image_files
from .demo import run_demo
from .io import image_hdus
from .plotting import plot_catalog_sheet
from .preprocessing import NormalizationSettings
from .exceptions import (AnnotationError, AstroClusterClfError, AstroClusterClfWarning,
                         CatalogError, FieldOfViewWarning, OutputError, ParameterError)
from .retrain import retrain
from .simulate import make_dataset
from .version import __version__

__all__ = ['main']

EXIT_ERROR = 1

# Subcommands that never build a model, so need not load TensorFlow.
_WITHOUT_TENSORFLOW = {'simulate'}


def _add_flag(parser, name, **kwargs):
    """Add an option under its underscore spelling (as the old TensorFlow
    tools wrote it) and its dashed spelling."""
    names = ['--' + name]
    if '_' in name:
        names.append('--' + name.replace('_', '-'))
    parser.add_argument(*names, dest=name, **kwargs)


def _hdu_arg(text):
    """``--hdu`` value: an index or an EXTNAME."""
    return int(text) if text.strip().lstrip('-').isdigit() else text


def _positive_int(text):
    """A positive integer option value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def _bands_arg(text):
    """``--bands`` value: 1 or 3 comma-separated band indices (0-based)."""
    try:
        bands = tuple(int(b) for b in text.split(','))
    except ValueError:
        bands = ()
    if len(bands) not in (1, 3) or any(b < 0 for b in bands):
        raise argparse.ArgumentTypeError(
            f'{text!r}: give 1 or 3 band indices of the cube, 0-based, e.g. 0 or 2,1,0 '
            '(R,G,B order)')
    return bands


def _add_bands(parser):
    parser.add_argument('--bands', type=_bands_arg, metavar='I[,J,K]',
                        help='bands of a FITS cube to use: one index, or three in '
                             'R,G,B order (0-based; needed for cubes of 2 or more '
                             'than 3 bands)')


class _RetrainPrinter:
    """Print what a retrain run reports: a progress bar while bottlenecks
    are computed, then one line per evaluation step, as the old tool did.

    Use as a context manager; pass ``progress`` and ``eval_step`` to
    `~astroclusterclf.retrain.retrain` and ``echo`` for other lines.
    """

    def __init__(self, architecture):
        self.architecture = architecture
        self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close_bar()
        return False

    def _close_bar(self):
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def echo(self, line):
        self._close_bar()
        print(line)

    def progress(self, done, total, what=None):
        if self._bar is None and done < total:
            print(f'Computing {total} bottleneck(s) with {what or self.architecture}')
            self._bar = ProgressBar(total).__enter__()
        if self._bar is not None:
            self._bar.update(done)
            if done >= total:
                self._close_bar()

    def eval_step(self, step):
        self._close_bar()
        stage = ' [fine-tune]' if step.stage == 'fine_tune' else ''
        print(f'Step {step.step}: '
              f'Train accuracy = {100 * step.train_accuracy:.1f}%, '
              f'Cross entropy = {step.cross_entropy:.6f}, '
              f'Validation accuracy = '
              f'{100 * step.validation_accuracy:.1f}% '
              f'(N={step.n_validation}){stage}')


_SUBCOMMANDS = []


def _subcommand(add):
    """Register ``add(subparsers)``, which adds one subcommand's parser
    and sets its ``func`` default to a function of the parsed arguments
    that returns an exit status."""
    _SUBCOMMANDS.append(add)
    return add


# ---------------------------------------------------------------------------
# Subcommands, in the order ``--help`` lists them.
# ---------------------------------------------------------------------------

# -- simulate ---------------------------------------------------------------

@_subcommand
def _add_simulate(subparsers):
    p = subparsers.add_parser(
        'simulate',
        help='write simulated globular and open cluster images',
        description='Write simulated images of globular and open star '
                    'clusters into the class folders "globular cluster/" '
                    'and "open cluster/" of OUTPUT.  The same seed writes '
                    'identical files.')
    p.add_argument('--output', required=True, metavar='DIR',
                   help='output directory (created if needed)')
    _add_flag(p, 'n_per_class', type=int, required=True, metavar='N',
              help='number of images of each class')
    p.add_argument('--seed', type=int, default=0,
                   help='random seed (default: %(default)s)')
    p.add_argument('--bands', type=int, choices=(1, 3), default=1,
                   help='1 band (r) or 3 bands (g, r, i) '
                        '(default: %(default)s)')
    p.add_argument('--format', choices=('fits', 'png'), action='append',
                   dest='formats', metavar='{fits,png}',
                   help='file format; repeat for both (default: fits)')
    p.add_argument('--size', type=int, default=128,
                   help='image width and height in pixels '
                        '(default: %(default)s)')
    p.add_argument('--randomize', action='store_true',
                   help='domain-randomized frames: distances, pixel '
                        'scales, PSFs, depths, bands u to z, sky '
                        'subtraction, gradients, bleed trails, cosmic rays, '
                        'edges and gaps drawn over the ranges of real '
                        'surveys (see the simulation docs)')
    p.set_defaults(func=_run_simulate)


def _run_simulate(args):
    formats = tuple(args.formats or ('fits',))
    with ProgressBar(2 * max(args.n_per_class, 0)) as bar:
        files = make_dataset(args.output, n_per_class=args.n_per_class,
                             seed=args.seed, size=args.size,
                             n_bands=args.bands, formats=formats,
                             randomize=args.randomize,
                             progress=lambda done, total: bar.update(done))
    for label, paths in files.items():
        counts = ', '.join(
            f'{sum(p.suffix == "." + fmt for p in paths)} {fmt.upper()}'
            for fmt in formats)
        print(f'Wrote {counts} image(s) of {label!r} to {paths[0].parent}')
    return 0


# -- retrain / label --------------------------------------------------------

@_subcommand
def _add_retrain(subparsers):
    p = subparsers.add_parser(
        'retrain',
        help='retrain a classifier on a folder of class sub-folders',
        description='Retrain a classification head on top of a pretrained '
                    'backbone.  The sub-folders of IMAGE_DIR are the '
                    'classes (names may contain spaces); their FITS, PNG '
                    'or JPEG files are the examples.  Writes one '
                    'self-contained .keras model file and a label file, '
                    'and reports the accuracy on a held-out test set.')
    _add_flag(p, 'image_dir', required=True, metavar='DIR',
              help='folder whose sub-folders are the classes')
    _add_flag(p, 'output_graph', required=True, metavar='FILE',
              help='model file to write (.keras)')
    _add_flag(p, 'output_labels', metavar='FILE',
              help='label file to write, one label per line')
    _add_flag(p, 'architecture', default='auto',
              help='backbone, or "auto" to choose the best of the ImageNet '
                   'and the astronomy-adapted backbones and normalizations '
                   'by cross-validation (default: %(default)s)')
    _add_flag(p, 'head', choices=('logistic', 'sgd'),
              help='"logistic" (default): L2-regularized logistic regression, '
                   'regularization chosen by cross-validated log-loss; "sgd": the '
                   'old tool\'s softmax head trained by SGD (the default when '
                   '--how_many_training_steps, --learning_rate or '
                   '--train_batch_size is given)')
    _add_flag(p, 'how_many_training_steps', type=int, default=None,
              metavar='N', help='training steps of the SGD head (default: 4000)')
    _add_flag(p, 'learning_rate', type=float, default=None, metavar='X',
              help='learning rate of the SGD head (default: 0.01)')
    _add_flag(p, 'ood_false_alarm_rate', type=float, default=0.05, metavar='F',
              help='fraction of held-out training-like images the out-of-distribution '
                   'threshold flags (default: %(default)s)')
    _add_flag(p, 'no_drift_calibration', action='store_true',
              help='fit the temperature on held-out images only, not also on a '
                   'degraded copy of each (worse seeing, shallower, smaller)')
    _add_flag(p, 'bottleneck_dir', metavar='DIR',
              help='feature cache (default: <cache dir>/bottlenecks)')
    _add_flag(p, 'summaries_dir', metavar='DIR',
              help='write TensorBoard scalars here')
    _add_flag(p, 'testing_percentage', type=float, default=10, metavar='P',
              help='percentage of images for testing (default: '
                   '%(default)s)')
    _add_flag(p, 'validation_percentage', type=float, default=10,
              metavar='P', help='percentage of images for validation '
                                '(default: %(default)s)')
    _add_flag(p, 'eval_step_interval', type=int, default=10, metavar='N',
              help='evaluate every N steps (default: %(default)s)')
    _add_flag(p, 'train_batch_size', type=int, default=None, metavar='B',
              help='images per training step of the SGD head (default: 100)')
    _add_flag(p, 'random_seed', type=int, default=0, metavar='S',
              help='random seed (default: %(default)s)')
    p.add_argument('--no-augment', '--no_augment', dest='augment',
                   action='store_false',
                   help='do not train on the 8 rotations/flips')
    _add_flag(p, 'fine_tune', action='store_true',
              help='also fine-tune the top of the backbone')
    _add_bands(p)
    p.set_defaults(func=_run_retrain)


def _run_retrain(args):
    # The old tool's option names map onto the Python API's here, and
    # only here.
    sgd_flags = {'steps': args.how_many_training_steps,
                 'learning_rate': args.learning_rate,
                 'batch_size': args.train_batch_size}
    head = args.head
    if head is None and any(v is not None for v in sgd_flags.values()):
        head = 'sgd'       # the old tool's flags ask for the old tool's head
    with _RetrainPrinter(args.architecture) as printer:
        result = retrain(
            args.image_dir, output=args.output_graph,
            labels_output=args.output_labels,
            architecture=args.architecture, head=head,
            ood_false_alarm_rate=args.ood_false_alarm_rate,
            drift_calibration=not args.no_drift_calibration,
            **{k: v for k, v in sgd_flags.items() if v is not None},
            testing_percentage=args.testing_percentage,
            validation_percentage=args.validation_percentage,
            bottleneck_dir=args.bottleneck_dir,
            summaries_dir=args.summaries_dir, augment=args.augment,
            fine_tune=args.fine_tune, seed=args.random_seed,
            eval_interval=args.eval_step_interval,
            settings=None if args.bands is None else NormalizationSettings(bands=args.bands),
            callback=printer.eval_step, progress=printer.progress)
    print(result.report())
    files = [result.output, result.labels_output, result.reliability_plot]
    written = 'Wrote ' + ', '.join(str(f) for f in files if f is not None)
    print(written)
    return 0


@_subcommand
def _add_label(subparsers):
    p = subparsers.add_parser(
        'label',
        help='classify images with a retrained model',
        description='Print the calibrated class probabilities of images, best '
                    'first, one "<label> <probability>" line per class.  With '
                    'several images (or a folder) each file gets a header line.  '
                    'A file that cannot be read gets one error line on standard '
                    'error and is skipped; the others are still classified, and '
                    'the exit status is 1.  An image unlike the training images, '
                    'or degenerate (constant, tiny, mostly masked), gets a warning '
                    'line on standard error.')
    p.add_argument('--graph', required=True, metavar='FILE',
                   help='model file written by retrain (.keras)')
    p.add_argument('--image', required=True, action='append',
                   metavar='FILE|DIR', dest='images',
                   help='image file or folder of images; repeat for more')
    p.add_argument('--labels', metavar='FILE',
                   help='label file (default: the labels stored in the '
                        'model)')
    _add_bands(p)
    _add_flag(p, 'top_k', type=_positive_int, default=5, metavar='K',
              help='print the K best classes (default: %(default)s)')
    p.add_argument('--hdu', type=_hdu_arg, metavar='N|NAME',
                   help='FITS HDU to read (index or EXTNAME)')
    _add_flag(p, 'all_hdus', action='store_true',
              help='classify every image HDU of each FITS file (one result, and '
                   'one table row, per HDU)')
    p.add_argument('--tta', action='store_true',
                   help='average over the 8 rotations/flips')
    p.add_argument('--output', metavar='TABLE',
                   help='also write the results as a table (path, pred_class, '
                        'pred_conf, prob_<label>, pred_ood, pred_flag); the format '
                        'follows the extension (.ecsv, .fits, .xml, .csv, ...)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the --output table if it exists')
    p.set_defaults(func=_run_label)


def _error(args, message):
    print(f'astroclusterclf {args.command}: error: {message}', file=sys.stderr)


def _warn(args, message):
    print(f'astroclusterclf {args.command}: warning: {message}', file=sys.stderr)


def _doubt(classifier, name, score, flag):
    """A warning line for a flagged prediction, or None."""
    reasons = []
    if flag & PredictionFlag.UNLIKE_TRAINING:
        reasons.append(f'unlike the training images (OOD score {score:.3g} > '
                       f'{classifier.ood_threshold:.3g})')
    if flag & PredictionFlag.DEGENERATE:
        reasons.append('degenerate image (constant, under 16 pixels, or over half '
                       'masked)')
    if not reasons:
        return None
    return f'{name}: {" and ".join(reasons)}: do not trust its class'


def _run_label(args):
    if args.all_hdus and args.hdu is not None:
        raise ParameterError('give --hdu or --all-hdus, not both')
    if args.output is not None:
        check_table_output(args.output, overwrite=args.overwrite)
    clf = ClusterClassifier.load(args.graph, labels=args.labels)
    names, hdus, failed = [], [], 0
    for name in args.images:
        if os.path.isdir(name):
            found = image_files(name)
            if not found:
                _error(args, f'{name}: folder holds no image file')
                failed += 1
            candidates = found
        else:
            candidates = [name]
        for candidate in candidates:
            if not args.all_hdus:
                names.append(candidate)
                hdus.append(args.hdu)
                continue
            try:
                indices = image_hdus(candidate)
            except AstroClusterClfError as exc:
                _error(args, exc)
                failed += 1
                continue
            names += [candidate] * len(indices)
            hdus += indices
    assessment = clf.assess(names, hdu=hdus, bands=args.bands, tta=args.tta,
                            on_error='skip')
    bad = dict(assessment.errors)
    for index in sorted(bad):
        _error(args, bad[index])
    several = len(names) > 1
    printed = 0
    for i, name in enumerate(names):
        if i in bad:
            continue
        where = f' [HDU {hdus[i]}]' if args.all_hdus else ''
        if several:
            print(f'{"" if printed == 0 else chr(10)}{name}{where}:')
        printed += 1
        for label, p in clf.rank(assessment.probabilities[i], args.top_k):
            print(f'{label} {p:.5f}')
        doubt = _doubt(clf, f'{name}{where}', assessment.ood_score[i],
                       assessment.flag[i])
        if doubt:
            _warn(args, doubt)
    if args.output is not None:
        table = predictions_table(clf, names, assessment,
                                  hdus=hdus if args.all_hdus else None)
        write_table(table, args.output, overwrite=args.overwrite)
        print(f'Wrote {args.output} ({len(table)} rows)')
    return EXIT_ERROR if failed or bad else 0


# -- annotate-fits / annotate-table -----------------------------------------

@_subcommand
def _add_annotate_fits(subparsers):
    p = subparsers.add_parser(
        'annotate-fits',
        help='classify FITS images and write the result into their headers',
        description='Classify the image of each FITS file and write the '
                    'cards CLSLABEL, CLSCONF, CLSMODEL, CLSOOD, CLSFLAG, CLSPRBn '
                    'and a HISTORY card into the classified HDU.  The image data '
                    'are never altered.  Give exactly one of --output-dir and '
                    '--in-place.')
    p.add_argument('--graph', required=True, metavar='MODEL',
                   help='model file written by "astroclusterclf retrain"')
    p.add_argument('files', nargs='+', metavar='FILE', help='FITS file(s)')
    _add_flag(p, 'output_dir', metavar='DIR',
              help='write annotated copies (same file names) into DIR (created if '
                   'needed)')
    _add_flag(p, 'in_place', action='store_true',
              help='replace each file by its annotated version (atomically)')
    p.add_argument('--hdu', type=_hdu_arg, default=None,
                   help='HDU index or EXTNAME (default: the first image HDU)')
    _add_flag(p, 'all_hdus', action='store_true',
              help='classify and annotate every image HDU (e.g. the SCI '
                   'extensions of HST/JWST-style files)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace existing files in --output-dir')
    _add_bands(p)
    p.set_defaults(func=_run_annotate_fits)


def _run_annotate_fits(args):
    if (args.output_dir is None) == (not args.in_place):
        raise AnnotationError('give exactly one of --output-dir DIR and --in-place')
    if args.all_hdus and args.hdu is not None:
        raise ParameterError('give --hdu or --all-hdus, not both')
    with _output_folder(args.output_dir):
        return _annotate_files(args)


@contextlib.contextmanager
def _output_folder(folder):
    """Create ``folder`` (and its parents) for the run, and remove what
    it created again if the run fails before writing anything there."""
    if folder is None:
        yield
        return
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f'{folder}: not a folder')
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f'{folder}: cannot create the output folder '
                          f'({exc.strerror or exc})') from None
    try:
        yield
    except BaseException:
        for path in created:            # innermost first
            try:
                path.rmdir()            # only when still empty
            except OSError:
                break
        raise


def _annotate_files(args):
    classifier = ClusterClassifier.load(args.graph)
    for name in args.files:
        output = None if args.in_place else Path(args.output_dir) / Path(name).name
        results = annotate_fits(classifier, name, output=output,
                                in_place=args.in_place,
                                hdu='all' if args.all_hdus else args.hdu,
                                bands=args.bands, overwrite=args.overwrite)
        for result in results if args.all_hdus else [results]:
            print(f'{name}: {result.label} {result.confidence:.5f} -> {result.path} '
                  f'[HDU {result.hdu}]')
            doubt = _doubt(classifier, f'{name} [HDU {result.hdu}]', result.ood_score,
                           result.flag)
            if doubt:
                _warn(args, doubt)
    return 0


@_subcommand
def _add_annotate_table(subparsers):
    p = subparsers.add_parser(
        'annotate-table',
        help='classify the rows of a catalog and write the annotated table',
        description='Classify each row of CATALOG, either by cutting its sky '
                    'position out of a survey image (--image) or by reading '
                    'the file named in a column (--path-column), and write '
                    'the table with the columns pred_class, pred_conf, '
                    'prob_<label>, pred_ood and pred_flag (0 = fine, 1 = off the '
                    'image, 2 = partial cutout, 4 = too many bad pixels, '
                    '8 = unreadable file, 16 = unlike the training images, '
                    '32 = degenerate image).  With several --image tiles (or '
                    'a glob), each row is cut from the tile that holds it whole '
                    '(pred_tile), results are written in chunks to OUT.parts/ as '
                    'they finish, and --resume continues an interrupted run.  The '
                    'output format follows its extension: .ecsv, .fits, .xml/.vot '
                    '(VOTable), .parquet, .csv, ...')
    p.add_argument('--graph', required=True, metavar='MODEL',
                   help='model file written by "astroclusterclf retrain"')
    p.add_argument('catalog', metavar='CATALOG',
                   help='input table (any format astropy reads)')
    p.add_argument('--image', metavar='MOSAIC', action='append',
                   help='survey image (FITS with a celestial WCS); repeat, or give a '
                        'glob pattern such as "tiles/*.fits", for a survey of many '
                        'tiles (each row is cut from the tile that holds it whole)')
    _add_flag(p, 'path_column', metavar='COL',
              help='column of image file names to classify')
    p.add_argument('--output', required=True, metavar='OUT',
                   help='output table; written atomically')
    _add_flag(p, 'ra_column', metavar='COL',
              help='right ascension column, degrees unless it has a unit, or a '
                   'SkyCoord column (default: a SkyCoord column, or ra/dec, RA/DEC, '
                   'RAJ2000/DEJ2000, RA_ICRS/DE_ICRS, ALPHA_J2000/DELTA_J2000)')
    _add_flag(p, 'dec_column', metavar='COL',
              help='declination column (see --ra-column)')
    p.add_argument('--size',
                   help='cutout size: pixels, or an angle such as "30 arcsec" '
                        "(default: the model's field of view, the size of its "
                        'training frames)')
    p.add_argument('--workers', type=int, metavar='N',
                   help='classify on a local Dask cluster of N worker processes '
                        '(needs the survey extra)')
    p.add_argument('--scheduler', metavar='ADDRESS',
                   help='classify on an existing Dask cluster (tcp://host:port)')
    p.add_argument('-v', '--verbose', action='store_true',
                   help="also show TensorFlow's and Dask's own messages (the workers' "
                        'start-up lines, the cluster shutting down)')
    _add_flag(p, 'chunk_size', type=_positive_int, default=512, metavar='N',
              help='rows per chunk of a survey run: a task for a worker, and the '
                   'unit written to OUT.parts/ (default: %(default)s)')
    p.add_argument('--resume', action='store_true',
                   help='continue an interrupted run from its finished chunks '
                        '(OUT.parts/), recomputing none of them')
    _add_flag(p, 'contact_sheet', metavar='PNG',
              help='also draw the classified cutouts (lowest confidence first '
                   'when there are many), to check by eye; needs matplotlib')
    p.add_argument('--hdu', type=_hdu_arg, default=None,
                   help='HDU of the image (or of each file)')
    _add_flag(p, 'batch_size', type=int, default=32, metavar='N',
              help='images per forward pass (default: %(default)s)')
    p.add_argument('--format', default=None,
                   help='astropy table format of OUT (default: from the extension)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace OUT if it exists')
    _add_bands(p)
    p.set_defaults(func=_run_annotate_table)


class _RowProgress:
    """Progress of a catalog run: on a terminal, rows done, rows/s and the
    time left on one updated line; otherwise nothing until the summary."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.start = time.perf_counter()
        self.first = None
        self.shown = 0.0

    def __call__(self, done, total):
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, done)      # rows found done (resumed) are not speed
            return
        if not self.tty or (now - self.shown < 0.5 and done < total):
            return
        self.shown = now
        rate = (done - self.first[1]) / max(now - self.first[0], 1e-9)
        eta = (total - done) / rate if rate > 0 else float('nan')
        eta_text = time.strftime('%H:%M:%S', time.gmtime(eta)) if np.isfinite(eta) else '?'
        end = '\n' if done >= total else ''
        print(f'\r{done}/{total} rows, {rate:.1f} rows/s, {eta_text} left   ', end=end,
              file=self.stream, flush=True)

    def rate(self, done):
        if self.first is None:
            return float('nan')
        return (done - self.first[1]) / max(time.perf_counter() - self.first[0], 1e-9)


def _images(patterns):
    """The --image values: paths, or glob patterns matching some."""
    images = []
    for pattern in patterns:
        if any(c in pattern for c in '*?['):
            found = sorted(glob.glob(os.path.expanduser(pattern)))
            if not found:
                raise AnnotationError(f'--image {pattern!r}: no file matches')
            images += found
        else:
            images.append(pattern)
    return images


def _dask_client(args, stack):
    """A `distributed.Client` for --workers or --scheduler, or None."""
    if args.workers is None and args.scheduler is None:
        return None
    if args.verbose:
        os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'     # inherited by the workers
    else:
        # The cluster's own log (a worker killed at shutdown, ...) is not the
        # user's business unless asked for.
        logging.getLogger('distributed').setLevel(logging.ERROR)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AnnotationError('--workers and --scheduler need Dask: pip install '
                              '"astroclusterclf[survey]"') from None
    if args.scheduler is not None:
        client = stack.enter_context(Client(args.scheduler))
    else:
        cluster = stack.enter_context(LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            dashboard_address='127.0.0.1:0', host='127.0.0.1'))
        client = stack.enter_context(Client(cluster))
    if client.dashboard_link:
        print(f'Dask dashboard: {client.dashboard_link}')
    return client


def _run_annotate_table(args):
    if (args.image is None) == (args.path_column is None):
        raise AnnotationError('give exactly one of --image MOSAIC and --path-column COL')
    images = _images(args.image) if args.image is not None else None
    size = None
    if args.size is not None:
        try:
            size = parse_size(args.size)
        except ParameterError as exc:
            raise ParameterError(f'--size: {exc}') from None
    if args.contact_sheet is not None:
        if images is None or len(images) != 1:
            raise ParameterError('--contact-sheet needs one --image (the cutouts are cut '
                                 'from it)')
        check_writable(args.contact_sheet)
        # The sheet is drawn at the end: a missing matplotlib is found now.
        if importlib.util.find_spec('matplotlib') is None:
            raise ParameterError('--contact-sheet needs matplotlib: pip install '
                                 '"astroclusterclf[plot]"')
    if ((args.workers is not None or args.scheduler is not None)
            and importlib.util.find_spec('distributed') is None):
        raise ParameterError('--workers and --scheduler need Dask: pip install '
                             '"astroclusterclf[survey]"')
    if args.batch_size < 1:
        raise ParameterError(f'--batch-size must be positive, got {args.batch_size}')
    if args.workers is not None and args.workers < 1:
        raise ParameterError(f'--workers must be positive, got {args.workers}')
    survey = (images is not None and len(images) > 1) or args.workers is not None \
        or args.scheduler is not None or args.resume
    catalog = read_catalog(args.catalog)
    check_table_output(args.output, format=args.format,
                       overwrite=args.overwrite or args.resume)
    classifier = ClusterClassifier.load(args.graph)
    if args.resume:
        chunks, rows = ChunkStore.found(args.output)
        print(f'Resuming {args.output}: found {rows} rows done in {chunks} chunks')
    progress = _RowProgress()
    with contextlib.ExitStack() as stack:
        client = _dask_client(args, stack)
        try:
            table = annotate_table(
                classifier, catalog,
                image=(images if survey else images[0]) if images is not None else None,
                path_column=args.path_column, ra=args.ra_column,
                dec=args.dec_column, size=size, hdu=args.hdu, bands=args.bands,
                batch_size=args.batch_size, progress=progress, output=args.output,
                format=args.format, overwrite=args.overwrite, resume=args.resume,
                client=client, chunk_size=args.chunk_size)
        except CatalogError as exc:  # name the catalog file
            raise CatalogError(f'{args.catalog}: {exc}') from None
    if 'CLSSIZE' in table.meta:
        print(f'Cutout size: {table.meta["CLSSIZE"]}')
    classified = ~table['pred_class'].mask
    counts = ', '.join(f'{int((table["pred_class"][classified] == label).sum())} {label!r}'
                       for label in classifier.labels)
    flagged = int((table['pred_flag'] != 0).sum())
    elapsed = time.perf_counter() - progress.start
    print(f'Classified {int(classified.sum())} of {len(table)} rows ({counts}); '
          f'{flagged} flagged (pred_flag != 0); {elapsed:.1f} s, '
          f'{progress.rate(len(table)):.1f} rows/s')
    values, numbers = np.unique(np.asarray(table['pred_flag']), return_counts=True)
    print('Rows per pred_flag: ' + ', '.join(f'{v}: {c}' for v, c in zip(values, numbers)))
    print(f'Wrote {args.output}')
    if args.contact_sheet is not None:
        # The cutouts the model saw: the field-of-view policy's own size
        # (it warned already, during the run).
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FieldOfViewWarning)
            sheet_size, _ = cutout_size(classifier, images[0], hdu=args.hdu, size=size)
        plot_catalog_sheet(table, images[0], args.contact_sheet, size=sheet_size,
                           hdu=args.hdu, ra=args.ra_column, dec=args.dec_column)
        print(f'Wrote {args.contact_sheet}')
    return 0


# -- demo -------------------------------------------------------------------

@_subcommand
def _add_demo(subparsers):
    p = subparsers.add_parser(
        'demo',
        help='run the whole pipeline on simulated star clusters',
        description='Simulate a training set of globular and open clusters '
                    'and a survey mosaic with a catalog, retrain (the backbones, '
                    'normalizations and head chosen by cross-validation), '
                    'classify the catalog over the '
                    'mosaic, annotate FITS files and the table, and print '
                    'where everything is and the accuracy against the '
                    'simulated truth.  Works offline.')
    _add_flag(p, 'workdir', default='astroclusterclf-demo', metavar='DIR',
              help='folder for all outputs (default: %(default)s)')
    _add_flag(p, 'n_per_class', type=int, default=100, metavar='N',
              help='training images per class (default: %(default)s)')
    _add_flag(p, 'n_clusters', type=int, default=24, metavar='N',
              help='clusters in the survey mosaic (default: %(default)s)')
    _add_flag(p, 'mosaic_size', type=int, default=2048, metavar='PIX',
              help='mosaic width and height (default: %(default)s)')
    _add_flag(p, 'how_many_training_steps', type=int, default=4000,
              metavar='N', help='training steps (default: %(default)s)')
    _add_flag(p, 'seed', type=int, default=0, metavar='S',
              help='seed of the simulated data (default: %(default)s)')
    p.set_defaults(func=_run_demo)


def _run_demo(args):
    with _RetrainPrinter('auto') as printer:
        result = run_demo(
            args.workdir, n_per_class=args.n_per_class,
            n_clusters=args.n_clusters, mosaic_size=args.mosaic_size,
            steps=args.how_many_training_steps, seed=args.seed,
            echo=printer.echo, progress=printer.progress,
            callback=printer.eval_step)
    print()
    print(f'Done.  Final test accuracy {result.retrain.test_accuracy:.1%}; '
          f'catalog accuracy against the simulated truth '
          f'{result.catalog_accuracy:.1%} ({result.n_catalog} rows).')
    print('Outputs:')
    width = max(len(name) for name in result.paths)
    for name, path in result.paths.items():
        print(f'  {name:<{width}}  {path}')
    for note in result.notes:
        print(f'Note: {note}')
    if 'TensorBoard logs' in result.paths:
        print(f'View the training curves with: tensorboard --logdir '
              f'{result.paths["TensorBoard logs"]}')
    return 0


class _Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose usage errors are one line."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} '
                     '--help)\n')


def _build_parser():
    parser = _Parser(
        prog='astroclusterclf',
        description='Classify astronomical images by transfer learning.')
    parser.add_argument('--version', action='version',
                        version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


#: The Python spellings of the API's messages, and the command line's.
_CLI_WORDS = {'overwrite=True replaces it': '--overwrite replaces it',
              'in_place=True': '--in-place', 'resume=True': '--resume'}


def _cli_words(message):
    """A message of the Python API in the command line's words."""
    for python, cli in _CLI_WORDS.items():
        message = message.replace(python, cli)
    return message


def _check_options(parser, argv):
    """Refuse an unknown ``--option`` of a subcommand before anything else
    (argparse would first report a required option it then misses), in
    the subcommand's words, with the closest known spelling."""
    commands = next(action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction)).choices
    words = [a for a in argv if not a.startswith('-')]
    if not words or words[0] not in commands:
        return
    sub = commands[words[0]]
    known = [o for action in sub._actions for o in action.option_strings]
    for arg in argv[argv.index(words[0]) + 1:]:
        if arg == '--':
            break
        name = arg.split('=', 1)[0]
        if not name.startswith('--') or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f'; did you mean {close[0]}?' if close else ''
        sub.error(f'unknown option {name}{hint}')


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success, 1 on a user error, 2 on a usage error (wrong or
        missing options); errors are printed as one line.
    """
    parser = _build_parser()
    try:
        _check_options(parser, list(sys.argv[1:] if argv is None else argv))
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return exc.code

    def one_line(message, category, filename, lineno, file=None, line=None):
        # Our warnings are for the user: one line, no source location.
        text = ' '.join(str(message).split())
        print(f'astroclusterclf {args.command}: warning: {text}', file=sys.stderr)

    try:
        if args.command not in _WITHOUT_TENSORFLOW:
            import_tensorflow()
        with warnings.catch_warnings():
            # The package's warnings are messages to the user, shown as
            # one line each (whatever filters the calling program set).
            warnings.simplefilter('always', AstroClusterClfWarning)
            warnings.showwarning = one_line
            return args.func(args) or 0
    except AstroClusterClfError as exc:
        print(f'astroclusterclf {args.command}: error: {_cli_words(str(exc))}',
              file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # A system error outside our own checks (disk full, permissions):
        # still one line, naming the file.
        name = f'{exc.filename}: ' if exc.filename else ''
        print(f'astroclusterclf {args.command}: error: {name}'
              f'{exc.strerror or exc}', file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        # Outputs are written atomically: each is either complete or absent.
        print(f'astroclusterclf {args.command}: interrupted; every output file is '
              'either complete or was not written', file=sys.stderr)
        return 130


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
