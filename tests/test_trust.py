# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""How far to trust a prediction: calibration stored in the model, the
out-of-distribution flag, degenerate inputs, the model's field of view."""

import json
import warnings
import zipfile

import numpy as np
import pytest
import skimage.data
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from astroclusterclf import ClusterClassifier, annotate_fits, annotate_table
from astroclusterclf.annotate import cutout_size
from astroclusterclf.calibration import (PROBABILITY_FLOOR, calibrate_probabilities,
                                         floor_probabilities)
from astroclusterclf.classifier import METADATA_MEMBER, OOD_MEMBER, PredictionFlag
from astroclusterclf.exceptions import FieldOfViewWarning, ModelFileError
from astroclusterclf.preprocessing import fits_to_rgb
from astroclusterclf.simulate import simulate_cluster

pytestmark = pytest.mark.slow

UNLIKE = PredictionFlag.UNLIKE_TRAINING
DEGENERATE = PredictionFlag.DEGENERATE


def _galaxy(rng, size=128):
    """A smooth Sersic galaxy on sky with Poisson noise: no cluster."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    q, pa = rng.uniform(0.4, 0.9), rng.uniform(0, np.pi)
    xr = xx * np.cos(pa) + yy * np.sin(pa)
    yr = (-xx * np.sin(pa) + yy * np.cos(pa)) / q
    r = np.hypot(xr, yr)
    re, n = rng.uniform(10, 25), rng.uniform(1, 4)
    model = 3000 * np.exp(-(2 * n - 1 / 3) * ((r / re) ** (1 / n) - 1)) + 200
    return rng.poisson(model).astype(float)


# -- calibration ---------------------------------------------------------------

def test_calibration_is_fitted_reported_and_stored(accurate_result, accurate_model):
    c = accurate_result.calibration
    # Out-of-fold predictions of the logistic head over the training and
    # validation images (the cross-validation that chose the head).
    assert c['source'].startswith('out-of-fold')
    counts = accurate_result.counts
    assert c['method'] in ('temperature', 'none') and c['reason']
    # ... and on a degraded copy of each (calibration for survey drift).
    assert 'degraded copy' in c['source'] and c['n'] == 2 * (
        sum(counts['training'].values()) + sum(counts['validation'].values()))
    assert 0 <= c['drift_accuracy'] <= 1
    if c['method'] == 'temperature':
        assert 1 < c['temperature'] < 1e3
    else:
        assert c['temperature'] == 1.0
    for key in ('test_ece_before', 'test_ece_after', 'test_nll_before', 'test_nll_after'):
        assert 0 <= c[key] < 1
    report = accurate_result.report()
    assert c['reason'] in report
    assert (f'only {c["n"]} held-out predictions' in report) == (c['n'] < 100)
    assert 'expected calibration error' in report and 'threshold' in report
    assert accurate_model.temperature == pytest.approx(c['temperature'])
    assert accurate_model.ood_threshold == pytest.approx(c['ood_threshold'], rel=1e-6)
    assert accurate_result.reliability_plot.is_file()
    assert accurate_result.reliability_plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_predictions_are_calibrated(accurate_model, cluster_image):
    rgb = fits_to_rgb(cluster_image, settings=accurate_model.settings)
    raw = np.asarray(accurate_model.model(rgb[np.newaxis]))
    calibrated = accurate_model.predict(cluster_image)
    np.testing.assert_allclose(
        calibrated,
        floor_probabilities(calibrate_probabilities(raw, accurate_model.temperature)),
        atol=1e-6)
    # No probability is exactly 0 or 1, however sure the head is.
    assert calibrated.min() >= PROBABILITY_FLOOR and calibrated.max() < 1


def test_older_model_files_load_without_calibration(accurate_result, tmp_path,
                                                    cluster_image, caplog):
    """A file without temperature, OOD member or training frames (as the
    first release wrote them) loads; its probabilities are the raw ones."""
    old = tmp_path / 'old.keras'
    with zipfile.ZipFile(accurate_result.output) as src, \
            zipfile.ZipFile(old, 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == OOD_MEMBER:
                continue
            data = src.read(info)
            if info.filename == METADATA_MEMBER:
                meta = json.loads(data)
                for key in ('temperature', 'calibration', 'training_frames',
                            'head', 'ood_false_alarm_rate'):
                    meta.pop(key)
                meta['format_version'] = 1
                data = json.dumps(meta).encode()
            dst.writestr(info, data)
    clf = ClusterClassifier.load(old)
    assert clf.temperature == 1.0 and clf.ood is None and clf.training_frames is None
    assessment = clf.assess(cluster_image)
    assert np.isnan(assessment.ood_score[0]) and assessment.flag[0] == 0
    new = ClusterClassifier.load(accurate_result.output)
    raw = np.asarray(clf.model(fits_to_rgb(cluster_image, settings=clf.settings)[None]))
    np.testing.assert_allclose(clf.predict(cluster_image), floor_probabilities(raw), atol=1e-6)
    np.testing.assert_allclose(
        new.predict(cluster_image),
        floor_probabilities(calibrate_probabilities(raw, new.temperature)), atol=1e-6)
    with caplog.at_level('WARNING', logger='astroclusterclf.annotate'):
        assert cutout_size(clf) == (64, '64 x 64 pix')
    assert 'older model file' in caplog.text


# -- out of distribution -------------------------------------------------------

def test_ood_flags_non_clusters(accurate_model):
    rng = np.random.default_rng(7)
    inputs = {
        'noise': [rng.normal(100, 10, (128, 128)) for _ in range(3)],
        'blank sky': [rng.poisson(400, (128, 128)).astype(float) for _ in range(3)],
        'photo': [np.moveaxis(skimage.data.astronaut(), -1, 0).astype(float),
                  skimage.data.camera().astype(float)],
        'galaxy': [_galaxy(rng) for _ in range(3)],
    }
    for kind, images in inputs.items():
        assessment = accurate_model.assess(images)
        assert np.all(assessment.flag & UNLIKE), (kind, assessment.ood_score,
                                                  accurate_model.ood_threshold)
        assert np.all(assessment.ood_score > accurate_model.ood_threshold)


def _clusters(n, seed):
    return [simulate_cluster(kind, size=128, rng=seed + i)[0]
            for i, kind in enumerate(['globular cluster', 'open cluster'] * (n // 2))]


def _holes(image, rng):
    """Punch 1-3 NaN rectangles (masked stars, chip gaps, bad columns)
    covering 3-15 % of the image, sometimes over the centre."""
    out = image.astype(float).copy()
    ny, nx = out.shape
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(6, 30), rng.integers(6, 30)
        y, x = rng.integers(0, ny - h), rng.integers(0, nx - w)
        out[y:y + h, x:x + w] = np.nan
    if rng.random() < 0.3:
        out[:, rng.integers(0, nx)] = np.nan
    return out


def test_ood_clear_for_clusters(accurate_model):
    # The threshold flags a stated fraction (5 %) of held-out training-like
    # images; 40 new clusters of the training survey stay near that rate.
    assert accurate_model.ood_false_alarm_rate == 0.05
    assessment = accurate_model.assess(_clusters(40, 900))
    flagged = np.mean(assessment.flag & UNLIKE > 0)
    assert flagged <= 0.15, (flagged, assessment.ood_score, accurate_model.ood_threshold)
    assert np.median(assessment.ood_score) < accurate_model.ood_threshold / 2


def test_clusters_with_holes_are_not_flagged(accurate_model):
    # Masked and non-finite pixels must not raise the score of an otherwise
    # normal image (they are filled from the local background).
    rng = np.random.default_rng(5)
    images = _clusters(40, 900)
    holed = [_holes(image, rng) for image in images]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')      # NonFinitePixelWarning, by design
        plain = accurate_model.assess(images)
        with_holes = accurate_model.assess(holed)
    flagged = np.mean(with_holes.flag & UNLIKE > 0)
    assert flagged <= 0.15, (flagged, with_holes.ood_score)
    ratio = np.median(with_holes.ood_score / plain.ood_score)
    assert ratio < 1.5, ratio
    # and the holes do not change the predicted class
    agree = np.mean(with_holes.probabilities.argmax(axis=1)
                    == plain.probabilities.argmax(axis=1))
    assert agree >= 0.9


def test_ood_view_is_fixed_whatever_the_model(small_dataset_dir, small_dataset_files,
                                              tmp_path, trained_classifier):
    """The OOD description lives in one view (ImageNet lite0, 224 px, default
    normalization), also for a model on another backbone, size and
    normalization; the quick ImageNet model's own bottleneck is that view."""
    from astroclusterclf import NormalizationSettings, backbones, retrain

    assert trained_classifier._ood_view() is None      # one forward pass
    result = retrain(small_dataset_dir, output=tmp_path / 'astro.keras',
                     architecture='astro_lite0', input_size=64, steps=100,
                     augment=False, bottleneck_dir=tmp_path / 'cache',
                     settings=NormalizationSettings(interval='percentile'),
                     reliability_plot=None)
    view_settings = NormalizationSettings(size=224)
    assert result.classifier.metadata['ood_view'] == {
        'backbone_weights': backbones.weights_id('efficientnet_lite0'),
        'input_size': 224, 'settings': view_settings.to_dict()}
    backbone = backbones.get_backbone('efficientnet_lite0')
    images = np.stack([fits_to_rgb(p, settings=view_settings)
                       for p in small_dataset_files])
    expected = result.classifier.ood.score(np.asarray(backbone(images), np.float64))
    loaded = ClusterClassifier.load(tmp_path / 'astro.keras')
    for clf in (result.classifier, loaded):
        assessment = clf.assess(list(small_dataset_files))
        np.testing.assert_allclose(assessment.ood_score, expected, rtol=1e-3)
        np.testing.assert_allclose(assessment.probabilities,
                                   result.classifier.predict(list(small_dataset_files)),
                                   rtol=1e-5)
    # The view's weights are checked when the model loads them.
    with zipfile.ZipFile(tmp_path / 'astro.keras') as z:
        members = {name: z.read(name) for name in z.namelist()}
    metadata = json.loads(members[METADATA_MEMBER])
    metadata['ood_view']['backbone_weights'] = 'efficientnet_lite0:imagenet:0000'
    members[METADATA_MEMBER] = json.dumps(metadata).encode()
    with zipfile.ZipFile(tmp_path / 'other.keras', 'w') as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ModelFileError, match='installed weights are'):
        ClusterClassifier.load(tmp_path / 'other.keras').assess(small_dataset_files[0])


