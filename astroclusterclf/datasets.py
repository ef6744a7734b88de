# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Class-folder scanning and hash-stable training/validation/test splits.

A training folder holds one sub-folder per class; the sub-folder name is
the label (spaces are fine: ``globular cluster/``).  Image files inside
are recognised by extension (`astroclusterclf.io.is_image_file`).

Each file goes to the training, validation or testing set according to
the SHA-1 hash of its file name, as TensorFlow's old ``retrain.py`` did:
adding files to a folder never moves existing files from one set to
another, so a test image never leaks into training.  A ``_nohash_`` part
of a file name and everything after it is ignored by the hash, so
``star_nohash_1.fits`` and ``star_nohash_2.fits`` always share a set.

Examples
--------
>>> from astroclusterclf.datasets import split_for_file
>>> split_for_file('m13.fits', testing_percentage=10, validation_percentage=10)
'training'
"""

import hashlib
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import DatasetError, SmallClassWarning

__all__ = ['SPLITS', 'MIN_IMAGES_PER_CLASS', 'ImageLists', 'image_files',
           'scan_image_dir', 'split_for_file', 'create_image_lists']

log = logging.getLogger(__name__)

#: Names of the three sets, in the order they are reported.
SPLITS = ('training', 'validation', 'testing')

#: A class with fewer images than this triggers a `SmallClassWarning`.
MIN_IMAGES_PER_CLASS = 10

# Same constant as the old retrain.py: the hash is taken modulo this + 1,
# so the percentage resolution is fine enough for any folder size.
_MAX_NUM_IMAGES_PER_CLASS = 2 ** 27 - 1

_NOHASH = re.compile(r'_nohash_.*$')


def _hash_percentage(file_name):
    """Return the file name's position in [0, 100) from its SHA-1 hash."""
    name = _NOHASH.sub('', Path(file_name).name)
    digest = hashlib.sha1(name.encode('utf-8')).hexdigest()
    return ((int(digest, 16) % (_MAX_NUM_IMAGES_PER_CLASS + 1))
            * (100.0 / _MAX_NUM_IMAGES_PER_CLASS))


def _check_percentages(testing_percentage, validation_percentage):
    for name, value in (('testing_percentage', testing_percentage),
                        ('validation_percentage', validation_percentage)):
        if not 0 <= value < 100:
            raise DatasetError(f'{name} must be in [0, 100), got {value}')
    if testing_percentage + validation_percentage >= 100:
        raise DatasetError(
            'testing_percentage + validation_percentage must be below 100, '
            f'got {testing_percentage} + {validation_percentage}')


def split_for_file(file_name, *, testing_percentage=10,
                   validation_percentage=10):
    """Return the set a file belongs to by the hash of its name.

    Parameters
    ----------
    file_name : str or `~pathlib.Path`
        The file name; only its last component is hashed, so moving a
        folder does not change the split.
    testing_percentage, validation_percentage : float
        Percentages of files that go to the testing and validation sets.

    Returns
    -------
    split : {'training', 'validation', 'testing'}
    """
    _check_percentages(testing_percentage, validation_percentage)
    p = _hash_percentage(file_name)
    if p < validation_percentage:
        return 'validation'
    if p < validation_percentage + testing_percentage:
        return 'testing'
    return 'training'


def _is_hidden(path):
    return path.name.startswith('.')


def image_files(directory, *, recursive=False):
    """Return the image files of a folder, sorted by name.

    Hidden files (names starting with ``.``) and files that are not
    images by extension (`astroclusterclf.io.is_image_file`) are left
    out.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        The folder.
    recursive : bool, optional
        Also look in sub-folders.

    Returns
    -------
    files : list of `~pathlib.Path`
    """
    from .io import is_image_file

    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f'{directory}: folder not found')
    found = directory.rglob('*') if recursive else directory.iterdir()
    return sorted((f for f in found
                   if f.is_file() and not _is_hidden(f) and is_image_file(f)
                   and not any(_is_hidden(p) for p in
                               f.relative_to(directory).parents
                               if p.name)),
                  key=lambda f: str(f.relative_to(directory)))


