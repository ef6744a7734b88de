# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Small helpers shared by the test modules."""

import contextlib
import hashlib
import warnings

__all__ = ['digest', 'unchanged', 'recording']


def digest(path):
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def unchanged(path):
    """Assert that the bytes of ``path`` are the same after the block."""
    before = digest(path)
    yield
    assert digest(path) == before, f'{path} was modified'


@contextlib.contextmanager
def recording(category):
    """Record warnings of ``category`` (like pytest.warns, without
    re-emitting third-party deprecation warnings as errors)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always', category)
        yield record
    assert any(issubclass(w.category, category) for w in record)
