# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Class-folder scanning and hash-stable training/validation/test splits.

A training folder holds one sub-folder per class; the sub-folder name is
the label (spaces are fine: ``globular cluster/``).  Image files inside
are recognised by extension (`astroclusterclf.io.is_image_file`).

Each file goes to the training, validation or testing set according to
the SHA-1 hash of its file name (`split_for_file`), as TensorFlow's old
``retrain.py`` did.  A ``_nohash_`` part of a file name and everything
after it is ignored by the hash, so ``star_nohash_1.fits`` and
``star_nohash_2.fits`` get the same hash.  The split of a class depends
only on the names (paths inside the class folder) of its files and on
the two percentages: never on file contents, dates, other classes or the
order the files are listed in.  A rerun gives the same sets, and within
one run every file is in exactly one set.

Unlike the old tool, `create_image_lists` then makes sure that every
class of three or more files has at least one file in every set that is
asked for: when a class's hashes leave such a set empty, one file is
moved into it from another set (see `create_image_lists`, Notes).  Only
classes where that happens are affected, and for them two promises of
the pure hash rule do not hold: adding, removing or renaming a file of
that class can move an existing file to another set (so a file tested in
one run can be trained on in the next), and ``_nohash_`` files that share
a hash can end up in different sets.  A class whose every set receives a
file by hash alone is split by the hash only, and adding files to it
never moves an existing file.

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
from .io import is_image_file

__all__ = ['create_image_lists', 'ImageLists', 'image_files', 'split_for_file',
           'SPLITS']

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
        """Return ``[(path, label_index), ...]`` of one set.

        Parameters
        ----------
        split : {'training', 'validation', 'testing'}
            The set.

        Returns
        -------
        files : list of (`~pathlib.Path`, int)
            Its files with the index of their label in `labels`, label by
            label.
        """
        lists = getattr(self, split)
        return [(path, i) for i, label in enumerate(self.labels)
                for path in lists[label]]

    def counts(self):
        """Return ``{split: {label: count}}``.

        Returns
        -------
        counts : dict
            ``{split: {label: number of files}}`` for the three sets and
            every label.
        """
        return {split: {label: len(getattr(self, split)[label])
                        for label in self.labels} for split in SPLITS}

    def split_of(self, path):
        """Return the set name of a file, or `None` if it is not listed.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            A file, as listed (the path is compared, not resolved).

        Returns
        -------
        split : {'training', 'validation', 'testing'} or None
            The set that lists it.
        """
        path = Path(path)
        for split in SPLITS:
            for files in getattr(self, split).values():
                if path in files:
                    return split
        return None


def _borrow(files, sets, target, percentages, center):
    """Move to ``target`` the file whose hash is closest to ``center``,
    taking it from a set that holds at least two files (ties: the first
    in ``files``); do nothing if no set can spare one."""
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

    Files are assigned by the hash of their name (see `split_for_file`);
    then, in a class of three or more files, every set that is asked for
    (training always, validation and testing when their percentage is
    above zero) and received no file gets one file moved into it from
    another set (see Notes).

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

    Notes
    -----
    Each class is split on its own.  A file's hash percentage ``p`` in
    [0, 100] puts it in validation if ``p < validation_percentage``, else
    in testing if ``p < validation_percentage + testing_percentage``,
    else in training.

    If the class has at least three files, the sets are then checked in
    the order training, testing, validation.  When one that is asked for
    is empty, exactly one file is moved into it: among the files of the
    other sets that hold at least two files at that moment (so a set is
    never emptied to fill another), the one whose hash percentage is
    nearest the centre of the empty set's band.  The centres are
    ``validation_percentage / 2`` for validation,
    ``validation_percentage + testing_percentage / 2`` for testing and
    midway between ``validation_percentage + testing_percentage`` and
    100 for training.  A tie (in practice only between files whose hashed
    names are equal) goes to the first file by relative path.  The giving
    set is usually the neighbouring band, but it can be any set with two
    or more files, the one that gave for an earlier move included.  With
    three or more files a donor always exists, so every class of three or
    more files has a file in every set asked for; a moved file is never
    moved again, and at most two files per class are moved.

    A class of one or two files is never changed: any set may be empty,
    training included (`~astroclusterclf.retrain.retrain` then stops with
    a `~astroclusterclf.exceptions.DatasetError`).

    Moves are not limited to tiny classes.  With the default 10 % and
    10 %, a class of ``n`` files has an empty validation or testing set
    by hash with a probability of about ``2 * 0.9**n - 0.8**n``: more
    than half of the classes of 10 files, about a quarter at 20, 1 % at
    50.

    The result is still deterministic (the same file names and
    percentages give the same sets), but the moves depend on the whole
    class: adding, removing or renaming a file can bring a moved file
    back to its hash set, move a different file, or, when a class grows
    from two to three files, move one for the first time.  Classes where
    every set asked for receives a file by hash both before and after the
    change keep all their files where they were.  ``_nohash_`` files that
    share a hash are moved one at a time, so a move can separate them.
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
