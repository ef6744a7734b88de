# Licensed under a 3-clause BSD style license - see LICENSE.rst
import json
import shutil
import sys
import zipfile

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS

from astroclusterclf import cli
from astroclusterclf.augment import dihedral
from astroclusterclf.classifier import (METADATA_MEMBER, ClusterClassifier,
                                        read_labels)
from astroclusterclf.exceptions import ImageReadError, ModelFileError
from astroclusterclf.preprocessing import fits_to_rgb

LABELS = ['globular cluster', 'open cluster']


@pytest.fixture(scope='module')
def clf(trained_model_path):
    return ClusterClassifier.load(trained_model_path)


@pytest.fixture(scope='module')
def files(small_dataset_dir):
    return sorted(small_dataset_dir.glob('*/*.fits'))[::4]


def test_load_metadata(clf, trained_model_path):
    assert clf.labels == LABELS
    assert clf.backbone == 'efficientnet_lite0'
    assert clf.input_size == 224
    assert clf.settings.size == (224, 224)
    md = clf.metadata
    for key in ('labels', 'preprocessing', 'backbone', 'backbone_weights',
                'input_size', 'package_version', 'created'):
        assert key in md
    assert md['backbone_weights'].startswith('efficientnet_lite0:imagenet:')
    with zipfile.ZipFile(trained_model_path) as z:
        stored = json.loads(z.read(METADATA_MEMBER))
    assert stored['labels'] == LABELS
    assert stored['preprocessing'] == json.loads(clf.settings.to_json())
    name, digest = clf.model_id.split(':')
    assert name == 'model' and len(digest) == 12
    assert repr(clf).startswith('<ClusterClassifier efficientnet_lite0')


def test_reload_predicts_the_same(clf, retrain_result, files):
    in_memory = retrain_result.classifier.predict(files)
    reloaded = clf.predict(files)
    assert reloaded.shape == (len(files), 2)
    np.testing.assert_allclose(reloaded, in_memory, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reloaded.sum(axis=1), 1, rtol=1e-5)
    # Plain keras opens the same file; the model takes [0, 1] RGB.
    import keras
    model = keras.saving.load_model(retrain_result.output_graph)
    rgb = np.stack([fits_to_rgb(f, settings=clf.settings) for f in files])
    np.testing.assert_allclose(model.predict(rgb, verbose=0), reloaded,
                               rtol=1e-5, atol=1e-6)


def test_full_model_matches_head_on_the_test_set(clf, retrain_result,
                                                 small_dataset_dir):
    # The report's test accuracy (head on cached features) is the
    # accuracy of the saved backbone + head on the test files.
    from astroclusterclf.datasets import create_image_lists
    lists = create_image_lists(small_dataset_dir)
    test_files = [p for p, _ in lists.files('testing')]
    y = [i for _, i in lists.files('testing')]
    acc = np.mean(np.argmax(clf.predict(test_files), axis=1) == y)
    assert acc == pytest.approx(retrain_result.test_accuracy)


def test_predict_accepts_every_source(clf, files):
    path = files[0]
    expected = clf.predict(path)
    assert expected.shape == (1, 2)
    with fits.open(path) as hdul:
        data, header = hdul[0].data.copy(), hdul[0].header.copy()
        sources = [str(path), hdul, hdul[0], (data, header),
                   (data, WCS(header)), data, NDData(data)]
        many = clf.predict(sources)
        assert many.shape == (len(sources), 2)
        np.testing.assert_allclose(many, np.repeat(expected, len(sources),
                                                   axis=0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(clf.predict(hdul, hdu=0), expected,
                                   rtol=1e-5, atol=1e-6)
    # A generator is many; batches smaller than the input work.
    gen = clf.predict((f for f in files), batch_size=2)
    np.testing.assert_allclose(gen, clf.predict(list(files)), rtol=1e-5,
                               atol=1e-6)
    assert clf.predict([]).shape == (0, 2)


def test_tta(clf, files):
    plain = clf.predict(files)
    tta = clf.predict(files, tta=True)
    assert tta.shape == plain.shape
    np.testing.assert_allclose(tta.sum(axis=1), 1, rtol=1e-5)
    assert not np.allclose(tta, plain)
    # TTA is the mean over the 8 rotations/flips of the normalized image.
    rgb = fits_to_rgb(files[0], settings=clf.settings)
    variants = np.stack([dihedral(rgb, v) for v in range(8)])
    expected = clf.model.predict(variants, verbose=0).mean(axis=0)
    np.testing.assert_allclose(tta[0], expected, rtol=1e-5, atol=1e-6)


def test_classify_and_top_k(clf, files):
    probs = clf.predict(files[0])[0]
    label, p = clf.classify(files[0])
    assert label == LABELS[int(np.argmax(probs))]
    assert p == pytest.approx(probs.max())
    top = clf.top_k(files[0], k=5)
    assert [t[0] for t in top] == sorted(LABELS, key=lambda lab:
                                         -probs[LABELS.index(lab)])
    assert top[0][1] >= top[1][1]
    assert len(clf.top_k(files[0], k=1)) == 1


def test_predict_errors(clf, tmp_path):
    with pytest.raises(ImageReadError, match='missing.fits'):
        clf.predict(tmp_path / 'missing.fits')


def test_save_roundtrip_and_labels_override(clf, tmp_path, files):
    out = tmp_path / 'copy.keras'
    clf.save(out)
    assert not list(tmp_path.glob('.*.tmp*'))
    again = ClusterClassifier.load(out)
    np.testing.assert_allclose(again.predict(files[:2]),
                               clf.predict(files[:2]), rtol=1e-6)
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


def test_cli_label_one_file(trained_model_path, files, capsys, clf):
    status = cli.main(['label', '--graph', str(trained_model_path),
                       '--image', str(files[0])])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert len(out) == 2
    probs = clf.predict(files[0])[0]
    best = LABELS[int(np.argmax(probs))]
    assert out[0] == f'{best} {probs.max():.5f}'
    label, value = out[1].rsplit(' ', 1)
    assert label in LABELS and len(value.split('.')[1]) == 5


def test_cli_label_many(trained_model_path, files, small_dataset_dir,
                        capsys, tmp_path):
    (tmp_path / 'labels.txt').write_text('GC\nOC\n')
    status = cli.main(['label', '--graph', str(trained_model_path),
                       '--image', str(files[0]),
                       '--image', str(small_dataset_dir / 'open cluster'),
                       '--top_k', '1', '--labels',
                       str(tmp_path / 'labels.txt'), '--hdu', '0'])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    headers = [line for line in out if line.endswith(':')]
    assert len(headers) == 11 and headers[0] == f'{files[0]}:'
    values = [line for line in out if line and not line.endswith(':')]
    assert len(values) == 11
    assert all(v.split()[0] in ('GC', 'OC') for v in values)


@pytest.mark.parametrize('make_args, message', [
    (lambda m, d: ['--graph', str(d / 'nope.keras'), '--image', 'x.fits'],
     'model file not found'),
    (lambda m, d: ['--graph', str(m), '--image', str(d / 'nope.fits')],
     'nope.fits'),
    (lambda m, d: ['--graph', str(m), '--image', str(d)],
     'holds no image file'),
])
def test_cli_label_errors(trained_model_path, tmp_path, capsys, make_args,
                          message):
    status = cli.main(['label'] + make_args(trained_model_path, tmp_path))
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith('astroclusterclf label: error: ')
    assert captured.err.count('\n') == 1 and message in captured.err
    assert 'Traceback' not in captured.err


def test_torch_never_imported(clf):
    assert 'torch' not in sys.modules
