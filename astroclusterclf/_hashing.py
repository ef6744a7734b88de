# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Content hashes of files: the keys of the bottleneck cache, the ids of
model files and the integrity checks of weight files."""

import hashlib

__all__ = ['file_sha256']


def file_sha256(path, *, chunk_size=1 << 20):
    """Return the SHA-256 hex digest of the bytes of the file at ``path``.

    Parameters
    ----------
    path : str or `os.PathLike`
        The file.
    chunk_size : int, optional
        Bytes read at a time.

    Returns
    -------
    digest : str
        64 hexadecimal digits.

    Examples
    --------
    >>> import os, tempfile
    >>> from astroclusterclf._hashing import file_sha256
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, 'x.bin')
    ...     with open(p, 'wb') as f:
    ...         _ = f.write(b'abc')
    ...     file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
