# Licensed under a 3-clause BSD style license - see LICENSE.rst
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

The sub-package holds one module per output: ``fits`` (header cards and
annotated FITS files), ``table`` (`annotate_table`, `predictions_table`),
``columns`` (the prediction columns and the classification of a table's
rows), ``survey`` (many tiles, in resumable chunks, serially or on Dask),
``fov`` (the cutout size that matches the model's training frames) and
``catalog`` (reading and writing catalog files).
"""

from .catalog import check_table_output, read_catalog, write_table  # noqa: F401
from ._common import FLAG_DESCRIPTION  # noqa: F401
from .fits import CARD_KEYWORDS, FitsAnnotation, annotate_fits, annotate_header  # noqa: F401
from .fov import FOV_TOLERANCE, cutout_size  # noqa: F401
from ._common import probability_column_name
from .table import annotate_table, predictions_table

__all__ = ['FitsAnnotation', 'annotate_header', 'annotate_fits', 'annotate_table',
           'cutout_size', 'predictions_table',
           'probability_column_name', 'read_catalog', 'write_table']
