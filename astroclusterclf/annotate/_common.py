# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Shared pieces of the annotators: ASCII text for FITS, label checks, dates,
the flag description and the probability column names.
"""

import datetime
import logging
import re
import unicodedata

import numpy as np

from ..exceptions import AnnotationError

__all__ = []

log = logging.getLogger(__name__)

#: One-line description of the bits of ``pred_flag`` and ``CLSFLAG``.
FLAG_DESCRIPTION = ('bit flags: 0 = fine, 1 = off the image, 2 = partial cutout '
                    '(edge, filled), 4 = too many bad (non-finite) pixels, '
                    '8 = unreadable file, 16 = unlike the training images '
                    '(pred_ood above the threshold), 32 = degenerate image '
                    '(constant, under 16 px, or over half masked)')


# -- FITS headers ------------------------------------------------------------

def _ascii(text):
    """FITS header strings are ASCII: transliterate what can be, replace
    the rest with ``?``."""
    text = unicodedata.normalize('NFKD', str(text))
    text = text.encode('ascii', 'replace').decode('ascii')
    return ''.join(c if 32 <= ord(c) < 127 else '?' for c in text)


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
