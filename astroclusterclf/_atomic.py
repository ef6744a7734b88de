# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Atomic file writing: never a half-written output.

Every file astroclusterclf writes goes through `atomic_write`: the content
is written to a temporary file in the destination folder, which is then
renamed over the destination with `os.replace` (atomic on POSIX and
Windows within one file system).  On any failure the temporary file is
removed and the destination is left as it was.
"""

import os
import tempfile
from pathlib import Path

__all__ = []


def _read_umask():
    # os.umask can only be read by setting it, which is process-wide and
    # racy with threads creating files; read it once, at import.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


#: Permissions of a new file under the process umask.
_DEFAULT_MODE = 0o666 & ~_read_umask()


def atomic_write(target, write, *, mode=None, make_parents=False):
    """Call ``write(temporary_path)``, then move the result to ``target``.

    Parameters
    ----------
    target : str or `~pathlib.Path`
        The file to (re)place.
    write : callable
        Called with the temporary path (a `str` with the same suffix as
        ``target``, including ``.gz``, so writers that choose a format by
        extension work).
    mode : int, optional
        Permissions of the result (default: what a new file gets, rather
        than `tempfile`'s private 0600).
    make_parents : bool, optional
        Create the destination folder if needed.

    Returns
    -------
    target : `~pathlib.Path`
    """
    target = Path(target)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    suffix = ''.join(target.suffixes[-2:]) if target.name.lower().endswith(
        '.gz') else target.suffix
    # A fresh unique name; the file is removed again so that writers which
    # refuse to overwrite (astropy's) create it themselves.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.',
                               suffix=f'.tmp{suffix}')
    os.close(fd)
    os.unlink(tmp)
    try:
        write(tmp)
        os.chmod(tmp, _DEFAULT_MODE if mode is None else mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
