# Licensed under a 3-clause BSD style license - see LICENSE.rst
import shutil
import sys

import numpy as np
import pytest

from helpers import recording as _recording
from astroclusterclf import cli
from astroclusterclf.datasets import SPLITS
from astroclusterclf.exceptions import DatasetError, SkippedFileWarning
from astroclusterclf.retrain import EvalStep, _class_weights, retrain

LABELS = ['globular cluster', 'open cluster']
SMALL = 64   # backbone input size of the extra runs below (fast)


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


def test_tensorboard_event_files(retrain_result):
    summaries = retrain_result.work_dir / 'summaries'
    for name in ('train', 'validation'):
        events = _events(summaries / name)
        assert set(events) == {'accuracy', 'cross_entropy'}
        assert [s for s, _ in events['accuracy']] == [50, 100, 150, 200]
    last = _events(summaries / 'validation')['accuracy'][-1][1]
    assert last == pytest.approx(retrain_result.validation_accuracy)


def test_output_files(retrain_result):
    assert retrain_result.output_labels.read_text() == (
        'globular cluster\nopen cluster\n')
    assert retrain_result.output_graph.suffix == '.keras'
    folder = retrain_result.output_graph.parent
    assert not list(folder.glob('.*.tmp*'))


def test_second_run_uses_the_cache(retrain_result, small_dataset_dir,
                                   tmp_path):
    r = retrain(small_dataset_dir, output_graph=tmp_path / 'm.keras',
                how_many_training_steps=20,
                bottleneck_dir=retrain_result.work_dir / 'bottlenecks')
    assert r.n_bottlenecks_computed == 0
    assert r.n_bottlenecks_cached == retrain_result.n_bottlenecks_computed
    assert r.output_labels is None


def test_corrupt_files_skipped_and_counted(dataset_copy, tmp_path):
    bad = dataset_copy / 'open cluster' / 'zz corrupt.fits'
    bad.write_bytes(b'this is not a FITS file at all' * 10)
    empty = dataset_copy / 'globular cluster' / 'empty.png'
    empty.write_bytes(b'')
    with _recording(SkippedFileWarning) as record:
        r = retrain(dataset_copy, output_graph=tmp_path / 'm.keras',
                    how_many_training_steps=10, augment=False,
                    input_size=SMALL, bottleneck_dir=tmp_path / 'bn')
    assert {p for p, _ in r.skipped} == {bad, empty}, r.skipped
    assert r.n_skipped == 2
    assert any(str(bad) in str(w.message) for w in record)
    assert sum(sum(c.values()) for c in r.counts.values()) == 20
    assert 'Skipped unreadable files (2)' in r.report()


def test_dataset_errors(tmp_path, small_dataset_dir):
    one = tmp_path / 'one'
    shutil.copytree(small_dataset_dir / 'open cluster', one / 'open cluster')
    with pytest.raises(DatasetError, match='at least 2 class'):
        retrain(one, output_graph=tmp_path / 'm.keras')
    (one / 'empty class').mkdir()
    with pytest.raises(DatasetError, match="'empty class' holds no image"):
        retrain(one, output_graph=tmp_path / 'm.keras')
    assert not (tmp_path / 'm.keras').exists()


def test_class_weights_balance_classes():
    y = np.array([0] * 30 + [1] * 10)
    w = _class_weights(y, 2)
    assert w[0] * 30 == pytest.approx(w[1] * 10)
    assert np.mean(w[y]) == pytest.approx(1.0)


def test_hidden_layer_and_no_validation(small_dataset_dir, tmp_path):
    r = retrain(small_dataset_dir, output_graph=tmp_path / 'm.keras',
                how_many_training_steps=30, eval_step_interval=15,
                hidden_units=16, augment=False, validation_percentage=0,
                input_size=SMALL, bottleneck_dir=tmp_path / 'bn')
    layers = [layer.name for layer in r.classifier.model.get_layer(
        'head').layers]
    assert 'hidden' in layers
    assert sum(r.counts['validation'].values()) == 0
    assert np.isnan(r.validation_accuracy)
    assert r.history['step'].tolist() == [15, 30]


