# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Read PyTorch ``.pth`` checkpoints (state dicts) without PyTorch.

Both serialization formats of ``torch.save`` are understood:

* the zip format (PyTorch >= 1.6): ``<prefix>/data.pkl`` holds the pickled
  object, each tensor storage is a member ``<prefix>/data/<key>``;
* the legacy format: a stream of pickles (magic number, protocol version,
  system info, the object, the list of storage keys) followed by the raw
  bytes of each storage, each preceded by its element count as a
  little-endian 64-bit integer (old files may also reference *views*,
  an offset and size into one of these storages).

A checkpoint is untrusted input, and every way it can be wrong is a
`~astroclusterclf.WeightsIntegrityError` naming the file and the problem:

* A pickle can run arbitrary code when it is loaded, so the pickles are
  read by a restricted unpickler.  It resolves only
  ``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter``,
  ``collections.OrderedDict`` and the ``torch.<Type>Storage`` classes, each
  mapped to a small function or object of this module (nothing is imported
  from ``torch``); it calls nothing else, sets state (``BUILD``) only on a
  state dict (torch's ``_metadata``, which is dropped), fills only lists and
  dicts with string or integer keys, and refuses the opcodes a state dict
  never needs (``INST``, ``OBJ``, ``NEWOBJ``, extensions, sets, out-of-band
  buffers).  A pickle may take at most 2 MiB (a state dict takes about 150
  bytes per tensor).
* Sizes are checked against the bytes the file holds before anything is
  allocated: a storage's element count times its item size against the
  bytes left in a legacy file or the declared size of its zip member (which
  must match exactly, and is read only that far), each tensor's offset,
  shape and strides against its storage, and the arrays returned against
  the bytes read (views sharing a storage, such as tied weights, may
  repeat them a few times, not without bound).

Tensors become `numpy.ndarray` copies built from the storage bytes, offset,
shape and strides.

Examples
--------
>>> from astroclusterclf.backbones.pth import read_pth
>>> state = read_pth(path, sha256=EXPECTED)  # doctest: +SKIP
>>> state['_conv_stem.weight'].shape  # doctest: +SKIP
(32, 3, 3, 3)
"""

import collections
import io
import math
import os
import pickle
import pickletools
import struct
import zipfile
import zlib

import numpy as np

from ..exceptions import WeightsIntegrityError, WeightsNotFoundError
from .._hashing import file_sha256

__all__ = ['read_pth']

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
#: How a zip-format checkpoint starts (torch tells the formats apart so).
_ZIP_MAGIC = b'PK\x03\x04'
#: Bytes of a zip local file header before the name.
_ZIP_HEADER_SIZE = 30

#: The most bytes one pickle of a checkpoint may take.  The unpickler keeps
#: up to ~70 bytes of Python objects per pickle byte (and spends ~0.5 us on
#: it), so this also bounds its memory and time; a state dict takes ~150
#: bytes per tensor (EfficientNet-Lite0: 42 kB), 2 MiB is ~14,000 tensors.
_MAX_PICKLE_BYTES = 2 << 20
#: The arrays returned may hold this many times the storage bytes read
#: (plus `_OUTPUT_SLACK`): views that share a storage, as tied weights do,
#: repeat its bytes, but a few thousand views of one storage (or a
#: zero-stride view of a billion elements) are a memory bomb.
_MAX_OUTPUT_RATIO = 4
_OUTPUT_SLACK = 1 << 20
#: Sizes, offsets and strides are int64 in torch.
_MAX_INT = 2**63 - 1
#: Dimensions NumPy 1.x supports.
_MAX_NDIM = 32

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


class _Corrupt(Exception):
    """A problem with the checkpoint; `read_pth` prefixes the file name
    and raises it as `WeightsIntegrityError`."""


class _StorageType:
    """Stands in for a ``torch.<Type>Storage`` class inside the pickle."""

    __slots__ = ('name', 'dtype')

    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """One tensor storage: its key, dtype and element count, and (once
    read) its data.  A legacy-format storage *view* has a ``root``
    storage and an element ``offset`` into it."""

    __slots__ = ('key', 'dtype', 'numel', 'root', 'offset', 'data')

    def __init__(self, key, dtype, numel, root=None, offset=0):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.root = root
        self.offset = offset
        self.data = None   # 1-D ndarray of a root storage, once read

    @property
    def nbytes(self):
        return self.numel * self.dtype.itemsize


class _TensorRef:
    """A tensor whose storage bytes may not have been read yet."""

    __slots__ = ('storage', 'offset', 'size', 'stride')

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


def _kind(obj):
    """What a value found in the pickle is, with an article (never its
    repr: that can be huge, or take exponential time)."""
    if isinstance(obj, _TensorRef):
        return 'a tensor'
    if isinstance(obj, _Storage):
        return 'a storage'
    if isinstance(obj, _StorageType):
        return f'the torch.{obj.name} class'
    if any(obj is f for f in _CALLABLES):
        return f'the function {obj.__name__}'
    return f'a value of type {type(obj).__name__}'


def _text(value, limit=60):
    """A string from the file, shortened and made printable."""
    text = value if len(value) <= limit else value[:limit] + '...'
    return text.encode('ascii', 'backslashreplace').decode('ascii')


def _count(value, what):
    """``value`` as a size, offset or stride: an int in [0, 2**63)."""
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise _Corrupt(f'{what} is not an integer in [0, 2**63)')
    return value


def _shape(value, what):
    if type(value) not in (tuple, list) or len(value) > _MAX_NDIM:
        raise _Corrupt(f'tensor {what} is not a tuple of at most '
                       f'{_MAX_NDIM} integers')
    return tuple(_count(v, f'a tensor {what} entry') for v in value)


def _key(value):
    """A storage key: a string (torch writes decimal strings)."""
    if type(value) is int and 0 <= value <= _MAX_INT:
        return str(value)
    if type(value) is not str:
        raise _Corrupt('storage reference whose key is not a string')
    return value


# -- the callables a state-dict pickle may use ---------------------------

def _rebuild_tensor_v2(storage, storage_offset, size, stride,
                       requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise _Corrupt('tensor record without a storage')
    size = _shape(size, 'size')
    stride = _shape(stride, 'stride')
    if len(size) != len(stride):
        raise _Corrupt('tensor record whose size and stride differ in '
                       'length')
    return _TensorRef(storage, _count(storage_offset, 'a tensor offset'),
                      size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorRef):
        raise _Corrupt('parameter record without a tensor')
    return data


def _ordered_dict():
    # torch pickles an OrderedDict as a call without arguments followed by
    # SETITEMS; refusing arguments keeps keys from being hashed unchecked.
    return collections.OrderedDict()


_ordered_dict.__name__ = 'collections.OrderedDict'
_CALLABLES = (_rebuild_tensor_v2, _rebuild_parameter, _ordered_dict)

#: Opcodes that a ``torch.save`` pickle (protocol 2, or up to 4 with
#: ``pickle_protocol=``) uses; the others are refused.
_ALLOWED_OPCODES = frozenset({
    'PROTO', 'FRAME', 'STOP', 'MARK', 'POP', 'POP_MARK', 'DUP',
    'NONE', 'NEWTRUE', 'NEWFALSE', 'INT', 'BININT', 'BININT1', 'BININT2',
    'LONG', 'LONG1', 'LONG4', 'FLOAT', 'BINFLOAT',
    'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE', 'BINUNICODE',
    'SHORT_BINUNICODE', 'BINUNICODE8', 'BINBYTES', 'SHORT_BINBYTES',
    'BINBYTES8', 'EMPTY_TUPLE', 'TUPLE', 'TUPLE1', 'TUPLE2', 'TUPLE3',
    'EMPTY_LIST', 'LIST', 'APPEND', 'APPENDS',
    'EMPTY_DICT', 'DICT', 'SETITEM', 'SETITEMS',
    'GET', 'BINGET', 'LONG_BINGET', 'PUT', 'BINPUT', 'LONG_BINPUT',
    'MEMOIZE', 'GLOBAL', 'STACK_GLOBAL', 'REDUCE', 'BINPERSID', 'BUILD',
})
_OPCODE_NAMES = {op.code.encode('latin-1')[0]: op.name
                 for op in pickletools.opcodes}


class _Dispatch(dict):
    """Opcode table of `_RestrictedUnpickler`; a missing opcode is
    refused."""

    def __missing__(self, code):
        name = _OPCODE_NAMES.get(code, f'0x{code:02x}')
        raise _Corrupt(f'the pickle uses the {name} opcode, which a '
                       'weights file never needs')


def _dict_key(key):
    # Keys are hashed on insertion: a tuple key could take exponential
    # time (a DAG) or overflow the C stack (deep nesting) to hash.
    if type(key) is not str and type(key) is not int:
        raise _Corrupt(f'the pickle has a dict key of type {type(key).__name__}; '
                       'a weights file has only string keys')
    return key


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that only knows the records of a tensor state dict.

    It extends the pure-Python `pickle._Unpickler`, whose opcode table can
    be replaced (the C unpickler's cannot): every opcode that calls, sets
    state or fills a container checks its operands first.
    """

    def __init__(self, file, *, storages):
        super().__init__(file)
        self._storages = storages   # None: storage references not allowed

    def find_class(self, module, name):
        if module == 'torch._utils' and name == '_rebuild_tensor_v2':
            return _rebuild_tensor_v2
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'collections' and name == 'OrderedDict':
            return _ordered_dict
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Corrupt(
            f'refusing to load {_text(module)}.{_text(name)} from the '
            'checkpoint; only tensor records are allowed in a weights file')

    def persistent_load(self, pid):
        if self._storages is None:
            raise _Corrupt('unexpected storage reference')
        if (type(pid) is not tuple or len(pid) not in (5, 6)
                or type(pid[0]) is not str or pid[0] != 'storage'):
            raise _Corrupt('malformed storage reference (a weights file '
                           "has only ('storage', type, key, location, "
                           'size) records)')
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise _Corrupt('storage reference without a storage type')
        key = _key(key)
        numel = _count(numel, f'the size of storage {_text(key)}')
        storage = self._declare(key, storage_type.dtype, numel)
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return storage
        # A legacy-format view of (part of) a storage.
        if type(view) is not tuple or len(view) != 3:
            raise _Corrupt(f'malformed view of storage {_text(key)}')
        view_key = _key(view[0])
        offset = _count(view[1], f'the offset of storage view '
                                 f'{_text(view_key)}')
        size = _count(view[2], f'the size of storage view '
                               f'{_text(view_key)}')
        if offset + size > numel:
            raise _Corrupt(f'storage view {_text(view_key)} reaches past the '
                           f'end of storage {_text(key)}')
        return self._declare(view_key, storage_type.dtype, size,
                             root=storage, offset=offset)

    def _declare(self, key, dtype, numel, root=None, offset=0):
        storage = self._storages.get(key)
        if storage is None:
            storage = _Storage(key, dtype, numel, root, offset)
            self._storages[key] = storage
        elif (storage.dtype != dtype or storage.numel != numel
              or storage.root is not root or storage.offset != offset):
            raise _Corrupt(f'storage {_text(key)} is declared twice, with '
                           'different types or sizes')
        return storage

    # -- opcodes that call, set state or fill a container ----------------

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not any(func is f for f in _CALLABLES):
            raise _Corrupt(f'the pickle calls {_kind(func)}; a weights '
                           'file calls only tensor rebuilders')
        if type(args) is not tuple:
            raise _Corrupt('the pickle calls a function with malformed '
                           'arguments')
        self.stack[-1] = func(*args)

    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        # torch.save sets the state dict's ``_metadata`` (module versions)
        # this way; nothing else has state in a weights file.
        if type(inst) is not collections.OrderedDict:
            raise _Corrupt(f'the pickle sets the state of {_kind(inst)}; in '
                           'a weights file only a state dict has state')
        if type(state) is not dict:
            raise _Corrupt("the pickle sets a state dict's state to "
                           f'{_kind(state)}, not a dict')
        # the state is dropped: read_pth returns only the tensors

    def _fill_dict(self, target, items):
        if type(target) not in (dict, collections.OrderedDict):
            raise _Corrupt(f'the pickle sets items of {_kind(target)}')
        if len(items) % 2:
            raise _Corrupt('the pickle sets a dict key without a value')
        for i in range(0, len(items), 2):
            target[_dict_key(items[i])] = items[i + 1]

    def _load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._fill_dict(self.stack[-1], (key, value))

    def _load_setitems(self):
        items = self.pop_mark()
        self._fill_dict(self.stack[-1], items)

    def _load_dict(self):
        items = self.pop_mark()
        target = {}
        self._fill_dict(target, items)
        self.append(target)

    def _load_append(self):
        value = self.stack.pop()
        self._fill_list(self.stack[-1], [value])

    def _load_appends(self):
        items = self.pop_mark()
        self._fill_list(self.stack[-1], items)

    def _fill_list(self, target, items):
        if type(target) is not list:
            raise _Corrupt(f'the pickle appends to {_kind(target)}')
        target.extend(items)

    dispatch = _Dispatch(
        (code, load) for code, load in pickle._Unpickler.dispatch.items()
        if _OPCODE_NAMES.get(code) in _ALLOWED_OPCODES)
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends


def _unpickle(f, *, storages=None, limit):
    """Load one pickle from binary file ``f``, which holds ``limit`` more
    bytes; leave ``f`` just after it.

    The pickle is read from memory, at most `_MAX_PICKLE_BYTES` of it: a
    file object's ``read(n)`` allocates ``n`` bytes before reading, so a
    pickle length field of 2**40 read from the file would be a
    `MemoryError`, and from memory it is just a short read.
    """
    start = f.tell()
    data = f.read(min(limit, _MAX_PICKLE_BYTES))
    buf = io.BytesIO(data)
    try:
        obj = _RestrictedUnpickler(buf, storages=storages).load()
    except (_Corrupt, MemoryError):
        raise
    except Exception as exc:
        if buf.tell() < len(data):
            raise _Corrupt(f'corrupt checkpoint pickle ({type(exc).__name__}'
                           f': {str(exc):.200})') from None
        if limit > len(data):
            raise _Corrupt('a pickle in the checkpoint is larger than the '
                           f'{_MAX_PICKLE_BYTES >> 20} MiB a state dict '
                           'needs') from None
        raise _Corrupt('truncated checkpoint (a pickle ends early)') from None
    f.seek(start + buf.tell())
    return obj


# -- from the unpickled object to arrays --------------------------------

def _state_dict_refs(obj):
    """Check the unpickled object is a state dict of well-formed tensors
    and that the arrays it asks for fit the storages it declares."""
    if type(obj) not in (dict, collections.OrderedDict):
        raise _Corrupt(f'expected a state dict, found {_kind(obj)}')
    refs = collections.OrderedDict()
    roots = {}
    out_bytes = 0
    for key, ref in obj.items():
        if type(key) is not str:
            raise _Corrupt('a state dict key is not a string')
        if not isinstance(ref, _TensorRef):
            raise _Corrupt(f'entry {_text(key)} is not a tensor '
                           f'(it is {_kind(ref)})')
        storage = ref.storage
        itemsize = storage.dtype.itemsize
        # numpy refuses a shape whose nonzero dimensions overflow, even
        # when another dimension is 0
        if math.prod(max(n, 1) for n in ref.size) * itemsize > _MAX_INT:
            raise _Corrupt(f'tensor {_text(key)} has an impossible shape')
        count = math.prod(ref.size)
        if count:
            last = ref.offset + sum((n - 1) * s
                                    for n, s in zip(ref.size, ref.stride))
            if last >= storage.numel:
                raise _Corrupt(f'tensor {_text(key)} reaches past the end '
                               f'of its storage')
        out_bytes += count * itemsize
        root = storage.root or storage
        roots[root.key] = root
        refs[key] = ref
    in_bytes = sum(root.nbytes for root in roots.values())
    if out_bytes > _MAX_OUTPUT_RATIO * in_bytes + _OUTPUT_SLACK:
        raise _Corrupt(f'the tensors would take {out_bytes} bytes, more '
                       f'than {_MAX_OUTPUT_RATIO} times the {in_bytes} '
                       'bytes of their storages (overlapping views)')
    return refs, roots


def _to_array(ref):
    storage = ref.storage
    root = storage.root or storage
    data = root.data[storage.offset:storage.offset + storage.numel]
    if math.prod(ref.size) == 0:
        return np.zeros(ref.size, dtype=data.dtype)
    itemsize = data.dtype.itemsize
    # a dimension of size 1 is never stepped along: its stride may be
    # anything in torch, but must not overflow in NumPy
    strides = tuple(s * itemsize if n > 1 else 0
                    for n, s in zip(ref.size, ref.stride))
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset:], shape=ref.size, strides=strides, writeable=False)
    out = np.array(view, copy=True, order='C')
    if out.dtype == np.bool_:
        out = out.view(np.uint8) != 0   # bytes other than 0/1 are undefined
    return out


