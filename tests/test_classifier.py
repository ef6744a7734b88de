# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.classifier, on conftest's quick model (the
``label`` subcommand: test_cli.py)."""

import json
import shutil
import sys
import zipfile

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS

from helpers import LABELS
from astroclusterclf._augment import dihedral
from astroclusterclf.calibration import calibrate_probabilities, floor_probabilities
from astroclusterclf.classifier import (METADATA_MEMBER, ClusterClassifier,
                                        read_labels)
from astroclusterclf.exceptions import ImageReadError, ModelFileError
from astroclusterclf.preprocessing import fits_to_rgb

pytestmark = pytest.mark.slow   # all use a retrained model


def test_load_metadata(trained_classifier, trained_model_path):
    assert trained_classifier.labels == LABELS
    assert trained_classifier.backbone == 'efficientnet_lite0'
    assert trained_classifier.input_size == 224
    assert trained_classifier.settings.size == (224, 224)
    md = trained_classifier.metadata
    for key in ('labels', 'preprocessing', 'backbone', 'backbone_weights',
                'input_size', 'package_version', 'created'):
        assert key in md
    assert md['backbone_weights'].startswith('efficientnet_lite0:imagenet:')
    with zipfile.ZipFile(trained_model_path) as z:
        stored = json.loads(z.read(METADATA_MEMBER))
    assert stored['labels'] == LABELS
    assert stored['preprocessing'] == json.loads(trained_classifier.settings.to_json())
    name, digest = trained_classifier.model_id.split(':')
    assert name == 'model' and len(digest) == 12
    assert repr(trained_classifier).startswith('<ClusterClassifier efficientnet_lite0')


def test_reload_predicts_the_same(trained_classifier, retrain_result, small_dataset_files):
    in_memory = retrain_result.classifier.predict(small_dataset_files)
    reloaded = trained_classifier.predict(small_dataset_files)
    assert reloaded.shape == (len(small_dataset_files), 2)
    np.testing.assert_allclose(reloaded, in_memory, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reloaded.sum(axis=1), 1, rtol=1e-5)
    # Plain keras opens the same file; the model takes [0, 1] RGB.
    import keras
    model = keras.saving.load_model(retrain_result.output)
    rgb = np.stack([fits_to_rgb(f, settings=trained_classifier.settings)
                    for f in small_dataset_files])
    # ... and gives the uncalibrated probabilities, which predict calibrates.
    raw = model.predict(rgb, verbose=0)
    np.testing.assert_allclose(
        floor_probabilities(calibrate_probabilities(raw, trained_classifier.temperature)),
        reloaded, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(raw.argmax(axis=1), reloaded.argmax(axis=1))


def test_full_model_matches_head_on_the_test_set(trained_classifier, retrain_result,
                                                 small_dataset_dir):
    # The report's test accuracy (head on cached features) is the
    # accuracy of the saved backbone + head on the test files.
    from astroclusterclf.datasets import create_image_lists
    lists = create_image_lists(small_dataset_dir)
    test_files = [p for p, _ in lists.files('testing')]
    y = [i for _, i in lists.files('testing')]
    acc = np.mean(np.argmax(trained_classifier.predict(test_files), axis=1) == y)
    assert acc == pytest.approx(retrain_result.test_accuracy)


def test_predict_accepts_every_source(trained_classifier, small_dataset_files):
    path = small_dataset_files[0]
    expected = trained_classifier.predict(path)
    assert expected.shape == (1, 2)
    with fits.open(path) as hdul:
        data, header = hdul[0].data.copy(), hdul[0].header.copy()
        sources = [str(path), hdul, hdul[0], (data, header),
                   (data, WCS(header)), data, NDData(data)]
        many = trained_classifier.predict(sources)
        assert many.shape == (len(sources), 2)
        np.testing.assert_allclose(many, np.repeat(expected, len(sources),
                                                   axis=0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(trained_classifier.predict(hdul, hdu=0), expected,
                                   rtol=1e-5, atol=1e-6)
    # A generator is many; batches smaller than the input work.
    gen = trained_classifier.predict((f for f in small_dataset_files), batch_size=2)
    np.testing.assert_allclose(gen, trained_classifier.predict(list(small_dataset_files)),
                               rtol=1e-5, atol=1e-6)
    assert trained_classifier.predict([]).shape == (0, 2)


def test_tta(trained_classifier, small_dataset_files):
    plain = trained_classifier.predict(small_dataset_files)
    tta = trained_classifier.predict(small_dataset_files, tta=True)
    assert tta.shape == plain.shape
    np.testing.assert_allclose(tta.sum(axis=1), 1, rtol=1e-5)
    assert not np.allclose(tta, plain)
    # TTA is the mean over the 8 rotations/flips of the normalized image.
    rgb = fits_to_rgb(small_dataset_files[0], settings=trained_classifier.settings)
    variants = np.stack([dihedral(rgb, v) for v in range(8)])
    expected = trained_classifier.model.predict(variants, verbose=0).mean(axis=0)
    expected = floor_probabilities(calibrate_probabilities(
        expected[np.newaxis], trained_classifier.temperature))[0]
    np.testing.assert_allclose(tta[0], expected, rtol=1e-5, atol=1e-6)


def test_classify_and_top_k(trained_classifier, small_dataset_files):
    probs = trained_classifier.predict(small_dataset_files[0])[0]
    label, p = trained_classifier.classify(small_dataset_files[0])
    assert label == LABELS[int(np.argmax(probs))]
    assert p == pytest.approx(probs.max())
    top = trained_classifier.top_k(small_dataset_files[0], k=5)
    assert [t[0] for t in top] == sorted(LABELS, key=lambda lab:
                                         -probs[LABELS.index(lab)])
    assert top[0][1] >= top[1][1]
    assert len(trained_classifier.top_k(small_dataset_files[0], k=1)) == 1
    # top_k takes the options classify takes.
    tta = trained_classifier.predict(small_dataset_files[0], tta=True)[0]
    top_tta = trained_classifier.top_k(small_dataset_files[0], k=1, tta=True, bands=(0,))
    assert top_tta[0][1] == pytest.approx(tta.max())


def test_predict_errors(trained_classifier, tmp_path):
    with pytest.raises(ImageReadError, match='missing.fits'):
        trained_classifier.predict(tmp_path / 'missing.fits')


def test_save_roundtrip_and_labels_override(trained_classifier, tmp_path, small_dataset_files):
    out = tmp_path / 'copy.keras'
    trained_classifier.save(out)
    assert not list(tmp_path.glob('.*.tmp*'))
    again = ClusterClassifier.load(out)
    np.testing.assert_allclose(again.predict(small_dataset_files[:2]),
                               trained_classifier.predict(small_dataset_files[:2]), rtol=1e-6)
    assert again.model_id.startswith('copy:')
    (tmp_path / 'labels.txt').write_text('GC\nOC\n')
    renamed = ClusterClassifier.load(out, labels=tmp_path / 'labels.txt')
    assert renamed.labels == ['GC', 'OC']
    (tmp_path / 'three.txt').write_text('a\nb\nc\n')
    with pytest.raises(ModelFileError, match='2 classes but 3 labels'):
        ClusterClassifier.load(out, labels=tmp_path / 'three.txt')
    assert read_labels(tmp_path / 'labels.txt') == ['GC', 'OC']
    # A model file under another suffix still loads.
    other = tmp_path / 'model.bin'
    shutil.copy(out, other)
    assert ClusterClassifier.load(other).labels == LABELS


def test_load_errors(tmp_path, trained_model_path):
    with pytest.raises(ModelFileError, match='not found'):
        ClusterClassifier.load(tmp_path / 'missing.keras')
    junk = tmp_path / 'junk.keras'
    junk.write_bytes(b'not a zip file')
    with pytest.raises(ModelFileError, match='not a Keras .keras model'):
        ClusterClassifier.load(junk)
    # A plain Keras model file (no metadata member).
    import keras
    plain = tmp_path / 'plain.keras'
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(plain)
    with pytest.raises(ModelFileError, match='not an astroclusterclf model'):
        ClusterClassifier.load(plain)
    # A truncated model file.
    cut = tmp_path / 'cut.keras'
    cut.write_bytes(trained_model_path.read_bytes()[:-5000])
    with pytest.raises(ModelFileError, match='cut.keras'):
        ClusterClassifier.load(cut)


def test_torch_never_imported(trained_classifier):
    assert 'torch' not in sys.modules