def scan_image_dir(image_dir):
    """Return ``{label: [image paths]}`` of a class-folder tree.

    Labels are the sub-folder names, sorted; files are sorted by name.
    Hidden entries (names starting with ``.``), files directly in
    ``image_dir`` and files that are not images by extension are ignored.

    Parameters
    ----------
    image_dir : str or `~pathlib.Path`
        The folder whose sub-folders are the classes.

    Returns
    -------
    classes : dict of str to list of `~pathlib.Path`

    Raises
    ------
    DatasetError
        If the folder does not exist, has fewer than two class folders,
        or a class folder holds no image file.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DatasetError(f'{image_dir}: image folder not found')
    class_dirs = sorted((d for d in image_dir.iterdir()
                         if d.is_dir() and not _is_hidden(d)),
                        key=lambda d: d.name)
    if len(class_dirs) < 2:
        found = ', '.join(repr(d.name) for d in class_dirs) or 'none'
        raise DatasetError(
            f'{image_dir}: need at least 2 class sub-folders, found '
            f'{len(class_dirs)} ({found})')
    classes = {}
    for d in class_dirs:
        files = image_files(d, recursive=True)
        if not files:
            raise DatasetError(
                f'{d}: class folder {d.name!r} holds no image file')
        classes[d.name] = files
    return classes


@dataclass
class ImageLists:
    """Image files of each class, split into the three sets.

    Attributes
    ----------
    image_dir : `~pathlib.Path`
        The class-folder tree.
    labels : list of str
        Class labels, sorted (the model's output order).
    training, validation, testing : dict of str to list of `~pathlib.Path`
        Files of each set per label.
    """

    image_dir: Path
    labels: list
    training: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    testing: dict = field(default_factory=dict)

    def files(self, split):
        """Return ``[(path, label_index), ...]`` of one set."""
        lists = getattr(self, split)
        return [(path, i) for i, label in enumerate(self.labels)
                for path in lists[label]]

    def counts(self):
        """Return ``{split: {label: count}}``."""
        return {split: {label: len(getattr(self, split)[label])
                        for label in self.labels} for split in SPLITS}

    def split_of(self, path):
        """Return the set name of a file, or `None` if it is not listed."""
        path = Path(path)
        for split in SPLITS:
            for files in getattr(self, split).values():
                if path in files:
                    return split
        return None


def _borrow(files, sets, target, percentages, center):
    """Move to ``target`` the file whose hash is closest to ``center``,
    taking it from a set that can spare one."""
    candidates = [f for f in files
                  if sets[f] != target
                  and sum(1 for g in files if sets[g] == sets[f]) > 1]
    if not candidates:
        return
    chosen = min(candidates, key=lambda f: abs(percentages[f] - center))
    sets[chosen] = target


def create_image_lists(image_dir, *, testing_percentage=10,
                       validation_percentage=10):
    """Scan a class-folder tree and split each class into three sets.

    Files are assigned by the hash of their name (see `split_for_file`).
    When a class with at least three images would leave a set with a
    non-zero percentage empty, the file whose hash lies nearest that
    set's band is lent to it, so every class appears in every set; this
    only happens for small classes.

    Parameters
    ----------
    image_dir : str or `~pathlib.Path`
        The folder whose sub-folders are the classes.
    testing_percentage, validation_percentage : float
        Percentages of each class's files for the test and validation
        sets.

    Returns
    -------
    lists : `ImageLists`

    Raises
    ------
    DatasetError
        Fewer than two classes, an empty class, or bad percentages.

    Warns
    -----
    SmallClassWarning
        A class with fewer than `MIN_IMAGES_PER_CLASS` images.
    """
    _check_percentages(testing_percentage, validation_percentage)
    classes = scan_image_dir(image_dir)
    lists = ImageLists(image_dir=Path(image_dir), labels=list(classes))
    # Centre of each set's band of hash percentages.
    centers = {'validation': validation_percentage / 2,
               'testing': validation_percentage + testing_percentage / 2,
               'training': (validation_percentage + testing_percentage
                            + 100) / 2}
    wanted = {'training': True,
              'validation': validation_percentage > 0,
              'testing': testing_percentage > 0}
    for label, files in classes.items():
        if len(files) < MIN_IMAGES_PER_CLASS:
            warnings.warn(
                f'{Path(image_dir) / label}: class {label!r} has only '
                f'{len(files)} image(s) (fewer than {MIN_IMAGES_PER_CLASS}); '
                'its validation and test accuracy will be unreliable',
                SmallClassWarning)
        percentages = {f: _hash_percentage(f) for f in files}
        sets = {f: split_for_file(f, testing_percentage=testing_percentage,
                                  validation_percentage=validation_percentage)
                for f in files}
        if len(files) >= 3:
            for split in ('training', 'testing', 'validation'):
                if wanted[split] and split not in sets.values():
                    _borrow(files, sets, split, percentages, centers[split])
        for split in SPLITS:
            getattr(lists, split)[label] = [f for f in files
                                            if sets[f] == split]
        log.info('class %r: %s', label, ', '.join(
            f'{len(getattr(lists, s)[label])} {s}' for s in SPLITS))
    return lists
