# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Read PyTorch ``.pth`` checkpoints (state dicts) without PyTorch.

Both serialization formats of ``torch.save`` are understood:

* the zip format (PyTorch >= 1.6): ``<prefix>/data.pkl`` holds the pickled
  object, each tensor storage is a member ``<prefix>/data/<key>``;
* the legacy format: a stream of pickles (magic number, protocol version,
  system info, the object, the list of storage keys) followed by the raw
  bytes of each storage, each preceded by its element count as a
  little-endian 64-bit integer.

A pickle can run arbitrary code when it is loaded, so the object pickle is
read with a restricted `pickle.Unpickler`: it only resolves
``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter``,
``collections.OrderedDict`` and the ``torch.<Type>Storage`` classes, each
mapped to a small function of this module (nothing is imported from
``torch``).  Any other global makes the file a
`~astroclusterclf.WeightsIntegrityError`.  Tensors become `numpy.ndarray`
built from the storage bytes, offset, shape and strides (bounds-checked).

Examples
--------
>>> from astroclusterclf.backbones.pth import read_pth
>>> state = read_pth(path, sha256=EXPECTED)  # doctest: +SKIP
>>> state['_conv_stem.weight'].shape  # doctest: +SKIP
(32, 3, 3, 3)
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from ..exceptions import WeightsIntegrityError, WeightsNotFoundError
from ..hashing import file_sha256

__all__ = ['read_pth']

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001

#: ``torch.<name>`` storage classes and the NumPy dtypes of their elements.
_STORAGE_DTYPES = {
    'FloatStorage': np.dtype('<f4'),
    'DoubleStorage': np.dtype('<f8'),
    'HalfStorage': np.dtype('<f2'),
    'LongStorage': np.dtype('<i8'),
    'IntStorage': np.dtype('<i4'),
    'ShortStorage': np.dtype('<i2'),
    'CharStorage': np.dtype('i1'),
    'ByteStorage': np.dtype('u1'),
    'BoolStorage': np.dtype('?'),
}


class _StorageType:
    """Stands in for a ``torch.<Type>Storage`` class inside the pickle."""

    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """One tensor storage: its dtype, element count and (later) its data."""

    def __init__(self, dtype, numel, key):
        self.dtype = dtype
        self.numel = numel
        self.key = key
        self.data = None   # 1-D ndarray, filled when the bytes are read


class _TensorRef:
    """A tensor whose storage bytes may not have been read yet."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride,
                       requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise WeightsIntegrityError('tensor record without a storage')
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only knows the records of a tensor state dict."""

    def __init__(self, file, *, name, storages, persistent=True):
        super().__init__(file)
        self._name = name
        self._storages = storages
        self._persistent = persistent

    def find_class(self, module, name):
        if module == 'torch._utils' and name == '_rebuild_tensor_v2':
            return _rebuild_tensor_v2
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsIntegrityError(
            f'{self._name}: refusing to load {module}.{name} from the '
            'checkpoint; only tensor records are allowed in a weights file')

    def persistent_load(self, pid):
        if not self._persistent:
            raise WeightsIntegrityError(
                f'{self._name}: unexpected storage reference')
        if (not isinstance(pid, tuple) or len(pid) < 5
                or pid[0] != 'storage'
                or not isinstance(pid[1], _StorageType)):
            raise WeightsIntegrityError(
                f'{self._name}: malformed storage reference {pid!r:.80}')
        _, storage_type, key, _location, numel = pid[:5]
        key = str(key)
        if not isinstance(numel, int) or numel < 0:
            raise WeightsIntegrityError(
                f'{self._name}: storage {key} has an invalid size')
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, numel, key)
        return self._storages[key]


def _load_restricted(f, *, name, storages, persistent=True):
    try:
        return _RestrictedUnpickler(f, name=name, storages=storages,
                                    persistent=persistent).load()
    except WeightsIntegrityError:
        raise
    except Exception as exc:
        raise WeightsIntegrityError(
            f'{name}: corrupt checkpoint pickle ({exc})') from exc


def _materialize(obj, name):
    """Turn the unpickled object into an ordered dict of arrays."""
    if not isinstance(obj, dict):
        raise WeightsIntegrityError(
            f'{name}: expected a state dict, found {type(obj).__name__}')
    out = collections.OrderedDict()
    for key, ref in obj.items():
        if not isinstance(key, str) or not isinstance(ref, _TensorRef):
            raise WeightsIntegrityError(
                f'{name}: entry {key!r:.60} is not a tensor')
        out[key] = _tensor_to_array(ref, name, key)
    return out


