# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The end-to-end demonstration run by ``astroclusterclf demo``.

It chains the public API on the embedded default data: simulate a
training set of globular and open clusters → retrain EfficientNet-Lite0 →
classify a catalog over a simulated survey mosaic → annotate a FITS file
and write the annotated table, then compare with the simulated truth.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from ._atomic import atomic_write
from .annotate import annotate_fits, annotate_table, write_table
from .classifier import ClusterClassifier
from .cutouts import iter_cutouts
from .exceptions import OutputError
from .plotting import plot_confusion_matrix, plot_contact_sheet
from .retrain import retrain
from .simulate import make_dataset, make_mosaic, simulate_cluster

__all__ = ['DemoResult', 'run_demo']

log = logging.getLogger(__name__)


def _m13_path():
    import astropy
    return (Path(astropy.__file__).parent / 'io' / 'fits' / 'hdu'
            / 'compressed' / 'tests' / 'data' / 'm13.fits')


#: astropy's own real FITS image of the globular cluster M13 (SkyView).
M13_PATH = _m13_path()


@dataclass
class DemoResult:
    """What `run_demo` made, and how well it did.

    Attributes
    ----------
    workdir : `~pathlib.Path`
        The working folder.
    retrain : `~astroclusterclf.retrain.RetrainResult`
        The training report.
    catalog_accuracy : float
        Fraction of the classified catalog rows whose predicted class is
        the simulated truth.
    n_catalog : int
        Number of classified catalog rows.
    paths : dict
        Output files by name.
    annotations : list
        `~astroclusterclf.annotate.FitsAnnotation` of each annotated FITS
        file.
    notes : list of str
        Things that were skipped (e.g. plots without matplotlib).
    """

    workdir: Path
    retrain: object
    catalog_accuracy: float
    n_catalog: int
    paths: dict = field(default_factory=dict)
    annotations: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _say(echo, message):
    log.info(message)
    if echo is not None:
        echo(message)


