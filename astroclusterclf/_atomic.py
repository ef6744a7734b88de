# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Atomic file writing: never a half-written output.

Every file astroclusterclf writes goes through `atomic_write`: the content
is written to a temporary file in the destination folder, which is then
renamed over the destination with `os.replace` (atomic on POSIX and
Windows within one file system).  On any failure the temporary file is
removed and the destination is left as it was.
"""

import os
import secrets
from pathlib import Path

__all__ = []


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
        Permissions of the result (default: what a new file gets).
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
    # A fresh unique name that does not exist yet: the writer creates the
    # file itself (astropy's writers refuse to overwrite), so it also gets
    # the usual permissions of a new file, not tempfile's private 0600.
    tmp = str(target.parent / f'.{target.name}.{secrets.token_hex(8)}.tmp{suffix}')
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