def _tensor_to_array(ref, name, key):
    data = ref.storage.data
    if data is None:
        raise WeightsIntegrityError(
            f'{name}: the bytes of storage {ref.storage.key} ({key}) are '
            'missing')
    size, stride, offset = ref.size, ref.stride, ref.offset
    if (len(size) != len(stride) or any(s < 0 for s in size)
            or any(s < 0 for s in stride) or offset < 0):
        raise WeightsIntegrityError(f'{name}: tensor {key} has a bad layout')
    count = int(np.prod(size, dtype=np.int64))
    if count:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= data.size:
            raise WeightsIntegrityError(
                f'{name}: tensor {key} reaches past the end of its storage')
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size,
        strides=tuple(s * itemsize for s in stride), writeable=False)
    return np.array(view, copy=True, order='C')


def _read_zip(path, name):
    storages = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
            pkl = [m for m in members
                   if m == 'data.pkl' or m.endswith('/data.pkl')]
            if len(pkl) != 1:
                raise WeightsIntegrityError(
                    f'{name}: zip checkpoint without a single data.pkl')
            prefix = pkl[0][:-len('data.pkl')]
            byteorder = prefix + 'byteorder'
            if byteorder in members and zf.read(byteorder) != b'little':
                raise WeightsIntegrityError(
                    f'{name}: big-endian checkpoints are not supported')
            with zf.open(pkl[0]) as f:
                obj = _load_restricted(io.BytesIO(f.read()), name=name,
                                       storages=storages)
            for key, storage in storages.items():
                member = f'{prefix}data/{key}'
                if member not in members:
                    raise WeightsIntegrityError(
                        f'{name}: storage member {member} is missing')
                raw = zf.read(member)
                nbytes = storage.numel * storage.dtype.itemsize
                if len(raw) < nbytes:
                    raise WeightsIntegrityError(
                        f'{name}: storage {key} is truncated')
                storage.data = np.frombuffer(raw[:nbytes],
                                             dtype=storage.dtype)
    except zipfile.BadZipFile as exc:
        raise WeightsIntegrityError(f'{name}: corrupt zip ({exc})') from exc
    return obj


def _read_legacy(f, name):
    storages = {}
    header = []
    for _ in range(3):
        header.append(_load_restricted(f, name=name, storages=storages,
                                       persistent=False))
    magic, protocol, sys_info = header
    if magic != _LEGACY_MAGIC:
        raise WeightsIntegrityError(f'{name}: not a PyTorch checkpoint')
    if protocol != _LEGACY_PROTOCOL:
        raise WeightsIntegrityError(
            f'{name}: unsupported checkpoint protocol {protocol!r}')
    if not isinstance(sys_info, dict) or not sys_info.get('little_endian'):
        raise WeightsIntegrityError(
            f'{name}: big-endian checkpoints are not supported')
    obj = _load_restricted(f, name=name, storages=storages)
    keys = _load_restricted(f, name=name, storages=storages,
                            persistent=False)
    if (not isinstance(keys, list)
            or sorted(map(str, keys)) != sorted(storages)):
        raise WeightsIntegrityError(
            f'{name}: the storage key list does not match the tensors')
    for key in keys:
        storage = storages[str(key)]
        head = f.read(8)
        if len(head) != 8:
            raise WeightsIntegrityError(f'{name}: truncated checkpoint')
        (numel,) = struct.unpack('<q', head)
        if numel != storage.numel:
            raise WeightsIntegrityError(
                f'{name}: storage {key} has {numel} elements, '
                f'expected {storage.numel}')
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise WeightsIntegrityError(f'{name}: truncated checkpoint')
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return obj


def read_pth(path, *, sha256=None):
    """Read a PyTorch state-dict checkpoint into NumPy arrays.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The ``.pth`` file (zip or legacy ``torch.save`` format).
    sha256 : str, optional
        Expected SHA-256 hex digest of the file; checked before anything
        is unpickled.

    Returns
    -------
    state_dict : `collections.OrderedDict`
        Parameter and buffer names mapped to `numpy.ndarray` (C-contiguous
        copies with the tensors' shapes and dtypes).

    Raises
    ------
    WeightsNotFoundError
        If the file does not exist.
    WeightsIntegrityError
        If the checksum differs, the file is truncated or corrupt, or the
        pickle references anything other than tensor records.
    """
    path = os.fspath(path)
    name = path
    if not os.path.isfile(path):
        raise WeightsNotFoundError(f'{name}: weights file not found')
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise WeightsIntegrityError(
                f'{name}: SHA-256 checksum mismatch (expected {sha256}, got '
                f'{actual}); the file is corrupt or not the expected '
                'checkpoint, reinstall the package that provides it')
    if zipfile.is_zipfile(path):
        obj = _read_zip(path, name)
    else:
        with open(path, 'rb') as f:
            obj = _read_legacy(f, name)
    return _materialize(obj, name)
