# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Atomic file writing: never a half-written output.

Every file astroclusterclf writes goes through `atomic_write`: the content
is written to a temporary file in the destination folder, which is then
renamed over the destination with `os.replace` (atomic on POSIX and
Windows within one file system).  On any failure the temporary file is
removed and the destination is left as it was.

The writer also keeps these promises:

- a write-protected destination (no write permission bit) is refused,
  whoever runs the program (root included);
- a symbolic link is followed: the file it points to is replaced, the
  link stays a link;
- a file with several hard links is refused rather than split from its
  other names;
- an existing file keeps its permission bits;
- errors of the operating system (disk full, permission denied) name the
  destination, not the temporary file;
- temporary files are named ``.<name>.acc-tmp-<pid>-<random><suffix>``;
  those of processes that no longer run (killed, for example) are removed
  by the next write to the same destination.
"""

import errno
import os
import re
import secrets
import stat
from pathlib import Path

from .exceptions import OutputError

__all__ = []

_TEMP_TAG = '.acc-tmp-'


def _suffix(target):
    return (''.join(target.suffixes[-2:]) if target.name.lower().endswith('.gz')
            else target.suffix)


def temp_path(target):
    """A fresh temporary name for writing ``target`` (in its folder)."""
    target = Path(target)
    return target.parent / (f'.{target.name}{_TEMP_TAG}{os.getpid()}-'
                            f'{secrets.token_hex(6)}{_suffix(target)}')


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    except OSError:
        return True
    return True


def sweep_stale_temps(target):
    """Remove the temporary files that earlier, dead processes left while
    writing ``target``; return their paths."""
    target = Path(target)
    pattern = re.compile(re.escape(f'.{target.name}{_TEMP_TAG}') + r'(\d+)-[0-9a-f]+'
                         + re.escape(_suffix(target)) + '$')
    removed = []
    try:
        candidates = list(target.parent.iterdir())
    except OSError:
        return removed
    for path in candidates:
        match = pattern.match(path.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if _pid_alive(int(match.group(1))):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                continue
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def os_error_message(exc):
    """The reason of an `OSError`, without its file names."""
    if exc.errno == errno.ENOSPC:
        return 'no space left on device'
    if exc.errno == errno.EDQUOT:
        return 'disk quota exceeded'
    return exc.strerror or str(exc)


def check_writable(target, *, overwrite=True, probe=True):
    """Raise `OutputError` unless ``target`` can be (re)placed.

    Checks, without writing the target: it is not a folder, it exists only
    if ``overwrite``, it is not write-protected and has no other hard
    links, its folder exists and, with ``probe``, accepts a new file (a
    temporary file is created and removed: the check to make before long
    work).  Returns the real path to write (symbolic links followed).
    """
    target = Path(target)
    real = Path(os.path.realpath(target))
    if real.is_dir():
        raise OutputError(f'{target}: is a folder')
    if real.exists():
        if not overwrite:
            raise OutputError(f'{target}: output file exists (overwrite=True replaces it)')
        info = real.stat()
        if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) \
                or not os.access(real, os.W_OK):
            raise OutputError(f'{target}: the file is write-protected (mode '
                              f'{stat.S_IMODE(info.st_mode):04o}); not replacing it')
        if info.st_nlink > 1:
            raise OutputError(f'{target}: the file has {info.st_nlink} hard links; '
                              'replacing it would split it from its other names; '
                              'write to another file instead')
    folder = real.parent
    if not folder.is_dir():
        raise OutputError(f'{target}: output folder {folder} does not exist')
    if probe:
        path = temp_path(real)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise OutputError(f'{target}: cannot write in {folder} '
                              f'({os_error_message(exc)})') from None
        os.close(fd)
        os.unlink(path)
    return real


def atomic_write(target, write, *, mode=None, make_parents=False, sweep=True):
    """Call ``write(temporary_path)``, then move the result to ``target``.

    Parameters
    ----------
    target : str or `~pathlib.Path`
        The file to (re)place.  A symbolic link is followed.
    write : callable
        Called with the temporary path (a `str` with the same suffix as
        ``target``, including ``.gz``, so writers that choose a format by
        extension work).
    mode : int, optional
        Permissions of the result (default: those of the file replaced, or
        what a new file gets).
    make_parents : bool, optional
        Create the destination folder if needed.
    sweep : bool, optional
        First remove the temporary files that dead processes left for
        this destination (lists the folder: the bottleneck cache, which
        writes thousands of small entries, turns it off).

    Returns
    -------
    target : `~pathlib.Path`

    Raises
    ------
    OutputError
        The destination is a folder, write-protected or hard-linked, its
        folder is missing, or the system refuses the write (disk full,
        permissions); the message names ``target``.
    """
    target = Path(target)
    if make_parents:
        try:
            Path(os.path.realpath(target)).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f'{target}: cannot create the folder '
                              f'({os_error_message(exc)})') from None
    real = check_writable(target, probe=False)
    if mode is None and real.exists():
        mode = stat.S_IMODE(real.stat().st_mode)
    if sweep:
        sweep_stale_temps(real)
    # A fresh unique name that does not exist yet: the writer creates the
    # file itself (astropy's writers refuse to overwrite), so it also gets
    # the usual permissions of a new file, not tempfile's private 0600.
    tmp = str(temp_path(real))
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) \
                and exc.errno is not None:
            raise OutputError(f'{target}: cannot write the file '
                              f'({os_error_message(exc)})') from None
        raise
    return target