def _arrays(refs):
    return collections.OrderedDict((key, _to_array(ref))
                                   for key, ref in refs.items())


# -- the two file formats ------------------------------------------------

def _read_member(zf, info, nbytes, what, archive_size):
    """Read exactly ``nbytes`` from zip member ``info`` (which must declare
    that size), inflating no more than that."""
    name = _text(info.filename)
    if info.file_size < nbytes:
        raise _Corrupt(f'truncated checkpoint: zip member {name} holds '
                       f'{info.file_size} bytes, {what} needs {nbytes}')
    if info.file_size > nbytes:
        raise _Corrupt(f'zip member {name} declares {info.file_size} bytes, '
                       f'but {what} needs {nbytes}: refusing to inflate it')
    if info.header_offset < 0:
        raise _Corrupt(f'corrupt zip: member {name} starts before the file')
    if info.header_offset + info.compress_size > archive_size:
        raise _Corrupt(f'truncated checkpoint: zip member {name} reaches '
                       'past the end of the file')
    with zf.open(info) as f:
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise _Corrupt(f'truncated checkpoint: zip member {name} ends '
                       'early')
    return data


def _check_disjoint(infos):
    """Refuse zip members that share bytes: an "overlapping" zip bomb has
    many members inflate the same compressed bytes."""
    spans = sorted((i.header_offset,
                    # a lower bound of the entry's end (name length in
                    # characters, the local extra field left out)
                    i.header_offset + _ZIP_HEADER_SIZE + len(i.filename)
                    + i.compress_size,
                    i.filename) for i in infos)
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise _Corrupt(f'zip members {_text(name)} and {_text(other)} '
                           'overlap (a zip bomb)')


