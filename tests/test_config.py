# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Where the caches go, and the size guard."""

from pathlib import Path

from astropy.config import get_cache_dir, set_temp_cache

from astroclusterclf.config import CACHE_ENV_VAR, cache_dir, conf, max_image_bytes


def test_cache_dir_default(tmp_path, monkeypatch):
    """Without the variable or the item: astropy's cache folder (read with
    an API every supported astropy has)."""
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    with set_temp_cache(tmp_path), conf.set_temp('cache_dir', ''):
        assert cache_dir() == Path(get_cache_dir()) / 'astroclusterclf'


def test_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / 'env'))
    with conf.set_temp('cache_dir', str(tmp_path / 'item')):
        assert cache_dir() == tmp_path / 'env'
    monkeypatch.delenv(CACHE_ENV_VAR)
    with conf.set_temp('cache_dir', str(tmp_path / 'item')):
        assert cache_dir() == tmp_path / 'item'


def test_max_image_bytes():
    assert max_image_bytes() == 512 * 2**20
    with conf.set_temp('max_image_mib', 3):
        assert max_image_bytes() == 3 * 2**20
