# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Write predictions where astronomers keep them: FITS headers and tables.

FITS header cards (written into the HDU that was classified):

============  ===============================================================
keyword       value
============  ===============================================================
``CLSLABEL``  predicted class (the most probable label)
``CLSCONF``   its calibrated probability
``CLSMODEL``  model id, ``'<model file stem>:<sha256[:12]>'``
``CLSOOD``    out-of-distribution score (about 1 for images like the
              training images); the comment gives the model's threshold
              (models of older versions have none, and no card)
``CLSFLAG``   bit mask, 0 = no reason for doubt, 16 = unlike the training
              images (``CLSOOD`` above the threshold), 32 = degenerate
              image (constant, under 16 pixels, or over half masked)
``CLSPRBn``   probability of class ``n`` (1-based, model order); the
              comment names the class
``HISTORY``   one card naming the package, its version and the UTC date
============  ===============================================================

Table columns added by `annotate_table`: ``pred_class``, ``pred_conf``,
one ``prob_<label>`` per class (non-alphanumeric characters of the label
replaced by ``_``), ``pred_ood`` (the out-of-distribution score) and
``pred_flag`` (bit flags: those of `~astroclusterclf.cutouts.CutoutFlag`,
1 to 8, and of `~astroclusterclf.classifier.PredictionFlag`, 16 and 32).