def run_demo(workdir='astroclusterclf-demo', *, n_per_class=100, size=128,
             n_clusters=24, mosaic_size=2048, steps=4000, seed=0,
             architecture='auto', echo=None, progress=None,
             callback=None):
    """Run the whole pipeline on simulated data.

    Parameters
    ----------
    workdir : str or `~pathlib.Path`, optional
        Folder for everything the demo writes (created; files from an
        earlier run are replaced, cached bottlenecks are reused).
    n_per_class : int, optional
        Training images per class.
    size : int, optional
        Size in pixels of the simulated training images.
    n_clusters : int, optional
        Clusters injected into the survey mosaic.
    mosaic_size : int, optional
        Width and height of the survey mosaic in pixels.
    steps : int, optional
        Training steps of the classification head.
    seed : int, optional
        Seed of all simulated data.
    architecture : str, optional
        Backbone, or ``'auto'`` (default, as in `~astroclusterclf.retrain`):
        the best of the ImageNet and astronomy-adapted backbones by
        cross-validation.
    echo : callable, optional
        Called with each line of the narrative (the CLI prints them).
    progress : callable, optional
        ``progress(done, total)`` while bottlenecks are computed.
    callback : callable, optional
        Called with each `~astroclusterclf.retrain.EvalStep` (as
        `~astroclusterclf.retrain` does).

    Returns
    -------
    result : `DemoResult`

    Examples
    --------
    >>> from astroclusterclf.demo import run_demo
    >>> result = run_demo('demo', n_per_class=20, steps=200)  # doctest: +SKIP
    >>> result.catalog_accuracy  # doctest: +SKIP
    1.0
    """
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f'{workdir}: cannot create the demo folder: '
                          f'{exc.strerror}') from exc
    paths = {}
    notes = []

    # 1. Training data: class folders, as a user would have.
    training = workdir / 'training'
    _say(echo, f'[1/6] Simulating {n_per_class} images per class '
               f'({size} px) in {training}')
    make_dataset(training, n_per_class=n_per_class, seed=seed, size=size)
    paths['training set'] = training

    # 2. A survey: a mosaic with a TAN WCS and a catalog of positions.
    survey = workdir / 'survey'
    _say(echo, f'[2/6] Simulating a {mosaic_size}x{mosaic_size} survey mosaic '
               f'with {n_clusters} clusters in {survey}')
    mosaic_path, catalog_path = make_mosaic(
        survey, n_clusters=n_clusters, shape=(mosaic_size, mosaic_size),
        seed=seed + 1, cluster_size=size)
    paths['mosaic'] = mosaic_path
    paths['catalog'] = catalog_path

    # 3. Retrain.
    model_path = workdir / 'model.keras'
    labels_path = workdir / 'labels.txt'
    chosen_by = ('chosen by cross-validation' if architecture == 'auto'
                 else architecture)
    _say(echo, f'[3/6] Retraining on {training} (backbone: {chosen_by})')
    result = retrain(training, output=model_path,
                     labels_output=labels_path, architecture=architecture,
                     steps=steps,
                     bottleneck_dir=workdir / 'bottlenecks',
                     summaries_dir=workdir / 'summaries',
                     seed=seed, callback=callback,
                     eval_interval=max(1, steps // 10),
                     progress=progress)
    paths['model'] = model_path
    paths['labels'] = labels_path
    if len(result.history):         # an SGD head or fine-tuning logged steps
        paths['TensorBoard logs'] = workdir / 'summaries'
    for line in result.report().splitlines():
        _say(echo, '      ' + line)

    # 4. Classify the catalog over the mosaic, compare with the truth.
    classifier = ClusterClassifier.load(model_path)
    catalog = Table.read(catalog_path)
    _say(echo, f'[4/6] Classifying {len(catalog)} catalog positions over '
               f'{mosaic_path.name}')
    annotated = annotate_table(classifier, catalog, image=mosaic_path,
                               size=size)
    table_path = survey / 'catalog_classified.ecsv'
    write_table(annotated, table_path, overwrite=True)
    paths['annotated table'] = table_path
    ok = annotated['pred_flag'] == 0
    n_catalog = int(np.count_nonzero(ok))
    right = np.asarray(annotated['pred_class'][ok]) == np.asarray(
        annotated['label'][ok])
    accuracy = float(np.mean(right)) if n_catalog else float('nan')
    _say(echo, f'      accuracy against the simulated truth: '
               f'{int(np.sum(right))}/{n_catalog} = {accuracy:.1%}')

    # 5. Annotate FITS files: a new simulated observation and the real M13.
    annotated_dir = workdir / 'annotated'
    annotated_dir.mkdir(exist_ok=True)
    observation = workdir / 'new_observation.fits'
    data, header = simulate_cluster('globular cluster', size=size,
                                    rng=seed + 12345)
    _write_fits(observation, data, header)
    inputs = [observation]
    if M13_PATH.exists():
        inputs.append(M13_PATH)
    annotations = []
    _say(echo, f'[5/6] Annotating FITS headers into {annotated_dir}')
    for source in inputs:
        output = annotated_dir / source.name
        annotation = annotate_fits(classifier, source, output=output,
                                   overwrite=True)
        annotations.append(annotation)
        paths[f'annotated {source.name}'] = output
        _say(echo, f'      {source.name}: CLSLABEL = {annotation.label!r}, '
                   f'CLSCONF = {annotation.confidence:.5f}')

    # 6. Pictures (matplotlib is optional).
    _say(echo, '[6/6] Plotting the contact sheet and the confusion matrix')
    try:
        cutouts = [r.cutout.data if r.cutout is not None else np.zeros((2, 2))
                   for r in iter_cutouts(mosaic_path, catalog, size)]
        sheet = plot_contact_sheet(
            cutouts, list(annotated['pred_class'].filled('')),
            list(np.asarray(annotated['pred_conf'].filled(np.nan))),
            workdir / 'contact_sheet.png', truth=list(annotated['label']))
        matrix = plot_confusion_matrix(result.confusion_matrix, result.labels,
                                       workdir / 'confusion_matrix.png')
        paths['contact sheet'] = sheet
        paths['confusion matrix plot'] = matrix
    except ImportError:
        note = 'matplotlib is not installed: plots skipped (pip install "astroclusterclf[plot]")'
        notes.append(note)
        _say(echo, '      ' + note)

    return DemoResult(workdir=workdir, retrain=result,
                      catalog_accuracy=accuracy, n_catalog=n_catalog,
                      paths=paths, annotations=annotations, notes=notes)


def _write_fits(path, data, header):
    """Write a new FITS file atomically."""
    from astropy.io import fits
    try:
        atomic_write(path, fits.PrimaryHDU(data, header).writeto)
    except OSError as exc:
        raise OutputError(f'{path}: cannot write: {exc.strerror}') from exc