def _read_zip(f, archive_size):
    try:
        with zipfile.ZipFile(f) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            pkl = [m for m in infos
                   if m == 'data.pkl' or m.endswith('/data.pkl')]
            if len(pkl) != 1:
                raise _Corrupt('zip checkpoint without a single data.pkl')
            prefix = pkl[0][:-len('data.pkl')]
            order = infos.get(prefix + 'byteorder')
            if order is not None and (
                    order.file_size != len(b'little')
                    or _read_member(zf, order, len(b'little'), 'a byte order',
                                    archive_size) != b'little'):
                raise _Corrupt('big-endian checkpoints are not supported')
            info = infos[pkl[0]]
            if info.file_size > _MAX_PICKLE_BYTES:
                raise _Corrupt(f'zip member {_text(info.filename)} declares '
                               f'{info.file_size} bytes, more than the '
                               f'{_MAX_PICKLE_BYTES >> 20} MiB a state dict '
                               'needs')
            pickled = _read_member(zf, info, info.file_size, 'the pickle',
                                   archive_size)
            storages = {}
            obj = _unpickle(io.BytesIO(pickled), storages=storages,
                            limit=len(pickled))
            refs, roots = _state_dict_refs(obj)
            members = {}
            for key in roots:
                member = infos.get(f'{prefix}data/{key}')
                if member is None:
                    raise _Corrupt(f'storage member {_text(prefix)}data/'
                                   f'{_text(key)} is missing')
                members[key] = member
            _check_disjoint([info, *members.values()])
            for key, root in roots.items():
                raw = _read_member(zf, members[key], root.nbytes,
                                   f'storage {_text(key)}', archive_size)
                root.data = np.frombuffer(raw, dtype=root.dtype)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
            NotImplementedError, RuntimeError, ValueError, struct.error,
            OverflowError) as exc:
        raise _Corrupt(f'corrupt zip ({type(exc).__name__}: '
                       f'{str(exc):.200})') from None
    return _arrays(refs)


