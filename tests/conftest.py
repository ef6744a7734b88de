# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Session-scoped fixtures shared by the test modules.

- every test session uses a fresh temporary cache directory (converted
  backbones, bottlenecks) through ``ASTROCLUSTERCLF_CACHE_DIR``, so the
  suite never writes to the user's home;
- ``small_dataset_dir``: simulated class folders, 10 images per class at
  64 px;
- ``retrain_result`` / ``trained_model_path``: one model retrained on
  them (default backbone and input size, augmentation on, few steps).
"""

import pytest

from astroclusterclf.config import CACHE_ENV_VAR


@pytest.fixture(scope='session', autouse=True)
def acc_cache_dir(tmp_path_factory):
    """A temporary astroclusterclf cache directory, set through the
    environment from the start of the session."""
    path = tmp_path_factory.mktemp('acc-cache')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(path))
        yield path


@pytest.fixture(scope='session')
def small_dataset_dir(tmp_path_factory):
    """Class folders ``globular cluster/`` and ``open cluster/`` with 10
    simulated 64 x 64 FITS images each (read-only by convention: copy it
    before changing anything)."""
    from astroclusterclf.simulate import make_dataset

    path = tmp_path_factory.mktemp('small-dataset')
    make_dataset(path, n_per_class=10, size=64, seed=1)
    return path


@pytest.fixture(scope='session')
def retrain_result(small_dataset_dir, tmp_path_factory, acc_cache_dir):
    """`RetrainResult` of a short retrain on ``small_dataset_dir``, with
    TensorBoard summaries and an eval callback record (``.steps``)."""
    from astroclusterclf.retrain import retrain

    out = tmp_path_factory.mktemp('trained')
    steps = []
    result = retrain(small_dataset_dir, output_graph=out / 'model.keras',
                     output_labels=out / 'labels.txt',
                     how_many_training_steps=200, eval_step_interval=50,
                     summaries_dir=out / 'summaries',
                     bottleneck_dir=out / 'bottlenecks',
                     callback=steps.append)
    result.steps = steps
    result.work_dir = out
    return result


@pytest.fixture(scope='session')
def trained_model_path(retrain_result):
    """Path of a ``.keras`` model retrained on ``small_dataset_dir``
    (efficientnet_lite0 at 224 px; labels 'globular cluster', 'open
    cluster')."""
    return retrain_result.output_graph
