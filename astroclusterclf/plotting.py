# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Pictures of classification results: a contact sheet of cutouts with their
predicted labels, and a confusion matrix.

Matplotlib is an optional dependency (``pip install astroclusterclf[plot]``);
it is imported when a function is called.  The figures are drawn with the
object-oriented API on an Agg canvas (no pyplot state, no display needed)
and written atomically.
"""

import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .exceptions import OutputError, ParameterError
from .preprocessing import normalize

__all__ = ['plot_contact_sheet', 'plot_confusion_matrix']

_RIGHT = '#1a7f37'
_WRONG = '#cf222e'


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('plotting needs matplotlib, an optional dependency of '
                          'astroclusterclf: pip install "astroclusterclf[plot]"') from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi):
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f'{path}: output folder {path.parent} does not exist')
    suffix = path.suffix.lstrip('.').lower() or 'png'
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix, dpi=dpi,
                                               bbox_inches='tight'))
    return path


def _display_rgb(cutout):
    """An (H, W, 3) array in [0, 1] for display."""
    array = np.asarray(cutout)
    if array.ndim == 3 and array.shape[-1] == 3 and array.dtype.kind == 'f' \
            and np.nanmin(array) >= 0 and np.nanmax(array) <= 1:
        return np.nan_to_num(array)          # already a normalized RGB tensor
    return normalize(array, name='<cutout>')


def plot_contact_sheet(cutouts, labels, confidences, path, *, truth=None, ncols=8,
                       panel_size=1.4, dpi=80):
    """Draw cutouts in a grid, each titled with its predicted label.

    Parameters
    ----------
    cutouts : sequence of array
        Images: raw 2-D ``(ny, nx)`` or 3-D ``(nbands, ny, nx)`` arrays
        (normalized for display with
        `~astroclusterclf.preprocessing.normalize`, default settings), or
        ``(H, W, 3)`` float RGB arrays in [0, 1] shown as they are.
    labels : sequence of str
        Predicted label of each cutout (``None`` or ``''`` for none).
    confidences : sequence of float
        Probability of each predicted label (NaN for none).
    path : str or `~pathlib.Path`
        Output image (PNG, or another format matplotlib writes, by
        extension); written atomically.
    truth : sequence of str, optional
        True labels: titles are green when right, red when wrong.
    ncols : int, optional
        Panels per row.
    panel_size : float, optional
        Size of a panel in inches.
    dpi : int, optional
        Resolution.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    ParameterError
        Inputs of different lengths or no cutouts.
    OutputError
        The output folder does not exist.
    ImportError
        matplotlib is not installed.
    """
    cutouts = list(cutouts)
    labels = list(labels)
    confidences = list(confidences)
    lengths = {len(cutouts), len(labels), len(confidences)}
    if truth is not None:
        truth = list(truth)
        lengths.add(len(truth))
    if len(lengths) != 1:
        raise ParameterError('contact sheet: cutouts, labels, confidences (and truth) '
                             f'must have the same length, got {sorted(lengths)}')
    if not cutouts:
        raise ParameterError('contact sheet: no cutouts to draw')
    if int(ncols) < 1:
        raise ParameterError(f'contact sheet: ncols must be positive, got {ncols}')
    ncols = min(int(ncols), len(cutouts))
    nrows = -(-len(cutouts) // ncols)
    fig = _figure(ncols * panel_size, nrows * (panel_size + 0.25))
    for i, (cutout, label, conf) in enumerate(zip(cutouts, labels, confidences)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(_display_rgb(cutout), origin='lower', interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        if label is None or label == '' or not np.isfinite(conf):
            title, color = 'not classified', 'gray'
        else:
            title = f'{label}\n{conf:.2f}'
            color = 'black'
            if truth is not None:
                color = _RIGHT if label == truth[i] else _WRONG
        ax.set_title(title, fontsize=7, color=color, pad=2)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93,
                        wspace=0.05, hspace=0.35)
    return _save(fig, path, dpi)


def plot_confusion_matrix(matrix, labels, path, *, dpi=100):
    """Draw a confusion matrix (rows: true class, columns: predicted class).

    Parameters
    ----------
    matrix : array-like
        ``(n_classes, n_classes)`` counts.
    labels : sequence of str
        Class labels, in matrix order.
    path : str or `~pathlib.Path`
        Output image (PNG by default); written atomically.
    dpi : int, optional
        Resolution.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    ParameterError
        A matrix that is not square or does not match the labels.
    ImportError
        matplotlib is not installed.
    """
    matrix = np.asarray(matrix)
    labels = [str(label) for label in labels]
    if matrix.ndim != 2 or matrix.shape != (len(labels), len(labels)):
        raise ParameterError(f'confusion matrix of shape {matrix.shape} does not match '
                             f'{len(labels)} labels')
    n = len(labels)
    fig = _figure(1.6 + 1.1 * n, 1.2 + 1.0 * n)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap='Blues', vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=labels, rotation=30, ha='right')
    ax.set_yticks(range(n), labels=labels)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    top = matrix.max() if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f'{value:g}', ha='center', va='center',
                color='white' if top and value > top / 2 else 'black')
    fig.tight_layout()
    return _save(fig, os.fspath(path), dpi)
