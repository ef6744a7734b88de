# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Command-line front end: ``astroclusterclf <command> ...``.

This module only parses arguments, calls the public API and prints what
the user asked for.  Errors derived from
`~astroclusterclf.AstroClusterClfError` are printed as one line on
standard error with exit status 1, never as a traceback.
"""

import argparse
import os
import sys
from pathlib import Path

from astropy.utils.console import ProgressBar

from ._quiet import import_tensorflow
from .annotate import (annotate_fits, annotate_table, check_table_output,
                       read_catalog, write_table)
from .classifier import ClusterClassifier
from .cutouts import parse_size
from .datasets import image_files
from .demo import run_demo
from .exceptions import (AnnotationError, AstroClusterClfError, CatalogError,
                         DatasetError, ParameterError)
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

    def progress(self, done, total):
        if self._bar is None and done < total:
            print(f'Computing {total} bottleneck(s) with {self.architecture}')
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
    p.set_defaults(func=_run_simulate)


def _run_simulate(args):
    formats = tuple(args.formats or ('fits',))
    with ProgressBar(2 * max(args.n_per_class, 0)) as bar:
        files = make_dataset(args.output, n_per_class=args.n_per_class,
                             seed=args.seed, size=args.size,
                             bands=args.bands, formats=formats,
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
    _add_flag(p, 'architecture', default='efficientnet_lite0',
              help='backbone (default: %(default)s)')
    _add_flag(p, 'how_many_training_steps', type=int, default=4000,
              metavar='N', help='training steps (default: %(default)s)')
    _add_flag(p, 'learning_rate', type=float, default=0.01, metavar='X',
              help='learning rate (default: %(default)s)')
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
    _add_flag(p, 'train_batch_size', type=int, default=100, metavar='B',
              help='images per training step (default: %(default)s)')
    _add_flag(p, 'random_seed', type=int, default=0, metavar='S',
              help='random seed (default: %(default)s)')
    p.add_argument('--no-augment', '--no_augment', dest='augment',
                   action='store_false',
                   help='do not train on the 8 rotations/flips')
    _add_flag(p, 'fine_tune', action='store_true',
              help='also fine-tune the top of the backbone')
    p.set_defaults(func=_run_retrain)


def _run_retrain(args):
    # The old tool's option names map onto the Python API's here, and
    # only here.
    with _RetrainPrinter(args.architecture) as printer:
        result = retrain(
            args.image_dir, output=args.output_graph,
            labels_output=args.output_labels,
            architecture=args.architecture,
            steps=args.how_many_training_steps,
            learning_rate=args.learning_rate,
            batch_size=args.train_batch_size,
            testing_percentage=args.testing_percentage,
            validation_percentage=args.validation_percentage,
            bottleneck_dir=args.bottleneck_dir,
            summaries_dir=args.summaries_dir, augment=args.augment,
            fine_tune=args.fine_tune, seed=args.random_seed,
            eval_interval=args.eval_step_interval,
            callback=printer.eval_step, progress=printer.progress)
    print(result.report())
    written = f'Wrote {result.output}'
    if result.labels_output is not None:
        written += f' and {result.labels_output}'
    print(written)
    return 0


@_subcommand
def _add_label(subparsers):
    p = subparsers.add_parser(
        'label',
        help='classify images with a retrained model',
        description='Print the class probabilities of images, best first, '
                    'one "<label> <probability>" line per class.  With '
                    'several images (or a folder) each file gets a header '
                    'line.')
    p.add_argument('--graph', required=True, metavar='FILE',
                   help='model file written by retrain (.keras)')
    p.add_argument('--image', required=True, action='append',
                   metavar='FILE|DIR', dest='images',
                   help='image file or folder of images; repeat for more')
    p.add_argument('--labels', metavar='FILE',
                   help='label file (default: the labels stored in the '
                        'model)')
    _add_flag(p, 'top_k', type=int, default=5, metavar='K',
              help='print the K best classes (default: %(default)s)')
    p.add_argument('--hdu', type=_hdu_arg, metavar='N|NAME',
                   help='FITS HDU to read (index or EXTNAME)')
    p.add_argument('--tta', action='store_true',
                   help='average over the 8 rotations/flips')
    p.set_defaults(func=_run_label)


def _run_label(args):
    clf = ClusterClassifier.load(args.graph, labels=args.labels)
    files = []
    for name in args.images:
        if os.path.isdir(name):
            found = image_files(name)
            if not found:
                raise DatasetError(f'{name}: folder holds no image file')
            files += found
        else:
            files.append(name)
    probabilities = clf.predict(files, hdu=args.hdu, tta=args.tta)
    for i, (name, probs) in enumerate(zip(files, probabilities)):
        if len(files) > 1:
            print(f'{"" if i == 0 else chr(10)}{name}:')
        for label, p in clf.rank(probs, args.top_k):
            print(f'{label} {p:.5f}')
    return 0


# -- annotate-fits / annotate-table -----------------------------------------

@_subcommand
def _add_annotate_fits(subparsers):
    p = subparsers.add_parser(
        'annotate-fits',
        help='classify FITS images and write the result into their headers',
        description='Classify the image of each FITS file and write the '
                    'cards CLSLABEL, CLSCONF, CLSMODEL, CLSPRBn and a HISTORY '
                    'card into the classified HDU.  The image data are never '
                    'altered.  Give exactly one of --output-dir and --in-place.')
    p.add_argument('--graph', required=True, metavar='MODEL',
                   help='model file written by "astroclusterclf retrain"')
    p.add_argument('files', nargs='+', metavar='FILE', help='FITS file(s)')
    _add_flag(p, 'output_dir', metavar='DIR',
              help='write annotated copies (same file names) into DIR')
    _add_flag(p, 'in_place', action='store_true',
              help='replace each file by its annotated version (atomically)')
    p.add_argument('--hdu', type=_hdu_arg, default=None,
                   help='HDU index or EXTNAME (default: the first image HDU)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace existing files in --output-dir')
    p.set_defaults(func=_run_annotate_fits)


def _run_annotate_fits(args):
    if (args.output_dir is None) == (not args.in_place):
        raise AnnotationError('give exactly one of --output-dir DIR and --in-place')
    if args.output_dir is not None and not Path(args.output_dir).is_dir():
        raise AnnotationError(f'{args.output_dir}: output folder does not exist')
    classifier = ClusterClassifier.load(args.graph)
    for name in args.files:
        output = None if args.in_place else Path(args.output_dir) / Path(name).name
        result = annotate_fits(classifier, name, output=output,
                               in_place=args.in_place, hdu=args.hdu,
                               overwrite=args.overwrite)
        print(f'{name}: {result.label} {result.confidence:.5f} -> {result.path} '
              f'[HDU {result.hdu}]')
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
                    'prob_<label> and pred_flag (0 = fine, 1 = off the image, '
                    '2 = partial cutout, 4 = too many bad pixels, '
                    '8 = unreadable file).  The output format follows its '
                    'extension: .ecsv, .fits, .xml/.vot (VOTable), .csv, ...')
    p.add_argument('--graph', required=True, metavar='MODEL',
                   help='model file written by "astroclusterclf retrain"')
    p.add_argument('catalog', metavar='CATALOG',
                   help='input table (any format astropy reads)')
    p.add_argument('--image', metavar='MOSAIC',
                   help='survey image (FITS with a celestial WCS)')
    _add_flag(p, 'path_column', metavar='COL',
              help='column of image file names to classify')
    p.add_argument('--output', required=True, metavar='OUT',
                   help='output table; written atomically')
    _add_flag(p, 'ra_column', default='ra', metavar='COL',
              help='right ascension column, degrees unless it has a unit '
                   '(default: %(default)s)')
    _add_flag(p, 'dec_column', default='dec', metavar='COL',
              help='declination column (default: %(default)s)')
    p.add_argument('--size', default='64',
                   help='cutout size: pixels, or an angle such as "30 arcsec" '
                        '(default: %(default)s)')
    p.add_argument('--hdu', type=_hdu_arg, default=None,
                   help='HDU of the image (or of each file)')
    _add_flag(p, 'batch_size', type=int, default=32, metavar='N',
              help='images per forward pass (default: %(default)s)')
    p.add_argument('--format', default=None,
                   help='astropy table format of OUT (default: from the extension)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace OUT if it exists')
    p.set_defaults(func=_run_annotate_table)


def _run_annotate_table(args):
    if (args.image is None) == (args.path_column is None):
        raise AnnotationError('give exactly one of --image MOSAIC and --path-column COL')
    try:
        size = parse_size(args.size)
    except ParameterError as exc:
        raise ParameterError(f'--size: {exc}') from None
    if args.batch_size < 1:
        raise ParameterError(f'--batch-size must be positive, got {args.batch_size}')
    catalog = read_catalog(args.catalog)
    check_table_output(args.output, format=args.format, overwrite=args.overwrite)
    classifier = ClusterClassifier.load(args.graph)
    with ProgressBar(len(catalog)) as bar:
        try:
            table = annotate_table(
                classifier, catalog, image=args.image,
                path_column=args.path_column, ra=args.ra_column,
                dec=args.dec_column, size=size, hdu=args.hdu,
                batch_size=args.batch_size,
                progress=lambda done, total: bar.update(done))
        except CatalogError as exc:  # name the catalog file
            raise CatalogError(f'{args.catalog}: {exc}') from None
    write_table(table, args.output, format=args.format, overwrite=args.overwrite)
    classified = ~table['pred_class'].mask
    counts = ', '.join(f'{int((table["pred_class"][classified] == label).sum())} {label!r}'
                       for label in classifier.labels)
    flagged = int((table['pred_flag'] != 0).sum())
    print(f'Classified {int(classified.sum())} of {len(table)} rows ({counts}); '
          f'{flagged} flagged (pred_flag != 0)')
    print(f'Wrote {args.output}')
    return 0


# -- demo -------------------------------------------------------------------

@_subcommand
def _add_demo(subparsers):
    p = subparsers.add_parser(
        'demo',
        help='run the whole pipeline on simulated star clusters',
        description='Simulate a training set of globular and open clusters '
                    'and a survey mosaic with a catalog, retrain '
                    'efficientnet_lite0, classify the catalog over the '
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
    with _RetrainPrinter('efficientnet_lite0') as printer:
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
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return exc.code
    if args.command not in _WITHOUT_TENSORFLOW:
        import_tensorflow()
    try:
        return args.func(args) or 0
    except AstroClusterClfError as exc:
        print(f'astroclusterclf {args.command}: error: {exc}', file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # A system error outside our own checks (disk full, permissions):
        # still one line, naming the file.
        name = f'{exc.filename}: ' if exc.filename else ''
        print(f'astroclusterclf {args.command}: error: {name}'
              f'{exc.strerror or exc}', file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f'astroclusterclf {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