The image data of an annotated FITS file are never altered: the file is
opened without scaling and without decompression, only the header of the
classified HDU changes, and the result is written to a temporary file in
the destination folder that is then renamed into place (`os.replace`).
"""

import contextlib
import datetime
import hashlib
import logging
import os
import re
import stat
import threading
import unicodedata
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Column, MaskedColumn, Table

from astropy.io import registry

from ._atomic import atomic_write, check_writable
from .chunks import ChunkStore
from .classifier import ClusterClassifier
from .cutouts import (CutoutFlag, catalog_positions, iter_cutouts, parse_size,
                      size_sides)
from .exceptions import (AnnotationError, AstroClusterClfError, CatalogError,
                         FieldOfViewWarning, ImageReadError, NonFinitePixelWarning,
                         OutputError, ParameterError)
from .io import (check_declared_size, image_geometry, image_hdus, read_image,
                 resolve_image)
from .parallel import prefetch_map
from .tiles import TileIndex
from .version import __version__

__all__ = ['FitsAnnotation', 'annotate_header', 'annotate_fits', 'annotate_table',
           'cutout_size', 'predictions_table',
           'probability_column_name', 'read_catalog', 'write_table']

log = logging.getLogger(__name__)

#: Keywords of the fixed cards (``CLSPRBn`` cards come on top).
CARD_KEYWORDS = ('CLSLABEL', 'CLSCONF', 'CLSMODEL', 'CLSOOD', 'CLSFLAG')

_PROB_KEY = re.compile(r'^CLSPRB\d+$')
_MAX_CLASSES = 99  # CLSPRB99 is the last 8-character keyword
_CARD_LENGTH = 80
_VOTABLE_SUFFIXES = ('.xml', '.vot', '.votable')

#: Factor beyond the training frames' range that draws a FieldOfViewWarning.
FOV_TOLERANCE = 1.5

#: One-line description of the bits of ``pred_flag`` and ``CLSFLAG``.
FLAG_DESCRIPTION = ('bit flags: 0 = fine, 1 = off the image, 2 = partial cutout '
                    '(edge, filled), 4 = too many bad (non-finite) pixels, '
                    '8 = unreadable file, 16 = unlike the training images '
                    '(pred_ood above the threshold), 32 = degenerate image '
                    '(constant, under 16 px, or over half masked)')


class FitsAnnotation(NamedTuple):
    """What `annotate_fits` wrote.

    Attributes
    ----------
    path : `~pathlib.Path`
        The annotated file.
    hdu : int
        Index of the classified (and annotated) HDU.
    label : str
        Predicted class.
    confidence : float
        Its (calibrated) probability.
    ood_score : float
        Out-of-distribution score (NaN for models without it).
    flag : int
        `~astroclusterclf.classifier.PredictionFlag` bits (0: no doubt).
    """

    path: Path
    """The annotated file."""
    hdu: int
    """Index of the classified (and annotated) HDU."""
    label: str
    """Predicted class."""
    confidence: float
    """Its (calibrated) probability."""
    ood_score: float
    """Out-of-distribution score (NaN for models without it)."""
    flag: int
    """`~astroclusterclf.classifier.PredictionFlag` bits (0: no doubt)."""


# -- FITS headers ------------------------------------------------------------

def _ascii(text):
    """FITS header strings are ASCII: transliterate what can be, replace
    the rest with ``?``."""
    text = unicodedata.normalize('NFKD', str(text))
    text = text.encode('ascii', 'replace').decode('ascii')
    return ''.join(c if 32 <= ord(c) < 127 else '?' for c in text)


def _card(keyword, value, comment):
    """A card whose comment is cut (with ``...``) to fit in 80 characters."""
    comment = _ascii(comment)
    card = fits.Card(keyword, value)
    image = card.image
    if len(image) > _CARD_LENGTH:
        # A long string value continues (CONTINUE cards): astropy puts
        # the comment on the last one; keep it short there.
        room = _CARD_LENGTH - len(image) % _CARD_LENGTH - 3
    else:
        room = _CARD_LENGTH - len(image.rstrip()) - 3
    if room < 4:
        return fits.Card(keyword, value)
    if len(comment) > room:
        comment = comment[:room - 3].rstrip() + '...'
    return fits.Card(keyword, value, comment)


def _validate(probabilities, labels):
    labels = [str(label) for label in labels]
    try:
        probabilities = np.asarray(probabilities, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f'probabilities are not numbers: {exc}') from None
    if probabilities.size != len(labels) or not labels:
        raise AnnotationError(f'{probabilities.size} probabilities for '
                              f'{len(labels)} labels')
    if not np.all(np.isfinite(probabilities)):
        raise AnnotationError(f'probabilities must be finite, got {probabilities}')
    return probabilities, labels


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')


def annotate_header(header, probabilities, labels, *, model_id, ood_score=None,
                    ood_threshold=None, ood_rate=None, flag=0, date=None):
    """Write classification cards into a FITS header.

    Earlier ``CLS*`` cards (from a previous annotation) are replaced; one
    ``HISTORY`` card is added.

    Parameters
    ----------
    header : `~astropy.io.fits.Header`
        The header, updated in place.
    probabilities : array-like
        One probability per class, in the order of ``labels``.
    labels : list of str
        Class labels (at most 99).
    model_id : str
        Model identifier for ``CLSMODEL`` (e.g.
        `~astroclusterclf.ClusterClassifier.model_id`).
    ood_score : float, optional
        Out-of-distribution score for ``CLSOOD`` (see
        `~astroclusterclf.ClusterClassifier.assess`); no card when `None`
        or NaN.
    ood_threshold : float, optional
        The model's threshold, given in the ``CLSOOD`` comment.
    ood_rate : float, optional
        The threshold's false-alarm rate (the fraction of held-out
        training-like images above it), given in the ``CLSOOD`` comment
        as ``FA``.
    flag : int, optional
        `~astroclusterclf.classifier.PredictionFlag` bits for ``CLSFLAG``
        (0: no reason for doubt).
    date : str, optional
        Date for the ``HISTORY`` card (default: now, UTC, ISO 8601).

    Returns
    -------
    header : `~astropy.io.fits.Header`
        The same header.

    Raises
    ------
    AnnotationError
        If the probabilities do not match the labels or are not finite,
        or if there are more than 99 classes.

    Examples
    --------
    >>> from astropy.io import fits
    >>> from astroclusterclf.annotate import annotate_header
    >>> header = annotate_header(fits.Header(), [0.9, 0.1],
    ...                          ['globular cluster', 'open cluster'],
    ...                          model_id='model:0123456789ab', ood_score=0.93,
    ...                          ood_threshold=9.0, date='2025-01-01T00:00:00')
    >>> print(repr(header))  # doctest: +ELLIPSIS
    CLSLABEL= 'globular cluster'   / predicted class
    CLSCONF =                  0.9 / probability of the predicted class
    CLSMODEL= 'model:0123456789ab' / classifier model (name:sha256)
    CLSOOD  =                 0.93 / OOD score; > 9 = unlike training
    CLSFLAG =                    0 / flags: 0 ok, 16 unlike training, 32 degenerate
    CLSPRB1 =                  0.9 / P(globular cluster)
    CLSPRB2 =                  0.1 / P(open cluster)
    HISTORY astroclusterclf ... classified this HDU 2025-01-01T00:00:00 UTC
    """
    if not isinstance(header, fits.Header):
        raise AnnotationError(f'expected a FITS Header, got {type(header).__name__}')
    probabilities, labels = _validate(probabilities, labels)
    if len(labels) > _MAX_CLASSES:
        raise AnnotationError(f'{len(labels)} classes: FITS annotation supports at '
                              f'most {_MAX_CLASSES} (CLSPRB1..CLSPRB{_MAX_CLASSES})')
    best = int(np.argmax(probabilities))
    for keyword in [k for k in header.keys()
                    if k in CARD_KEYWORDS or _PROB_KEY.match(k)]:
        header.remove(keyword, ignore_missing=True, remove_all=True)
    cards = [
        _card('CLSLABEL', _ascii(labels[best]), 'predicted class'),
        _card('CLSCONF', float(probabilities[best]), 'probability of the predicted class'),
        _card('CLSMODEL', _ascii(model_id), 'classifier model (name:sha256)'),
    ]
    if ood_score is not None and np.isfinite(ood_score):
        limit = (f'; > {ood_threshold:.4g} = unlike training'
                 if ood_threshold is not None and np.isfinite(ood_threshold) else '')
        if limit and ood_rate is not None and np.isfinite(ood_rate):
            limit = f'; > {ood_threshold:.3g} unlike training ({ood_rate:.0%} FA)'
        cards.append(_card('CLSOOD', round(float(ood_score), 4), f'OOD score{limit}'))
    cards.append(_card('CLSFLAG', int(flag), 'flags: 0 ok, 16 unlike training, 32 degenerate'))
    cards += [_card(f'CLSPRB{i}', float(p), f'P({label})')
              for i, (label, p) in enumerate(zip(labels, probabilities), start=1)]
    if any(len(card.image) > _CARD_LENGTH for card in cards) and 'LONGSTRN' not in header:
        # A label longer than 68 characters continues on CONTINUE cards.
        header.append(('LONGSTRN', 'OGIP 1.0', 'The OGIP long string convention is used'),
                      end=True)
    for card in cards:
        header.append(card, end=True)
    history = f'astroclusterclf {__version__} classified this HDU {date or _utc_now()} UTC'
    # One HISTORY card holds 72 characters; a longer text would span two.
    header.add_history(_ascii(history)[:72])
    return header


def _image_hdu_index(path, hdu):
    """Index of the HDU to classify, chosen by the one resolver."""
    with resolve_image(path, hdu=hdu) as resolved:
        if resolved.index is None:
            raise AnnotationError(f'{os.fspath(path)}: not a FITS file; only FITS '
                                  'headers can be annotated')
        # The whole HDU is read and copied: the size guard applies.
        check_declared_size(resolved.header, resolved.name)
        return resolved.index


def annotate_fits(classifier, path, *, output=None, in_place=False, hdu=None,
                  bands=None, overwrite=False):
    """Classify the image of a FITS file and write the result into its header.

    The cards of `annotate_header` go into the classified HDU.  The image
    data are copied byte for byte (scaled integer data keep their type,
    BSCALE and BZERO; tile-compressed data are not recompressed), and
    existing ``CHECKSUM``/``DATASUM`` cards are recomputed.

    Parameters
    ----------
    classifier : `~astroclusterclf.ClusterClassifier`
        The model.
    path : str or `~pathlib.Path`
        The FITS file.  It is only ever opened read-only.
    output : str or `~pathlib.Path`, optional
        Write the annotated copy here.
    in_place : bool, optional
        Replace ``path`` by the annotated file (written to a temporary
        file in the same folder, then renamed, so a failure leaves the
        original intact).  Exactly one of ``output`` and ``in_place`` must
        be given.
    hdu : int, str or ``'all'``, optional
        HDU to classify and annotate (default: the first HDU with image
        data, as `~astroclusterclf.io.resolve_image` chooses); ``'all'``:
        every image HDU (e.g. the ``SCI`` extensions of HST/JWST-style
        files), each with its own cards.
    bands : tuple of int, optional
        The 1 or 3 bands of a cube to use (see
        `~astroclusterclf.ClusterClassifier.predict`).
    overwrite : bool, optional
        Replace an existing ``output``.

    Returns
    -------
    result : `FitsAnnotation` or list of them
        ``(path, hdu, label, confidence, ood_score, flag)``; a list, one
        per HDU, with ``hdu='all'``.

    Raises
    ------
    AnnotationError
        Both or neither of ``output`` and ``in_place``; the file is not
        FITS; the annotated file would not be valid FITS.
    OutputError
        ``output`` exists (without ``overwrite``), is the input file, or
        its folder does not exist.
    ImageReadError, HDUNotFoundError, NoImageDataError
        If the file cannot be read.
    """
    path = Path(path)
    if (output is None) == (not in_place):
        raise AnnotationError(f'{path}: give exactly one of output= and in_place=True '
                              f'(got output={output!r}, in_place={in_place!r})')
    if path.is_dir():
        raise ImageReadError(f'{path}: is a folder, not a FITS file')
    if not path.is_file():
        raise ImageReadError(f'{path}: file not found')
    if in_place:
        target = path
        mode = stat.S_IMODE(path.stat().st_mode)
    else:
        target = Path(output)
        mode = None
        if target.exists() and target.resolve() == path.resolve():
            raise OutputError(f'{target}: output is the input file; '
                              'use in_place=True (--in-place) to update it')
    # Before any work: can the result be written there at all?
    check_writable(target, overwrite=overwrite or in_place)

    indices = ([_image_hdu_index(path, i) for i in image_hdus(path)] if hdu == 'all'
               else [_image_hdu_index(path, hdu)])
    assessment = classifier.assess([os.fspath(path)] * len(indices), hdu=indices,
                                   bands=bands)

    gz = path.name.lower().endswith('.gz')
    # Raw view: no scaling, no uint conversion, no decompression, so the
    # data are written back exactly as they were read.
    with fits.open(path, mode='readonly', memmap=not gz, do_not_scale_image_data=True,
                   uint=False, disable_image_compression=True) as raw:
        for row, index in enumerate(indices):
            annotated = raw[index]
            annotate_header(annotated.header, assessment.probabilities[row],
                            classifier.labels, model_id=classifier.model_id,
                            ood_score=assessment.ood_score[row],
                            ood_threshold=classifier.ood_threshold,
                            ood_rate=classifier.ood_false_alarm_rate,
                            flag=assessment.flag[row])
            # Only the annotated HDUs change, so only their checksums are
            # recomputed; the other HDUs keep their cards as they are.
            if 'CHECKSUM' in annotated.header:
                annotated.add_checksum()
            elif 'DATASUM' in annotated.header:
                annotated.add_datasum()

        def write(tmp):
            raw.writeto(tmp, overwrite=True, checksum=False, output_verify='exception')

        try:
            atomic_write(target, write, mode=mode)
        except fits.verify.VerifyError as exc:
            raise AnnotationError(f'{path}: the annotated header would not be valid '
                                  f'FITS: {str(exc).strip().splitlines()[-1]}') from None
        except (TypeError, ValueError, EOFError) as exc:
            # e.g. a .fits.gz missing its final padding: astropy's raw view
            # cannot copy data that are shorter than the header says.
            raise ImageReadError(f'{path}: the FITS file is truncated or corrupt, '
                                 f'cannot copy it ({exc})') from None
    results = []
    for row, index in enumerate(indices):
        probabilities = assessment.probabilities[row]
        best = int(np.argmax(probabilities))
        log.info('%s: HDU %d classified as %r (%.3f), written to %s', path, index,
                 classifier.labels[best], probabilities[best], target)
        results.append(FitsAnnotation(target, index, classifier.labels[best],
                                      float(probabilities[best]),
                                      float(assessment.ood_score[row]),
                                      int(assessment.flag[row])))
    return results if hdu == 'all' else results[0]


# -- tables ------------------------------------------------------------------

def probability_column_name(label):
    """Name of the probability column of a class: ``prob_<label>`` with
    every non-alphanumeric character replaced by ``_``.

    Parameters
    ----------
    label : str
        A class label (non-ASCII characters are transliterated first).

    Returns
    -------
    name : str
        The column name.

    Examples
    --------
    >>> from astroclusterclf.annotate import probability_column_name
    >>> probability_column_name('globular cluster')
    'prob_globular_cluster'
    """
    return 'prob_' + re.sub(r'[^0-9A-Za-z]', '_', _ascii(label))


def _probability_columns(labels):
    names = []
    for label in labels:
        name = probability_column_name(label)
        base, n = name, 2
        while name in names:  # labels that differ only in punctuation
            name, n = f'{base}_{n}', n + 1
        names.append(name)
    return names


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


def cutout_size(classifier, image=None, *, hdu=None, size=None):
    """The cutout size to classify a survey image with, and why.

    Without ``size``, the model's own field of view: the median size of
    its training frames in pixels, or, when the training frames' pixel
    scales agree within 10 % and the survey image has a celestial WCS, the
    same angle on the sky.  Models of older versions, which do not record
    their training frames, get 64 pixels.

    Warns (`FieldOfViewWarning`) when the survey's pixel scale, or the
    given ``size``, is more than a factor of 1.5 outside the range of the
    training frames.

    Parameters
    ----------
    classifier : `~astroclusterclf.ClusterClassifier`
        The model.
    image : optional
        The survey image (anything `~astroclusterclf.io.resolve_image`
        accepts; only its header is read).
    hdu : int or str, optional
        Its HDU.
    size : int, `~astropy.units.Quantity`, str or pair, optional
        A size asked for (see `~astroclusterclf.cutouts.parse_size`).

    Returns
    -------
    size : int, tuple or `~astropy.units.Quantity`
        What to pass to `~astroclusterclf.cutouts.iter_cutouts`.
    text : str
        The size as recorded in table metadata (``CLSSIZE``), e.g.
        ``'128 x 128 pix'`` or ``'51.2 x 51.2 arcsec'``.
    """
    frames = classifier.training_frames
    survey_scale = None
    if image is not None:
        survey_scale = image_geometry(image, hdu=hdu)[1]
    train_scale = frames.get('pixel_scale') if frames else None
    if survey_scale is not None and train_scale:
        lo, hi = train_scale['min'], train_scale['max']
        if survey_scale > FOV_TOLERANCE * hi or survey_scale < lo / FOV_TOLERANCE:
            warnings.warn(
                f'the survey image has {survey_scale:.3g} arcsec/pixel, more than a '
                f'factor of {FOV_TOLERANCE} outside the training frames\' '
                f'{lo:.3g}-{hi:.3g} arcsec/pixel', FieldOfViewWarning, stacklevel=2)
    if size is not None:
        size = parse_size(size)
        if frames:
            _check_size(size, frames, survey_scale)
        return size, _size_text(size)
    if not frames:
        log.warning('the model does not record its training frames (an older model '
                    'file): cutting 64-pixel cutouts')
        return 64, _size_text(64)
    ny, nx = (int(round(v)) for v in frames['shape']['median'])
    if (train_scale and survey_scale is not None
            and (train_scale['max'] - train_scale['min']) <= 0.1 * train_scale['median']):
        angle = (ny * train_scale['median'], nx * train_scale['median']) * u.arcsec
        return angle, _size_text(angle)
    return (ny, nx), _size_text((ny, nx))


def _size_text(size):
    if isinstance(size, u.Quantity):
        values = np.atleast_1d(size.value)
        values = values if values.size == 2 else np.repeat(values, 2)
        return f'{values[0]:.4g} x {values[1]:.4g} {size.unit.to_string()}'
    if isinstance(size, tuple):
        parts = [s.to_value(u.pix) if isinstance(s, u.Quantity) else s for s in size]
        return f'{parts[0]:.4g} x {parts[1]:.4g} pix'
    return f'{size} x {size} pix'


def _check_size(size, frames, survey_scale):
    """Warn when a requested size is far outside the training frames."""
    train_scale = frames.get('pixel_scale')
    lo_pix, hi_pix = min(frames['shape']['min']), max(frames['shape']['max'])
    for side in size_sides(size):
        if isinstance(side, u.Quantity) and side.unit.physical_type == 'angle':
            if not train_scale:
                continue
            value, lo, hi = (side.to_value(u.arcsec), lo_pix * train_scale['min'],
                             hi_pix * train_scale['max'])
            unit = 'arcsec'
        else:
            value = side.to_value(u.pix) if isinstance(side, u.Quantity) else side
            lo, hi, unit = lo_pix, hi_pix, 'pixels'
        if value > FOV_TOLERANCE * hi or value < lo / FOV_TOLERANCE:
            warnings.warn(
                f'cutout size {value:.4g} {unit} is more than a factor of {FOV_TOLERANCE} '
                f'outside the training frames ({lo:.4g}-{hi:.4g} {unit}): the model sees '
                'a field of view it was not trained on', FieldOfViewWarning, stacklevel=3)
            return


def annotate_table(classifier, table, *, image=None, ra=None, dec=None, size=None,
                   path_column=None, hdu=None, bands=None, batch_size=32,
                   max_bad_fraction=0.5, progress=None, output=None, format=None,
                   overwrite=False, resume=False, client=None, chunk_size=512):
    """Classify the rows of a catalog and return it with prediction columns.

    Either cut out each row's sky position from a large ``image`` (read
    in sections, never loaded whole; see
    `~astroclusterclf.cutouts.iter_cutouts`), or classify the file named
    in each row's ``path_column``.

    Parameters
    ----------
    classifier : `~astroclusterclf.ClusterClassifier`
        The model.
    table : `~astropy.table.Table`
        The catalog; it is not modified.
    image : str, `~pathlib.Path`, HDU, `~astropy.io.fits.HDUList`, ..., or list, optional
        A survey image with a celestial WCS, or a list of paths of survey
        tiles (FITS files with celestial WCSs, which may overlap): each
        row is cut from a tile that holds its cutout whole, the one where
        it lies farthest from the edge (see `~astroclusterclf.tiles`);
        a ``pred_tile`` column names it.
    ra, dec : str, optional
        Names of the position columns (degrees unless they have a unit),
        or ``ra`` alone naming a `~astropy.coordinates.SkyCoord` column.
        By default the usual names are recognised (see
        `~astroclusterclf.cutouts.catalog_positions`).
    size : int, `~astropy.units.Quantity` or str, optional
        Cutout size in pixels or as an angle (e.g. ``30 * u.arcsec``).
        By default the model's own field of view (see `cutout_size`).
    path_column : str, optional
        Name of a column of image file names (instead of ``image``).
    hdu : int or str, optional
        HDU of ``image`` or of each file.
    bands : tuple of int, optional
        The 1 or 3 bands of cubes to use (see
        `~astroclusterclf.ClusterClassifier.predict`).
    batch_size : int, optional
        Images per forward pass.
    max_bad_fraction : float, optional
        Rows whose cutout or file has a larger fraction of non-finite
        pixels (counting the fill of a partial cutout) are not classified
        and get flag 4.
    progress : callable, optional
        Called as ``progress(rows_done, rows_total)`` as rows are done
        (e.g. to drive a progress bar).
    output : str or `~pathlib.Path`, optional
        Write the annotated table here (format from the extension, or
        ``format``; ``.parquet`` needs pyarrow).  With tiles (a list
        ``image``), results are streamed: each finished chunk of rows goes
        at once to ``<output>.parts/``, and the table is assembled and
        written atomically at the end (see `astroclusterclf.chunks`).
    format : str, optional
        Astropy table format of ``output``.
    overwrite : bool, optional
        Replace an existing ``output``.
    resume : bool, optional
        Continue an interrupted run (even one killed with SIGKILL) from the
        chunks in ``<output>.parts/``, recomputing none of them.  Without
        it, a run that finds partial results refuses to start.
    client : `distributed.Client`, optional
        Classify the tiles on a Dask cluster (the ``survey`` extra): each
        task is a chunk of rows of one tile; each worker loads the model
        (which must have been saved to a file) once.  Results equal those
        of the in-process run.
    chunk_size : int, optional
        Rows per chunk (task) with tiles.

    Returns
    -------
    annotated : `~astropy.table.Table`
        A new table: the input columns plus ``pred_class``, ``pred_conf``,
        ``prob_<label>`` for each class and ``pred_flag``.  Rows that
        could not be classified have masked predictions and a non-zero
        flag: 1 = off the image, 2 = partial cutout (classified, but the
        cutout overlaps the image edge), 4 = too many bad pixels,
        8 = unreadable file; 16 = unlike the training images, 32 =
        degenerate image (see `~astroclusterclf.classifier.PredictionFlag`).
        ``pred_ood`` is the out-of-distribution score.  ``meta`` records
        the model (``CLSMODEL``), its calibration temperature
        (``CLSTEMP``), OOD threshold (``CLSOODTH``) and its false-alarm
        rate (``CLSOODFA``), the labels (``CLSLAB1``...), the cutout size
        used (``CLSSIZE``), the package version (``CLSVERS``) and the date
        (``CLSDATE``).

    Warns
    -----
    FieldOfViewWarning
        The survey's pixel scale or the cutout size is far from the
        training frames' (see `cutout_size`).

    Raises
    ------
    AnnotationError
        Both or neither of ``image`` and ``path_column``.
    CatalogError
        The ``ra``/``dec`` (or ``path_column``) columns are missing.
    ImageReadError, MissingWCSError, ...
        The survey image cannot be read or has no celestial WCS.
    """
    if not isinstance(table, Table):
        raise CatalogError(f'expected an astropy Table, got {type(table).__name__}')
    if (image is None) == (path_column is None):
        raise AnnotationError('give exactly one of image= (a survey image to cut out '
                              'the catalog positions from) and path_column= (a column '
                              'of image file names)')
    if isinstance(image, list) or client is not None or resume:
        images = image if isinstance(image, list) else [image]
        return _annotate_tiles(
            classifier, table, images, ra=ra, dec=dec, size=size, hdu=hdu, bands=bands,
            batch_size=batch_size, max_bad_fraction=max_bad_fraction, progress=progress,
            output=output, format=format, overwrite=overwrite, resume=resume,
            client=client, chunk_size=chunk_size)
    if output is not None:
        check_table_output(output, format=format, overwrite=overwrite)
    size_text = None
    if image is not None:
        size, size_text = cutout_size(classifier, image, hdu=hdu, size=size)
        probabilities, ood, flags = _classify_cutouts(
            classifier, table, image, ra=ra, dec=dec, size=size, hdu=hdu, bands=bands,
            batch_size=batch_size, max_bad_fraction=max_bad_fraction,
            progress=progress)
    else:
        probabilities, ood, flags = _classify_files(
            classifier, table, path_column, hdu=hdu, bands=bands, batch_size=batch_size,
            max_bad_fraction=max_bad_fraction, progress=progress)
    if progress is not None:
        progress(len(table), len(table))
    annotated = _build_table(table, classifier.labels, probabilities, ood, flags,
                             classifier=classifier)
    if size_text is not None:
        annotated.meta['CLSSIZE'] = size_text
    if output is not None:
        write_table(annotated, output, format=format, overwrite=overwrite)
    return annotated


# -- survey scale: many tiles, Dask, streamed and resumable ----------------------

class _Task(NamedTuple):
    """A chunk of catalog rows cut from one tile."""

    task_id: int
    path: str
    hdu: int
    rows: np.ndarray
    ra: np.ndarray
    dec: np.ndarray


def _classify_task(classifier, task, *, size, bands, batch_size, max_bad_fraction,
                   image=None):
    """Classify the rows of one task: ``{'rows', 'probabilities', 'ood',
    'flag'}``.  ``image``: the tile, already open (else its path is
    opened)."""
    probabilities, ood, flags = _classify_cutouts(
        classifier, SkyCoord(task.ra * u.deg, task.dec * u.deg),
        task.path if image is None else image, ra=None, dec=None, size=size,
        hdu=task.hdu, bands=bands, batch_size=batch_size,
        max_bad_fraction=max_bad_fraction, progress=None)
    return {'rows': task.rows, 'probabilities': probabilities, 'ood': ood, 'flag': flags}


_WORKER_MODELS = {}
_WORKER_LOCK = threading.Lock()


def _remote_task(model_path, model_sha, task, options):
    """`_classify_task` in a Dask worker, loading the model once per
    worker process."""
    key = (model_path, model_sha)
    with _WORKER_LOCK:      # workers may be threads of one process
        classifier = _WORKER_MODELS.get(key)
        if classifier is None:
            _WORKER_MODELS.clear()
            classifier = _WORKER_MODELS[key] = ClusterClassifier.load(model_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NonFinitePixelWarning)
        return _classify_task(classifier, task, **options)


def _annotate_tiles(classifier, table, images, *, ra, dec, size, hdu, bands, batch_size,
                    max_bad_fraction, progress, output, format, overwrite, resume, client,
                    chunk_size):
    if any(not isinstance(i, (str, os.PathLike)) for i in images):
        raise AnnotationError('tiles (a list image=), resume= and client= need survey '
                              'images given as file paths')
    if resume and output is None:
        raise AnnotationError('resume=True needs output= (the finished chunks are kept '
                              'beside it)')
    if client is not None and classifier.path is None:
        raise AnnotationError('client= needs a model saved to a file (its workers load '
                              'it): save it first (ClusterClassifier.save)')
    if output is not None:
        check_table_output(output, format=format, overwrite=overwrite or resume)
    if int(chunk_size) < 1:
        raise ParameterError(f'chunk_size must be positive, got {chunk_size}')
    # Absolute paths: the tasks name their tile, and workers on other
    # machines (or another working directory) open it by that name.
    images = [os.path.abspath(os.fspath(i)) for i in images]
    coords = catalog_positions(table, ra=ra, dec=dec).icrs
    index = TileIndex.from_files(images, hdu=hdu)
    size, size_text = cutout_size(classifier, images[0], hdu=hdu, size=size)
    assignment = index.locate(coords, size)
    tasks = []
    for tile, rows in index.groups(assignment):
        for start in range(0, len(rows), int(chunk_size)):
            chunk = np.asarray(rows[start:start + int(chunk_size)])
            tasks.append(_Task(len(tasks), index.paths[tile], int(index.hdus[tile]), chunk,
                               coords.ra.deg[chunk], coords.dec.deg[chunk]))
    n, n_classes = len(table), len(classifier.labels)
    probabilities = np.full((n, n_classes), np.nan)
    ood = np.full(n, np.nan)
    flags = np.asarray(assignment.flag, np.int16).copy()
    tile_names = np.array([''] + [Path(p).name for p in index.paths])[
        np.asarray(assignment.tile) + 1]

    store = None
    if output is not None:
        manifest = {'model': classifier.model_id, 'rows': n,
                    'positions': hashlib.sha256(np.ascontiguousarray(
                        [coords.ra.deg, coords.dec.deg]).tobytes()).hexdigest(),
                    'images': [Path(p).name for p in images], 'size': size_text,
                    'hdu': str(hdu), 'bands': str(bands), 'chunk_size': int(chunk_size),
                    'max_bad_fraction': float(max_bad_fraction)}
        store = ChunkStore.open(output, manifest, resume=resume)
        if store.done:
            log.warning('%s: resuming: %d of %d chunks (%d rows) already done', output,
                        len(store.done), len(tasks),
                        sum(len(t.rows) for t in tasks if t.task_id in store.done))

    def take(result):
        rows = result['rows']
        probabilities[rows] = result['probabilities']
        ood[rows] = result['ood']
        flags[rows] |= result['flag']

    done_rows = n - sum(len(t.rows) for t in tasks)   # rows in no tile: done
    todo = []
    for task in tasks:
        if store is not None and task.task_id in store.done:
            chunk = store.read(task.task_id)
            take({'rows': chunk['rows'], 'probabilities': chunk['probabilities'],
                  'ood': chunk['ood'], 'flag': chunk['flag']})
            done_rows += len(task.rows)
        else:
            todo.append(task)
    if progress is not None:
        progress(done_rows, n)
    options = dict(size=size, bands=bands, batch_size=batch_size,
                   max_bad_fraction=max_bad_fraction)

    def finished(result):
        nonlocal done_rows
        take(result)
        if store is not None:
            task_id = result['task_id']
            store.write(task_id, rows=result['rows'],
                        values={k: result[k] for k in ('probabilities', 'ood', 'flag')})
        done_rows += len(result['rows'])
        if progress is not None:
            progress(done_rows, n)

    if client is None:
        # The tasks of a tile are consecutive: each tile is opened once
        # (without memory mapping: its sections read only the cutouts).
        opened = {}
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter('ignore', NonFinitePixelWarning)
            for task in todo:
                if task.path not in opened:
                    stack.close()
                    opened = {task.path: stack.enter_context(
                        fits.open(task.path, memmap=False, lazy_load_hdus=True))}
                result = _classify_task(classifier, task, image=opened[task.path],
                                        **options)
                finished(dict(result, task_id=task.task_id))
    else:
        from distributed import as_completed

        model_sha = classifier.model_id
        model_path = os.path.abspath(os.fspath(classifier.path))
        futures = {client.submit(_remote_task, model_path, model_sha, task,
                                 options, key=f'astroclusterclf-{model_sha}-{task.task_id}',
                                 pure=False): task.task_id for task in todo}
        for future in as_completed(futures):
            finished(dict(future.result(), task_id=futures[future]))

    annotated = _build_table(table, classifier.labels, probabilities, ood, flags,
                             classifier=classifier)
    annotated['pred_tile'] = tile_names.astype(str)
    annotated['pred_tile'].description = 'the tile the row was cut from (empty: none)'
    annotated.meta['CLSSIZE'] = size_text
    annotated.meta['CLSNTILE'] = len(images)
    if output is not None:
        write_table(annotated, output, format=format, overwrite=True)
        store.remove()
    return annotated


def predictions_table(classifier, names, assessment, *, hdus=None):
    """A table of the predictions of `~astroclusterclf.ClusterClassifier.assess`,
    one row per source (what ``astroclusterclf label --output`` writes).

    Parameters
    ----------
    classifier : `~astroclusterclf.ClusterClassifier`
        The model.
    names : list of str
        The ``path`` of each row.
    assessment : `~astroclusterclf.classifier.Assessment`
        Its result for the same sources; sources in ``errors`` get flag 8.
    hdus : list of int, optional
        An ``hdu`` column (the HDU classified in each file).

    Returns
    -------
    table : `~astropy.table.Table`
        ``path`` (and ``hdu``), ``pred_class``, ``pred_conf``,
        ``prob_<label>``, ``pred_ood`` and ``pred_flag``, with the meta of
        `annotate_table`.
    """
    base = Table({'path': np.array([str(n) for n in names], dtype=str)})
    base['path'].description = 'image file'
    if hdus is not None:
        base['hdu'] = np.asarray(hdus, dtype=np.int16)
        base['hdu'].description = 'index of the classified HDU'
    flags = np.asarray(assessment.flag, np.int16).copy()
    for index, _ in assessment.errors:
        flags[index] |= CutoutFlag.UNREADABLE
    return _build_table(base, classifier.labels, assessment.probabilities,
                        assessment.ood_score, flags, classifier=classifier)


# -- table files -------------------------------------------------------------

def read_catalog(path, *, format=None):
    """Read a catalog file with `astropy.table.Table.read`.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        ECSV, FITS, VOTable, CSV, ... (format from the extension or
        the content).
    format : str, optional
        An astropy table format name, when it cannot be guessed.

    Returns
    -------
    table : `~astropy.table.Table`
        The catalog (unknown units are not an error).

    Raises
    ------
    CatalogError
        The file is missing or cannot be read as a table.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f'{path}: catalog file not found')
    try:
        with warnings.catch_warnings():
            # Unknown units etc. are astropy's business, not fatal here.
            warnings.simplefilter('ignore', u.UnitsWarning)
            return Table.read(path, format=format)
    except Exception as exc:  # the registry and the readers raise many types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogError(f'{path}: cannot read as a table ({message})') from None


