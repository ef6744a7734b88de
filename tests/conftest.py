# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Fixtures shared by the test modules.

The expensive ones are session-scoped, and the tests that use them are
marked ``slow`` (``python -m pytest -m "not slow"`` skips them):

- ``acc_cache_dir``: every test session uses a fresh temporary cache
  directory (converted backbones, bottlenecks) through
  ``ASTROCLUSTERCLF_CACHE_DIR``, so the suite never writes to the user's
  home; ``empty_cache_dir`` gives one test a cache of its own;
- ``small_dataset_dir`` / ``small_dataset_files``: simulated class
  folders, 10 images per class at 64 px;
- ``retrain_result`` / ``trained_model_path`` / ``trained_classifier``:
  the quick model, retrained on them (default backbone and input size,
  augmentation on, 200 steps), to test the mechanics;
- ``accurate_result`` / ``accurate_model``: the accurate model (60
  images per class, the default 4000 steps), to test the science
  (accuracy on a mosaic, the real M13);
- ``cluster_image`` and ``survey_mosaic``: simulated data to classify.
"""

import sys

import pytest

from astroclusterclf.classifier import ClusterClassifier
from astroclusterclf.config import CACHE_ENV_VAR
from astroclusterclf.preprocessing import NormalizationSettings
from astroclusterclf.retrain import retrain
from astroclusterclf.simulate import make_dataset, make_mosaic, simulate_cluster


# -- the quick tier ------------------------------------------------------------

@pytest.fixture(autouse=True)
def quick_tier_without_tensorflow(request):
    """Fail a test not marked ``slow`` that imports TensorFlow (10 s
    here): ``pytest -m "not slow"`` must stay quick.  Only the first
    importer of a session can be caught, which is the one that costs."""
    before = 'tensorflow' in sys.modules
    yield
    if (not before and 'tensorflow' in sys.modules
            and request.node.get_closest_marker('slow') is None):
        pytest.fail(f'{request.node.nodeid} imports TensorFlow but is not '
                    'marked slow', pytrace=False)


# -- caches ------------------------------------------------------------------

@pytest.fixture(scope='session', autouse=True)
def acc_cache_dir(tmp_path_factory):
    """A temporary astroclusterclf cache directory, set through the
    environment from the start of the session."""
    path = tmp_path_factory.mktemp('acc-cache')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(path))
        yield path


@pytest.fixture
def empty_cache_dir(tmp_path, monkeypatch):
    """An empty cache directory for one test (the session's is restored
    after it)."""
    path = tmp_path / 'acc-cache'
    monkeypatch.setenv(CACHE_ENV_VAR, str(path))
    return path


# -- the quick model -------------------------------------------------------------

@pytest.fixture(scope='session')
def small_dataset_dir(tmp_path_factory):
    """Class folders ``globular cluster/`` and ``open cluster/`` with 10
    simulated 64 x 64 FITS images each (read-only by convention: copy it
    before changing anything)."""
    path = tmp_path_factory.mktemp('small-dataset')
    make_dataset(path, n_per_class=10, size=64, seed=1)
    return path


@pytest.fixture(scope='session')
def small_dataset_files(small_dataset_dir):
    """Five of the files of ``small_dataset_dir``, globular clusters
    first."""
    return sorted(small_dataset_dir.glob('*/*.fits'))[::4]


@pytest.fixture(scope='session')
def retrain_result(small_dataset_dir, tmp_path_factory, acc_cache_dir):
    """`RetrainResult` of a short retrain on ``small_dataset_dir``, with
    TensorBoard summaries and an eval callback record (``.steps``)."""
    out = tmp_path_factory.mktemp('trained')
    steps = []
    result = retrain(small_dataset_dir, output=out / 'model.keras',
                     labels_output=out / 'labels.txt', steps=200, head='sgd',
                     architecture='efficientnet_lite0',
                     eval_interval=50, summaries_dir=out / 'summaries',
                     bottleneck_dir=out / 'bottlenecks', callback=steps.append)
    result.steps = steps
    result.work_dir = out
    return result


@pytest.fixture(scope='session')
def trained_model_path(retrain_result):
    """Path of a ``.keras`` model retrained on ``small_dataset_dir``
    (efficientnet_lite0 at 224 px; labels 'globular cluster', 'open
    cluster')."""
    return retrain_result.output


@pytest.fixture(scope='session')
def trained_classifier(trained_model_path):
    """The quick model, loaded from its file."""
    return ClusterClassifier.load(trained_model_path)


# -- the accurate model --------------------------------------------------------

@pytest.fixture(scope='session')
def accurate_result(tmp_path_factory, acc_cache_dir):
    """`RetrainResult` of a retrain good enough to check accuracy: 60
    simulated 128 px images per class, the default 4000 head steps, 20 %
    of the images held out for testing.  The backbone and normalization
    are those that the default ``architecture='auto'`` picks for these
    images (astro_lite0, a 99.5 % percentile interval), given directly:
    the selection's cross-validation would be a third of the slowest
    fixture of the suite, and test_selection.py tests it."""
    root = tmp_path_factory.mktemp('accurate-model')
    make_dataset(root / 'train', n_per_class=60, seed=1)
    return retrain(root / 'train', output=root / 'model.keras',
                   architecture='astro_lite0',
                   settings=NormalizationSettings(interval='percentile', percentile=99.5),
                   bottleneck_dir=root / 'bottlenecks', testing_percentage=20,
                   validation_percentage=10, seed=0)


@pytest.fixture(scope='session')
def accurate_model(accurate_result):
    """The accurate model, loaded from its file (``.path``)."""
    return ClusterClassifier.load(accurate_result.output)


# -- data to classify --------------------------------------------------------------

@pytest.fixture(scope='session')
def cluster_image():
    """``(data, header)`` of a simulated 128 x 128 globular cluster."""
    return simulate_cluster('globular cluster', size=128, rng=5)


@pytest.fixture(scope='session')
def survey_mosaic(tmp_path_factory):
    """``(mosaic_path, catalog_path)``: a 2048 x 2048 simulated survey
    image with 24 clusters of 128 px, and its true catalog."""
    return make_mosaic(tmp_path_factory.mktemp('mosaic'), n_clusters=24,
                       shape=(2048, 2048), seed=3)


# Fixtures too costly to build on both test processes: under pytest-xdist
# (``-n 2 --dist loadgroup``) the tests that use one of them run on one
# process, so that it is built once (the first group that applies wins).
SHARED_FIXTURE_GROUPS = {
    'accurate_result': 'accurate-model',
    'demo_result': 'demo',
    'bomb_reports': 'pth-bombs',
    'image_bomb_reports': 'image-bombs',
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark each test that uses a fixture of ``SHARED_FIXTURE_GROUPS``
    with its ``xdist_group``.  First among the hooks: pytest-xdist reads
    the marks in its own."""
    for item in items:
        used = set(getattr(item, 'fixturenames', ()))
        for fixture, group in SHARED_FIXTURE_GROUPS.items():
            if fixture in used:
                item.add_marker(pytest.mark.xdist_group(group))
                break
