# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Atomic writing: a failure never leaves a half-written output."""

import os
import stat

import pytest

from astroclusterclf._atomic import atomic_write


def test_replaces_target_and_keeps_suffix(tmp_path):
    target = tmp_path / 'table.fits.gz'
    target.write_bytes(b'old')
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert tmp.endswith('.fits.gz')
        assert not os.path.exists(tmp)   # the writer creates it
        with open(tmp, 'wb') as f:
            f.write(b'new')

    assert atomic_write(target, write) == target
    assert target.read_bytes() == b'new'
    assert os.path.dirname(seen[0]) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['table.fits.gz']


def test_failure_leaves_target_intact(tmp_path):
    target = tmp_path / 'model.keras'
    target.write_bytes(b'original')

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'half')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        atomic_write(target, write)
    assert target.read_bytes() == b'original'
    assert [p.name for p in tmp_path.iterdir()] == ['model.keras']


def test_permissions_are_not_private(tmp_path):
    target = tmp_path / 'a.txt'
    atomic_write(target, lambda tmp: open(tmp, 'w').close())
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_make_parents(tmp_path):
    target = tmp_path / 'new' / 'folder' / 'a.txt'
    atomic_write(target, lambda tmp: open(tmp, 'w').close(), make_parents=True)
    assert target.exists()
