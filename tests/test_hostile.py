# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Hostile input: files crafted to run code, crash, hang or exhaust memory
fail with the documented exception, a message naming the file and the
problem, and leave the file as it was.  Each section covers one reader;
the files are built on the fly and are small (a "bomb" is at most a few
MB on disk), and the size bombs are read in a subprocess that reports
its peak memory."""

import contextlib
import errno
import functools
import gzip
import io
import json
import os
import pickle
import re
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astroclusterclf import cli
from astroclusterclf._atomic import atomic_write
from astroclusterclf.annotate import annotate_fits, check_table_output
from astroclusterclf.backbones import pth
from astroclusterclf.backbones.pth import read_pth
from astroclusterclf.bottlenecks import BottleneckCache
from astroclusterclf.classifier import METADATA_MEMBER, ClusterClassifier
from astroclusterclf.config import conf
from astroclusterclf.cutouts import CutoutFlag, catalog_positions, make_cutouts
from astroclusterclf.exceptions import (ImageReadError, ImageTooLargeError, ModelFileError,
                                        OutputError, ParameterError, WeightsIntegrityError)
from astroclusterclf.io import read_image
from astroclusterclf.retrain import retrain

from helpers import unchanged

ROOT = Path(__file__).resolve().parents[1]

# -- weights reader (.pth) ---------------------------------------------------
#
# The pickles are assembled from opcodes, as torch.save writes them
# (protocol 2), so that one record at a time can be made hostile.

#: Peak resident memory a size bomb may cost the process that reads it
#: (importing numpy and astropy takes ~100 MB of it).
PEAK_LIMIT_MB = 500

#: Reads each file named on the command line with read_pth and prints one
#: JSON line per file: the exception and the peak resident memory.  Linux
#: reports the peak in /proc/self/status (VmHWM), reset before each file;
#: ru_maxrss is only the fallback, as it keeps the parent's peak across
#: fork and exec.
PROBE = r'''
import json, resource, sys
from astroclusterclf.backbones.pth import read_pth

def peak_mb():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == 'darwin' else peak / 1024

for case, path in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')      # reset VmHWM
    except OSError:
        pass
    try:
        read_pth(path)
        error, message, oserror = None, '', False
    except Exception as exc:
        error, message = type(exc).__name__, str(exc)
        oserror = isinstance(exc, OSError)
    print(json.dumps(dict(case=case, error=error, message=message,
                          oserror=oserror, peak_mb=peak_mb())), flush=True)
'''

P = pickle
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
SYS_INFO = {'protocol_version': 1001, 'little_endian': True,
            'type_sizes': {'short': 2, 'int': 4, 'long': 4}}
GiB = 1 << 30


def op_str(text):
    data = text.encode()
    return P.BINUNICODE + struct.pack('<I', len(data)) + data


def op_int(n):
    if 0 <= n < 256:
        return P.BININT1 + bytes([n])
    if -2**31 <= n < 2**31:
        return P.BININT + struct.pack('<i', n)
    data = n.to_bytes(n.bit_length() // 8 + 1, 'little', signed=True)
    return P.LONG1 + bytes([len(data)]) + data


def op_tuple(items):
    return P.MARK + b''.join(items) + P.TUPLE


def op_global(module, name):
    return P.GLOBAL + f'{module}\n{name}\n'.encode()


def op_ordered_dict():
    return op_global('collections', 'OrderedDict') + P.EMPTY_TUPLE + P.REDUCE


def op_storage(fmt, key, numel, *, kind=None, view=None):
    """A storage reference: ('storage', type, key, location, numel[, view])
    (the legacy format has the view field)."""
    fields = [op_str('storage'), kind or op_global('torch', 'FloatStorage'),
              op_str(key), op_str('cpu'), op_int(numel)]
    if fmt == 'legacy':
        fields.append(P.NONE if view is None else
                      op_tuple([op_str(view[0]), op_int(view[1]),
                                op_int(view[2])]))
    return op_tuple(fields) + P.BINPERSID


def op_tensor(storage, offset, size, stride, *,
              rebuild=op_global('torch._utils', '_rebuild_tensor_v2')):
    def dims(values):
        return op_tuple([v if isinstance(v, bytes) else op_int(v)
                         for v in values])
    offset = offset if isinstance(offset, bytes) else op_int(offset)
    return (rebuild + op_tuple([storage, offset, dims(size), dims(stride),
                                P.NEWFALSE, op_ordered_dict()])
            + P.REDUCE)


def op_state_dict(entries):
    return (op_ordered_dict() + P.MARK
            + b''.join(op_str(k) + v for k, v in entries.items())
            + P.SETITEMS)


def a_pickle(body):
    return P.PROTO + b'\x02' + body + P.STOP


def legacy_bytes(obj, storages):
    """A legacy torch.save stream: ``obj`` (a pickle) and ``storages``
    ({key: (numel, raw bytes)})."""
    parts = [P.dumps(LEGACY_MAGIC, protocol=2), P.dumps(1001, protocol=2),
             P.dumps(SYS_INFO, protocol=2), obj,
             P.dumps(list(storages), protocol=2)]
    for numel, raw in storages.values():
        parts += [struct.pack('<q', numel), raw]
    return b''.join(parts)


def write_pth(path, fmt, obj, storages):
    """Write a checkpoint of format ``fmt`` ('legacy' or 'zip')."""
    if fmt == 'legacy':
        path.write_bytes(legacy_bytes(obj, storages))
    else:
        with zipfile.ZipFile(path, 'w') as zf:
            zf.writestr('archive/data.pkl', obj)
            zf.writestr('archive/byteorder', 'little')
            for key, (_, raw) in storages.items():
                zf.writestr(f'archive/data/{key}', raw)
    return path


def raw_zip(members):
    """A zip archive of ``members``, (name, bytes, method, crc,
    uncompressed size), written by hand so that a member can hold a
    pre-built deflate stream or lie about itself.  Bytes given as an int
    make an entry for bytes already written, whose local header is at that
    offset; a name of None writes bytes without an entry."""
    out, central = bytearray(), bytearray()
    count = 0
    for name, data, method, crc, size in members:
        if isinstance(data, int):          # an entry inside earlier bytes
            offset, csize = data, size
        else:
            if name is None:
                out += data
                continue
            offset, csize = len(out), len(data)
            out += struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, 0, method, 0,
                               33, crc, csize, size, len(name), 0)
            out += name.encode() + data
        central += struct.pack('<4s6H3L5H2L', b'PK\x01\x02', 20, 20, 0,
                               method, 0, 33, crc, csize, size, len(name), 0,
                               0, 0, 0, 0, offset) + name.encode()
        count += 1
    eocd = struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, count, count,
                       len(central), len(out), 0)
    return bytes(out + central + eocd)


def local_entry(name, data):
    """The local header and bytes of one stored member (for raw_zip)."""
    return struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, 0, 0, 0, 33,
                       zlib.crc32(data), len(data), len(data), len(name),
                       0) + name.encode() + data


@functools.lru_cache
def zeros_deflated(nbytes):
    """A raw deflate stream of ``nbytes`` (a multiple of 1 MiB) zeros, and
    its CRC-32: one fully flushed 1 MiB segment (~1 kB), repeated."""
    mib = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(nbytes >> 20):
        crc = zlib.crc32(mib, crc)
    return segment * (nbytes >> 20) + b'\x03\x00', crc


def good_pickle(fmt):
    """Two tensors on one 6-float storage: a transposed (3, 2) and a
    2-element view at offset 4."""
    storage = op_storage(fmt, '0', 6) + P.BINPUT + b'\x01'
    return a_pickle(op_state_dict({
        'w': op_tensor(storage, 0, (3, 2), (1, 3)),
        'b': op_tensor(P.BINGET + b'\x01', 4, (2,), (1,))}))


DATA = np.arange(6, dtype='<f4')
GOOD_STORAGES = {'0': (6, DATA.tobytes())}


def refused(path, match):
    """read_pth(path) raises WeightsIntegrityError matching ``match``,
    naming the file, and leaves the file as it was."""
    with unchanged(path):
        with pytest.raises(WeightsIntegrityError, match=match) as info:
            read_pth(path)
    assert isinstance(info.value, OSError)
    assert str(info.value).startswith(f'{path}: ')
    return info.value


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
def test_pth_crafted_control(tmp_path, fmt):
    """The hand-assembled checkpoints below are well formed: this one
    loads (so each hostile variant differs only in its hostile part)."""
    path = write_pth(tmp_path / 'good.pth', fmt, good_pickle(fmt),
                     GOOD_STORAGES)
    with unchanged(path):
        sd = read_pth(path)
    assert list(sd) == ['w', 'b']
    np.testing.assert_array_equal(sd['w'], DATA.reshape(2, 3).T)
    np.testing.assert_array_equal(sd['b'], [4, 5])


def test_pth_legacy_storage_view(tmp_path):
    """A legacy-format storage view (key, offset, size) is honoured."""
    view = op_storage('legacy', '0', 6, view=('1', 2, 3))
    obj = a_pickle(op_state_dict({'v': op_tensor(view, 1, (2,), (1,))}))
    path = write_pth(tmp_path / 'view.pth', 'legacy', obj, GOOD_STORAGES)
    np.testing.assert_array_equal(read_pth(path)['v'], [3, 4])
    # a view reaching past its storage is refused
    view = op_storage('legacy', '0', 6, view=('1', 4, 3))
    obj = a_pickle(op_state_dict({'v': op_tensor(view, 0, (2,), (1,))}))
    write_pth(path, 'legacy', obj, GOOD_STORAGES)
    refused(path, 'storage view 1 reaches past the end of storage 0')


def _hostile_pickle(case, fmt):
    """The object pickle of hostile case ``case`` and the message it is
    refused with."""
    storage = op_storage(fmt, '0', 6)
    tensor = op_tensor(storage, 0, (6,), (1,))
    if case == 'BUILD on a storage type':
        # sets the stand-in's dtype to a string: was a raw AttributeError
        kind = (op_global('torch', 'FloatStorage') + P.EMPTY_DICT
                + op_str('dtype') + op_str('S1') + P.SETITEM + P.BUILD)
        tensor = op_tensor(op_storage(fmt, '0', 6, kind=kind), 0, (6,), (1,))
        match = 'sets the state of the torch.FloatStorage class'
    elif case == 'BUILD on a rebuild function':
        # slot state would setattr(_rebuild_tensor_v2, '__defaults__', ...)
        rebuild = (op_global('torch._utils', '_rebuild_tensor_v2')
                   + op_tuple([P.NONE, P.EMPTY_DICT + op_str('__defaults__')
                               + op_tuple([op_int(7)] * 3) + P.SETITEM])
                   + P.BUILD)
        tensor = op_tensor(storage, 0, (6,), (1,), rebuild=rebuild)
        match = 'sets the state of the function _rebuild_tensor_v2'
    elif case == 'BUILD on a tensor':
        tensor += (P.EMPTY_DICT + op_str('offset') + op_int(-5) + P.SETITEM
                   + P.BUILD)
        match = 'sets the state of a tensor'
    elif case == 'BUILD slot state on the state dict':
        # would make state_dict.items an attribute: read as an empty dict
        body = (op_state_dict({'w': tensor})
                + op_tuple([P.NONE, P.EMPTY_DICT + op_str('items')
                            + op_global('collections', 'OrderedDict')
                            + P.SETITEM]) + P.BUILD)
        return a_pickle(body), "sets a state dict's state to a value of type tuple"
    elif case == 'call a storage type':
        tensor = (op_global('torch', 'FloatStorage') + P.EMPTY_TUPLE
                  + P.REDUCE)
        match = 'calls the torch.FloatStorage class'
    elif case == 'NEWOBJ':
        tensor = (op_global('collections', 'OrderedDict') + P.EMPTY_TUPLE
                  + P.NEWOBJ)
        match = 'uses the NEWOBJ opcode'
    elif case == 'tuple dict key':
        body = (op_state_dict({'w': tensor}) + op_tuple([op_int(1)])
                + tensor + P.SETITEM)
        return a_pickle(body), 'dict key of type tuple'
    elif case == 'string in a tensor size':
        tensor = op_tensor(storage, 0, (op_str('6'),), (1,))
        match = 'a tensor size entry is not an integer'
    elif case == 'float tensor offset':
        tensor = op_tensor(storage, P.BINFLOAT + struct.pack('>d', 1.5),
                           (5,), (1,))
        match = 'a tensor offset is not an integer'
    elif case == 'negative stride':
        tensor = op_tensor(storage, 5, (6,), (-1,))
        match = 'a tensor stride entry is not an integer'
    elif case == 'int64 overflow of the element count':
        # 2**32 * 2**32 is 0 in int64: the bounds check was skipped
        tensor = op_tensor(storage, 0, (2**32, 2**32), (0, 0))
        match = 'tensor w has an impossible shape'
    elif case == 'tensor past its storage':
        tensor = op_tensor(storage, 1, (3, 2), (2, 1))
        match = 'tensor w reaches past the end of its storage'
    elif case == 'storage declared twice':
        body = op_state_dict({'w': tensor, 'v': op_tensor(
            op_storage(fmt, '0', 600), 0, (600,), (1,))})
        return a_pickle(body), 'storage 0 is declared twice'
    elif case == 'malformed storage reference':
        tensor = op_tensor(op_tuple([op_str('module'), op_str('os')])
                           + P.BINPERSID, 0, (6,), (1,))
        match = 'malformed storage reference'
    elif case == 'not a state dict':
        return a_pickle(op_tuple([tensor])), 'expected a state dict, found a value of type tuple'
    else:
        raise AssertionError(case)
    return a_pickle(op_state_dict({'w': tensor})), match


HOSTILE_PICKLES = [
    'BUILD on a storage type', 'BUILD on a rebuild function',
    'BUILD on a tensor', 'BUILD slot state on the state dict',
    'call a storage type', 'NEWOBJ', 'tuple dict key',
    'string in a tensor size', 'float tensor offset', 'negative stride',
    'int64 overflow of the element count', 'tensor past its storage',
    'storage declared twice', 'malformed storage reference',
    'not a state dict']


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
@pytest.mark.parametrize('case', HOSTILE_PICKLES)
def test_pth_hostile_pickle(tmp_path, case, fmt):
    defaults = pth._rebuild_tensor_v2.__defaults__
    obj, match = _hostile_pickle(case, fmt)
    path = write_pth(tmp_path / 'hostile.pth', fmt, obj, GOOD_STORAGES)
    refused(path, re.escape(match))
    # nothing in a file can change the reader itself
    assert pth._rebuild_tensor_v2.__defaults__ == defaults
    assert not vars(pth._rebuild_tensor_v2)


def _zip_with(members, obj=None):
    """A zip checkpoint: data.pkl (``obj``, default: the good pickle),
    byteorder, and ``members`` (raw_zip tuples)."""
    obj = good_pickle('zip') if obj is None else obj
    return raw_zip([('archive/data.pkl', obj, 0, zlib.crc32(obj), len(obj)),
                    ('archive/byteorder', b'little', 0,
                     zlib.crc32(b'little'), 6)] + members)


def _stored(name, data, crc=None, size=None):
    return (name, data, 0, zlib.crc32(data) if crc is None else crc,
            len(data) if size is None else size)


RAW = DATA.tobytes()
HOSTILE_ZIPS = {
    'missing storage member': (
        [], r'storage member archive/data/0 is missing'),
    'member shorter than its storage': (
        [_stored('archive/data/0', RAW[:20])],
        r'truncated checkpoint: zip member archive/data/0 holds 20 bytes, '
        r'storage 0 needs 24'),
    'member longer than its storage': (
        [_stored('archive/data/0', RAW + bytes(4))],
        r'zip member archive/data/0 declares 28 bytes, but storage 0 needs 24: '
        r'refusing to inflate it'),
    'bad CRC': (
        [_stored('archive/data/0', RAW, crc=zlib.crc32(RAW) ^ 1)],
        r'corrupt zip \(BadZipFile: Bad CRC-32'),
    'unknown compression method': (
        [('archive/data/0', RAW, 99, zlib.crc32(RAW), 24)],
        r'corrupt zip \(NotImplementedError: That compression method'),
}


@pytest.mark.parametrize('case', list(HOSTILE_ZIPS))
def test_pth_hostile_zip(tmp_path, case):
    members, match = HOSTILE_ZIPS[case]
    data = _zip_with(members)
    path = tmp_path / 'hostile.pth'
    path.write_bytes(data)
    refused(path, match)


def test_pth_truncated_zip(tmp_path):
    """A zip cut short, central directory and all."""
    path = tmp_path / 'cut.pth'
    write_pth(path, 'zip', good_pickle('zip'), GOOD_STORAGES)
    path.write_bytes(path.read_bytes()[:-30])
    refused(path, r'corrupt zip \(BadZipFile')


def test_pth_big_endian_zip(tmp_path):
    path = tmp_path / 'big.pth'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('archive/data.pkl', good_pickle('zip'))
        zf.writestr('archive/byteorder', 'big')
        zf.writestr('archive/data/0', RAW)
    refused(path, 'big-endian checkpoints are not supported')


def test_pth_overlapping_zip_members(tmp_path):
    """Two storage members sharing bytes (member 0's data is member 1's
    local entry): the "overlapping files" zip bomb, which inflates the
    same compressed bytes once per member."""
    inner = local_entry('archive/data/1', RAW)
    obj = a_pickle(op_state_dict({
        'a': op_tensor(op_storage('zip', '0', len(inner), kind=op_global(
            'torch', 'ByteStorage')), 0, (len(inner),), (1,)),
        'b': op_tensor(op_storage('zip', '1', 6), 0, (6,), (1,))}))
    entries = [local_entry('archive/data.pkl', obj),
               local_entry('archive/byteorder', b'little'),
               local_entry('archive/data/0', inner)]
    starts = np.cumsum([0] + [len(e) for e in entries]).tolist()
    path = tmp_path / 'overlap.pth'
    path.write_bytes(raw_zip([
        (None, b''.join(entries), 0, 0, 0),
        ('archive/data.pkl', starts[0], 0, zlib.crc32(obj), len(obj)),
        ('archive/byteorder', starts[1], 0, zlib.crc32(b'little'), 6),
        ('archive/data/0', starts[2], 0, zlib.crc32(inner), len(inner)),
        ('archive/data/1', starts[3] - len(inner), 0, zlib.crc32(RAW),
         len(RAW))]))
    # each member alone is well formed: zipfile reads both
    with zipfile.ZipFile(path) as zf:
        assert zf.read('archive/data/1') == RAW
        assert zf.read('archive/data/0') == inner
    refused(path, 'zip members archive/data/0 and archive/data/1 overlap')


def test_pth_not_a_checkpoint(tmp_path):
    path = tmp_path / 'noise.pth'
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    refused(path, 'not a PyTorch checkpoint')
    path.write_bytes(b'')
    refused(path, 'not a PyTorch checkpoint')


# .pth size bombs, read in a subprocess (PROBE) that reports its peak memory

def _bomb_legacy_numel(folder):
    """A legacy file of ~350 bytes declaring a storage of 2**40 floats
    (4 TiB): was a MemoryError."""
    n = 2**40
    obj = a_pickle(op_state_dict({'w': op_tensor(
        op_storage('legacy', '0', n), 0, (n,), (1,))}))
    path = folder / 'numel.pth'
    path.write_bytes(legacy_bytes(obj, {'0': (n, b'\0' * 16)}))
    assert path.stat().st_size < 400
    return path


def _bomb_pickle_length(op):
    def build(folder):
        # one opcode claiming a 2**40-byte operand, in the object pickle
        body = op + struct.pack('<Q', 2**40) + b'\0' * 16
        path = folder / f'length-{op.hex()}.pth'
        path.write_bytes(legacy_bytes(a_pickle(body), {}))
        return path
    return build


def _bomb_zip_member(folder):
    """A 1 MB zip whose storage member inflates to 1 GiB, for a storage
    of 4 bytes: was inflated whole."""
    stream, crc = zeros_deflated(GiB)
    obj = a_pickle(op_state_dict({'w': op_tensor(
        op_storage('zip', '0', 1), 0, (1,), (1,))}))
    path = folder / 'zip-member.pth'
    path.write_bytes(_zip_with([('archive/data/0', stream, 8, crc, GiB)],
                               obj))
    assert path.stat().st_size < 2 << 20
    return path


def _bomb_zip_pickle(folder):
    """data.pkl inflating to 1 GiB."""
    stream, crc = zeros_deflated(GiB)
    path = folder / 'zip-pickle.pth'
    path.write_bytes(raw_zip([('archive/data.pkl', stream, 8, crc, GiB)]))
    return path


def _bomb_views(size, stride, count=1, numel=1):
    def build(folder):
        storage = op_storage('legacy', '0', numel) + P.BINPUT + b'\x01'
        entries = {'w0': op_tensor(storage, 0, size, stride)}
        for i in range(1, count):
            entries[f'w{i}'] = op_tensor(P.BINGET + b'\x01', 0, size, stride)
        path = folder / f'views-{count}.pth'
        path.write_bytes(legacy_bytes(a_pickle(op_state_dict(entries)),
                                      {'0': (numel, bytes(4 * numel))}))
        assert path.stat().st_size < 1 << 20
        return path
    return build


def _bomb_pickle_objects(folder):
    """An object pickle of 2 MiB + 1 EMPTY_LIST opcodes: ~64 bytes of
    Python objects per byte, the worst the size limit on pickles allows."""
    path = folder / 'objects.pth'
    path.write_bytes(legacy_bytes(P.PROTO + b'\x02' + P.EMPTY_LIST
                                  * (pth._MAX_PICKLE_BYTES + 1) + P.STOP, {}))
    return path


def _bomb_key(op, depth):
    """A dict key nested ``depth`` deep: hashing it takes 2**depth steps
    (a DAG: each level holds the one below twice) or overflows the C stack
    (a chain of 1-tuples): a hang or a segfault."""
    def build(folder):
        key = P.EMPTY_TUPLE + op * depth
        body = P.EMPTY_DICT + key + P.NONE + P.SETITEM
        path = folder / f'key-{op.hex()}.pth'
        path.write_bytes(legacy_bytes(a_pickle(body), {}))
        return path
    return build


BOMBS = {
    'legacy storage of 2**40 floats': (
        _bomb_legacy_numel,
        r'truncated checkpoint: storage 0 needs 4398046511104 bytes, the '
        r'file holds 16 more'),
    'BINBYTES8 of 2**40 bytes': (
        _bomb_pickle_length(P.BINBYTES8), r'truncated checkpoint'),
    'BINUNICODE8 of 2**40 bytes': (
        _bomb_pickle_length(P.BINUNICODE8), r'truncated checkpoint'),
    'BYTEARRAY8 of 2**40 bytes': (
        _bomb_pickle_length(P.BYTEARRAY8), r'uses the BYTEARRAY8 opcode'),
    '1 GiB zip member for 4 bytes': (
        _bomb_zip_member,
        r'zip member archive/data/0 declares 1073741824 bytes, but storage 0 '
        r'needs 4: refusing to inflate it'),
    '1 GiB zip data.pkl': (
        _bomb_zip_pickle,
        r'zip member archive/data.pkl declares 1073741824 bytes, more than '
        r'the 2 MiB'),
    'zero-stride view of 2**28 floats': (
        _bomb_views((2**14, 2**14), (0, 0)),
        r'the tensors would take 1073741824 bytes, more than 4 times the 4 '
        r'bytes of their storages'),
    '5000 views of one 256 kB storage': (
        _bomb_views((2**16,), (1,), count=5000, numel=2**16),
        r'the tensors would take 1310720000 bytes'),
    'pickle of 2 MiB of lists': (
        _bomb_pickle_objects, r'larger than the 2 MiB a state dict needs'),
    'DAG dict key, 2**100 to hash': (
        _bomb_key(P.DUP + P.TUPLE2, 100), r'dict key of type tuple'),
    'dict key 500000 tuples deep': (
        _bomb_key(P.TUPLE1, 500_000), r'dict key of type tuple'),
}


@pytest.fixture(scope='module')
def bomb_reports(tmp_path_factory):
    """Reads every bomb in one subprocess; its reports by case."""
    folder = tmp_path_factory.mktemp('bombs')
    paths = {case: build(folder) for case, (build, _) in BOMBS.items()}
    args = [x for case, path in paths.items() for x in (case, str(path))]
    with contextlib.ExitStack() as stack:
        for path in paths.values():
            stack.enter_context(unchanged(path))
        try:
            proc = subprocess.run([sys.executable, '-c', PROBE, *args],
                                  cwd=ROOT, capture_output=True, text=True,
                                  timeout=120)
            stdout, stderr = proc.stdout, f'exit status {proc.returncode}: '
            stderr += proc.stderr
        except subprocess.TimeoutExpired as exc:   # a bomb that hangs
            stdout, stderr = exc.stdout or '', 'timed out after 120 s'
            if isinstance(stdout, bytes):
                stdout = stdout.decode()
    reports = {}
    for line in stdout.splitlines():
        report = json.loads(line)
        reports[report['case']] = report
    return paths, reports, stderr


@pytest.mark.slow   # a subprocess reads the bombs and reports its peak memory
@pytest.mark.parametrize('case', list(BOMBS))
def test_pth_size_bomb(case, bomb_reports):
    paths, reports, stderr = bomb_reports
    assert case in reports, (f'the reader died before reporting {case!r} '
                             f'({stderr[-3000:]})')
    report = reports[case]
    assert report['error'] == 'WeightsIntegrityError', report
    assert report['oserror']
    assert report['message'].startswith(f'{paths[case]}: ')
    assert re.search(BOMBS[case][1], report['message']), report['message']
    assert report['peak_mb'] < PEAK_LIMIT_MB, report


# -- images: decompression bombs and damaged files ------------------------------------
#
# The size guard (astroclusterclf.conf.max_image_mib, 512 MiB) refuses an
# image before its pixels are allocated: as its header declares it, as a
# gzip stream decompresses, as a cutout asks for it.

IMAGE_PROBE = r'''
import json, sys
from astroclusterclf.annotate import annotate_fits
from astroclusterclf.io import read_image

def peak_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024

for case, path in zip(sys.argv[1::2], sys.argv[2::2]):
    for how in ('read_image', 'annotate_fits'):
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        try:
            if how == 'read_image':
                read_image(path)
            else:   # refused before the model is used, so none is needed
                annotate_fits(None, path, output=path + '.out.fits')
            error, message = None, ''
        except Exception as exc:
            error, message = type(exc).__name__, str(exc)
        print(json.dumps(dict(case=case, how=how, error=error, message=message,
                              peak_mb=peak_mb())), flush=True)
'''


def _fits_header_bytes(shape, bitpix=-32):
    header = fits.Header([('SIMPLE', True), ('BITPIX', bitpix), ('NAXIS', len(shape))]
                         + [(f'NAXIS{i + 1}', n) for i, n in enumerate(shape[::-1])])
    return header.tostring().encode()


def _gzip_zeros(f, nbytes):
    """Append ``nbytes`` of zeros to a binary file as gzip members: one
    16 MiB member compressed once and repeated (a gzip file may hold many
    members, and readers decompress them all), so building a gigabyte
    bomb takes no time."""
    member = gzip.compress(bytes(1 << 24), compresslevel=9)
    for _ in range(nbytes >> 24):
        f.write(member)


def _bomb_declared(folder):
    """A few kB on disk; the header declares a 16384^2 float32 image
    (1 GiB).  The data are not there: the guard refuses the declared size
    before any pixel is read."""
    path = folder / 'declared.fits.gz'
    path.write_bytes(gzip.compress(_fits_header_bytes((16384, 16384)) + bytes(1 << 20)))
    return path


def _bomb_trailing(folder):
    """A valid small image followed by 768 MiB of compressed zeros (1 MB
    on disk)."""
    path = folder / 'trailing.fits.gz'
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(buffer)
    with open(path, 'wb') as f:
        f.write(gzip.compress(buffer.getvalue()))
        _gzip_zeros(f, 768 << 20)
    return path


IMAGE_BOMBS = {'declared size': _bomb_declared, 'trailing zeros': _bomb_trailing}


@pytest.fixture(scope='module')
def image_bomb_reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp('image-bombs')
    paths = {case: build(folder) for case, build in IMAGE_BOMBS.items()}
    args = [x for case, path in paths.items() for x in (case, str(path))]
    with contextlib.ExitStack() as stack:
        for path in paths.values():
            stack.enter_context(unchanged(path))
        proc = subprocess.run([sys.executable, '-c', IMAGE_PROBE, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    reports = [json.loads(line) for line in proc.stdout.splitlines()]
    return folder, paths, reports, proc.stderr


@pytest.mark.slow   # a subprocess reads the bombs and reports its peak memory
@pytest.mark.skipif(not Path('/proc/self/clear_refs').exists(),
                    reason='peak memory is read from /proc')
@pytest.mark.parametrize('case', list(IMAGE_BOMBS))
@pytest.mark.parametrize('how', ['read_image', 'annotate_fits'])
def test_image_bomb(image_bomb_reports, case, how):
    folder, paths, reports, stderr = image_bomb_reports
    found = [r for r in reports if r['case'] == case and r['how'] == how]
    assert found, stderr[-3000:]
    report = found[0]
    assert report['error'] == 'ImageTooLargeError', report
    assert report['message'].startswith(f'{paths[case]}: ')
    assert 'max_image_mib' in report['message']
    assert report['peak_mb'] < PEAK_LIMIT_MB, report
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in paths.values())       # no output, no temporary file


def test_size_guard_is_configurable(tmp_path):
    path = tmp_path / 'big.fits'
    fits.PrimaryHDU(np.zeros((600, 600), np.float32)).writeto(path)   # 1.4 MiB
    with conf.set_temp('max_image_mib', 1):
        with unchanged(path), pytest.raises(ImageTooLargeError,
                                            match=r'big\.fits: the header declares a '
                                                  r'600 x 600 image of 1 MiB'):
            read_image(path)
    assert read_image(path).data.shape == (600, 600)


def test_cutout_size_guard():
    with pytest.raises(ParameterError, match=r'100000 x 100000 pixels would need 38147 MiB'):
        make_cutouts(np.ones((50, 50), np.float32), [(10, 10)], 100000)
    with pytest.raises(ParameterError, match='1000000000 x 1000000000 pixels'):
        make_cutouts(np.ones((50, 50), np.float32), [(10, 10)], '1e9')
    with pytest.raises(ParameterError, match='give pixels .* or an angle'):
        make_cutouts(np.ones((50, 50)), [(10, 10)], '30"')


def test_dec_outside_range_is_flagged_not_fatal(caplog):
    table = Table({'ra': [10.0, 10.0, 10.0], 'dec': [95.0, 20.0, np.nan]})
    coords = catalog_positions(table)
    assert np.isnan(coords.dec.deg[0]) and coords.dec.deg[1] == 20.0
    assert "1 row(s) outside -90..90 deg" in caplog.text
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [10, 20]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    wcs.wcs.crpix = [25, 25]
    flags = [int(r.flag) for r in make_cutouts((np.ones((50, 50)), wcs), table, 8)]
    assert flags == [CutoutFlag.OFF_IMAGE, 0, CutoutFlag.OFF_IMAGE]


@pytest.mark.slow
def test_fits_gz_missing_padding(tmp_path, trained_classifier):
    """A .fits.gz cut short of its final block padding (its data complete):
    the reader classifies it, as astropy reads it, and annotate-fits gives
    one clear error (or an annotated copy), never a traceback."""
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.arange(4096, dtype=np.float32).reshape(64, 64)).writeto(buffer)
    raw = buffer.getvalue()
    path = tmp_path / 'short.fits.gz'
    path.write_bytes(gzip.compress(raw[:2880 + 64 * 64 * 4]))
    with unchanged(path):
        assert read_image(path).data.shape == (64, 64)
        try:
            annotate_fits(trained_classifier, path, output=tmp_path / 'out.fits')
        except ImageReadError as exc:
            assert str(exc).startswith(f'{path}: the FITS file is truncated or corrupt')
            assert not (tmp_path / 'out.fits').exists()
        else:
            assert fits.getheader(tmp_path / 'out.fits')['CLSLABEL']
    assert not [p for p in tmp_path.iterdir() if 'acc-tmp' in p.name]


def test_folder_given_as_file(tmp_path):
    folder = tmp_path / 'image.fits'
    folder.mkdir()
    with pytest.raises(ImageReadError, match=r'image\.fits: is a folder'):
        read_image(folder)
    model = tmp_path / 'model.keras'
    model.mkdir()
    with pytest.raises(ModelFileError, match=r'model\.keras: is a folder, not a model file'):
        ClusterClassifier.load(model)


# -- the atomic writer: modes, links, leftovers, system errors -------------------------

def _write_bytes(data):
    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)
    return write


def test_write_protected_target_is_refused(tmp_path):
    target = tmp_path / 'protected.fits'
    target.write_bytes(b'original')
    target.chmod(0o444)
    with unchanged(target), pytest.raises(OutputError, match=r'protected\.fits: the file is '
                                                             r'write-protected \(mode 0444\)'):
        atomic_write(target, _write_bytes(b'new'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['protected.fits']


def test_symlink_is_followed(tmp_path):
    real = tmp_path / 'real.fits'
    real.write_bytes(b'old')
    real.chmod(0o640)
    link = tmp_path / 'link.fits'
    link.symlink_to(real)
    atomic_write(link, _write_bytes(b'new'))
    assert link.is_symlink() and real.read_bytes() == b'new'
    assert stat.S_IMODE(real.stat().st_mode) == 0o640        # mode kept


def test_hard_link_is_refused(tmp_path):
    target = tmp_path / 'a.fits'
    target.write_bytes(b'shared')
    os.link(target, tmp_path / 'b.fits')
    with unchanged(target), pytest.raises(OutputError, match=r'a\.fits: the file has 2 '
                                                             r'hard links'):
        atomic_write(target, _write_bytes(b'new'))
    assert (tmp_path / 'b.fits').read_bytes() == b'shared'


def test_stale_temporary_files_are_swept(tmp_path):
    """A run killed mid-write leaves its temporary file; the next write of
    the same target removes it (its process is gone), and nothing else."""
    target = tmp_path / 'model.keras'
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f'.model.keras.acc-tmp-{dead}-0123456789ab.keras'
    stale.write_bytes(b'half a model')
    alive = tmp_path / f'.model.keras.acc-tmp-{os.getppid()}-0123456789ab.keras'
    alive.write_bytes(b'being written')
    other = tmp_path / '.other.acc-tmp-1-00.keras'
    other.write_bytes(b'not ours to sweep')
    atomic_write(target, _write_bytes(b'model'))
    assert not stale.exists()
    assert alive.exists() and other.exists() and target.read_bytes() == b'model'


@pytest.mark.parametrize('error, reason', [
    (OSError(errno.ENOSPC, 'No space left on device'), 'no space left on device'),
    (PermissionError(errno.EACCES, 'Permission denied'), 'Permission denied'),
])
def test_system_errors_name_the_target(tmp_path, error, reason):
    target = tmp_path / 'out.ecsv'

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'partial')
        error.filename = tmp              # the system names the temporary file
        raise error

    with pytest.raises(OutputError) as excinfo:
        atomic_write(target, write)
    message = str(excinfo.value)
    assert message == f'{target}: cannot write the file ({reason})'
    assert 'acc-tmp' not in message
    assert list(tmp_path.iterdir()) == []


# -- outputs checked before the work ---------------------------------------------------

def test_retrain_checks_outputs_before_any_work(tmp_path):
    data = tmp_path / 'data'
    (data / 'a').mkdir(parents=True)
    (data / 'b').mkdir()
    summaries = tmp_path / 'summaries'
    summaries.write_text('a file, not a folder')
    folder = tmp_path / 'labels.txt'
    folder.mkdir()
    with pytest.raises(OutputError, match=r'summaries: the summaries folder is a file'):
        retrain(data, output=tmp_path / 'm.keras', summaries_dir=summaries)
    with pytest.raises(OutputError, match=r'labels\.txt: is a folder'):
        retrain(data, output=tmp_path / 'm.keras', labels_output=folder)
    with pytest.raises(OutputError, match='would be the same file'):
        retrain(data, output=tmp_path / 'm.keras', labels_output=tmp_path / 'm.keras')
    cache_file = tmp_path / 'cache'
    cache_file.write_text('x')
    with pytest.raises(OutputError, match=r'cache: the bottleneck cache must be a folder'):
        BottleneckCache(cache_file)
    assert not (tmp_path / 'm.keras').exists()


def test_table_output_checked_before_classifying(tmp_path):
    (tmp_path / 'out.ecsv').mkdir()
    with pytest.raises(OutputError, match=r'out\.ecsv: is a folder'):
        check_table_output(tmp_path / 'out.ecsv')
    protected = tmp_path / 'p.ecsv'
    protected.write_text('keep')
    protected.chmod(0o444)
    with pytest.raises(OutputError, match='write-protected'):
        check_table_output(protected, overwrite=True)


# -- model files -----------------------------------------------------------------------

def _model_zip(path, metadata, *, extra=None):
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('config.json', '{}')
        z.writestr(METADATA_MEMBER, metadata if isinstance(metadata, (bytes, str))
                   else json.dumps(metadata))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


GOOD_META = {'format': 'astroclusterclf', 'format_version': 1,
             'labels': ['globular cluster', 'open cluster']}


@pytest.mark.parametrize('change, match', [
    ({'labels': 3}, r"'labels' must be of type list, got int"),
    ({'labels': 'ab'}, r"'labels' must be of type list, got str"),
    ({'labels': ['a', 'a']}, 'distinct'),
    ({'labels': []}, 'non-empty'),
    ({'format_version': '1'}, r"'format_version' must be of type int, got str"),
    ({'format_version': True}, r"'format_version' must be of type int, got bool"),
    ({'format_version': 99}, 'newer than this astroclusterclf supports'),
    ({'preprocessing': [1, 2]}, r"'preprocessing' must be of type dict"),
    ({'temperature': -1}, "'temperature' must be a positive number"),
    ({'format': 'other'}, 'is not astroclusterclf metadata'),
])
def test_model_metadata_schema(tmp_path, change, match):
    path = _model_zip(tmp_path / 'm.keras', {**GOOD_META, **change})
    with unchanged(path), pytest.raises(ModelFileError, match=r'm\.keras: .*' + match):
        ClusterClassifier.load(path)


@pytest.mark.slow   # a subprocess reads the bombs and reports its peak memory
def test_model_metadata_size_cap(tmp_path):
    """A metadata member declaring 13 MB is refused before it is read."""
    path = tmp_path / 'big.keras'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr(METADATA_MEMBER, b' ' * (13 << 20))
    assert path.stat().st_size < 100_000
    code = ('import json, sys\n'
            'from astroclusterclf.classifier import ClusterClassifier\n'
            'try:\n    ClusterClassifier.load(sys.argv[1])\n'
            'except Exception as exc:\n    print(type(exc).__name__, exc)\n'
            'print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])')
    proc = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True,
                          text=True, timeout=60)
    first, peak_kb = proc.stdout.strip().splitlines()
    assert first.startswith('ModelFileError') and 'declares 13631488 bytes' in first
    assert int(peak_kb) / 1024 < PEAK_LIMIT_MB


def test_keras_floor_and_safe_mode():
    """The dependency admits no Keras with the known safe-mode bypasses, and
    the loader asks for safe mode itself."""
    text = (ROOT / 'pyproject.toml').read_text()
    assert '"keras>=3.13.2"' in text
    source = (ROOT / 'astroclusterclf' / 'classifier.py').read_text()
    assert source.count('safe_mode=True') == 2


# -- the command line ------------------------------------------------------------------

def test_ctrl_c_while_tensorflow_imports(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, 'import_tensorflow', interrupted)
    status = cli.main(['label', '--graph', 'm.keras', '--image', 'x.fits'])
    err = capsys.readouterr().err
    assert status == 130 and 'Traceback' not in err
    assert err.strip() == ('astroclusterclf label: interrupted; every output file is '
                           'either complete or was not written')


@pytest.mark.parametrize('argv, match', [
    (['label', '--graph', 'm.keras', '--image', 'x.fits', '--top_k', '0'],
     'argument --top_k/--top-k: must be at least 1, got 0'),
    (['label', '--graph', 'm.keras', '--image', 'x.fits', '--bands', '1,2'],
     'give 1 or 3 band indices'),
])
def test_cli_usage_errors(argv, match, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err


@pytest.mark.slow
def test_cli_in_place_respects_protection_and_links(trained_model_path, cluster_image,
                                                    tmp_path, capsys):
    data, header = cluster_image

    def make(name):
        path = tmp_path / name
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header, name='SCI')]
                     ).writeto(path, checksum=True)
        return path

    protected = make('protected.fits')
    protected.chmod(0o444)
    linked = make('linked.fits')
    os.link(linked, tmp_path / 'other-name.fits')
    for path, match in ((protected, 'write-protected'), (linked, 'has 2 hard links')):
        with unchanged(path):
            status = cli.main(['annotate-fits', '--graph', str(trained_model_path),
                               str(path), '--in-place'])
        err = capsys.readouterr().err
        assert status == 1 and len(err.strip().splitlines()) == 1, err
        assert f'{path}: ' in err and match in err and 'Traceback' not in err

    real = make('real.fits')
    primary_cards = fits.getheader(real, 0).tostring()
    link = tmp_path / 'link.fits'
    link.symlink_to(real)
    status = cli.main(['annotate-fits', '--graph', str(trained_model_path), str(link),
                       '--in-place'])
    capsys.readouterr()
    assert status == 0
    assert link.is_symlink()
    with fits.open(real, checksum=True) as hdul:      # checksums verified on open
        assert 'CLSLABEL' in hdul[1].header
        # The untouched primary keeps its cards, CHECKSUM/DATASUM included.
        assert hdul[0].header.tostring() == primary_cards
    assert not [p for p in tmp_path.iterdir() if 'acc-tmp' in p.name]


@pytest.mark.slow
def test_failed_model_save_leaves_nothing(trained_classifier, tmp_path, monkeypatch):
    """A disk that fills up while Keras writes the model: one error naming
    the model file, no partial file, no Keras staging folder left in the
    system temporary folder."""
    import tempfile
    # This process's system temporary folder, for the test alone: the other
    # test processes create and remove their own temporary folders
    # meanwhile, which a shared /tmp would mix in.
    system_tmp = tmp_path / 'system-tmp'
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(system_tmp))
    out = tmp_path / 'out'
    out.mkdir()
    real_writestr = zipfile.ZipFile.writestr

    def full_disk(self, name, *args, **kwargs):
        if str(name).endswith('.json'):
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_writestr(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, 'writestr', full_disk)
    target = out / 'model.keras'
    with pytest.raises(OutputError, match=rf'{re.escape(str(target))}: cannot write the file '
                                          r'\(no space left on device\)'):
        trained_classifier.save(target)
    monkeypatch.undo()
    assert list(out.iterdir()) == []
    assert list(system_tmp.iterdir()) == []


@pytest.mark.slow
def test_unwritable_bottleneck_cache_is_not_fatal(small_dataset_files, tmp_path, caplog):
    """A cache that cannot be written (here its folder cannot be created:
    its parent is a file) still gives the features, with one warning."""
    blocker = tmp_path / 'blocker'
    blocker.write_text('a file')
    cache = BottleneckCache(blocker / 'cache', input_size=64)
    result = cache.get_features(small_dataset_files[:2])
    assert len(result.features) == 2 and result.n_computed == 2
    assert cache.read_only
    assert caplog.text.count('cannot write to the bottleneck cache') == 1


# -- every hostile case through the command line: one line, exit status 1 --------------

@pytest.mark.slow
def test_cli_hostile_inputs_one_line_each(accurate_result, survey_mosaic, tmp_path,
                                          capsys):
    model = str(accurate_result.output)
    mosaic, _ = survey_mosaic
    bomb = _bomb_declared(tmp_path)
    trailing = _bomb_trailing(tmp_path)
    folder_fits = tmp_path / 'folder.fits'
    folder_fits.mkdir()
    bad_model = _model_zip(tmp_path / 'bad.keras', {**GOOD_META, 'labels': 'ab'})
    catalog = tmp_path / 'cat.ecsv'
    Table({'ra': [150.0], 'dec': [95.0]}).write(catalog)
    summaries = tmp_path / 'summaries'
    summaries.write_text('a file')
    data_dir = tmp_path / 'data'
    (data_dir / 'a').mkdir(parents=True)
    cases = [
        (['label', '--graph', model, '--image', str(bomb)], 'declares a 16384 x 16384 image'),
        (['label', '--graph', model, '--image', str(trailing)], 'decompresses to more than'),
        (['annotate-fits', '--graph', model, str(bomb), '--output-dir', str(tmp_path / 'o')],
         'max_image_mib'),
        (['annotate-fits', '--graph', model, str(folder_fits), '--output-dir',
          str(tmp_path / 'o')], 'folder.fits: is a folder, not a FITS file'),
        (['label', '--graph', str(tmp_path), '--image', str(bomb)], 'is a folder, not a model'),
        (['label', '--graph', str(bad_model), '--image', str(bomb)],
         "'labels' must be of type list"),
        (['annotate-table', '--graph', model, str(catalog), '--image', str(mosaic),
          '--output', str(tmp_path / 'out.ecsv'), '--size', '1e9'], 'would need'),
        (['annotate-table', '--graph', model, str(catalog), '--image', str(mosaic),
          '--output', str(tmp_path / 'out.ecsv'), '--size', '30"'], 'give pixels'),
        (['retrain', '--image_dir', str(data_dir), '--output_graph', str(tmp_path / 'm.keras'),
          '--summaries_dir', str(summaries)], 'the summaries folder is a file'),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, match in cases:
        with contextlib.ExitStack() as stack:
            for path in (bomb, trailing, bad_model, catalog):
                stack.enter_context(unchanged(path))
            status = cli.main(argv)
        err = capsys.readouterr().err
        # One error line (a size far from the training frames may also get
        # its one-line warning first).
        lines = [line for line in err.splitlines() if line.strip()
                 and ': warning: ' not in line]
        assert status == 1, (argv, err)
        assert len(lines) == 1 and 'Traceback' not in err, (argv, err)
        assert lines[0].startswith(f'astroclusterclf {argv[0]}: error: ')
        assert match in lines[0], (argv, lines[0])
    # A declination outside +-90: the row is flagged, the catalog still done.
    status = cli.main(['annotate-table', '--graph', model, str(catalog), '--image',
                       str(mosaic), '--output', str(tmp_path / 'out.ecsv')])
    capsys.readouterr()
    assert status == 0
    assert list(Table.read(tmp_path / 'out.ecsv')['pred_flag']) == [CutoutFlag.OFF_IMAGE]
    after = sorted(p.name for p in tmp_path.iterdir())
    assert set(after) - set(before) <= {'out.ecsv', 'o'}
    assert not [p for p in tmp_path.rglob('*') if 'acc-tmp' in p.name]
