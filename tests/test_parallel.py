# Licensed under a 3-clause BSD style license - see LICENSE.rst
import threading

from astroclusterclf._parallel import prefetch_map


def test_prefetch_map_keeps_order_and_passes_errors():
    def func(x):
        if x == 3:
            raise OSError('boom')
        return x * x
    out = list(prefetch_map(func, range(10), workers=3, lookahead=4))
    assert [item for item, _, _ in out] == list(range(10))
    assert [r for _, r, e in out if e is None] == [
        x * x for x in range(10) if x != 3]
    assert isinstance(out[3][2], OSError)


def test_prefetch_map_overlaps_work():
    # Each call waits for another one to start: only works concurrently.
    barrier = threading.Barrier(2, timeout=10)

    def func(x):
        barrier.wait()
        return x
    assert [r for _, r, _ in prefetch_map(func, range(4), workers=2)] == [
        0, 1, 2, 3]
