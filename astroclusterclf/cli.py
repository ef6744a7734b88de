# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Command-line front end: ``astroclusterclf <command> ...``.

This module only parses arguments, calls the public API and prints what
the user asked for.  Errors derived from
`~astroclusterclf.AstroClusterClfError` are printed as one line on
standard error with exit status 1, never as a traceback.
"""

import argparse
import sys

from . import __version__
from .exceptions import AstroClusterClfError

__all__ = ['main']

EXIT_ERROR = 1


def _add_flag(parser, name, **kwargs):
    """Add an option under its underscore spelling (as the old TensorFlow
    tools wrote it) and its dashed spelling."""
    names = ['--' + name]
    if '_' in name:
        names.append('--' + name.replace('_', '-'))
    parser.add_argument(*names, dest=name, **kwargs)


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
    from astropy.utils.console import ProgressBar

    from .simulate import make_dataset
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

# -- annotate-fits / annotate-table -----------------------------------------

# -- demo -------------------------------------------------------------------


def _build_parser():
    parser = argparse.ArgumentParser(
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
        0 on success, 1 on a user error (printed as one line), 2 on a
        usage error (printed by `argparse`).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except AstroClusterClfError as exc:
        print(f'astroclusterclf {args.command}: error: {exc}', file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f'astroclusterclf {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
