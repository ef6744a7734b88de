# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Streamed, resumable results: a folder of finished chunks beside the output.

A survey catalog takes hours to classify.  Its rows are classified in
chunks (a group of rows cut from one tile); each finished chunk is written
at once, atomically, to ``<output>.parts/``, so a run killed at any point
(Ctrl-C, SIGKILL, a lost node) loses at most the chunks in flight.  The
folder also holds a manifest that identifies the run (model, catalog,
images, cutout size): a rerun with ``resume=True`` (``--resume``) checks it
and recomputes only the missing chunks; a rerun without it refuses to touch
the folder.  When every chunk is done, the final table is assembled and
written atomically, and the folder is removed.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from astroclusterclf._chunks import ChunkStore
>>> with tempfile.TemporaryDirectory() as tmp:
...     store = ChunkStore.open(pathlib.Path(tmp) / 'out.ecsv', {'run': 1}, resume=False)
...     store.write(0, rows=np.array([0, 1]), values={'x': np.array([1.0, 2.0])})
...     again = ChunkStore.open(pathlib.Path(tmp) / 'out.ecsv', {'run': 1}, resume=True)
...     print(sorted(again.done), again.n_rows_done)
[0] 2
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .exceptions import OutputError

__all__ = ['ChunkStore']

_MANIFEST = 'manifest.json'


class ChunkStore:
    """The finished chunks of one run, in ``<output>.parts/``.

    Use `ChunkStore.open`.

    Parameters
    ----------
    folder : str or `~pathlib.Path`
        The parts folder (see `folder_for`); it is neither created nor
        checked here.
    manifest : dict or None
        What identifies the run (as read back from JSON).
    """

    def __init__(self, folder, manifest):
        self.folder = Path(folder)
        self.manifest = manifest
        self.done = {}          # chunk id -> path

    @staticmethod
    def folder_for(output):
        """The parts folder of an output file.

        Parameters
        ----------
        output : str or `~pathlib.Path`
            The final output file.

        Returns
        -------
        folder : `~pathlib.Path`
            ``<output>.parts`` beside it (it need not exist).
        """
        output = Path(output)
        return output.with_name(output.name + '.parts')

    @classmethod
    def open(cls, output, manifest, *, resume):
        """Open (or create) the parts folder of ``output``.

        Parameters
        ----------
        output : str or `~pathlib.Path`
            The final output file.
        manifest : dict
            What identifies the run (JSON-serializable).
        resume : bool
            Continue from the chunks of an interrupted run with the same
            manifest.  Without it, partial results are refused.

        Returns
        -------
        store : `ChunkStore`
            The store, with the chunks an earlier run finished in ``done``
            (none for a new folder, which is created with the manifest).

        Raises
        ------
        OutputError
            Partial results exist and ``resume`` is False; or they belong
            to another run (another model, catalog, images or size).
        """
        folder = cls.folder_for(output)
        text = json.dumps(manifest, sort_keys=True, default=str)
        store = cls(folder, json.loads(text))
        if folder.exists():
            if not folder.is_dir():
                raise OutputError(f'{folder}: the parts folder of {output} is a file')
            if not resume:
                raise OutputError(
                    f'{output}: partial results of an interrupted run are in {folder}; '
                    'continue it with resume=True, or remove the folder')
            try:
                found = json.loads((folder / _MANIFEST).read_text())
            except (OSError, ValueError):
                found = None
            if found != store.manifest:
                raise OutputError(
                    f'{folder}: these partial results belong to another run (other '
                    'model, catalog, images or cutout size); remove the folder to '
                    'start again')
            for path in folder.glob('chunk-*.npz'):
                try:
                    chunk_id = int(path.stem.split('-')[1])
                except (IndexError, ValueError):
                    continue
                store.done[chunk_id] = path
            return store
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f'{folder}: cannot create the parts folder '
                              f'({exc.strerror or exc})') from None
        atomic_write(folder / _MANIFEST, lambda tmp: Path(tmp).write_text(text))
        return store

    @classmethod
    def found(cls, output):
        """``(chunks, rows)`` finished by an earlier run of ``output`` (0, 0
        when there is none), read without checking whose they are.

        Parameters
        ----------
        output : str or `~pathlib.Path`
            The final output file.

        Returns
        -------
        n_chunks : int
            Finished chunks in its parts folder.
        n_rows : int
            Catalog rows in those chunks.
        """
        folder = cls.folder_for(output)
        if not folder.is_dir():
            return 0, 0
        store = cls(folder, None)
        for path in folder.glob('chunk-*.npz'):
            store.done[path.stem] = path
        return len(store.done), store.n_rows_done

    @property
    def n_rows_done(self):
        """Rows in the finished chunks."""
        total = 0
        for path in self.done.values():
            with np.load(path, allow_pickle=False) as archive:
                total += len(archive['rows'])    # only this array is read
        return total

    def write(self, chunk_id, *, rows, values):
        """Write one finished chunk atomically: ``rows`` (catalog row
        indices) and ``values`` (arrays with one entry per row).

        Parameters
        ----------
        chunk_id : int
            Number of the chunk (its file is ``chunk-<chunk_id>.npz``).
        rows : array-like of int
            Catalog row indices of the chunk.
        values : dict
            ``{name: array-like}``, one entry per row each.
        """
        path = self.folder / f'chunk-{int(chunk_id):07d}.npz'
        arrays = {'rows': np.asarray(rows, np.int64)}
        arrays.update({f'v_{name}': np.asarray(value) for name, value in values.items()})

        def write(tmp):
            with open(tmp, 'wb') as f:
                np.savez(f, **arrays)
        atomic_write(path, write, sweep=False)
        self.done[int(chunk_id)] = path

    def read(self, chunk_id):
        """``{'rows': ..., name: ...}`` of a finished chunk.

        Parameters
        ----------
        chunk_id : int
            Number of a finished chunk (a key of ``done``).

        Returns
        -------
        data : dict
            ``'rows'``: the catalog row indices (int64), and one array per
            name given to `write`.
        """
        with np.load(self.done[chunk_id], allow_pickle=False) as archive:
            data = {'rows': archive['rows']}
            data.update({key[2:]: archive[key] for key in archive.files
                         if key.startswith('v_')})
        return data

    def remove(self):
        """Remove the parts folder (after the final table is written)."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                os.unlink(path)
            shutil.rmtree(self.folder, ignore_errors=True)
