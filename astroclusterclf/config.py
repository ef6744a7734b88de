# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Configuration of astroclusterclf (astropy configuration system).

Only where files go is configurable here, never anything that changes a
scientific result.

Examples
--------
The environment variable wins over the configuration item:

>>> import os
>>> from astroclusterclf.config import CACHE_ENV_VAR, cache_dir, conf
>>> saved = os.environ.pop(CACHE_ENV_VAR, None)
>>> with conf.set_temp('cache_dir', '/tmp/acc-cache'):
...     print(cache_dir())
...     os.environ[CACHE_ENV_VAR] = '/tmp/acc-env-cache'
...     print(cache_dir())
/tmp/acc-cache
/tmp/acc-env-cache
>>> del os.environ[CACHE_ENV_VAR]
>>> if saved is not None:
...     os.environ[CACHE_ENV_VAR] = saved
"""

import os
from pathlib import Path

from astropy import config as _config

__all__ = ['Conf', 'conf', 'cache_dir', 'max_image_bytes', 'CACHE_ENV_VAR']

#: Environment variable that overrides `Conf.cache_dir`.
CACHE_ENV_VAR = 'ASTROCLUSTERCLF_CACHE_DIR'


class Conf(_config.ConfigNamespace):
    """Configuration parameters for `astroclusterclf`."""

    cache_dir = _config.ConfigItem(
        '',
        'Directory for converted backbones and other caches. Empty means '
        '<astropy cache directory>/astroclusterclf (e.g. '
        '~/.cache/astropy/astroclusterclf). The environment variable '
        'ASTROCLUSTERCLF_CACHE_DIR, when set, takes precedence.')

    max_image_mib = _config.ConfigItem(
        512,
        'Largest image, in MiB, that is read whole: the size a FITS header '
        'declares (axes times bytes per pixel), the decompressed size of a '
        '.gz file, and the size of one catalog cutout. Larger inputs are '
        'refused with an error before any memory is allocated (a guard '
        'against decompression bombs).', cfgtype='integer')


conf = Conf()


def cache_dir():
    """Return the cache directory as a `~pathlib.Path` (not created).

    The precedence is: the ``ASTROCLUSTERCLF_CACHE_DIR`` environment
    variable, then ``conf.cache_dir``, then
    ``<astropy cache dir>/astroclusterclf``.

    Returns
    -------
    path : `~pathlib.Path`
        The cache directory (``~`` expanded); it need not exist.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    if conf.cache_dir:
        return Path(conf.cache_dir).expanduser()
    # get_cache_dir: in astropy 6.0 (get_cache_dir_path came later).
    return Path(_config.get_cache_dir()) / 'astroclusterclf'


def max_image_bytes():
    """Return the size guard `Conf.max_image_mib` in bytes.

    Returns
    -------
    nbytes : int
        ``conf.max_image_mib`` MiB, in bytes.

    Examples
    --------
    >>> from astroclusterclf.config import conf, max_image_bytes
    >>> with conf.set_temp('max_image_mib', 1):
    ...     print(max_image_bytes())
    1048576
    """
    return int(conf.max_image_mib) * 1024 * 1024
