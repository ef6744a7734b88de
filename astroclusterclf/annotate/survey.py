# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Survey scale: a catalog over many tiles, in chunks that a rerun resumes,
serially or on a Dask cluster.
"""

import contextlib
import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from .._chunks import ChunkStore
from .._quiet import import_tensorflow
from ..classifier import ClusterClassifier
from ..cutouts import catalog_positions
from ..exceptions import AnnotationError, NonFinitePixelWarning, ParameterError
from ..tiles import TileIndex
from .catalog import check_table_output, write_table
from .columns import _build_table, _classify_cutouts
from .fov import cutout_size

__all__ = []

log = logging.getLogger(__name__)


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
            import_tensorflow()     # without its start-up lines in the worker's log
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