def check_table_output(path, *, format=None, overwrite=False):
    """Check that a table can be written to ``path`` before doing the work.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Output file.
    format : str, optional
        An astropy table format name (default: from the extension).
    overwrite : bool, optional
        Whether an existing file may be replaced.

    Returns
    -------
    format : str
        The astropy table format that will be used.

    Raises
    ------
    OutputError
        The folder does not exist or does not accept a new file, the file
        exists (without ``overwrite``), is a folder, is write-protected or
        hard-linked, or the format is unknown.

    Examples
    --------
    >>> from astroclusterclf.annotate import check_table_output
    >>> check_table_output('catalog.ecsv'), check_table_output('catalog.vot')
    ('ascii.ecsv', 'votable')
    """
    path = Path(path)
    check_writable(path, overwrite=overwrite)
    if format is not None:
        if format not in registry.get_formats(Table, 'Write')['Format']:
            raise OutputError(f'{path}: unknown table format {format!r}')
        return format
    if path.suffix.lower() in _VOTABLE_SUFFIXES:
        # astropy identifies VOTables only when reading
        return 'votable'
    formats = registry.identify_format('write', Table, os.fspath(path), None, [], {})
    if len(formats) > 1:
        # e.g. '.xml' for several VOTable flavours: prefer the plain ones
        formats = [f for f in formats if f in ('votable', 'fits', 'ascii.ecsv')] or formats
    if len(formats) != 1:
        problem = ('cannot tell the table format from the extension' if not formats
                   else f'ambiguous table format ({", ".join(formats)})')
        raise OutputError(f'{path}: {problem}; use .ecsv, .fits, .xml or .vot '
                          '(VOTable), .csv, ... or give the format')
    return formats[0]


def write_table(table, path, *, format=None, overwrite=False):
    """Write a table atomically (temporary file, then `os.replace`).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table.
    path : str or `~pathlib.Path`
        Output file; the format comes from its extension (``.ecsv``,
        ``.fits``, ``.xml`` or ``.vot`` for VOTable, ...) unless given.
    format : str, optional
        An astropy table format name.
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    path : `~pathlib.Path`
        The file written.

    Raises
    ------
    OutputError
        The file exists (without ``overwrite``), its folder does not
        exist, the format is unknown, or the table cannot be written in
        that format.
    """
    path = Path(path)
    format = check_table_output(path, format=format, overwrite=overwrite)

    def write(tmp):
        table.write(tmp, format=format, overwrite=True)

    try:
        atomic_write(path, write)
    except AstroClusterClfError:
        raise
    except Exception as exc:  # the writers raise many types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(f'{path}: cannot write the table as {format} '
                          f'({message})') from None
    log.info('wrote %s (%s, %d rows)', path, format, len(table))
    return path