def test_fine_tune(small_dataset_dir, tmp_path):
    steps = []
    r = retrain(small_dataset_dir, output_graph=tmp_path / 'm.keras',
                how_many_training_steps=20, fine_tune=True,
                fine_tune_steps=2, eval_step_interval=20, augment=False,
                input_size=SMALL, bottleneck_dir=tmp_path / 'bn',
                callback=steps.append)
    assert [(s.step, s.stage) for s in steps] == [
        (20, 'head'), (22, 'fine_tune')]
    assert r.classifier.metadata['fine_tuned'] is True
    # The fine-tuned backbone differs from the shared frozen one.
    from astroclusterclf.bottlenecks import cached_backbone
    frozen = cached_backbone('efficientnet_lite0', input_size=SMALL)
    tuned = r.classifier.model.layers[1]
    diffs = [np.abs(a - b).max() for a, b in zip(tuned.get_weights(),
                                                 frozen.get_weights())]
    assert max(diffs) > 0
    # BatchNorm statistics were not updated (inference mode).
    import keras
    for layer_t, layer_f in zip(tuned.layers, frozen.layers):
        if isinstance(layer_t, keras.layers.BatchNormalization):
            np.testing.assert_array_equal(layer_t.moving_mean.numpy(),
                                          layer_f.moving_mean.numpy())


def test_cli_retrain(small_dataset_dir, tmp_path, capsys, retrain_result):
    status = cli.main([
        'retrain', '--image-dir', str(small_dataset_dir),
        '--output_graph', str(tmp_path / 'm.keras'),
        '--output-labels', str(tmp_path / 'labels.txt'),
        '--how_many_training_steps', '20', '--eval-step-interval', '10',
        '--bottleneck_dir', str(retrain_result.work_dir / 'bottlenecks'),
        '--summaries-dir', str(tmp_path / 'tb')])
    out = capsys.readouterr().out
    assert status == 0
    lines = out.splitlines()
    steps = [line for line in lines if line.startswith('Step ')]
    assert len(steps) == 2
    assert steps[0].startswith('Step 10: Train accuracy = ')
    assert '%, Cross entropy = ' in steps[0]
    assert steps[0].endswith(')') and ', Validation accuracy = ' in steps[0]
    assert any(line.startswith('Final test accuracy = ') for line in lines)
    assert 'Confusion matrix' in out and 'Misclassified' in out
    assert (tmp_path / 'labels.txt').read_text().splitlines() == LABELS
    assert (tmp_path / 'tb' / 'train').is_dir()


def test_cli_retrain_error(tmp_path, capsys):
    (tmp_path / 'only class').mkdir()
    status = cli.main(['retrain', '--image_dir', str(tmp_path),
                       '--output_graph', str(tmp_path / 'm.keras')])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.count('\n') == 1
    assert captured.err.startswith('astroclusterclf retrain: error: ')
    assert 'at least 2 class' in captured.err
    assert 'Traceback' not in captured.err + captured.out


def test_torch_never_imported(retrain_result):
    assert 'torch' not in sys.modules


def test_real_m13_is_a_globular_cluster(tmp_path):
    # A model retrained on simulations only recognizes astropy's real M13.
    import os

    import astropy

    from astroclusterclf import ClusterClassifier
    from astroclusterclf.simulate import make_dataset

    m13 = os.path.join(os.path.dirname(astropy.__file__),
                       'io/fits/hdu/compressed/tests/data/m13.fits')
    make_dataset(tmp_path / 'data', n_per_class=30, size=128, seed=3)
    r = retrain(tmp_path / 'data', output_graph=tmp_path / 'm.keras',
                how_many_training_steps=1000, eval_step_interval=500,
                bottleneck_dir=tmp_path / 'bn')
    assert r.test_accuracy >= 0.8
    label, p = ClusterClassifier.load(tmp_path / 'm.keras').classify(m13)
    assert label == 'globular cluster' and p > 0.8
