# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The model file: its members and the schema of its metadata.

A model file is ONE Keras ``.keras`` zip archive with three kinds of
member:

- Keras' own (the model: backbone(s) and head);
- `METADATA_MEMBER`, JSON: the entries of `FIELDS`;
- `OOD_MEMBER`, optional, NumPy ``.npz``: the description of the training
  features (`~astroclusterclf.ood.FeatureDensity`).

This module is the one writer (`write_model_file`) and the one reader
(`read_model_file`, which checks every entry's type with
`check_metadata` and brings files of earlier versions up to this one
with `upgrade`) of that layout; `~astroclusterclf.ClusterClassifier` uses
them and nothing else opens the archive.

Versions: 0 (no ``format_version``: the first development files), 1
(calibration, out-of-distribution description, training frames,
selection, fine-tuning), 2 (models of several views, the head's kind,
the out-of-distribution false-alarm rate).  A file of a newer version
than `FORMAT_VERSION` is refused with a message to upgrade.

Examples
--------
>>> from astroclusterclf.modelfile import FIELDS, FORMAT_VERSION
>>> FORMAT_VERSION
2
>>> FIELDS['views'].since, FIELDS['views'].types
(2, (<class 'list'>,))
"""

import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._atomic import atomic_write
from .exceptions import ModelFileError

__all__ = ['FIELDS', 'FORMAT_VERSION', 'METADATA_MEMBER', 'OOD_MEMBER', 'Field',
           'check_metadata', 'upgrade', 'read_model_file', 'write_model_file']

#: Name of the JSON member holding the metadata inside the ``.keras`` zip.
METADATA_MEMBER = 'astroclusterclf.json'

#: Member holding the description of the training features.
OOD_MEMBER = 'astroclusterclf_ood.npz'

#: Largest metadata member accepted (the labels and settings need a few kB).
MAX_METADATA_BYTES = 1 << 20

#: Largest OOD member accepted (k x d float32: 320 kB for 64 x 1280).
MAX_OOD_BYTES = 64 << 20

#: Version of the metadata layout written.
FORMAT_VERSION = 2


class Field(NamedTuple):
    """One metadata entry: its JSON types, the version that added it and
    what it holds.

    Attributes
    ----------
    types : tuple of type
        The Python types its JSON value may have (``type(None)`` when it
        may be null).
    since : int
        The `FORMAT_VERSION` that added it (0: present from the start).
    description : str
        What it holds, in a few words.
    """

    types: tuple
    since: int
    description: str


_NONE = type(None)

#: The metadata entries, by name.
FIELDS = {
    'format': Field((str,), 0, "always 'astroclusterclf'"),
    'format_version': Field((int,), 1, 'version of this layout'),
    'labels': Field((list,), 0, 'class labels, in the order of the outputs'),
    'preprocessing': Field((dict,), 0, 'normalization settings of the first input'),
    'backbone': Field((str,), 0, "backbone name(s), joined by '+'"),
    'input_size': Field((int,), 0, 'pixels of the first input'),
    'backbone_weights': Field((str,), 0, 'weights id of the first backbone'),
    'package_version': Field((str,), 0, 'astroclusterclf version that wrote it'),
    'created': Field((str,), 0, 'ISO 8601 UTC date'),
    'fine_tuned': Field((bool,), 0, 'whether the backbone was fine-tuned'),
    'fine_tuning': Field((dict, _NONE), 1, 'the fine-tuning report'),
    'training_steps': Field((int,), 0, 'SGD steps of the head'),
    'temperature': Field((float,), 1, 'calibration temperature'),
    'calibration': Field((dict,), 1, 'how the calibration was fitted, test figures'),
    'ood_threshold': Field((float,), 1, 'out-of-distribution threshold'),
    'ood_backbone': Field((str,), 0, 'weights id of the OOD view (version 0)'),
    'ood_view': Field((dict,), 1, 'backbone weights, input size, settings of the OOD view'),
    'training_frames': Field((dict, _NONE), 1, 'shapes and pixel scales of the training frames'),
    'selection': Field((list, _NONE), 1, 'cross-validated figures of the candidates'),
    'views': Field((list,), 2, 'backbone, weights id and settings of every input'),
    'blend': Field((dict,), 2, 'name and head groups of a blend of views'),
    'head': Field((str,), 2, "'logistic' or 'sgd'"),
    'ood_false_alarm_rate': Field((float,), 2, 'fraction of held-out images above the '
                                               'OOD threshold'),
}

_REQUIRED = ('format', 'labels')


def check_metadata(metadata, name):
    """Raise `ModelFileError` unless ``metadata`` is astroclusterclf
    metadata of a supported version with entries of the right types.

    Parameters
    ----------
    metadata : object
        The decoded JSON member.
    name : str or path-like
        The file, for the messages.
    """
    if not isinstance(metadata, dict) or metadata.get('format') != 'astroclusterclf':
        raise ModelFileError(f'{name}: {METADATA_MEMBER} is not astroclusterclf metadata')
    for key, field in FIELDS.items():
        if key not in metadata:
            continue
        value = metadata[key]
        # bool is an int in Python; a JSON float may be written as an int.
        types = tuple(t for t in field.types)
        if float in types:
            types += (int,)
        wrong = (not isinstance(value, types)
                 or (bool not in field.types and isinstance(value, bool)))
        if wrong:
            kind = ' or '.join('null' if t is _NONE else t.__name__ for t in field.types)
            raise ModelFileError(
                f'{name}: metadata entry {key!r} must be of type {kind}, '
                f'got {type(value).__name__} {str(value)[:40]!r}')
    version = metadata.get('format_version', 0)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f'{name}: model format version {version} is newer than this '
            f'astroclusterclf supports ({FORMAT_VERSION}); upgrade')
    temperature = metadata.get('temperature', 1.0)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ModelFileError(f'{name}: metadata entry \'temperature\' must be a positive '
                             f'number, got {temperature!r}')
    labels = metadata.get('labels')
    if (not labels or not all(isinstance(label, str) and label for label in labels)
            or len(set(labels)) != len(labels)):
        raise ModelFileError(f'{name}: metadata entry \'labels\' must be a non-empty '
                             'list of distinct, non-empty strings')


def upgrade(metadata):
    """A copy of checked metadata in the current layout.

    Entries that a file of an earlier version lacks get the values that
    describe what that version did: no temperature (1.0), the SGD head,
    one view.  Entries without such a value (an OOD threshold, the
    training frames) stay absent.

    Parameters
    ----------
    metadata : dict
        Metadata that passed `check_metadata`.

    Returns
    -------
    metadata : dict
    """
    out = dict(metadata)
    version = out.get('format_version', 0)
    out.setdefault('temperature', 1.0)
    if version < 2:
        out.setdefault('head', 'sgd')
    out['format_version'] = FORMAT_VERSION
    return out


def _read_member(archive, member, cap, name):
    """The bytes of a zip member, refused when it declares more than ``cap``
    bytes, and never more than ``cap`` read whatever it claims."""
    size = archive.getinfo(member).file_size
    if size > cap:
        raise ModelFileError(f'{name}: the {member} member declares {size} bytes, more '
                             f'than the {cap} it can need')
    with archive.open(member) as stream:
        data = stream.read(cap + 1)
    if len(data) > cap:
        raise ModelFileError(f'{name}: the {member} member is larger than it declares')
    return data


def read_model_file(path):
    """Read and check the metadata and the OOD member of a model file.

    Parameters
    ----------
    path : str or path-like
        The ``.keras`` file.

    Returns
    -------
    metadata : dict
        Checked and upgraded to `FORMAT_VERSION` (see `upgrade`); the
        version the file was written with is ``metadata['file_version']``.
    ood_bytes : bytes or None
        The `OOD_MEMBER`, when there is one.

    Raises
    ------
    ModelFileError
        Missing, a folder, not a zip, not an astroclusterclf model file,
        oversized or corrupt members, entries of the wrong type, or a newer
        version.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f'{path}: is a folder, not a model file')
    if not path.is_file():
        raise ModelFileError(f'{path}: model file not found')
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if METADATA_MEMBER not in names:
                raise ModelFileError(
                    f'{path}: not an astroclusterclf model file (no '
                    f'{METADATA_MEMBER} member; use '
                    'keras.saving.load_model for plain Keras files)')
            metadata = json.loads(_read_member(z, METADATA_MEMBER, MAX_METADATA_BYTES, path))
            ood_bytes = (_read_member(z, OOD_MEMBER, MAX_OOD_BYTES, path)
                         if OOD_MEMBER in names else None)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f'{path}: not a Keras .keras model file ({exc})') from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f'{path}: corrupt {METADATA_MEMBER} member ({exc})') from None
    check_metadata(metadata, path)
    file_version = metadata.get('format_version', 0)
    metadata = upgrade(metadata)
    metadata['file_version'] = file_version
    return metadata, ood_bytes


def write_model_file(path, save_keras, metadata, ood_bytes=None):
    """Write a model file atomically (a temporary file renamed into place).

    Parameters
    ----------
    path : str or path-like
        The ``.keras`` file.
    save_keras : callable
        ``save_keras(tmp_path)`` writes the Keras model there.
    metadata : dict
        The entries of `FIELDS` (checked before anything is written;
        ``format`` and ``format_version`` are set here).
    ood_bytes : bytes, optional
        The `OOD_MEMBER`.
    """
    metadata = {key: value for key, value in metadata.items() if key != 'file_version'}
    metadata.update(format='astroclusterclf', format_version=FORMAT_VERSION)
    check_metadata(metadata, path)
    text = json.dumps(metadata, indent=1, sort_keys=True)

    def write(tmp):
        save_keras(tmp)
        with zipfile.ZipFile(tmp, 'a', compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(METADATA_MEMBER, text)
            if ood_bytes is not None:
                z.writestr(OOD_MEMBER, ood_bytes)

    atomic_write(path, write, make_parents=True)
