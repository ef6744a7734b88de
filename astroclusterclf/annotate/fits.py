# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Predictions into FITS headers: the ``CLS*`` cards, and annotated copies of
FITS files (the image data never altered).
"""

import logging
import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits

from .._atomic import atomic_write, check_writable
from ..exceptions import AnnotationError, ImageReadError, OutputError
from ..io import check_declared_size, image_hdus, resolve_image
from ..version import __version__
from ._common import _ascii, _utc_now, _validate

__all__ = ['FitsAnnotation', 'annotate_header', 'annotate_fits']

log = logging.getLogger(__name__)

#: Keywords of the fixed cards (``CLSPRBn`` cards come on top).
CARD_KEYWORDS = ('CLSLABEL', 'CLSCONF', 'CLSMODEL', 'CLSOOD', 'CLSFLAG')

_PROB_KEY = re.compile(r'^CLSPRB\d+$')
_MAX_CLASSES = 99  # CLSPRB99 is the last 8-character keyword
_CARD_LENGTH = 80


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
                              'use in_place=True to update it')
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
