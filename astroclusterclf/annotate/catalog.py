# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Catalog files: reading a catalog in any astropy format, checking an output
path before any work, and writing a table atomically.
"""

import importlib.util
import logging
import os
import warnings
from pathlib import Path

from astropy import units as u
from astropy.io import registry
from astropy.table import Table

from .._atomic import atomic_write, check_writable
from ..exceptions import AstroClusterClfError, CatalogError, OutputError

__all__ = ['read_catalog', 'write_table']

log = logging.getLogger(__name__)
_VOTABLE_SUFFIXES = ('.xml', '.vot', '.votable')


# -- table files -------------------------------------------------------------

def read_catalog(path, *, format=None):
    """Read a catalog file with `astropy.table.Table.read`.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        ECSV, FITS, VOTable, CSV, ... (format from the extension or
        the content).
    format : str, optional
        An astropy table format name, when it cannot be guessed.

    Returns
    -------
    table : `~astropy.table.Table`
        The catalog (unknown units are not an error).

    Raises
    ------
    CatalogError
        The file is missing or cannot be read as a table.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f'{path}: catalog file not found')
    try:
        with warnings.catch_warnings():
            # Unknown units etc. are astropy's business, not fatal here.
            warnings.simplefilter('ignore', u.UnitsWarning)
            return Table.read(path, format=format)
    except Exception as exc:  # the registry and the readers raise many types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogError(f'{path}: cannot read as a table ({message})') from None


def check_table_output(path, *, format=None, overwrite=False):
    """Check that a table can be written to ``path`` before doing the work.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Output file.
    format : str, optional
        An astropy table format name (default: from the extension).
    overwrite : bool, optional
        Whether an existing file may be replaced.

    Returns
    -------
    format : str
        The astropy table format that will be used.

    Raises
    ------
    OutputError
        The folder does not exist or does not accept a new file, the file
        exists (without ``overwrite``), is a folder, is write-protected or
        hard-linked, or the format is unknown.

    Examples
    --------
    >>> from astroclusterclf.annotate import check_table_output
    >>> check_table_output('catalog.ecsv'), check_table_output('catalog.vot')
    ('ascii.ecsv', 'votable')
    """
    path = Path(path)
    check_writable(path, overwrite=overwrite)
    if format is not None:
        if format not in registry.get_formats(Table, 'Write')['Format']:
            raise OutputError(f'{path}: unknown table format {format!r}')
        return _check_writer(path, format)
    if path.suffix.lower() in _VOTABLE_SUFFIXES:
        # astropy identifies VOTables only when reading
        return 'votable'
    formats = registry.identify_format('write', Table, os.fspath(path), None, [], {})
    if len(formats) > 1:
        # e.g. '.xml' for several VOTable flavours: prefer the plain ones
        formats = [f for f in formats if f in ('votable', 'fits', 'ascii.ecsv')] or formats
    if len(formats) != 1:
        problem = ('cannot tell the table format from the extension' if not formats
                   else f'ambiguous table format ({", ".join(formats)})')
        raise OutputError(f'{path}: {problem}; use .ecsv, .fits, .xml or .vot '
                          '(VOTable), .csv, ... or give the format')
    return _check_writer(path, formats[0])


#: Table formats whose astropy writer needs an optional package: the
#: package, and the astroclusterclf extra that installs it.
_WRITER_NEEDS = {'parquet': ('pyarrow', 'survey'), 'pandas.': ('pandas', 'survey')}


def _check_writer(path, format):
    """The format, once its writer's optional package is known to be
    importable: a missing one is found before any work, not at the end."""
    for prefix, (package, extra) in _WRITER_NEEDS.items():
        if format.startswith(prefix) and importlib.util.find_spec(package) is None:
            raise OutputError(f'{path}: writing {format} tables needs {package}; install '
                              f'it with pip install "astroclusterclf[{extra}]"')
    return format


def write_table(table, path, *, format=None, overwrite=False):
    """Write a table atomically (temporary file, then `os.replace`).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table.
    path : str or `~pathlib.Path`
        Output file; the format comes from its extension (``.ecsv``,
        ``.fits``, ``.xml`` or ``.vot`` for VOTable, ...) unless given.
    format : str, optional
        An astropy table format name.
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    path : `~pathlib.Path`
        The file written.

    Raises
    ------
    OutputError
        The file exists (without ``overwrite``), its folder does not
        exist, the format is unknown, or the table cannot be written in
        that format.
    """
    path = Path(path)
    format = check_table_output(path, format=format, overwrite=overwrite)

    def write(tmp):
        table.write(tmp, format=format, overwrite=True)

    try:
        atomic_write(path, write)
    except AstroClusterClfError:
        raise
    except Exception as exc:  # the writers raise many types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(f'{path}: cannot write the table as {format} '
                          f'({message})') from None
    log.info('wrote %s (%s, %d rows)', path, format, len(table))
    return path
