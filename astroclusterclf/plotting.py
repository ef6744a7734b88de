# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Pictures of classification results: a contact sheet of cutouts with their
predicted labels, a confusion matrix and a reliability diagram.

Matplotlib is an optional dependency (``pip install astroclusterclf[plot]``);
it is imported when a function is called.  The figures are drawn with the
object-oriented API on an Agg canvas (no pyplot state, no display needed)
and written atomically.
"""

import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .calibration import expected_calibration_error, reliability_bins
from .cutouts import catalog_positions, iter_cutouts
from .exceptions import OutputError, ParameterError
from .preprocessing import normalize

__all__ = ['plot_contact_sheet', 'plot_catalog_sheet', 'plot_confusion_matrix',
           'plot_reliability_diagram']

_RIGHT = '#1a7f37'
_WRONG = '#cf222e'
_FLAGGED = '#fb8500'


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
                       panel_size=1.4, dpi=80, captions=None, flags=None, title=None):
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
    captions : sequence of str, optional
        A line under each panel (e.g. the row id and coordinates).
    flags : sequence of int, optional
        ``pred_flag`` bits of each cutout: flagged panels get an orange
        frame and their flag value, and a legend explains the marks.
    title : str, optional
        A title over the sheet.
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
    if captions is not None:
        captions = list(captions)
        lengths.add(len(captions))
    if flags is not None:
        flags = [int(f) for f in flags]
        lengths.add(len(flags))
    if len(lengths) != 1:
        raise ParameterError('contact sheet: cutouts, labels, confidences (and truth) '
                             f'must have the same length, got {sorted(lengths)}')
    if not cutouts:
        raise ParameterError('contact sheet: no cutouts to draw')
    if int(ncols) < 1:
        raise ParameterError(f'contact sheet: ncols must be positive, got {ncols}')
    ncols = min(int(ncols), len(cutouts))
    nrows = -(-len(cutouts) // ncols)
    extra = 0.18 if captions is not None else 0.0
    legend = flags is not None or truth is not None
    height = nrows * (panel_size + 0.25 + extra) + (0.5 if legend else 0) \
        + (0.5 if title else 0)
    fig = _figure(max(ncols * panel_size, 4.5 if legend else 0), height)
    for i, (cutout, label, conf) in enumerate(zip(cutouts, labels, confidences)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(_display_rgb(cutout), origin='lower', interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        if label is None or label == '' or not np.isfinite(conf):
            text, color = 'not classified', 'gray'
        else:
            text = f'{label}\n{conf:.2f}'
            color = 'black'
            if truth is not None:
                color = _RIGHT if label == truth[i] else _WRONG
        flagged = flags is not None and flags[i] != 0
        if flagged:
            text += f'  [flag {flags[i]}]'
            for spine in ax.spines.values():
                spine.set_edgecolor(_FLAGGED)
                spine.set_linewidth(3)
        ax.set_title(text, fontsize=7, color=color, pad=2)
        if captions is not None:
            ax.set_xlabel(captions[i], fontsize=6, labelpad=2)
    notes = []
    if truth is not None:
        notes.append('title green: right, red: wrong (against the truth)')
    if flags is not None:
        notes.append('orange frame: flagged (1 off image, 2 partial, 4 bad pixels, '
                     '8 unreadable, 16 unlike the training images, 32 degenerate)')
    if notes:
        fig.text(0.5, 0.01, '\n'.join(notes), ha='center', va='bottom', fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=(0.45 if notes else 0.05) / height,
                        top=1 - (0.8 if title else 0.3) / height,
                        wspace=0.05, hspace=0.35 + 1.2 * extra)
    return _save(fig, path, dpi)


def _sheet_rows(table, max_panels):
    """The rows a contact sheet shows: all of them (in order) when they
    fit, else the ``max_panels`` of lowest confidence, unclassified first."""
    if len(table) <= max_panels:
        return np.arange(len(table))
    conf = np.ma.filled(np.ma.asarray(table['pred_conf'], dtype=float), -1.0)
    return np.argsort(np.nan_to_num(conf, nan=-1.0), kind='stable')[:max_panels]


def plot_catalog_sheet(table, image, path, *, size, hdu=None, ra=None, dec=None,
                       id_column=None, max_panels=48, ncols=8, dpi=80):
    """A contact sheet of an annotated catalog, to check predictions by eye.

    Each panel shows a row's cutout, titled with its predicted class and
    calibrated confidence, with the row id and coordinates underneath;
    flagged rows (``pred_flag`` not 0) get an orange frame and their flag,
    and a legend explains the marks.  A catalog of more than
    ``max_panels`` rows is sampled lowest confidence first (unclassified
    rows first of all): the rows a person should look at.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog annotated by `~astroclusterclf.annotate.annotate_table`.
    image : str, `~pathlib.Path`, HDU, ...
        The survey image it was classified over.
    path : str or `~pathlib.Path`
        Output image (PNG by default); written atomically.
    size : int, `~astropy.units.Quantity` or pair
        Cutout size (the table's ``CLSSIZE``: what the model saw).
    hdu, ra, dec : optional
        As for `~astroclusterclf.annotate.annotate_table`.
    id_column : str, optional
        Column naming the rows (default: ``id`` if present, else the row
        index).
    max_panels : int, optional
        Most panels drawn.
    ncols, dpi : int, optional
        Panels per row and resolution.

    Returns
    -------
    path : `~pathlib.Path`
    """
    if 'pred_conf' not in table.colnames or 'pred_flag' not in table.colnames:
        raise ParameterError('contact sheet: the table has no pred_conf/pred_flag '
                             'columns; annotate it first (annotate_table)')
    if len(table) == 0:
        raise ParameterError('contact sheet: the catalog has no rows')
    rows = _sheet_rows(table, max_panels)
    subset = table[rows]
    coords = catalog_positions(subset, ra=ra, dec=dec).icrs
    if id_column is None:
        id_column = 'id' if 'id' in table.colnames else None
    ids = (list(subset[id_column]) if id_column is not None else list(rows))
    cutouts = [r.cutout.data if r.cutout is not None else np.zeros((2, 2))
               for r in iter_cutouts(image, coords, size, hdu=hdu)]
    captions = [f'#{i}  {c.ra.deg:.4f} {c.dec.deg:+.4f}'
                if np.isfinite(c.ra.deg) and np.isfinite(c.dec.deg) else f'#{i}'
                for i, c in zip(ids, coords)]
    labels = list(np.ma.filled(subset['pred_class'].astype(str), ''))
    confidences = list(np.ma.filled(np.ma.asarray(subset['pred_conf'], dtype=float),
                                    np.nan))
    sampled = (f'{len(rows)} of {len(table)} rows, lowest confidence first'
               if len(table) > max_panels else f'all {len(table)} rows')
    return plot_contact_sheet(cutouts, labels, confidences, path, ncols=ncols, dpi=dpi,
                              captions=captions, flags=list(subset['pred_flag']),
                              title=sampled)


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


def plot_reliability_diagram(probabilities, labels, path, *, calibrated=None,
                             n_bins=10, dpi=100):
    """Draw a reliability diagram: accuracy against confidence in bins.

    A perfectly calibrated model lies on the diagonal: among predictions
    made at confidence 0.9, 90 % are right.

    Parameters
    ----------
    probabilities : array-like
        ``(N, n_classes)`` probabilities of held-out images (before
        calibration, when ``calibrated`` is also given).
    labels : array-like
        ``(N,)`` true class indices.
    path : str or `~pathlib.Path`
        Output image (PNG by default); written atomically.
    calibrated : array-like, optional
        The same images' calibrated probabilities, drawn beside.
    n_bins : int, optional
        Equal-width confidence bins.
    dpi : int, optional
        Resolution.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    ImportError
        matplotlib is not installed.
    """
    curves = [('uncalibrated' if calibrated is not None else 'model', probabilities,
               '#cf222e')]
    if calibrated is not None:
        curves.append(('calibrated', calibrated, '#0969da'))
    fig = _figure(4.6, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color='0.6', lw=1, ls='--', label='perfect calibration')
    for name, probs, colour in curves:
        bins = reliability_bins(probs, labels, n_bins=n_bins)
        ece = expected_calibration_error(probs, labels, n_bins=n_bins)
        used = bins['count'] > 0
        ax.plot(bins['confidence'][used], bins['accuracy'][used], 'o-', color=colour,
                label=f'{name} (ECE {ece:.3f})')
        for conf, acc, count in zip(bins['confidence'][used], bins['accuracy'][used],
                                    bins['count'][used]):
            ax.annotate(str(count), (conf, acc), textcoords='offset points',
                        xytext=(4, -10), fontsize=7, color=colour)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel('confidence of the predicted class')
    ax.set_ylabel('fraction right')
    ax.set_title(f'Reliability on {len(np.asarray(labels))} held-out images')
    ax.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    return _save(fig, os.fspath(path), dpi)
