# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.selection (``retrain(architecture='auto')``)."""

import numpy as np
import pytest

from astroclusterclf import NormalizationSettings
from astroclusterclf.exceptions import ParameterError
from astroclusterclf.retrain import retrain
from astroclusterclf.selection import (Blend, Candidate, cross_validate,
                                       default_candidates, select)

SMALL = 48


def test_default_candidates():
    candidates = default_candidates()
    assert [c.name for c in candidates] == [
        'efficientnet_lite0 zscale', 'efficientnet_lite0 percentile 99.5',
        'astro_lite0 zscale', 'astro_lite0 percentile 99.5',
        'efficientnet_lite0 zscale + percentile 99.5',
        'astro_lite0 zscale + percentile 99.5',
        'mean of efficientnet_lite0 and astro_lite0, zscale + percentile 99.5']
    # The blends are made of the single views: one head over the two
    # views of a backbone, and the average of the two backbones' heads.
    assert candidates[4].views == tuple(candidates[:2]) and candidates[4].groups == ((0, 1),)
    assert candidates[6].views == tuple(candidates[:4])
    assert candidates[6].groups == ((0, 1), (2, 3))
    # A normalization given by the user is kept; only the backbones vary.
    given = NormalizationSettings(stretch='sqrt')
    candidates = default_candidates(given, input_size=64)
    assert [c.settings for c in candidates] == [given, given, given]
    assert {c.input_size for c in candidates} == {64}
    assert candidates[2].name == 'mean of efficientnet_lite0 and astro_lite0, zscale'
    auto = default_candidates()
    mixed = Blend((auto[0], auto[2], auto[3]), ((0,), (1, 2)))
    assert mixed.name == ('mean of (efficientnet_lite0 zscale) and '
                          '(astro_lite0 zscale + percentile 99.5)')
    assert default_candidates({'interval': 'minmax'})[0].settings.interval == 'minmax'


def test_cross_validate_separable_and_random():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 15)
    separable = rng.normal(size=(45, 300)) + 2.0 * np.eye(3)[y] @ rng.normal(size=(3, 300))
    accuracy, error = cross_validate(separable, y, seed=0)
    assert accuracy == 1.0
    noise = rng.normal(size=(45, 300))
    accuracy_noise, error_noise = cross_validate(noise, y, seed=0)
    assert accuracy_noise < 0.6 and error_noise > error
    # Deterministic for a seed; labels need not be 0..n-1.
    assert cross_validate(noise, y + 5, seed=3) == cross_validate(noise, y + 5, seed=3)


def test_cross_validate_errors():
    with pytest.raises(ParameterError, match='two classes'):
        cross_validate(np.zeros((4, 3)), np.zeros(4, int))
    with pytest.raises(ParameterError, match='at least two images'):
        cross_validate(np.zeros((4, 3)), np.array([0, 0, 0, 1]))


@pytest.mark.slow   # imports TensorFlow
def test_select_prefers_the_informative_candidate(small_dataset_files, tmp_path,
                                                  small_dataset_dir):
    paths = sorted(small_dataset_dir.glob('*/*.fits'))
    y = [0 if 'globular' in p.parent.name else 1 for p in paths]
    # A 'minmax' normalization of noisy frames hides most of the cluster;
    # the candidates' order decides only ties.
    candidates = [Candidate('efficientnet_lite0', NormalizationSettings(), SMALL),
                  Candidate('efficientnet_lite0',
                            NormalizationSettings(interval='percentile'), SMALL)]
    first = select(paths, y, candidates=candidates, bottleneck_dir=tmp_path, seed=0)
    again = select(paths, y, candidates=candidates, bottleneck_dir=tmp_path, seed=0)
    assert first.chosen == again.chosen
    assert list(first.table['cv_accuracy']) == list(again.table['cv_accuracy'])
    assert first.table['chosen'].sum() == 1
    best = first.table[first.table['chosen']][0]
    assert best['cv_log_loss'] == first.table['cv_log_loss'].min()
    # The chosen candidate's heads come with it, refitted, and its
    # held-out probabilities for the calibration.
    assert len(first.heads) == 1 and first.oof_probabilities.shape == (len(paths), 2)
    assert first.table.meta['n_images'] == len(paths)


@pytest.mark.slow
def test_retrain_auto_is_deterministic_and_reported(small_dataset_dir, tmp_path):
    kwargs = dict(steps=30, input_size=SMALL, augment=False,
                  bottleneck_dir=tmp_path / 'bn', seed=2, testing_percentage=20)
    a = retrain(small_dataset_dir, **kwargs)
    b = retrain(small_dataset_dir, **kwargs)
    assert a.selection is not None and len(a.selection) == 7
    assert list(a.selection['chosen']) == list(b.selection['chosen'])
    chosen = a.selection[a.selection['chosen']][0]
    assert a.classifier.backbone == chosen['architecture']
    assert a.classifier.settings.interval == chosen['interval'].split('+')[0]
    assert 'chosen by 5-fold cross-validation' in a.report()
    assert a.classifier.metadata['selection'][0]['candidate'] == 'efficientnet_lite0 zscale'
    # A named architecture compares no features; the regularization of its
    # head is still cross-validated and reported.
    c = retrain(small_dataset_dir, architecture='efficientnet_lite0', **kwargs)
    assert c.selection is None and len(c.candidates) == 1
    assert 'Head regularization chosen by' in c.report()


def test_retrain_auto_rejects_other_weights(small_dataset_dir, tmp_path):
    with pytest.raises(ParameterError, match="architecture='auto'"):
        retrain(small_dataset_dir, weights=None, bottleneck_dir=tmp_path)


def test_select_with_too_few_images_takes_the_first(small_dataset_files, tmp_path):
    paths = small_dataset_files[:4]
    y = [0, 0, 1, 1]
    selection = select(paths, y, bottleneck_dir=tmp_path)
    assert selection.chosen == default_candidates()[0]
    assert 'untested' in selection.table.meta['note']
    assert np.isnan(selection.table['cv_accuracy']).all()
    assert not any(tmp_path.iterdir())      # nothing was computed