def _read_legacy(f, file_size):
    def left():
        return file_size - f.tell()

    try:
        magic = _unpickle(f, limit=left())
    except _Corrupt:
        raise _Corrupt('not a PyTorch checkpoint (neither a zip archive nor '
                       'a legacy torch.save stream)') from None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise _Corrupt('not a PyTorch checkpoint')
    protocol = _unpickle(f, limit=left())
    if type(protocol) is not int or protocol != _LEGACY_PROTOCOL:
        raise _Corrupt('unsupported checkpoint protocol')
    sys_info = _unpickle(f, limit=left())
    if type(sys_info) is not dict or sys_info.get('little_endian') is not True:
        raise _Corrupt('big-endian checkpoints are not supported')
    storages = {}
    obj = _unpickle(f, storages=storages, limit=left())
    keys = _unpickle(f, limit=left())
    declared = {key for key, storage in storages.items()
                if storage.root is None}
    if (type(keys) is not list or not all(type(k) is str for k in keys)
            or len(set(keys)) != len(keys) or set(keys) != declared):
        raise _Corrupt('the storage key list does not match the tensors')
    refs, roots = _state_dict_refs(obj)
    for key in keys:
        storage = storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise _Corrupt('truncated checkpoint (a storage is missing)')
        (numel,) = struct.unpack('<q', head)
        if numel != storage.numel:
            raise _Corrupt(f'storage {_text(key)} has {numel} elements, '
                           f'expected {storage.numel}')
        nbytes = storage.nbytes
        if nbytes > left():
            raise _Corrupt(f'truncated checkpoint: storage {_text(key)} '
                           f'needs {nbytes} bytes, the file holds {left()} '
                           'more')
        if key in roots:
            storage.data = np.frombuffer(f.read(nbytes), dtype=storage.dtype)
        else:
            f.seek(nbytes, os.SEEK_CUR)
    return _arrays(refs)


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
        If the checksum differs, the file is truncated or corrupt, its
        pickle references anything other than tensor records, or it
        declares sizes the file does not hold (see the module docstring).
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
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            is_zip = f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
            f.seek(0)
            if is_zip:
                return _read_zip(f, size)
            return _read_legacy(f, size)
    except _Corrupt as exc:
        raise WeightsIntegrityError(f'{name}: {exc}') from None
