# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Predictions into astropy Tables: `annotate_table` for a catalog and
`predictions_table` for classified files.
"""

import logging

import numpy as np
from astropy.table import Table

from ..cutouts import CutoutFlag
from ..exceptions import AnnotationError, CatalogError
from .catalog import check_table_output, write_table
from .columns import _build_table, _classify_cutouts, _classify_files
from .fov import cutout_size
from .survey import _annotate_tiles

__all__ = ['annotate_table', 'predictions_table']

log = logging.getLogger(__name__)


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
        written atomically at the end (see ``astroclusterclf._chunks``).
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
