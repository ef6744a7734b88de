# Licensed under a 3-clause BSD style license - see LICENSE.rst
import warnings

import pytest

from astroclusterclf.datasets import (MIN_IMAGES_PER_CLASS, SPLITS,
                                      create_image_lists, scan_image_dir,
                                      split_for_file)
from astroclusterclf.exceptions import DatasetError, SmallClassWarning


def _touch(directory, names):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b'')


def _assignments(lists):
    return {path.name: split for split in SPLITS
            for files in getattr(lists, split).values() for path in files}


def test_split_for_file_is_a_pure_function_of_the_name(tmp_path):
    a = split_for_file('img_0001.fits')
    assert split_for_file(tmp_path / 'x' / 'img_0001.fits') == a
    # _nohash_ suffixes share the split of the stem.
    assert (split_for_file('star_nohash_1.fits')
            == split_for_file('star_nohash_2.png'))
    counts = {s: 0 for s in SPLITS}
    for i in range(2000):
        counts[split_for_file(f'f{i}.fits', testing_percentage=20,
                              validation_percentage=10)] += 1
    assert 150 < counts['validation'] < 250
    assert 330 < counts['testing'] < 470


def test_scan_sorted_labels_with_spaces(tmp_path):
    _touch(tmp_path / 'open cluster', ['b.fits', 'a.FITS', 'notes.txt',
                                       '.hidden.fits'])
    _touch(tmp_path / 'globular cluster', ['c.png', 'd.fits.gz'])
    _touch(tmp_path / '.git', ['x.fits'])
    (tmp_path / 'stray.fits').write_bytes(b'')
    classes = scan_image_dir(tmp_path)
    assert list(classes) == ['globular cluster', 'open cluster']
    assert [p.name for p in classes['open cluster']] == ['a.FITS', 'b.fits']
    assert [p.name for p in classes['globular cluster']] == ['c.png',
                                                             'd.fits.gz']


def test_adding_files_does_not_move_existing_ones(tmp_path):
    for label in ('globular cluster', 'open cluster'):
        _touch(tmp_path / label, [f'{label[:4]}_{i:03d}.fits'
                                  for i in range(40)])
    before = _assignments(create_image_lists(tmp_path))
    for label in ('globular cluster', 'open cluster'):
        _touch(tmp_path / label, [f'{label[:4]}_{i:03d}.fits'
                                  for i in range(40, 90)])
    after = _assignments(create_image_lists(tmp_path))
    assert len(after) == 180
    assert all(after[name] == split for name, split in before.items())
    assert set(before.values()) == set(SPLITS)


def test_every_class_in_every_set(tmp_path):
    # 3 files: hashing alone would usually leave a set empty.
    _touch(tmp_path / 'a', ['x1.fits', 'x2.fits', 'x3.fits'])
    _touch(tmp_path / 'b', [f'y{i}.fits' for i in range(12)])
    with pytest.warns(SmallClassWarning, match=r"class 'a' has only 3"):
        lists = create_image_lists(tmp_path)
    for split in SPLITS:
        for label in ('a', 'b'):
            assert getattr(lists, split)[label], (split, label)
    counts = lists.counts()
    assert sum(counts[s]['a'] for s in SPLITS) == 3
    assert sum(counts[s]['b'] for s in SPLITS) == 12
    # No file is in two sets.
    assert len(_assignments(lists)) == 15


def test_small_class_warning_threshold(tmp_path):
    _touch(tmp_path / 'a', [f'a{i}.fits' for i in range(MIN_IMAGES_PER_CLASS)])
    _touch(tmp_path / 'b', [f'b{i}.fits' for i in range(MIN_IMAGES_PER_CLASS)])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        create_image_lists(tmp_path)
    (tmp_path / 'b' / 'b0.fits').unlink()
    with pytest.warns(SmallClassWarning, match="class 'b'"):
        create_image_lists(tmp_path)


def test_fewer_than_two_classes(tmp_path):
    _touch(tmp_path / 'only', ['a.fits'])
    with pytest.raises(DatasetError, match=r"at least 2 class.*found 1 \('only'\)"):
        create_image_lists(tmp_path)
    with pytest.raises(DatasetError, match='not found'):
        create_image_lists(tmp_path / 'missing')


def test_empty_class(tmp_path):
    _touch(tmp_path / 'a', ['a.fits'])
    _touch(tmp_path / 'empty one', ['readme.txt'])
    with pytest.raises(DatasetError, match="'empty one' holds no image"):
        create_image_lists(tmp_path)


@pytest.mark.parametrize('test, val', [(100, 0), (50, 50), (-1, 10)])
def test_bad_percentages(tmp_path, test, val):
    _touch(tmp_path / 'a', ['a.fits'])
    _touch(tmp_path / 'b', ['b.fits'])
    with pytest.raises(DatasetError, match='percentage'):
        create_image_lists(tmp_path, testing_percentage=test,
                           validation_percentage=val)
