# Licensed under a 3-clause BSD style license - see LICENSE.rst
import os
import shutil
import threading
import warnings

import numpy as np
import pytest
from astropy.io import fits

from helpers import recording as _recording
from astroclusterclf._augment import dihedral
from astroclusterclf.backbones import shared_backbone
from astroclusterclf.bottlenecks import BottleneckCache
from astroclusterclf._forward import forward_function
from astroclusterclf._hashing import file_sha256
from astroclusterclf.exceptions import SkippedFileWarning
from astroclusterclf.preprocessing import NormalizationSettings, fits_to_rgb

SIZE = 64   # small backbone input: fast, and the weights still apply

pytestmark = pytest.mark.slow   # all run the real backbone


@pytest.fixture
def images(small_dataset_dir, tmp_path):
    """Four FITS files (copies, so tests may change them)."""
    files = sorted(small_dataset_dir.glob('*/*.fits'))[::5][:4]
    out = []
    for i, f in enumerate(files):
        dst = tmp_path / 'img' / f'{i}_{f.name}'
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(f, dst)
        out.append(dst)
    return out


def _cache(tmp_path, **kwargs):
    return BottleneckCache(tmp_path / 'cache', input_size=SIZE, **kwargs)


def _entries(cache):
    return sorted(p for p in cache.root.rglob('*') if p.is_file()
                  and p.name != 'key.json')


def test_features_match_direct_forward_pass(images, tmp_path):
    cache = _cache(tmp_path)
    assert cache.settings.size == (SIZE, SIZE)
    result = cache.get_features(images, variants=(0, 5), batch_size=3)
    assert result.n_computed == 8 and result.n_cached == 0
    forward = forward_function(shared_backbone('efficientnet_lite0',
                                               input_size=SIZE))
    rgb = fits_to_rgb(images[1], settings=cache.settings)
    expected = np.asarray(forward(np.stack([rgb, dihedral(rgb, 5)])))
    got = result.features[images[1]]
    assert got.shape == (2, cache.feature_length)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert result.digests[images[1]] == file_sha256(images[1])


def test_second_run_computes_nothing(images, tmp_path):
    cache = _cache(tmp_path)
    first = cache.get_features(images, variants=(0, 1, 2))
    assert (first.n_computed, first.n_cached) == (12, 0)
    assert len(_entries(cache)) == 4   # one entry per file
    # A new cache object (a new run) on the same directory.
    second = _cache(tmp_path).get_features(images, variants=(0, 1, 2))
    assert (second.n_computed, second.n_cached) == (0, 12)
    for path in images:
        np.testing.assert_array_equal(second.features[path],
                                      first.features[path])
    # Renaming a file keeps its entries (content-addressed).
    moved = images[0].with_name('renamed.fits')
    images[0].rename(moved)
    third = _cache(tmp_path).get_features([moved], variants=(0,))
    assert third.n_computed == 0
    # No temporary file is left behind.
    assert not [p for p in cache.root.rglob('*.tmp*')]


def test_new_variants_are_added_to_the_entry(images, tmp_path):
    # Augmentation off, then on: only the new rotations/flips are computed.
    first = _cache(tmp_path).get_features(images[:1], variants=(0,))
    assert first.n_computed == 1
    cache = _cache(tmp_path)
    second = cache.get_features(images[:1], variants=(0, 1, 2))
    assert (second.n_computed, second.n_cached) == (2, 1)
    entry = cache.load_entry(second.digests[images[0]])
    assert np.isfinite(entry[:3]).all() and np.isnan(entry[3:]).all()
    np.testing.assert_array_equal(entry[0], first.features[images[0]][0])


def test_changed_file_or_setting_recomputes_only_that(images, tmp_path):
    cache = _cache(tmp_path)
    cache.get_features(images, variants=(0, 1))
    before = images[2].read_bytes()
    with fits.open(images[2]) as hdul:
        data = hdul[0].data * 2.0 + 1.0
        header = hdul[0].header
    images[2].unlink()
    fits.writeto(images[2], data, header)
    assert images[2].read_bytes() != before
    again = _cache(tmp_path).get_features(images, variants=(0, 1))
    assert (again.n_computed, again.n_cached) == (2, 6)
    # Another normalization is another key: everything is recomputed.
    other = _cache(tmp_path, settings=NormalizationSettings(
        interval='percentile'))
    assert other.key != cache.key
    assert other.get_features(images[:1]).n_computed == 1


def test_corrupt_entry_is_recomputed(images, tmp_path, caplog):
    cache = _cache(tmp_path)
    first = cache.get_features(images[:2])
    entry = cache.entry_path(first.digests[images[0]])
    entry.write_bytes(entry.read_bytes()[:100])      # truncated
    entry2 = cache.entry_path(first.digests[images[1]])
    np.save(entry2, np.zeros(7, np.float32))         # wrong shape
    again = _cache(tmp_path).get_features(images[:2])
    assert (again.n_computed, again.n_cached) == (2, 0)
    assert 'corrupt bottleneck' in caplog.text
    np.testing.assert_allclose(again.features[images[0]],
                               first.features[images[0]], rtol=1e-5)
    assert _cache(tmp_path).get_features(images[:2]).n_computed == 0


def test_unreadable_files_skipped_and_counted(images, tmp_path):
    bad = tmp_path / 'img' / 'broken.fits'
    bad.write_bytes(b'GIF89a, not a FITS file' * 20)
    empty = tmp_path / 'img' / 'empty.fits'
    empty.write_bytes(b'')
    missing = tmp_path / 'img' / 'missing.fits'
    with _recording(SkippedFileWarning) as record:
        result = _cache(tmp_path).get_features(
            [images[0], bad, empty, missing, images[1]])
    messages = ' '.join(str(w.message) for w in record)
    for path in (bad, empty, missing):
        assert str(path) in messages
    assert {p for p, _ in result.skipped} == {bad, empty, missing}
    assert all(reason for _, reason in result.skipped)
    assert set(result.features) == {images[0], images[1]}
    assert result.n_computed == 2
    # The input files are untouched.
    assert empty.read_bytes() == b''


def test_concurrent_writers_leave_valid_entries(images, tmp_path):
    # Two "runs" computing the same entries at once.
    errors = []

    def run():
        try:
            _cache(tmp_path).get_features(images, variants=(0, 3))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(2)]
    with warnings.catch_warnings():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    result = _cache(tmp_path).get_features(images, variants=(0, 3))
    assert result.n_computed == 0 and result.n_cached == 8
    assert not [p for p in (tmp_path / 'cache').rglob('*.tmp*')]
    assert all(os.path.getsize(p) > 0 for p in _entries(_cache(tmp_path)))


def test_progress_reports_from_zero_to_total(images, tmp_path):
    calls = []
    _cache(tmp_path).get_features(images, variants=(0, 1),
                                  progress=lambda done, total: calls.append(
                                      (done, total)))
    assert calls[0] == (0, 8)
    assert calls[-1] == (8, 8)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    # Nothing to compute: no progress at all.
    calls.clear()
    _cache(tmp_path).get_features(images, variants=(0, 1),
                                  progress=lambda *a: calls.append(a))
    assert calls == []
