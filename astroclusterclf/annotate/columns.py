# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Prediction columns of a table, and the classification of its rows (cutouts
of a survey image, or the files a column names).
"""

import logging
import warnings

import numpy as np
from astropy import units as u
from astropy.table import Column, MaskedColumn

from ..cutouts import CutoutFlag, iter_cutouts
from ..exceptions import AstroClusterClfError, CatalogError, ImageReadError, NonFinitePixelWarning
from ..io import read_image
from .._parallel import prefetch_map
from ..version import __version__
from ._common import FLAG_DESCRIPTION, _ascii, _probability_columns, _utc_now

__all__ = []

log = logging.getLogger(__name__)


def _build_table(table, labels, probabilities, ood, flags, *, classifier):
    """A copy of ``table`` with the prediction columns (unclassified rows,
    NaN probabilities, masked)."""
    out = table.copy(copy_data=True)
    n = len(table)
    valid = np.all(np.isfinite(probabilities), axis=1) if n else np.zeros(0, bool)
    best = np.argmax(np.where(valid[:, None], probabilities, 0), axis=1)
    width = max(len(label) for label in labels)
    pred_class = MaskedColumn(np.array(labels, dtype=f'U{width}')[best], mask=~valid,
                              name='pred_class',
                              description='predicted class (the most probable label)')
    conf = probabilities[np.arange(n), best] if n else np.zeros(0)
    columns = [
        pred_class,
        MaskedColumn(np.where(valid, conf, np.nan), mask=~valid, name='pred_conf',
                     unit=u.dimensionless_unscaled,
                     description='probability of pred_class'),
    ]
    for i, (label, name) in enumerate(zip(labels, _probability_columns(labels))):
        columns.append(MaskedColumn(
            np.where(valid, probabilities[:, i], np.nan), mask=~valid, name=name,
            unit=u.dimensionless_unscaled,
            description=f'probability of class {_ascii(label)!r}'))
    columns.append(MaskedColumn(
        np.where(valid, ood, np.nan), mask=~valid | ~np.isfinite(ood), name='pred_ood',
        unit=u.dimensionless_unscaled,
        description=f'out-of-distribution score (about 1 for images like the training '
                    f'images; above {classifier.ood_threshold:.4g}: flag 16'
                    f'{_rate_text(classifier)})'))
    columns.append(Column(np.asarray(flags, dtype=np.int16), name='pred_flag',
                          description=FLAG_DESCRIPTION))
    for column in columns:
        if column.name in out.colnames:
            out.remove_column(column.name)
        out.add_column(column)
    meta = {'CLSMODEL': _ascii(classifier.model_id),
            'CLSTEMP': classifier.temperature,
            'CLSVERS': f'astroclusterclf {__version__}',
            'CLSDATE': _utc_now(),
            'CLSNCLS': len(labels)}
    meta.update({f'CLSLAB{i}': _ascii(label) for i, label in enumerate(labels, start=1)})
    if np.isfinite(classifier.ood_threshold):   # not for models without it
        meta['CLSOODTH'] = classifier.ood_threshold
    if np.isfinite(classifier.ood_false_alarm_rate):
        meta['CLSOODFA'] = classifier.ood_false_alarm_rate
    out.meta.update(meta)
    return out


def _rate_text(classifier):
    rate = classifier.ood_false_alarm_rate
    if not np.isfinite(rate):
        return ''
    return f', which {rate:.0%} of held-out training-like images exceed'


class _RowPredictor:
    """Collect the sources of table rows and predict them in chunks, into
    one ``(n_rows, n_classes)`` array (NaN for rows never added)."""

    def __init__(self, classifier, n, *, batch_size, chunk, progress, bands=None):
        self.classifier = classifier
        self.n = n
        self.batch_size = batch_size
        self.chunk = chunk
        self.progress = progress
        self.bands = bands
        self.probabilities = np.full((n, len(classifier.labels)), np.nan)
        self.ood = np.full(n, np.nan)
        self.flags = np.zeros(n, np.int16)
        self.pending, self.rows = [], []

    def add(self, row, source):
        self.pending.append(source)
        self.rows.append(row)
        if len(self.pending) >= self.chunk:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        # No NonFinitePixelWarning per cutout: the table's flags already
        # record partial cutouts and bad pixels.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NonFinitePixelWarning)
            assessment = self.classifier.assess(
                self.pending, batch_size=self.batch_size, bands=self.bands)
        self.probabilities[self.rows] = assessment.probabilities
        self.ood[self.rows] = assessment.ood_score
        self.flags[self.rows] |= assessment.flag
        if self.progress is not None:
            self.progress(self.rows[-1] + 1, self.n)
        self.pending.clear()
        self.rows.clear()


def _classify_cutouts(classifier, positions, image, *, ra, dec, size, hdu, bands,
                      batch_size, max_bad_fraction, progress):
    """Classify the cutouts of ``positions`` (a catalog or a SkyCoord)
    from ``image``: probabilities, OOD scores and flags, one per row."""
    n = len(positions)
    predictor = _RowPredictor(classifier, n, batch_size=batch_size,
                              chunk=4 * batch_size, progress=progress, bands=bands)
    flags = np.zeros(n, dtype=np.int16)
    results = iter_cutouts(image, positions, size, hdu=hdu, ra=ra, dec=dec,
                           max_bad_fraction=max_bad_fraction, with_wcs=False)
    for row, result in enumerate(results):
        flags[row] = result.flag
        if result.flag & (CutoutFlag.OFF_IMAGE | CutoutFlag.BAD_PIXELS):
            continue
        predictor.add(row, result.cutout.data)
    predictor.flush()
    return predictor.probabilities, predictor.ood, flags | predictor.flags


def _classify_files(classifier, table, path_column, *, hdu, bands, batch_size,
                    max_bad_fraction, progress):
    if path_column not in table.colnames:
        raise CatalogError(f'catalog has no column {path_column!r}; columns present: '
                           f'{", ".join(table.colnames) or "(none)"}')
    n = len(table)
    predictor = _RowPredictor(classifier, n, batch_size=batch_size,
                              chunk=batch_size, progress=progress, bands=bands)
    flags = np.zeros(n, dtype=np.int16)
    column = table[path_column]
    mask = np.ma.getmaskarray(column)

    def read(row):
        if mask[row]:
            raise ImageReadError(f'row {row}: no file name')
        return read_image(str(column[row]).strip(), hdu=hdu)

    for row, image, error in prefetch_map(read, range(n), lookahead=2 * batch_size):
        if error is not None:
            if not isinstance(error, AstroClusterClfError):
                raise error
            log.warning('row %d: %s', row, error)
            flags[row] = CutoutFlag.UNREADABLE
            continue
        bad = np.count_nonzero(~np.isfinite(image.data)) / image.data.size
        if bad > max_bad_fraction:
            flags[row] = CutoutFlag.BAD_PIXELS
            continue
        predictor.add(row, (image.data, image.header)
                      if image.header is not None else image.data)
    predictor.flush()
    return predictor.probabilities, predictor.ood, flags | predictor.flags
