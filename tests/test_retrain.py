# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.retrain (the ``retrain`` subcommand:
test_cli.py).  The retrains here each test an option of retrain; the
models that other tests use are the fixtures of conftest.py."""

import shutil
import sys

import numpy as np
import pytest
from astropy.io import fits

from helpers import LABELS, m13_path
from helpers import recording as _recording
from astroclusterclf import ClusterClassifier
from astroclusterclf.backbones import shared_backbone
from astroclusterclf.datasets import SPLITS, create_image_lists
from astroclusterclf.exceptions import (DatasetError, NonFinitePixelWarning, ParameterError,
                                        SkippedFileWarning)
from astroclusterclf.heads import grouped_folds
from astroclusterclf.retrain import (Embedding, EvalStep, FittedHead, RetrainConfig,
                                     _blend_predict, _class_weights, build_model,
                                     embed_images, evaluate, fit_trust, make_classifier,
                                     retrain, write_outputs)
from astroclusterclf.selection import compare, default_candidates

SMALL = 64   # backbone input size of the extra runs below (fast)
M13 = m13_path()


def _events(directory):
    """{tag: [(step, value), ...]} of the TensorBoard files in a folder."""
    import tensorflow as tf

    out = {}
    for path in sorted(directory.glob('events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
                assert value.metadata.plugin_data.plugin_name == 'scalars'
    return out


@pytest.fixture
def dataset_copy(small_dataset_dir, tmp_path):
    path = tmp_path / 'data'
    shutil.copytree(small_dataset_dir, path)
    return path


@pytest.mark.slow
def test_result_report(retrain_result, small_dataset_dir):
    r = retrain_result
    assert r.labels == LABELS
    n_test = sum(r.counts['testing'].values())
    assert r.confusion_matrix.shape == (2, 2)
    assert r.confusion_matrix.sum() == n_test > 0
    assert r.test_accuracy == pytest.approx(
        np.trace(r.confusion_matrix) / n_test)
    # 10 + 10 images, every class in every set.
    assert sum(sum(c.values()) for c in r.counts.values()) == 20
    assert all(n > 0 for split in SPLITS for n in r.counts[split].values())
    assert len(r.misclassified) == n_test - np.trace(r.confusion_matrix)
    assert r.misclassified.colnames == ['path', 'true_label',
                                        'predicted_label', 'probability']
    assert r.skipped == [] and r.n_skipped == 0
    # 16 training images x 8 variants + 4 others.
    n_train = sum(r.counts['training'].values())
    assert r.n_bottlenecks_computed == 8 * n_train + 20 - n_train
    text = r.report()
    assert 'Final test accuracy = ' in text
    assert 'globular cluster' in text and 'true \\ predicted' in text


@pytest.mark.slow
def test_history_and_callback(retrain_result):
    r = retrain_result
    assert list(r.history['step']) == [50, 100, 150, 200]
    assert all(isinstance(s, EvalStep) for s in r.steps)
    assert [s.step for s in r.steps] == [50, 100, 150, 200]
    assert r.history.colnames == list(EvalStep._fields)
    assert r.validation_accuracy == r.steps[-1].validation_accuracy
    # The head learns: cross entropy falls from ln 2.
    assert r.steps[-1].cross_entropy < 0.6
    assert all(0 <= s.train_accuracy <= 1 for s in r.steps)


@pytest.mark.slow
def test_tensorboard_event_files(retrain_result):
    summaries = retrain_result.work_dir / 'summaries'
    for name in ('train', 'validation'):
        events = _events(summaries / name)
        assert set(events) == {'accuracy', 'cross_entropy'}
        assert [s for s, _ in events['accuracy']] == [50, 100, 150, 200]
    last = _events(summaries / 'validation')['accuracy'][-1][1]
    assert last == pytest.approx(retrain_result.validation_accuracy)


@pytest.mark.slow
def test_output_files(retrain_result):
    assert retrain_result.labels_output.read_text() == (
        'globular cluster\nopen cluster\n')
    assert retrain_result.output.suffix == '.keras'
    folder = retrain_result.output.parent
    assert not list(folder.glob('.*.tmp*'))


@pytest.mark.slow
def test_second_run_uses_the_cache(retrain_result, small_dataset_dir,
                                   tmp_path):
    r = retrain(small_dataset_dir, output=tmp_path / 'm.keras', steps=20, head='sgd',
                architecture='efficientnet_lite0',
                bottleneck_dir=retrain_result.work_dir / 'bottlenecks')
    assert r.n_bottlenecks_computed == 0
    assert r.n_bottlenecks_cached == (retrain_result.n_bottlenecks_computed
                                      + retrain_result.n_bottlenecks_cached)
    assert r.labels_output is None


@pytest.mark.slow
def test_corrupt_files_skipped_and_counted(dataset_copy, tmp_path):
    bad = dataset_copy / 'open cluster' / 'zz corrupt.fits'
    bad.write_bytes(b'this is not a FITS file at all' * 10)
    empty = dataset_copy / 'globular cluster' / 'empty.png'
    empty.write_bytes(b'')
    with _recording(SkippedFileWarning) as record:
        r = retrain(dataset_copy, output=tmp_path / 'm.keras', steps=10, augment=False,
                    input_size=SMALL, bottleneck_dir=tmp_path / 'bn')
    assert {p for p, _ in r.skipped} == {bad, empty}, r.skipped
    assert r.n_skipped == 2
    assert any(str(bad) in str(w.message) for w in record)
    # One warning per file, however many views the run compares.
    assert len([w for w in record if issubclass(w.category, SkippedFileWarning)]) == 2
    assert sum(sum(c.values()) for c in r.counts.values()) == 20
    assert 'Skipped unreadable files (2)' in r.report()


@pytest.mark.slow   # retrain imports TensorFlow first (seconds)
def test_dataset_errors(tmp_path, small_dataset_dir):
    one = tmp_path / 'one'
    shutil.copytree(small_dataset_dir / 'open cluster', one / 'open cluster')
    with pytest.raises(DatasetError, match='at least 2 class'):
        retrain(one, output=tmp_path / 'm.keras')
    (one / 'empty class').mkdir()
    with pytest.raises(DatasetError, match="'empty class' holds no image"):
        retrain(one, output=tmp_path / 'm.keras')
    assert not (tmp_path / 'm.keras').exists()


def test_class_weights_balance_classes():
    y = np.array([0] * 30 + [1] * 10)
    w = _class_weights(y, 2)
    assert w[0] * 30 == pytest.approx(w[1] * 10)
    assert np.mean(w[y]) == pytest.approx(1.0)


@pytest.mark.slow
def test_hidden_layer_and_no_validation(small_dataset_dir, tmp_path):
    r = retrain(small_dataset_dir, output=tmp_path / 'm.keras',
                steps=30, eval_interval=15,
                hidden_units=16, augment=False, validation_percentage=0,
                input_size=SMALL, bottleneck_dir=tmp_path / 'bn')
    layers = [layer.name for layer in r.classifier.model.get_layer(
        'head').layers]
    assert 'hidden' in layers
    assert sum(r.counts['validation'].values()) == 0
    assert np.isnan(r.validation_accuracy)
    assert r.history['step'].tolist() == [15, 30]


@pytest.mark.slow
def test_fine_tune(small_dataset_dir, tmp_path):
    steps = []
    r = retrain(small_dataset_dir, output=tmp_path / 'm.keras',
                architecture='efficientnet_lite0',
                steps=20, fine_tune=True,
                fine_tune_steps=2, eval_interval=20, augment=False,
                input_size=SMALL, bottleneck_dir=tmp_path / 'bn',
                callback=steps.append)
    # The head-only model (the cross-validated logistic head) is evaluated
    # first, then every fine-tuning step.
    assert [(s.step, s.stage) for s in steps] == [(0, 'fine_tune'), (2, 'fine_tune')]
    kept = r.fine_tuning['kept']
    assert r.classifier.metadata['fine_tuned'] is (kept == 'fine-tuned')
    assert r.classifier.metadata['fine_tuning']['kept'] == kept
    assert f'Fine-tuning: kept the {kept} model' in r.report()
    # A kept fine-tuned backbone differs from the shared frozen one; a
    # discarded one was restored to it.
    frozen = shared_backbone('efficientnet_lite0', input_size=SMALL)
    tuned = r.classifier.model.layers[1]
    diffs = [np.abs(a - b).max() for a, b in zip(tuned.get_weights(),
                                                 frozen.get_weights())]
    if kept == 'fine-tuned':
        assert max(diffs) > 0
        assert r.fine_tuning['val_loss_fine_tuned'] < r.fine_tuning['val_loss_head']
    else:
        assert max(diffs) == 0
    # BatchNorm statistics were not updated (inference mode).
    import keras
    for layer_t, layer_f in zip(tuned.layers, frozen.layers):
        if isinstance(layer_t, keras.layers.BatchNormalization):
            np.testing.assert_array_equal(layer_t.moving_mean.numpy(),
                                          layer_f.moving_mean.numpy())


@pytest.mark.slow
def test_torch_never_imported(retrain_result):
    assert 'torch' not in sys.modules


@pytest.mark.slow
@pytest.mark.skipif(M13 is None, reason="astropy's test data (m13.fits) is not installed")
def test_real_m13_is_a_globular_cluster(accurate_result, accurate_model):
    # A model retrained on simulations only recognizes astropy's real M13.
    assert accurate_result.test_accuracy >= 0.8
    label, p = accurate_model.classify(M13)
    assert label == 'globular cluster' and p > 0.8


# -- stages on their own ---------------------------------------------------------

def _trust_inputs(n=400, seed=0, separable=False):
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(10, 64))

    def draw(m):
        return rng.normal(size=(m, 10)) @ basis + 0.3 * rng.normal(size=(m, 64))
    y = np.repeat([0, 1], n // 2)
    none = np.zeros(0, np.int64)
    embedding = Embedding(
        labels=['a', 'b'], views=[], pool_paths=[], pool_y=y, pool={}, val_paths=[],
        val_y=none, val={}, test_paths=[], test_y=none, test={},
        ood_pool=draw(n)[:, None, :], ood_test=np.zeros((0, 64)),
        ood_weights_id='x', ood_settings=None, counts={}, skipped=[], n_computed=0,
        n_cached=0)
    margin = 3 * (2 * y - 1) + (0 if separable else 2.5 * rng.normal(size=n))
    p1 = 1 / (1 + np.exp(-4 * margin))
    fitted = FittedHead(candidate=None, model=None, predict=None,
                        oof_probabilities=np.stack([1 - p1, p1], axis=1),
                        folds=grouped_folds(y, seed=0), selection=None, history=[])
    return embedding, fitted, draw


@pytest.mark.parametrize('rate', [0.05, 0.2])
def test_fit_trust_threshold_has_the_stated_false_alarm_rate(rate):
    embedding, fitted, draw = _trust_inputs()
    temperature, density, info = fit_trust(RetrainConfig(ood_false_alarm_rate=rate),
                                           embedding, fitted)
    # New in-distribution images exceed the threshold at about the rate, or
    # a little less (the held-out scores come from descriptions fitted on
    # four fifths of the images, which fit new images a little worse).
    fresh = np.mean(density.score(draw(4000)) > density.threshold)
    assert rate / 2 < fresh < rate + 0.02, fresh
    assert info['ood_false_alarm_rate'] == rate
    assert info['ood_threshold_source'].startswith(f'{1 - rate:.0%} quantile of out-of-fold')
    # The over-confident held-out probabilities are softened.
    assert info['method'] == 'temperature' and temperature > 1


def test_fit_trust_separable_set_falls_back():
    embedding, fitted, _ = _trust_inputs(n=60, separable=True)
    temperature, _, info = fit_trust(RetrainConfig(), embedding, fitted)
    assert temperature == 1.0 and info['method'] == 'none'
    assert info['reason'] == 'held-out predictions separable'
    assert 'only 60 held-out predictions' in info['warning']


def test_retrain_config_checks():
    assert RetrainConfig().head == 'logistic'
    assert RetrainConfig(hidden_units=8).head == 'sgd'
    for bad, match in ((dict(head='svm'), 'head must be'),
                       (dict(head='logistic', hidden_units=4), "needs head='sgd'"),
                       (dict(ood_false_alarm_rate=0.7), 'ood_false_alarm_rate')):
        with pytest.raises(ParameterError, match=match):
            RetrainConfig(**bad)
    # Only single views are fine-tuned or get an SGD head.
    assert all(len(c.views) == 1 for c in RetrainConfig(fine_tune=True).candidates())
    assert all(len(c.views) == 1 for c in RetrainConfig(head='sgd').candidates())
    assert len(RetrainConfig().candidates()) == 7
    assert len(RetrainConfig(architecture='astro_lite0').candidates()) == 1


@pytest.mark.slow
def test_stages_compose_a_blend_model_that_round_trips(small_dataset_dir, tmp_path):
    """The stages one by one, with a blend of two backbones forced: the
    model has one input per view, its file loads, and the classifier gives
    the probabilities the stages computed."""
    config = RetrainConfig(input_size=SMALL, augment=False, bottleneck_dir=tmp_path / 'bn',
                           testing_percentage=20)
    lists = create_image_lists(small_dataset_dir, testing_percentage=20,
                               validation_percentage=10)
    embedding = embed_images(config, lists)
    assert len(embedding.views) == 4
    assert {v: x.shape[1] for v, x in embedding.pool.items()} == dict.fromkeys(
        embedding.views, 1)
    blend = default_candidates(input_size=SMALL)[-1]
    selection = compare(embedding.pool, embedding.pool_y, [blend])
    assert len(selection.heads) == 2 and selection.oof_probabilities is not None
    model = build_model(blend, selection.heads)
    assert len(model.inputs) == 4
    fitted = FittedHead(blend, model, _blend_predict(blend, selection.heads),
                        selection.oof_probabilities, selection.folds, selection, [])
    temperature, density, trust = fit_trust(config, embedding, fitted)
    figures = evaluate(embedding, fitted, temperature, density)
    clf = make_classifier(config, embedding, fitted, temperature, density,
                          dict(trust, **figures['calibration']))
    assert clf.backbone == 'efficientnet_lite0+astro_lite0'
    assert [s.interval for s in clf.view_settings] == [
        'zscale', 'percentile', 'zscale', 'percentile']
    write_outputs(clf, embedding, figures, output=tmp_path / 'blend.keras')
    again = ClusterClassifier.load(tmp_path / 'blend.keras')
    assert again.metadata['format_version'] == 2 and len(again.metadata['views']) == 4
    probs = again.predict(embedding.test_paths)
    np.testing.assert_allclose(probs, figures['calibrated'], atol=2e-4)
    assert again.assess(embedding.test_paths).ood_score.shape == (len(embedding.test_paths),)
    # An image with holes goes through 4 views and the OOD view: one warning.
    holed = fits.getdata(embedding.test_paths[0]).astype(float)
    holed[5:15, 5:15] = np.nan
    with _recording(NonFinitePixelWarning) as record:
        again.assess(holed)
    assert len([w for w in record if issubclass(w.category, NonFinitePixelWarning)]) == 1