@pytest.mark.parametrize('make', [
    lambda rng: np.full((128, 128), 5.0),                               # constant
    lambda rng: rng.normal(size=(12, 12)),                              # tiny
    lambda rng: np.where(np.arange(128 * 128).reshape(128, 128) % 3 == 0,
                         rng.normal(size=(128, 128)), np.nan),          # 2/3 masked
])
def test_degenerate_inputs_are_flagged(accurate_model, make):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')      # the NaN pixels are reported
        assessment = accurate_model.assess(make(np.random.default_rng(0)))
    assert assessment.flag[0] & DEGENERATE
    assert np.all(np.isfinite(assessment.probabilities))


def test_fits_header_and_table_carry_the_score(accurate_model, tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / 'noise.fits'
    fits.PrimaryHDU(rng.normal(100, 10, (128, 128)).astype(np.float32)).writeto(path)
    result = annotate_fits(accurate_model, path, output=tmp_path / 'out.fits')
    header = fits.getheader(tmp_path / 'out.fits')
    assert header['CLSFLAG'] == result.flag == UNLIKE
    assert header['CLSOOD'] == pytest.approx(result.ood_score, rel=1e-3)
    assert header.comments['CLSOOD'] == (
        f'OOD score; > {accurate_model.ood_threshold:.3g} unlike training (5% FA)')
    table = annotate_table(accurate_model, Table({'file': [str(path)]}),
                           path_column='file')
    assert table['pred_flag'][0] == UNLIKE
    assert table['pred_ood'][0] == pytest.approx(result.ood_score)
    assert '16 = unlike the training images' in table['pred_flag'].description
    assert table.meta['CLSOODFA'] == 0.05
    assert '5% of held-out training-like images exceed' in table['pred_ood'].description


# -- field of view -------------------------------------------------------------------

def test_training_frames_are_recorded(accurate_model):
    frames = accurate_model.training_frames
    assert frames['n'] == 120
    assert frames['shape']['median'] == [128, 128]
    assert frames['pixel_scale']['median'] == pytest.approx(0.4)


def test_default_size_is_the_training_frame(accurate_model, survey_mosaic):
    mosaic, catalog_path = survey_mosaic
    size, text = cutout_size(accurate_model, mosaic)
    # The mosaic has a WCS and the training scales agree: the same angle.
    assert text == '51.2 x 51.2 arcsec'
    assert u.allclose(u.Quantity(size), [51.2, 51.2] * u.arcsec)
    # Without a WCS: the same number of pixels.
    assert cutout_size(accurate_model, np.zeros((256, 256)))[1] == '128 x 128 pix'
    catalog = Table.read(catalog_path)[:3]
    table = annotate_table(accurate_model, catalog, image=mosaic)
    assert table.meta['CLSSIZE'] == '51.2 x 51.2 arcsec'


def test_field_of_view_warnings(accurate_model, survey_mosaic, tmp_path):
    mosaic, _ = survey_mosaic
    with pytest.warns(FieldOfViewWarning, match='cutout size 64 pixels is more than'):
        cutout_size(accurate_model, mosaic, size=64 * u.pix)
    with pytest.warns(FieldOfViewWarning, match='cutout size 20 arcsec'):
        cutout_size(accurate_model, mosaic, size='20 arcsec')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        cutout_size(accurate_model, mosaic, size=100)         # within 1.5x: quiet
    coarse = tmp_path / 'coarse.fits'
    with fits.open(mosaic) as hdul:
        header = hdul[0].header.copy()
    for key in ('CDELT1', 'CDELT2', 'CD1_1', 'CD2_2'):
        if key in header:
            header[key] *= 3
    fits.PrimaryHDU(np.zeros((300, 300), np.float32), header=header).writeto(coarse)
    with pytest.warns(FieldOfViewWarning, match='arcsec/pixel, more than a factor of 1.5'):
        cutout_size(accurate_model, coarse)
